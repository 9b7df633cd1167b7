"""How the shop emulator authenticates a request, as ``class-wc-rest-authentication.php`` does:
HTTP Basic or the query string over HTTPS, else OAuth 1.0a one-legged with WooCommerce's own
base string, timestamp window and nonce check; then the key's read/write permissions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import threading
from datetime import datetime
from typing import Any
from urllib.parse import unquote, unquote_plus, urlsplit

from woo2d365.sandbox.shop_rest import ApiError, Request, rawurlencode

OAUTH_WINDOW_SECONDS = 15 * 60
_OAUTH_PARAMS = (
    "oauth_consumer_key", "oauth_timestamp", "oauth_nonce", "oauth_signature",
    "oauth_signature_method",
)  # fmt: skip


def _https_credentials(req: Request, authorization: str | None) -> tuple[str, str, str]:
    """(key, secret, "query" | "basic") a request over HTTPS offers, or empty strings."""
    query_key, query_secret = req.query.get("consumer_key"), req.query.get("consumer_secret")
    if query_key and query_secret and isinstance(query_key, str) and isinstance(query_secret, str):
        return query_key, query_secret, "query"
    if authorization and authorization[:6].lower() == "basic ":
        try:
            user, _, password = base64.b64decode(authorization[6:].strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = password = ""
        if user and password:
            return user, password, "basic"
    return "", "", ""


class WooCommerceAuthentication:
    """The authentication part of the shop emulator (a mixin: the emulator holds the state)."""

    consumer_key: str
    consumer_secret: str
    strip_authorization: bool
    key_permissions: str
    url: str
    _lock: threading.RLock
    _nonces: dict[int, str]

    def now(self) -> datetime:
        """The shop's clock."""
        raise NotImplementedError

    def _authenticate(self, req: Request) -> tuple[bool, str, ApiError | None]:
        error: ApiError | None = None
        authorization = None if self.strip_authorization else req.headers.get("Authorization")
        if req.https:
            key, secret, kind = _https_credentials(req, authorization)
            if key and secret and hmac.compare_digest(key.encode(), self.consumer_key.encode()):
                if hmac.compare_digest(secret.encode(), self.consumer_secret.encode()):
                    return True, kind, None
                error = ApiError(
                    401, "woocommerce_rest_authentication_error", "Consumer secret is invalid."
                )
        params, oauth_error = self._oauth_parameters(req, authorization)
        if oauth_error is not None:
            return False, "none", oauth_error
        if params is None:
            return False, "none", error
        if not hmac.compare_digest(
            str(params["oauth_consumer_key"]).encode(), self.consumer_key.encode()
        ):
            return (
                False,
                "none",
                ApiError(401, "woocommerce_rest_authentication_error", "Consumer key is invalid."),
            )
        problem = self._check_oauth_signature(req, params) or self._check_oauth_nonce(params)
        if problem is not None:
            return False, "none", ApiError(401, "woocommerce_rest_authentication_error", problem)
        # An error from a failed Basic attempt stays set even when OAuth succeeds (WooCommerce).
        return error is None, "oauth1", error

    def _oauth_parameters(
        self, req: Request, authorization: str | None
    ) -> tuple[dict[str, Any] | None, ApiError | None]:
        params: dict[str, Any] = {**req.query, **req.form}
        if authorization and authorization.strip().startswith("OAuth "):
            for name, quoted, bare in re.findall(
                r'(oauth_[a-z_-]*)=(?::?"([^"]*)"|([^,]*))', authorization
            ):
                params[name] = unquote_plus(quoted or bare)
        missing = [name for name in _OAUTH_PARAMS if not params.get(name)]
        if len(missing) == len(_OAUTH_PARAMS):
            return None, None
        if missing:
            noun = "parameter" if len(missing) == 1 else "parameters"
            return None, ApiError(
                401,
                "woocommerce_rest_authentication_missing_parameter",
                f"Missing OAuth {noun} {', '.join(missing)}",
            )
        return params, None

    def _check_oauth_signature(self, req: Request, params: dict[str, Any]) -> str | None:
        scheme = "https" if req.https else "http"
        home = scheme + self.url[self.url.index("://") :]
        path = urlsplit(req.raw_path).path
        base_uri = home + "/" + path.lstrip("/")
        params = dict(params)
        provided = unquote(str(params.pop("oauth_signature")).replace(" ", "+"))
        pieces: list[str] = []
        for name in sorted(params, key=lambda k: k.encode()):
            value = params[name]
            encoded_name = rawurlencode(name)
            if isinstance(value, dict):
                for index, item in value.items():
                    pieces.append(
                        rawurlencode(f"{encoded_name}%5B{index}%5D={rawurlencode(str(item))}")
                    )
            else:
                pieces.append(rawurlencode(f"{encoded_name}={rawurlencode(str(value))}"))
        base_string = f"{req.raw_method}&{rawurlencode(base_uri)}&{'%26'.join(pieces)}"
        method = params.get("oauth_signature_method")
        if method not in ("HMAC-SHA1", "HMAC-SHA256"):
            return "Invalid signature - signature method is invalid."
        digest = hashlib.sha1 if method == "HMAC-SHA1" else hashlib.sha256
        expected = base64.b64encode(
            hmac.new((self.consumer_secret + "&").encode(), base_string.encode(), digest).digest()
        ).decode()
        if not hmac.compare_digest(expected.encode(), provided.encode()):
            return "Invalid signature - provided signature does not match."
        return None

    def _check_oauth_nonce(self, params: dict[str, Any]) -> str | None:
        now = int(self.now().timestamp())
        match = re.match(r"^\s*(\d+)", str(params["oauth_timestamp"]))
        timestamp = int(match.group(1)) if match else 0
        if timestamp < now - OAUTH_WINDOW_SECONDS or timestamp > now + OAUTH_WINDOW_SECONDS:
            return "Invalid timestamp."
        nonce = str(params["oauth_nonce"])
        with self._lock:
            if nonce in self._nonces.values():
                return "Invalid nonce - nonce has already been used."
            self._nonces[timestamp] = nonce
            for stamp in [s for s in self._nonces if s < now - OAUTH_WINDOW_SECONDS]:
                del self._nonces[stamp]
        return None

    def _check_key_permissions(self, method: str) -> None:
        permissions = self.key_permissions
        if method in ("GET", "HEAD"):
            if permissions not in ("read", "read_write"):
                raise ApiError(
                    401,
                    "woocommerce_rest_authentication_error",
                    "The API key provided does not have read permissions.",
                )
        elif method in ("POST", "PUT", "PATCH", "DELETE"):
            if permissions not in ("write", "read_write"):
                raise ApiError(
                    401,
                    "woocommerce_rest_authentication_error",
                    "The API key provided does not have write permissions.",
                )
        elif method != "OPTIONS":
            raise ApiError(401, "woocommerce_rest_authentication_error", "Unknown request method.")
