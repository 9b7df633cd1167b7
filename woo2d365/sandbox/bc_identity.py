"""The Microsoft Entra ID endpoints of the Dynamics emulators: OpenID discovery, signing keys and
the client-credentials token endpoint, with Entra ID's AADSTS error answers (``docs/systems.md``).
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, unquote

from woo2d365.sandbox import bc_model as m


@dataclass
class IssuedToken:
    """An access token the token endpoint issued."""

    client_id: str
    tenant: str
    expires_at: float  # time.monotonic()


# (HTTP status, AADSTS error, AADSTS code, description) of a refused token request
_AadProblem = tuple[int, str, int, str]


def _form_body(handler: BaseHTTPRequestHandler, body: bytes) -> dict[str, str]:
    """A form-encoded request body (anything else reads as an empty form)."""
    content_type = handler.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return {}
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return {}


def _client_credentials(
    handler: BaseHTTPRequestHandler, form: Mapping[str, str]
) -> tuple[str, str | None]:
    """(client id, secret) from HTTP Basic authentication, else from the form."""
    client_id = form.get("client_id", "")
    client_secret = form.get("client_secret")
    auth = handler.headers.get("Authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            client_id, client_secret = unquote(user), unquote(password)
        except (binascii.Error, UnicodeDecodeError):
            pass
    return client_id, client_secret


def _grant_problem(form: Mapping[str, str]) -> _AadProblem | None:
    """Only the client credentials grant is served."""
    if not form.get("grant_type"):
        return (
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        )
    if form["grant_type"] != "client_credentials":
        return (
            400,
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{form['grant_type']}'.",
        )
    return None


class EntraIdentityProvider:
    """The identity provider part of an emulator (a mixin: the emulator holds the state)."""

    tenant_id: str
    client_id: str
    client_secret: str
    scope: str
    token_lifetime_seconds: int
    token_requests: int
    _lock: threading.RLock
    _tokens: dict[str, IssuedToken]

    @property
    def authority_host(self) -> str:
        """The base URL of the identity provider."""
        raise NotImplementedError

    def _idp_answer(
        self, handler: BaseHTTPRequestHandler, method: str, path: str, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        """(status, JSON document) of a request to the identity provider's endpoints."""
        segments = path.split("/")
        tenant = unquote(segments[1])
        rest = "/".join(segments[2:])
        known = tenant.lower() == self.tenant_id.lower()
        status: int
        doc: dict[str, Any]
        if rest == "v2.0/.well-known/openid-configuration" and method == "GET":
            if known:
                status, doc = 200, self._openid_configuration()
            else:
                status, doc = self._tenant_not_found(tenant)
                doc["error"] = "invalid_tenant"
        elif rest == "discovery/v2.0/keys" and method == "GET":
            status, doc = 200, {"keys": []}
        elif rest == "oauth2/v2.0/token":
            if method == "POST":
                with self._lock:
                    self.token_requests += 1
            if method != "POST":
                status, doc = self._aad_error(
                    400, "invalid_request", 900561, "The endpoint only accepts POST requests."
                )
            elif not known:
                status, doc = self._tenant_not_found(tenant)
            else:
                status, doc = self._token(handler, body)
        else:
            status, doc = 404, {"error": "not_found", "error_description": "Not found."}
        return status, doc

    def _aad_error(
        self, status: int, error: str, code: int, description: str
    ) -> tuple[int, dict[str, Any]]:
        trace, correlation = m.new_guid(), m.new_guid()
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return status, {
            "error": error,
            "error_description": f"AADSTS{code}: {description} Trace ID: {trace} Correlation ID: "
            f"{correlation} Timestamp: {stamp}",
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"{self.authority_host}/error?code={code}",
        }

    def _tenant_not_found(self, tenant: str) -> tuple[int, dict[str, Any]]:
        return self._aad_error(
            400,
            "invalid_request",
            90002,
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
            "are signing into the correct cloud. Check with your subscription administrator, "
            "this may happen if there are no active subscriptions for the tenant.",
        )

    def _openid_configuration(self) -> dict[str, Any]:
        base = f"{self.authority_host}/{self.tenant_id}"
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{self.authority_host}/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        }

    def _client_problem(self, client_id: str, client_secret: str | None) -> _AadProblem | None:
        """Why Entra ID refuses this client id and secret, or None."""
        if not client_id:
            return (
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        if client_id != self.client_id:
            return (
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant_id}'. This can happen if the application has not been installed "
                "by the administrator of the tenant or consented to by any user in the tenant. "
                "You may have sent your authentication request to the wrong tenant.",
            )
        if not client_secret:
            return (
                401,
                "invalid_client",
                7000216,
                "'client_assertion', 'client_secret' or 'request' is required for the "
                "'client_credentials' grant type.",
            )
        if not secrets.compare_digest(client_secret, self.client_secret):
            return (
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                "the client secret value, not the client secret ID, for a secret added to app "
                f"'{self.client_id}'.",
            )
        return None

    def _scope_problem(self, scope: str) -> _AadProblem | None:
        """Why Entra ID refuses this scope (one ``<resource>/.default``), or None."""
        if not scope:
            return (
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            )
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            return (
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        if scopes[0] != self.scope:
            resource = scopes[0][: -len("/.default")]
            return (
                400,
                "invalid_scope",
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{self.tenant_id}. This can happen if the application has not been installed by "
                "the administrator of the tenant or consented to by any user in the tenant. You "
                "might have sent your authentication request to the wrong tenant.",
            )
        return None

    def _token(self, handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict[str, Any]]:
        form = _form_body(handler, body)
        client_id, client_secret = _client_credentials(handler, form)
        problem = (
            _grant_problem(form)
            or self._client_problem(client_id, client_secret)
            or self._scope_problem(form.get("scope", ""))
        )
        if problem is not None:
            return self._aad_error(*problem)
        token = secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[token] = IssuedToken(
                client_id, self.tenant_id, time.monotonic() + self.token_lifetime_seconds
            )
        return 200, {
            "token_type": "Bearer",
            "expires_in": self.token_lifetime_seconds,
            "ext_expires_in": self.token_lifetime_seconds,
            "access_token": token,
        }
