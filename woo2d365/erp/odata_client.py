"""The request path of a Dynamics OData v4 API over HTTPS, shared by the Dynamics clients.

One place for what does not depend on which Dynamics answers (``docs/architecture.md``,
"Exactly once", step 3): at most ``dynamics.max_concurrency`` requests in flight, paced by the
sliding-window limiter; the :class:`~woo2d365.erp.base.SendGuard` asked before a request waits
for its slot and again right before it leaves, and told when the answer proves it never ran;
one token refresh on 401; transport errors turned into outcomes; ``@odata.nextLink`` followed
verbatim. What an answer *means* is the subclass's :meth:`ODataClient._classify` (each product
has its own error bodies).

Both Dynamics clients are built on it; it imports from neither product. The pace lives in
:mod:`woo2d365.erp.pacing`, the query syntax in :mod:`woo2d365.erp.odata_query`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import requests
import urllib3.exceptions

from woo2d365.erp.base import SendGuard
from woo2d365.erp.pacing import SlidingWindowLimiter
from woo2d365.errors import (
    DocumentInDoubt,
    DynamicsAuthenticationError,
    DynamicsError,
    DynamicsUnreachable,
    DynamicsUntrusted,
)
from woo2d365.http import api_session
from woo2d365.retries import RetryPolicy, log_retry, retrying
from woo2d365.settings import DynamicsSettings

NOT_PROCESSED_STATUSES = frozenset({429, 502, 503})
"""Answers that mean the request never ran: throttled, data plane down, queue full/maintenance."""


class TokenProvider(Protocol):
    """Hands out bearer tokens for the Dynamics API."""

    def token(self) -> str:
        """A valid access token (from a cache when possible)."""
        ...

    def invalidate(self, token: str | None = None) -> None:
        """Forget ``token`` (or whatever is cached) so the next :meth:`token` fetches a new one."""
        ...


class TransientError(DynamicsError):
    """Dynamics did not process the request (or a read failed); it may succeed later."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, retryable=True)
        self.retry_after = retry_after


class AnsweredInDoubt(DocumentInDoubt):
    """A create was answered with a server error (500/408): it ran and most likely rolled back.

    Unlike a create without an answer, a lookup by the natural key settles it at once.
    """


def was_sent(exc: requests.RequestException) -> bool:
    """False when the connection was never made (the server cannot have seen the request)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return False
    if isinstance(exc, requests.exceptions.SSLError | requests.exceptions.ProxyError):
        return False
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = exc.args[0] if exc.args else None
        inner = getattr(reason, "reason", reason)
        if isinstance(
            inner, urllib3.exceptions.NewConnectionError | urllib3.exceptions.NameResolutionError
        ):
            return False
    return True


def worth_another_try(exc: BaseException) -> bool:
    """Retryable, and not a create that may have run (it is looked up first, never resent)."""
    if isinstance(exc, DocumentInDoubt | DynamicsAuthenticationError):
        return False
    return bool(getattr(exc, "retryable", False))


class ODataClient:
    """Slots, pace, guard, token refresh and transport errors for one API; thread-safe.

    ``where`` names the service in messages (its configured URL); ``headers`` are sent with
    every request of the session.
    """

    def __init__(
        self,
        settings: DynamicsSettings,
        tokens: TokenProvider,
        *,
        base_url: str,
        where: str,
        headers: dict[str, str],
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
        limiter: SlidingWindowLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.retry = retry or RetryPolicy()
        self.base_url = base_url
        self._where = where
        self._session = session or api_session(base_url, settings.max_concurrency, headers)
        self._slots = threading.BoundedSemaphore(settings.max_concurrency)
        self._limiter = limiter or SlidingWindowLimiter(settings.requests_per_5_minutes)
        self._count_lock = threading.Lock()
        self.request_count = 0
        self.error_count = 0  # requests without an answer or answered with status >= 400
        self._timeout = (min(10.0, settings.timeout_seconds), settings.timeout_seconds)
        self._retrying = retrying(
            self.retry,
            retry_on=DynamicsError,
            is_retryable=worth_another_try,
            sleep=sleep,
            on_retry=log_retry,
        )

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()

    def _classify(self, response: requests.Response, method: str) -> DynamicsError | None:
        """The outcome of an answer: None for success, else the error to raise."""
        raise NotImplementedError

    # -- the one request path -------------------------------------------------------------------
    @contextmanager
    def _slot(self) -> Iterator[None]:
        """One of ``max_concurrency`` request slots, paced by the sliding-window limiter."""
        with self._slots:
            self._limiter.acquire()
            with self._count_lock:
                self.request_count += 1
            yield

    def _count_error(self) -> None:
        with self._count_lock:
            self.error_count += 1

    def _send(
        self,
        method: str,
        url: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        guard: SendGuard | None = None,
    ) -> requests.Response:
        """Send once (plus one token refresh on 401); raise the classified error of the answer.

        ``guard`` is asked before the request waits for a slot (its store write then holds no
        slot), again right before the request leaves (inside the slot, after any wait for the
        pace), and told when the answer proves the request never ran.
        """
        refreshed = False
        while True:
            token = self.tokens.token()
            sent = {**(headers or {}), "Authorization": f"Bearer {token}"}
            response = self._transmit(method, url, data, sent, guard)
            if response.status_code == 401:
                if guard is not None:
                    guard.not_sent()  # refused before it ran
                if not refreshed:
                    self.tokens.invalidate(token)
                    refreshed = True
                    continue
            problem = self._classify(response, method)
            if problem is not None:
                if guard is not None and response.status_code in NOT_PROCESSED_STATUSES:
                    guard.not_sent()
                raise problem
            return response

    def _transmit(
        self,
        method: str,
        url: str,
        data: bytes | None,
        headers: dict[str, str],
        guard: SendGuard | None,
    ) -> requests.Response:
        """One request in a slot, errors counted; no answer raises its transport outcome."""
        try:
            if guard is not None:
                guard.before_slot()
            with self._slot():
                if guard is not None:
                    guard.before_send()
                response = self._session.request(
                    method, url, data=data, headers=headers, timeout=self._timeout
                )
        except requests.RequestException as exc:
            self._count_error()
            if guard is not None and not was_sent(exc):
                guard.not_sent()
            raise self._transport_error(method, exc) from None
        if response.status_code >= 400:
            self._count_error()
        return response

    def _transport_error(self, method: str, exc: requests.RequestException) -> DynamicsError:
        """What a request without an answer means: untrusted, unreachable, or in doubt."""
        if isinstance(exc, requests.exceptions.SSLError):
            return DynamicsUntrusted(
                f"{self._where}: TLS certificate not trusted or handshake failed "
                "(set REQUESTS_CA_BUNDLE or SSL_CERT_FILE for a private CA)"
            )
        kind = "timed out" if isinstance(exc, requests.exceptions.Timeout) else "connection failed"
        if method != "GET" and was_sent(exc):
            return DocumentInDoubt(
                f"{method} to Dynamics {kind} after it was sent ({type(exc).__name__}); "
                "the document may exist"
            )
        return DynamicsUnreachable(
            f"Dynamics at {self._where} cannot be reached: {kind} ({type(exc).__name__})"
        )

    def _pages(self, first: str, get_page: Callable[[str], Any]) -> Iterator[dict[str, Any]]:
        """Every entity of a collection from ``first`` on, following ``@odata.nextLink``."""
        url: str | None = first
        while url:
            page = get_page(url)
            values = page.get("value", []) if isinstance(page, dict) else []
            yield from (entry for entry in values if isinstance(entry, dict))
            next_link = page.get("@odata.nextLink") if isinstance(page, dict) else None
            url = next_link if isinstance(next_link, str) and next_link else None
