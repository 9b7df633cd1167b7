"""Access tokens for Business Central: msal client credentials behind a small provider interface.

One :class:`msal.ConfidentialClientApplication` per process and app registration, created on the
first token request (its constructor already talks to the identity provider). msal's in-memory
cache serves the token until it expires; :meth:`MsalTokenProvider.invalidate` drops it when the
API answered 401, so the next :meth:`~MsalTokenProvider.token` fetches a fresh one.

Certificates follow ``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE`` (the contract), passed to msal's own
HTTP session explicitly because requests itself ignores ``SSL_CERT_FILE``.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any
from urllib.parse import urlsplit

import msal
import requests

from woo2d365.errors import DynamicsAuthenticationError, DynamicsUnreachable, DynamicsUntrusted
from woo2d365.http import TrustingSession, ca_bundle
from woo2d365.settings import DynamicsSettings

MICROSOFT_LOGIN_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "sts.windows.net",
        "login.microsoftonline.us",
        "login-us.microsoftonline.com",
        "login.usgovcloudapi.net",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
        "login.microsoftonline.de",
        "login.sovcloud-identity.fr",
        "login.sovcloud-identity.de",
        "login.sovcloud-identity.sg",
    }
)
"""Entra ID login hosts msal knows; any other ``authority_host`` turns instance discovery off."""


def is_microsoft_login_host(authority_host: str) -> bool:
    """True when ``authority_host`` is an Entra ID login host (msal instance discovery works)."""
    host = (urlsplit(authority_host).hostname or "").lower()
    return host in MICROSOFT_LOGIN_HOSTS


def authority_url(settings: DynamicsSettings) -> str:
    """``{authority_host}/{tenant_id}``."""
    return f"{settings.authority_host.rstrip('/')}/{settings.tenant_id.strip()}"


class MsalTokenProvider:
    """Client-credentials tokens from msal; thread-safe, the msal app built on first use."""

    def __init__(self, settings: DynamicsSettings, *, http_client: Any | None = None) -> None:
        self._settings = settings
        self._http_client = http_client  # tests may inject one; else a TrustingSession
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()
        self._token_lock = threading.Lock()  # threads that all saw a 401 fetch one new token

    @property
    def scopes(self) -> list[str]:
        """The one scope of the token (``dynamics.scope``)."""
        return [self._settings.scope.strip()]

    def _application(self) -> msal.ConfidentialClientApplication:
        with self._lock:
            if self._app is None:
                self._app = self._build()
            return self._app

    def _build(self) -> msal.ConfidentialClientApplication:
        settings = self._settings
        discovery = is_microsoft_login_host(settings.authority_host)
        kwargs: dict[str, Any] = {
            "client_credential": settings.client_secret.get_secret_value(),
            "authority": authority_url(settings),
            "http_client": self._http_client
            or TrustingSession(
                timeout=(min(10.0, settings.timeout_seconds), settings.timeout_seconds)
            ),
        }
        if not discovery:
            kwargs["instance_discovery"] = False
        try:
            return msal.ConfidentialClientApplication(settings.client_id.strip(), **kwargs)
        except ValueError as exc:
            raise self._discovery_error(exc) from None
        except requests.RequestException as exc:
            raise _unreachable(settings.authority_host, exc) from None

    def _discovery_error(self, exc: ValueError) -> DynamicsAuthenticationError:
        text = str(exc)
        if "OIDC Discovery failed" in text or "Unable to get authority configuration" in text:
            return DynamicsAuthenticationError(
                f"the identity provider {self._settings.authority_host} does not know tenant "
                f"{self._settings.tenant_id!r}: check dynamics.tenant_id (and "
                "dynamics.authority_host)"
            )
        return DynamicsAuthenticationError(
            f"dynamics.authority_host {self._settings.authority_host!r} is not usable: "
            f"{_first_line(text)}"
        )

    def token(self) -> str:
        """A valid access token; msal's cache answers until the token expires."""
        app = self._application()
        try:
            with self._token_lock:
                result = app.acquire_token_for_client(scopes=self.scopes)
        except requests.RequestException as exc:
            raise _unreachable(self._settings.authority_host, exc) from None
        except ValueError as exc:
            raise DynamicsAuthenticationError(
                f"token request failed: {_first_line(str(exc))}"
            ) from None
        if not isinstance(result, dict):
            raise DynamicsAuthenticationError(
                "the identity provider gave no answer to a token request"
            )
        access_token = result.get("access_token")
        if isinstance(access_token, str) and access_token:
            return access_token
        raise self._token_error(result)

    def invalidate(self, token: str | None = None) -> None:
        """Drop ``token`` (every cached token when None) from msal's cache."""
        with self._lock:
            app = self._app
        if app is None:
            return
        cache = app.token_cache
        for entry in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
            if token is None or entry.get("secret") == token:
                cache.remove_at(entry)

    def _token_error(self, result: dict[str, Any]) -> DynamicsAuthenticationError:
        """One line naming the setting that is most likely wrong; never the secret."""
        error = str(result.get("error", "unknown_error"))
        description = _first_line(str(result.get("error_description", "")))
        codes = {str(code) for code in result.get("error_codes", []) or []}
        aadsts = description.split(":", 1)[0] if description.startswith("AADSTS") else ""
        secret = self._settings.client_secret.get_secret_value()
        if secret:
            description = description.replace(secret, "***")
        if (
            error == "invalid_client"
            or aadsts in ("AADSTS7000215", "AADSTS7000222")
            or {
                "7000215",
                "7000222",
            }
            & codes
        ):
            hint = "check dynamics.client_secret (wrong or expired) and dynamics.client_id"
        elif error == "unauthorized_client" or aadsts == "AADSTS700016" or "700016" in codes:
            hint = "check dynamics.client_id (app not found in this tenant)"
        elif error == "invalid_scope" or aadsts in ("AADSTS70011", "AADSTS500011"):
            hint = "check dynamics.scope"
        elif error == "invalid_tenant" or aadsts in ("AADSTS90002", "AADSTS900023"):
            hint = "check dynamics.tenant_id"
        else:
            hint = "check dynamics.tenant_id, dynamics.client_id and dynamics.client_secret"
        detail = f": {description}" if description else ""
        return DynamicsAuthenticationError(f"token request refused ({error}){detail}; {hint}")


_SHARED: dict[tuple[str, ...], MsalTokenProvider] = {}
_SHARED_LOCK = threading.Lock()


def shared_token_provider(settings: DynamicsSettings) -> MsalTokenProvider:
    """The process-wide provider for this app registration (one msal app, one token cache)."""
    secret_hash = hashlib.sha256(settings.client_secret.get_secret_value().encode()).hexdigest()
    key = (
        authority_url(settings),
        settings.client_id.strip(),
        settings.scope.strip(),
        secret_hash,
        str(ca_bundle()),
    )
    with _SHARED_LOCK:
        provider = _SHARED.get(key)
        if provider is None:
            provider = _SHARED[key] = MsalTokenProvider(settings)
        return provider


def _unreachable(host: str, exc: BaseException) -> DynamicsUnreachable:
    if isinstance(exc, requests.exceptions.SSLError):
        return DynamicsUntrusted(
            f"identity provider {host}: TLS certificate not trusted or handshake failed "
            "(set REQUESTS_CA_BUNDLE or SSL_CERT_FILE for a private CA)"
        )
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status is not None:
        return DynamicsUnreachable(
            f"identity provider {host} answered HTTP {status}", status=int(status)
        )
    return DynamicsUnreachable(f"identity provider {host} cannot be reached: {type(exc).__name__}")


def _first_line(text: str) -> str:
    text = text.strip()
    return text.splitlines()[0] if text else ""
