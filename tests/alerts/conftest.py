"""Real receivers for alerts on 127.0.0.1: an SMTP server (aiosmtpd) and an HTTP sink.

Both bind a free port, capture what arrives and shut down at the end of the test; their
threads are daemons.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from woo2d365.model import OrderState
from woo2d365.settings import AlertsSettings, EmailAlertSettings, WebhookAlertSettings
from woo2d365.store.base import PulledOrder, StateStore

# -- SMTP --------------------------------------------------------------------------------------


@dataclass
class ReceivedMail:
    """One message as the SMTP server received it."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    authenticated: bool


class _Capture:
    def __init__(self) -> None:
        self.mails: list[ReceivedMail] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.mails.append(
            ReceivedMail(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                message,
                session.ssl is not None,
                bool(session.authenticated),
            )
        )
        return "250 OK"


class _FreePortController(Controller):
    """aiosmtpd's Controller bound to port 0: learns the real port before its self-test."""

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@dataclass
class SmtpServer:
    """A running SMTP server and what it received."""

    controller: _FreePortController
    capture: _Capture
    logins: list[tuple[str, str]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.controller.port)

    @property
    def mails(self) -> list[ReceivedMail]:
        return self.capture.mails

    def settings(self, **overrides: Any) -> EmailAlertSettings:
        values: dict[str, Any] = {
            "smtp_host": "127.0.0.1",
            "smtp_port": self.port,
            "starttls": False,
            "sender": "woo2d365@example.test",
            "recipients": ["ops@example.test"],
        }
        values.update(overrides)
        return EmailAlertSettings(**values)


StartSmtp = Callable[..., SmtpServer]


@pytest.fixture
def start_smtp() -> Iterator[StartSmtp]:
    """Start SMTP servers: ``start_smtp(password=..., tls_context=..., require_starttls=...)``."""
    started: list[SmtpServer] = []

    def start(
        *,
        password: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
    ) -> SmtpServer:
        capture = _Capture()
        kwargs: dict[str, Any] = {}
        server_ref: list[SmtpServer] = []
        if password is not None:

            def authenticator(
                server: Any, session: Any, envelope: Any, mechanism: str, data: Any
            ) -> AuthResult:
                assert isinstance(data, LoginPassword)
                login, given = data.login.decode(), data.password.decode()
                server_ref[0].logins.append((login, given))
                return AuthResult(success=given == password, handled=False)

            kwargs.update(authenticator=authenticator, auth_require_tls=tls_context is not None)
        if tls_context is not None:
            kwargs.update(tls_context=tls_context, require_starttls=require_starttls)
        controller = _FreePortController(
            capture, hostname="127.0.0.1", port=0, ready_timeout=5, **kwargs
        )
        controller.start()
        server = SmtpServer(controller, capture)
        server_ref.append(server)
        started.append(server)
        return server

    yield start
    for server in started:
        server.controller.stop()


@pytest.fixture
def smtp(start_smtp: StartSmtp) -> SmtpServer:
    """A plain SMTP server without TLS or AUTH."""
    return start_smtp()


# -- HTTP sink ---------------------------------------------------------------------------------


@dataclass
class HttpSink:
    """A webhook endpoint: records JSON bodies and answers ``status`` (after ``delay`` s)."""

    server: ThreadingHTTPServer
    bodies: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    reply: bytes = b"ok"
    delay: float = 0.0

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/services/T000/B000/SECRET-HOOK-TOKEN"

    def settings(self) -> WebhookAlertSettings:
        return WebhookAlertSettings(url=self.url)  # type: ignore[arg-type]

    @property
    def texts(self) -> list[str]:
        return [str(b["text"]) for b in self.bodies]


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    """An HTTP sink on 127.0.0.1 (free port)."""
    holder: list[HttpSink] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(length)
            target = holder[0]
            if self.headers.get("Content-Type", "").startswith("application/json"):
                target.bodies.append(json.loads(data))
            if target.delay:
                time.sleep(target.delay)
            # A client that timed out has gone: nothing to answer.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.send_response(target.status)
                self.send_header("Content-Length", str(len(target.reply)))
                self.end_headers()
                self.wfile.write(target.reply)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    holder.append(HttpSink(server))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield holder[0]
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_port_url() -> str:
    """A webhook URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/services/T000/B000/SECRET-HOOK-TOKEN"


# -- clock, logs, orders -----------------------------------------------------------------------


class FakeClock:
    """An injected clock tests move by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, *, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class AlertLog:
    handler: _ListHandler

    def lines(self, level: int = logging.WARNING) -> list[str]:
        return [r.getMessage() for r in self.handler.records if r.levelno >= level]


@pytest.fixture
def alert_log() -> Iterator[AlertLog]:
    """Records of the ``woo2d365.alerts`` logger, whatever other tests did to its parents."""
    logger = logging.getLogger("woo2d365.alerts")
    handler = _ListHandler()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield AlertLog(handler)
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def alerts_settings(
    smtp: SmtpServer | None = None, sink: HttpSink | None = None, *, repeat: int = 240
) -> AlertsSettings:
    """``[alerts]`` pointing at the test receivers."""
    return AlertsSettings(
        repeat_after_minutes=repeat,
        email=smtp.settings() if smtp else EmailAlertSettings(),
        webhook=sink.settings() if sink else WebhookAlertSettings(),
    )


def add_order(
    store: StateStore,
    woo_id: int,
    state: OrderState,
    *,
    reason: str | None = None,
    held_skus: list[str] | None = None,
    number: str | None = None,
) -> None:
    """Put an order into the store the way pull and validate would."""
    store.save_pulled_order(
        PulledOrder(
            woo_id=woo_id,
            number=number or str(woo_id),
            shop_status="processing",
            shop_modified_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
            currency="EUR",
            total="42.00",
            raw={"id": woo_id, "billing": {"email": "jane@example.test"}},
        )
    )
    if state is not OrderState.NEW:
        store.set_state(woo_id, state, reason=reason)
    if held_skus is not None:
        store.set_held_skus(woo_id, held_skus)
