"""What both HTTP clients share: trusted sessions, and reading ``Date`` and ``Retry-After``.

Sessions trust what the contract says (``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE``) for the
WooCommerce client, the Business Central client and msal, so every connection the tool makes,
token requests included, verifies certificates the same way. Verification is never turned off.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from woo2d365.clock import Clock, utc_now


def http_date(value: str | None) -> datetime | None:
    """An HTTP date (``Date``, ``Retry-After``) as aware UTC, or None when absent or unreadable."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def server_date(response: requests.Response) -> datetime | None:
    """The response's ``Date`` header (the server's clock) as aware UTC, if valid."""
    return http_date(response.headers.get("Date"))


def retry_after_seconds(response: requests.Response, clock: Clock = utc_now) -> float | None:
    """``Retry-After`` in seconds (given as seconds or as an HTTP date), or None.

    A date is measured against the server's own ``Date`` header when it sent one (the two clocks
    agree), else against ``clock``.
    """
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    when = http_date(value)
    if when is None:
        return None
    now = server_date(response) or clock()
    return max(0.0, (when - now).total_seconds())


def ca_bundle() -> str | bool:
    """The CA bundle for HTTPS: ``REQUESTS_CA_BUNDLE``, else ``SSL_CERT_FILE``, else the default."""
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return True


class TrustingSession(requests.Session):
    """A session that verifies with :func:`ca_bundle` on every request.

    The bundle is passed per request because requests lets ``CURL_CA_BUNDLE`` (and its own
    variable) override a session's ``verify``, and ignores ``SSL_CERT_FILE`` entirely.
    """

    def __init__(self, *, timeout: float | tuple[float, float] | None = None) -> None:
        super().__init__()
        self.verify = ca_bundle()
        self.default_timeout = timeout

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Send with the contract's CA bundle and the default timeout unless given."""
        kwargs.setdefault("verify", self.verify)
        if self.default_timeout is not None:
            kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, *args, **kwargs)


def environment_read_once(session: requests.Session, base_url: str) -> requests.Session:
    """``session`` with the proxy variables for ``base_url`` read now and never again.

    requests otherwise scans the whole environment for proxies and stats ~/.netrc on every
    request. Credentials are the session's own; certificates come from :class:`TrustingSession`.
    """
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    session.trust_env = False
    return session


def api_session(base_url: str, concurrency: int, headers: dict[str, str]) -> requests.Session:
    """A session for a Dynamics API: pooled for ``concurrency`` requests, never retrying by
    itself (the one retry policy does), its environment read once.

    Reading the environment here, not on every request, spares requests a scan for proxies and
    a stat of ~/.netrc each time (about a millisecond of CPU while holding a request slot). The
    proxy variables still apply; certificates come from :class:`TrustingSession`.
    """
    session = environment_read_once(TrustingSession(), base_url)
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=2, pool_maxsize=max(10, concurrency * 2), max_retries=0
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers.update({"User-Agent": "woo2d365", **headers})
    return session
