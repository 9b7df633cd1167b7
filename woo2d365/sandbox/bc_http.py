"""The HTTP side of the Dynamics emulators: the TLS server, the request handler, what is
recorded of a request, and the failures tests inject.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from woo2d365.sandbox.businesscentral import BusinessCentralEmulator


@dataclass(frozen=True)
class RecordedRequest:
    """One API request as the emulator saw it (never the token). ``status`` 0 = no answer."""

    method: str
    path: str
    query: str
    status: int
    at: float


@dataclass
class Fault:
    """A failure injected into the next matching requests."""

    kind: str  # "fail" | "drop" | "drop_after_commit"
    remaining: int
    method: str | None
    path_contains: str
    status: int = 503
    code: str = ""
    message: str = ""
    retry_after: int | None = None

    def matches(self, method: str, target: str) -> bool:
        return (
            self.remaining > 0
            and (self.method is None or self.method.upper() == method)
            and self.path_contains in target
        )


@dataclass
class AppLimits:
    """Per client app: requests in flight, waiting for a slot, and in the rate window."""

    in_flight: int = 0
    waiting: int = 0
    window: deque[float] = field(default_factory=deque)


class Dropped(Exception):
    """Close the connection without an answer."""


class TLSServer(ThreadingHTTPServer):
    """Accepts plain TCP, then does the TLS handshake in the connection's own thread."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, emulator: BusinessCentralEmulator, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.emulator = emulator
        self.context = context
        self.open_connections: set[ssl.SSLSocket] = set()
        self.connections_lock = threading.Lock()

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            # Headers and body must not wait for a delayed ACK (Nagle): 40 ms per request.
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            request.settimeout(10)
            tls = self.context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        with self.connections_lock:
            self.open_connections.add(tls)
        try:
            Handler(tls, client_address, self)
        except (OSError, ssl.SSLError):
            pass
        finally:
            with self.connections_lock:
                self.open_connections.discard(tls)
            with contextlib.suppress(OSError):
                tls.close()

    def shutdown_request(self, request: Any) -> None:
        with contextlib.suppress(OSError):
            request.close()

    def close_all_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.open_connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections are closed after this
    wbufsize = 1 << 16  # one write per response (flushed after each request)
    server: TLSServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _dispatch(self) -> None:
        self.server.emulator._handle(self)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = _dispatch
