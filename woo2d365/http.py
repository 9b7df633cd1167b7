"""HTTPS sessions that trust what the contract says: ``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE``.

Shared by the WooCommerce client, the Business Central client and msal, so every connection the
tool makes, token requests included, verifies certificates the same way. Verification is never
turned off.
"""

from __future__ import annotations

import os
from typing import Any

import requests


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
