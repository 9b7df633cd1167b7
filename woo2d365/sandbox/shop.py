"""A strict emulator of the WooCommerce REST API v3 (WordPress 6.9, WooCommerce 9.9.5).

Serves real HTTP or HTTPS on 127.0.0.1 (stdlib ``ThreadingHTTPServer``, daemon threads) and
behaves like the live shop described in ``docs/systems.md`` (W1–W4):

* Authentication as ``class-wc-rest-authentication.php`` does it: HTTP Basic and the
  ``consumer_key``/``consumer_secret`` query string only when served over HTTPS (over plain HTTP
  they are ignored and the request is anonymous); OAuth 1.0a one-legged (HMAC-SHA1/-SHA256,
  parameters in the query or an ``Authorization: OAuth`` header) whenever Basic did not
  authenticate, verified by an implementation of WooCommerce's own base-string rules (not
  oauthlib), with the ±15 minute timestamp window and nonce reuse check. Key permissions
  (read / write / read_write) are checked before routing, parameter validation before the
  route's permission check, as WordPress does.
* ``GET /orders`` with WordPress's parameter validation and error bodies, the ``after`` /
  ``modified_after`` timezone rules of section 3.1 (including the double shift of an offset
  combined with ``dates_are_gmt=true``), strict ``>``/``<`` to the second, ``X-WP-Total``,
  ``X-WP-TotalPages`` and a ``Link`` header with ``prev``/``next`` only that repeats the query
  (credentials in the query string included, as WordPress does).
* ``GET/PUT/POST/PATCH/DELETE /orders/{id}``, ``POST /orders/batch`` (updates; at most 100
  items, per-item errors inside a 200 answer), order notes, ``/system_status`` (small; see
  :meth:`ShopEmulator._system_status`) and the ``/wp-json/`` index (site ``timezone_string`` and
  ``gmt_offset``), plus ``?rest_route=`` for shops without pretty permalinks.
* Faults for tests: :meth:`ShopEmulator.fail_next` (JSON or CDN-style HTML error pages with
  ``Retry-After``), :meth:`ShopEmulator.drop_next` (connection closed without an answer, before
  or after the request took effect), ``latency``, and ``on_list_page`` to change the data
  between pages.

Every time stamp (``date_modified``, the ``Date`` header, the OAuth window) comes from the
injected ``clock``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import hashlib
import hmac
import json
import math
import re
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from email.message import Message
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, unquote_plus, urlencode, urlsplit
from zoneinfo import ZoneInfo

from woo2d365.sandbox import shop_refunds
from woo2d365.sandbox.shop_data import WC_VERSION, format_money, order_links, status_label
from woo2d365.sandbox.tls import SandboxCA

MAX_BODY_BYTES = 10 * 1024 * 1024
OAUTH_WINDOW_SECONDS = 15 * 60
ORDER_STATUSES = (
    "pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed",
    "checkout-draft",
)  # fmt: skip
LIST_STATUSES = ("any", "trash", "auto-draft", *ORDER_STATUSES)
HPOS_DATASTORE = "Automattic\\WooCommerce\\Internal\\DataStores\\Orders\\OrdersTableDataStore"
CPT_DATASTORE = "WC_Order_Data_Store_CPT"
WP_VERSION = "6.9"
REDACTED = "[redacted]"
_CREDENTIAL_PARAMS = frozenset(
    {"consumer_key", "consumer_secret", "oauth_consumer_key", "oauth_signature"}
)
_OAUTH_PARAMS = (
    "oauth_consumer_key", "oauth_timestamp", "oauth_nonce", "oauth_signature",
    "oauth_signature_method",
)  # fmt: skip
_ORDER_MONEY = (
    "discount_total",
    "discount_tax",
    "shipping_total",
    "shipping_tax",
    "cart_tax",
    "total",
    "total_tax",
)
_LINE_MONEY: dict[str, tuple[str, ...]] = {
    "line_items": ("subtotal", "subtotal_tax", "total", "total_tax"),
    "tax_lines": ("tax_total", "shipping_tax_total"),
    "shipping_lines": ("total", "total_tax"),
    "fee_lines": ("total", "total_tax"),
    "coupon_lines": ("discount", "discount_tax"),
    "refunds": ("total",),
}
BATCH_LIMIT = 100  # the woocommerce_rest_batch_items_limit default
_UNSUPPORTED_WRITES = ("line_items", "shipping_lines", "fee_lines", "coupon_lines")
# rest_parse_date() in wp-includes/rest-api.php
_DATE_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(Z|[+-]\d{2}(?::\d{2})?)?$"
)
_JSON_TYPE = "application/json; charset=UTF-8"
_COMMON_HEADERS = (
    ("X-Powered-By", "PHP/8.2.29"),
    ("X-Robots-Tag", "noindex"),
    ("X-Content-Type-Options", "nosniff"),
    ("Access-Control-Expose-Headers", "X-WP-Total, X-WP-TotalPages, Link"),
    (
        "Access-Control-Allow-Headers",
        "Authorization, X-WP-Nonce, Content-Disposition, Content-MD5, Content-Type",
    ),
    ("Expires", "Wed, 11 Jan 1984 05:00:00 GMT"),
    ("Cache-Control", "no-cache, must-revalidate, max-age=0, no-store, private"),
)


@dataclass
class RecordedRequest:
    """One request the emulator answered; credentials in the query are redacted.

    ``status`` is 0 for a connection dropped by :meth:`ShopEmulator.drop_next`. ``auth`` is how
    the request authenticated: ``basic``, ``query``, ``oauth1`` or ``none``.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    auth: str = "none"
    body: bytes = b""

    @property
    def json(self) -> Any:
        """The request body parsed as JSON (``None`` when empty or not JSON)."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


class ApiError(Exception):
    """A WordPress REST error: ``{"code", "message", "data": {"status", ...}}``."""

    def __init__(self, status: int, code: str, message: str, **data: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.data = data

    def body(self) -> dict[str, Any]:
        """The JSON body WordPress sends."""
        return {
            "code": self.code,
            "message": self.message,
            "data": {"status": self.status, **self.data},
        }


@dataclass
class _Fault:
    kind: str  # "fail" | "drop"
    remaining: int
    path_prefix: str
    method: str | None
    status: int = 503
    retry_after: int | None = None
    html: bool = False
    after_processing: bool = False

    def matches(self, method: str, path: str) -> bool:
        return path.startswith(self.path_prefix) and (self.method is None or self.method == method)


@dataclass
class _Response:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Request:
    raw_method: str  # as sent on the wire (signed by OAuth)
    method: str  # after X-HTTP-Method-Override / _method
    raw_path: str
    route: str | None  # e.g. "/wc/v3/orders"; None when it is not a REST request
    query_pairs: list[tuple[str, str]]
    query: dict[str, Any]  # parsed the way PHP fills $_GET
    form: dict[str, Any]  # $_POST (form-encoded bodies only)
    json_body: Any
    json_error: str | None
    headers: Message
    body: bytes
    https: bool

    def param(self, name: str) -> Any:
        """A request parameter with WordPress's precedence: JSON body, form body, query."""
        if isinstance(self.json_body, dict) and name in self.json_body:
            return self.json_body[name]
        if name in self.form:
            return self.form[name]
        return self.query.get(name)

    def has(self, name: str) -> bool:
        return self.param(name) is not None


_DROP = object()


# --- helpers -----------------------------------------------------------------------------------


def _php_parse(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Query pairs as PHP's ``$_GET``: ``a[]=x`` and ``a[0]=x`` become ``{"0": "x"}``."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        match = re.match(r"^([^\[\]]+)\[([^\]]*)\]", key)
        if not match:
            out[key] = value
            continue
        name, index = match.group(1), match.group(2)
        current = out.get(name)
        if not isinstance(current, dict):
            current = {}
            out[name] = current
        if index == "":
            numbers = [int(k) for k in current if k.isdigit()]
            index = str(max(numbers) + 1 if numbers else 0)
        current[index] = value
    return out


def _rawurlencode(value: str) -> str:
    """PHP ``rawurlencode`` (RFC 3986)."""
    return quote(value, safe="-_.~")


def _wp_json(value: Any) -> bytes:
    """``wp_json_encode`` without flags: ASCII with \\u escapes and escaped slashes."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/").encode()


def _l_list(items: Iterable[str]) -> str:
    """``wp_sprintf_l``: "a, b, and c"."""
    values = list(items)
    if len(values) <= 1:
        return "".join(values)
    if len(values) == 2:
        return f"{values[0]} and {values[1]}"
    return ", ".join(values[:-1]) + ", and " + values[-1]


def _wp_list(value: Any) -> list[str]:
    """``wp_parse_list``: a comma/space separated string or an array."""
    if isinstance(value, dict):
        return [str(v) for v in value.values()]
    if isinstance(value, list):
        return [str(v) for v in value]
    if value is None:
        return []
    return [part for part in re.split(r"[\s,]+", str(value)) if part]


def _refuse_invalid_json(req: _Request) -> None:
    """WordPress's answer to a body that is not JSON."""
    if req.json_error is not None:
        raise ApiError(
            400,
            "rest_invalid_json",
            "Invalid JSON body passed.",
            json_error_code=4,
            json_error_message=req.json_error,
        )


def _as_list(value: Any) -> list[Any]:
    """A batch list as PHP sees it: a JSON object's values, a list, or nothing."""
    if isinstance(value, dict):
        return list(value.values())
    return value if isinstance(value, list) else []


def _item_error(error: ApiError) -> dict[str, Any]:
    """A failed batch item's ``error`` member."""
    return {"code": error.code, "message": error.message, "data": {"status": error.status}}


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return False
    return number.is_finite() and number == number.to_integral_value()


def _naive(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")  # noqa: DTZ007 - naive by design
    except ValueError:
        return None


def _format_wc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


class _Invalid:
    """Collects parameter errors into one ``rest_invalid_param`` answer, as WordPress does."""

    def __init__(self) -> None:
        self.errors: dict[str, tuple[str, str]] = {}

    def add(self, name: str, code: str, message: str) -> None:
        self.errors.setdefault(name, (code, message))

    def raise_if_any(self) -> None:
        if not self.errors:
            return
        raise ApiError(
            400,
            "rest_invalid_param",
            "Invalid parameter(s): " + ", ".join(self.errors),
            params={name: message for name, (_, message) in self.errors.items()},
            details={
                name: {"code": code, "message": message, "data": None}
                for name, (code, message) in self.errors.items()
            },
        )

    def integer(
        self,
        req: _Request,
        name: str,
        default: int | None,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        value = req.param(name)
        if value is None:
            return default
        if not _is_integer(value):
            self.add(name, "rest_invalid_type", f"{name} is not of type integer.")
            return default
        number = int(Decimal(str(value).strip()))
        if minimum is not None and maximum is not None and not minimum <= number <= maximum:
            self.add(
                name,
                "rest_out_of_bounds",
                f"{name} must be between {minimum} (inclusive) and {maximum} (inclusive)",
            )
        elif minimum is not None and maximum is None and number < minimum:
            self.add(
                name, "rest_out_of_bounds", f"{name} must be greater than or equal to {minimum}"
            )
        return number

    def enum(self, req: _Request, name: str, default: str, allowed: Iterable[str]) -> str:
        value = req.param(name)
        if value is None:
            return default
        options = list(allowed)
        if not isinstance(value, str) or value not in options:
            self.add(name, "rest_not_in_enum", f"{name} is not one of {_l_list(options)}.")
            return default
        return value

    def enum_list(
        self, req: _Request, name: str, default: list[str], allowed: Iterable[str]
    ) -> list[str]:
        value = req.param(name)
        if value is None:
            return list(default)
        items = _wp_list(value)
        options = list(allowed)
        for index, item in enumerate(items):
            if item not in options:
                self.add(
                    name, "rest_not_in_enum", f"{name}[{index}] is not one of {_l_list(options)}."
                )
                break
        return items

    def int_list(self, req: _Request, name: str) -> list[int]:
        items = _wp_list(req.param(name))
        result = []
        for index, item in enumerate(items):
            if not _is_integer(item):
                self.add(name, "rest_invalid_type", f"{name}[{index}] is not of type integer.")
                return []
            result.append(int(Decimal(item)))
        return result

    def boolean(self, req: _Request, name: str, default: bool) -> bool:
        value = req.param(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            if value in (0, 1):
                return bool(value)
        elif isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        self.add(name, "rest_invalid_type", f"{name} is not of type boolean.")
        return default

    def date(self, req: _Request, name: str) -> tuple[datetime, bool] | None:
        """(moment, has_offset): an aware moment when the value had an offset, else naive."""
        value = req.param(name)
        if value is None:
            return None
        match = _DATE_RE.match(str(value))
        moment: datetime | None = None
        if match:
            try:
                year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
                moment = datetime(year, month, day, hour, minute, second)  # noqa: DTZ001
            except ValueError:
                moment = None
        if moment is None or match is None:
            self.add(name, "rest_invalid_date", "Invalid date.")
            return None
        offset = match.group(7)
        if offset is None:
            return moment, False
        if offset == "Z":
            return moment.replace(tzinfo=UTC), True
        sign = 1 if offset[0] == "+" else -1
        hours, minutes = int(offset[1:3]), int(offset[4:6]) if len(offset) > 3 else 0
        return moment.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes))), True


# --- the HTTP layer ----------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Apache/2.4.62 (Debian)"
    sys_version = ""
    timeout = 30
    server: _Server

    def version_string(self) -> str:
        """The ``Server`` header."""
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``ShopEmulator.requests`` instead."""

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header from the emulator's clock."""
        return formatdate(self.server.emulator.now().timestamp(), usegmt=True)

    def _read_body(self) -> bytes | None:
        """The request body, or ``None`` when it is larger than ``MAX_BODY_BYTES``."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            size = 0
            while True:
                line = self.rfile.readline(65537)
                length = int(line.split(b";")[0].strip() or b"0", 16)
                if length == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                size += length
                if size > MAX_BODY_BYTES:
                    return None
                chunks.append(self.rfile.read(length))
                self.rfile.readline(3)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            return None
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        emulator = self.server.emulator
        with emulator.in_flight():
            self._answer(emulator)

    def _answer(self, emulator: ShopEmulator) -> None:
        started = time.monotonic()
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        if body is None:
            outcome: Any = _html_response(
                413, "413 Request Entity Too Large", "Request Entity Too Large"
            )
            self.close_connection = True
        else:
            outcome = emulator._process(
                self.command,
                self.path,
                self.headers,
                body,
                https=self.server.ssl_context is not None,
            )
        remaining = emulator.latency - (time.monotonic() - started)  # processing included
        if remaining > 0:
            time.sleep(remaining)
        if outcome is _DROP:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        response: _Response = outcome
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, emulator: ShopEmulator, ssl_context: ssl.SSLContext | None) -> None:
        self.emulator = emulator
        self.ssl_context = ssl_context
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        connection = request
        if self.ssl_context is not None:
            try:
                request.settimeout(10)
                connection = self.ssl_context.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                request.close()
                return
        with self._connections_lock:
            self._connections.add(connection)
        try:
            super().finish_request(connection, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(connection)
            if connection is not request:
                connection.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up (dropped connections, TLS failures) are not errors here."""

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


def _json_response(status: int, body: Any, headers: Iterable[tuple[str, str]] = ()) -> _Response:
    return _Response(
        status, _wp_json(body), [("Content-Type", _JSON_TYPE), *_COMMON_HEADERS, *headers]
    )


def _html_response(
    status: int, title: str, text: str, headers: Iterable[tuple[str, str]] = ()
) -> _Response:
    page = (
        '<!DOCTYPE html>\n<html lang="en-US">\n<head>\n<meta charset="UTF-8" />\n'
        f"<title>{title}</title>\n</head>\n<body>\n<h1>{title}</h1>\n<p>{text}</p>\n</body>\n</html>\n"
    )
    return _Response(
        status, page.encode(), [("Content-Type", "text/html; charset=UTF-8"), *headers]
    )


_FAULT_TEXTS = {
    400: ("bad_request", "Bad Request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Access denied"),
    429: ("too_many_requests", "You are being rate limited"),
    500: ("internal_server_error", "There has been a critical error on this website."),
    502: ("bad_gateway", "Bad gateway"),
    503: ("service_unavailable", "Service Temporarily Unavailable"),
    504: ("gateway_timeout", "Gateway time-out"),
}


def _fault_response(fault: _Fault) -> _Response:
    code, text = _FAULT_TEXTS.get(
        fault.status, (f"http_{fault.status}", f"HTTP error {fault.status}")
    )
    headers: list[tuple[str, str]] = []
    if fault.retry_after is not None:
        headers.append(("Retry-After", str(fault.retry_after)))
    if fault.html:
        ray = secrets.token_hex(8)
        headers += [("Server", "cloudflare"), ("CF-RAY", f"{ray}-AMS")]
        title = f"Error {fault.status} | {text}"
        return _html_response(
            fault.status, title, f"{text}. Cloudflare Ray ID: <strong>{ray}</strong>", headers
        )
    return _json_response(
        fault.status, {"code": code, "message": text, "data": {"status": fault.status}}, headers
    )


# --- the emulator ------------------------------------------------------------------------------


def _parse_body(content_type: str, body: bytes) -> tuple[dict[str, Any], Any, str | None]:
    """(``$_POST``, JSON body, JSON error) of a request body."""
    if body and "application/x-www-form-urlencoded" in content_type:
        form = _php_parse(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return form, None, None
    if body and "json" in content_type:
        try:
            return {}, json.loads(body), None
        except ValueError:
            return {}, None, "Syntax error"
    return {}, None, None


def _effective_method(method: str, headers: Message, query: Mapping[str, Any]) -> str:
    """A POST may stand for another method (``X-HTTP-Method-Override`` or ``_method``)."""
    override = headers.get("X-HTTP-Method-Override") or (
        query.get("_method") if isinstance(query.get("_method"), str) else None
    )
    if method == "POST" and override:
        return override.upper()
    return method


def _recorded_query(query_pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """The query of a request as recorded, credentials redacted."""
    recorded: dict[str, list[str]] = {}
    for key, value in query_pairs:
        recorded.setdefault(key, []).append(REDACTED if key in _CREDENTIAL_PARAMS else value)
    return recorded


def _https_credentials(req: _Request, authorization: str | None) -> tuple[str, str, str]:
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


def _meta_param(req: _Request, invalid: _Invalid) -> Any:
    """``meta_data`` of an update: a list (or PHP-style dict) of objects."""
    meta = req.param("meta_data")
    if meta is None:
        return None
    items = list(meta.values()) if isinstance(meta, dict) else meta
    if not isinstance(items, list):
        invalid.add("meta_data", "rest_invalid_type", "meta_data is not of type array.")
        return meta
    for index, entry in enumerate(items):
        if not isinstance(entry, dict):
            invalid.add(
                "meta_data", "rest_invalid_type", f"meta_data[{index}] is not of type object."
            )
            break
    return items


def _customer_and_product_match(
    order: Mapping[str, Any], customer: int | None, product: int | None
) -> bool:
    """The ``customer`` and ``product`` filters of the orders list."""
    if customer is not None and int(order.get("customer_id") or 0) != customer:
        return False
    return product is None or any(
        product in (line.get("product_id"), line.get("variation_id"))
        for line in order.get("line_items") or []
    )


@dataclass(frozen=True)
class _ListQuery:
    """The collection parameters the orders and refunds lists share."""

    page: int
    per_page: int
    after: tuple[datetime, bool] | None
    before: tuple[datetime, bool] | None
    modified_after: tuple[datetime, bool] | None
    modified_before: tuple[datetime, bool] | None
    dates_are_gmt: bool
    exclude: list[int]
    include: list[int]
    offset: int | None
    direction: str
    orderby: str
    parent: list[int]
    parent_exclude: list[int]

    def admits(self, item_id: int, parent_id: int) -> bool:
        """``include``/``exclude`` by id and ``parent``/``parent_exclude`` by parent id."""
        if (self.include and item_id not in self.include) or item_id in self.exclude:
            return False
        return not (
            (self.parent and parent_id not in self.parent) or parent_id in self.parent_exclude
        )

    @property
    def descending(self) -> bool:
        """post__in order (orderby=include) ignores the direction, as WP_Query does."""
        return self.direction == "desc" and not (self.orderby == "include" and self.include)

    def window(self, items: list[dict[str, Any]]) -> tuple[int, int, list[dict[str, Any]]]:
        """(total, pages, the items of the page asked for, ``offset`` first)."""
        total = len(items)
        pages = math.ceil(total / self.per_page)
        start = self.offset if self.offset is not None else (self.page - 1) * self.per_page
        return total, pages, items[start : start + self.per_page]


def _list_query(req: _Request, invalid: _Invalid, *, with_modified: bool) -> _ListQuery:
    """Read the shared list parameters in WordPress's order (errors go to ``invalid``)."""
    page = invalid.integer(req, "page", 1, minimum=1) or 1
    per_page = invalid.integer(req, "per_page", 10, minimum=1, maximum=100) or 10
    after = invalid.date(req, "after")
    before = invalid.date(req, "before")
    modified_after = invalid.date(req, "modified_after") if with_modified else None
    modified_before = invalid.date(req, "modified_before") if with_modified else None
    return _ListQuery(
        page=page,
        per_page=per_page,
        after=after,
        before=before,
        modified_after=modified_after,
        modified_before=modified_before,
        dates_are_gmt=invalid.boolean(req, "dates_are_gmt", False),
        exclude=invalid.int_list(req, "exclude"),
        include=invalid.int_list(req, "include"),
        offset=invalid.integer(req, "offset", None),
        direction=invalid.enum(req, "order", "desc", ("asc", "desc")),
        orderby=invalid.enum(
            req, "orderby", "date", ("date", "id", "include", "title", "slug", "modified")
        ),
        parent=invalid.int_list(req, "parent"),
        parent_exclude=invalid.int_list(req, "parent_exclude"),
    )


class ShopEmulator:
    """A WooCommerce 9.9.5 shop's REST API v3 on 127.0.0.1 (see the module docstring).

    ``orders`` and ``notes`` are the live data (keyed by order id); use the methods to change
    them while the server runs. ``hpos`` selects the order storage: with HPOS a meta-only
    ``PUT`` bumps ``date_modified``, with the legacy posts storage it does not (only status or
    customer-note changes do). ``price_decimals`` is the shop's decimals setting (default ``dp``).
    ``pretty_permalinks=False`` serves the API only as ``/?rest_route=/wc/v3/...``.
    """

    def __init__(
        self,
        *,
        consumer_key: str | None = None,
        consumer_secret: str | None = None,
        https: bool = True,
        ca: SandboxCA | None = None,
        timezone: str = "Europe/Berlin",
        hpos: bool = True,
        key_permissions: str = "read_write",
        strip_authorization: bool = False,
        clock: Callable[[], datetime] | None = None,
        pretty_permalinks: bool = True,
        price_decimals: int = 2,
        site_name: str = "Sandbox Shop",
    ) -> None:
        if key_permissions not in ("read", "write", "read_write"):
            raise ValueError("key_permissions must be read, write or read_write")
        # Without explicit credentials the shop gets a fresh key pair in the current format.
        self.consumer_key = consumer_key or "ck_" + secrets.token_hex(20)
        self.consumer_secret = consumer_secret or "cs_" + secrets.token_hex(20)
        self.https = https
        self.timezone = timezone
        self.tz = ZoneInfo(timezone)
        self.hpos = hpos
        self.key_permissions = key_permissions
        self.strip_authorization = strip_authorization
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.pretty_permalinks = pretty_permalinks
        self.price_decimals = price_decimals
        self.site_name = site_name
        self.latency: float = 0.0
        self.batch_limit = BATCH_LIMIT  # a shop may lower it (woocommerce_rest_batch_items_limit)
        self.max_in_flight = 0  # the most requests served at once
        self._in_flight = 0
        self.on_list_page: Callable[[int], None] | None = None
        self.orders: dict[int, dict[str, Any]] = {}
        self.notes: dict[int, list[dict[str, Any]]] = {}
        self.refunds: dict[int, dict[str, Any]] = {}  # refund id -> refund (with parent_id)
        self.serves_all_refunds = True  # GET /refunds exists since WooCommerce 9.0
        self.requests: list[RecordedRequest] = []
        self.url = ""
        self.ca_path: str | None = None
        self._ca = ca
        self._own_ca: SandboxCA | None = None
        self._lock = threading.RLock()
        self._faults: list[_Fault] = []
        self._nonces: dict[int, str] = {}  # timestamp -> nonce, as WooCommerce stores them
        self._next_meta_id = 1
        self._next_note_id = 1
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        # -- products and variations (stock): woo2d365/sandbox/shop_products.py --
        from woo2d365.sandbox.shop_products import Catalogue

        self.catalogue = Catalogue(self)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> ShopEmulator:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread."""
        if self._server is not None:
            return self
        context = None
        if self.https:
            if self._ca is None:
                self._own_ca = self._ca = SandboxCA()
            context = self._ca.server_context()
            self.ca_path = str(self._ca.ca_path)
        self._server = _Server(self, context)
        port = self._server.server_address[1]
        self.url = f"{'https' if self.https else 'http'}://127.0.0.1:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"shop-emulator-{port}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and remove a CA the emulator made itself."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.close_connections()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._own_ca is not None:
            self._own_ca.cleanup()
            self._own_ca = self._ca = None

    def __enter__(self) -> ShopEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- clock -----------------------------------------------------------------------------

    def now(self) -> datetime:
        """The server's clock, aware UTC, to the second."""
        moment = self.clock()
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).replace(microsecond=0)

    def _stamps(self, moment: datetime) -> tuple[str, str]:
        return _format_wc(moment.astimezone(self.tz)), _format_wc(moment.astimezone(UTC))

    def _bump(self, order: dict[str, Any]) -> None:
        order["date_modified"], order["date_modified_gmt"] = self._stamps(self.now())

    # -- data for tests --------------------------------------------------------------------

    def add_order(self, order: Mapping[str, Any]) -> dict[str, Any]:
        """Store a deep copy of ``order`` (replacing one with the same id) and return the copy."""
        stored = copy.deepcopy(dict(order))
        order_id = int(stored["id"])
        with self._lock:
            self.orders[order_id] = stored
            self.notes.setdefault(order_id, [])
            for entry in stored.get("refunds") or []:
                # A seeded order's refunds exist as refund objects too (amount only).
                if int(entry["id"]) not in self.refunds:
                    self.refunds[int(entry["id"])] = {
                        "id": int(entry["id"]),
                        "parent_id": order_id,
                        "date_created": stored.get("date_modified") or stored["date_created"],
                        "date_created_gmt": stored.get("date_modified_gmt")
                        or stored["date_created_gmt"],
                        "amount": format_money(-_decimal(entry.get("total")), self.price_decimals),
                        "reason": entry.get("reason", ""),
                        "refunded_by": 1,
                        "refunded_payment": False,
                        "meta_data": [],
                        "line_items": [],
                        "shipping_lines": [],
                        "tax_lines": [],
                        "fee_lines": [],
                    }
            meta_ids = [
                m.get("id", 0) for m in stored.get("meta_data") or [] if isinstance(m, dict)
            ]
            numeric = [i for i in meta_ids if isinstance(i, int)]
            self._next_meta_id = max([self._next_meta_id, *(i + 1 for i in numeric)])
        return stored

    def add_orders(self, orders: Iterable[Mapping[str, Any]]) -> None:
        """Store several orders."""
        for order in orders:
            self.add_order(order)

    def get_order(self, order_id: int) -> dict[str, Any]:
        """A deep copy (snapshot) of a stored order; ``KeyError`` if unknown."""
        with self._lock:
            return copy.deepcopy(self.orders[order_id])

    def modify_order(self, order_id: int, **fields: Any) -> dict[str, Any]:
        """Change top-level fields as a shop manager would; bumps ``date_modified(_gmt)`` first."""
        with self._lock:
            order = self.orders[order_id]
            self._bump(order)
            order.update(copy.deepcopy(fields))
            return order

    def set_status(self, order_id: int, status: str) -> dict[str, Any]:
        """Change the status like wp-admin: status note, paid/completed dates, bump."""
        with self._lock:
            order = self.orders[order_id]
            self._change_status(order, status)
            self._bump(order)
            return order

    def add_note(
        self,
        order_id: int,
        note: str,
        *,
        customer_note: bool = False,
        author: str = "WooCommerce",
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """Add an order note directly (does not bump ``date_modified``, as in WooCommerce)."""
        moment = (at or self.now()).astimezone(UTC).replace(microsecond=0)
        with self._lock:
            if order_id not in self.orders:
                raise KeyError(order_id)
            local, gmt = self._stamps(moment)
            entry = {
                "id": self._next_note_id,
                "author": author,
                "date_created": local,
                "date_created_gmt": gmt,
                "note": note,
                "customer_note": customer_note,
            }
            self._next_note_id += 1
            self.notes.setdefault(order_id, []).append(entry)
            return entry

    # -- refunds (docs/systems.md W7) ----------------------------------------------

    def add_refund(
        self,
        order_id: int,
        *,
        amount: Decimal | str | None = None,
        reason: str = "",
        quantities: Mapping[int, int] | None = None,
        whole_lines: Iterable[int] = (),
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """Refund as a shop manager does in wp-admin (``wc_create_refund``), no gateway call.

        ``quantities`` maps order line item ids to the quantity refunded (at their price, tax
        included); ``whole_lines`` refunds whole shipping, fee or item lines by id; ``amount``
        (positive) wins over the lines, and alone makes an amount-only refund. The order's
        ``refunds`` list and ``date_modified`` change; a refund of the whole rest makes the
        order ``refunded``. ``ValueError`` for an amount above what is left.
        """
        moment = (at or self.now()).astimezone(UTC).replace(microsecond=0)
        with self._lock:
            order = self.orders[order_id]
            refund_id = self._next_object_id()
            refund = shop_refunds.build_refund(
                order,
                refund_id,
                stamps=self._stamps(moment),
                first_item_id=refund_id * 100 + 1,
                first_meta_id=self._next_meta_id,
                amount=None if amount is None else Decimal(str(amount)),
                reason=reason,
                quantities=dict(quantities or {}),
                whole_lines=tuple(whole_lines),
                dp=self.price_decimals,
            )
            self._next_meta_id += 50
            self._store_refund(order, refund)
            if shop_refunds.refunded_so_far(order) >= _decimal(order.get("total")):
                self._change_status(order, "refunded")
            self._bump(order)
            self.add_note(
                order_id,
                f"Refunded {refund['amount']} {order.get('currency', '')} – "
                f"{reason or 'no reason given'}",
                at=moment,
            )
            return copy.deepcopy(refund)

    def delete_refund(self, refund_id: int) -> None:
        """Delete a refund (``DELETE /orders/{id}/refunds/{rid}``): gone from every list."""
        with self._lock:
            refund = self.refunds.pop(refund_id)
            order = self.orders[int(refund["parent_id"])]
            order["refunds"] = [r for r in order.get("refunds") or [] if r.get("id") != refund_id]
            self._bump(order)

    def _next_object_id(self) -> int:
        """Refunds take their ids from the same sequence as orders (both are posts)."""
        return max([0, *self.orders, *self.refunds]) + 1

    def _store_refund(self, order: dict[str, Any], refund: dict[str, Any]) -> None:
        self.refunds[int(refund["id"])] = {**refund, "parent_id": int(order["id"])}
        entry = {"id": refund["id"], "reason": refund["reason"], "total": "-" + refund["amount"]}
        order["refunds"] = [entry, *(order.get("refunds") or [])]  # newest first

    def _refund_the_rest(self, order: dict[str, Any]) -> None:
        """Status ``refunded`` refunds what is left, without lines (``wc_order_fully_refunded``)."""
        left = _decimal(order.get("total")) - shop_refunds.refunded_so_far(order)
        if left <= 0:
            return
        refund = shop_refunds.build_refund(
            order,
            self._next_object_id(),
            stamps=self._stamps(self.now()),
            first_item_id=0,
            first_meta_id=0,
            amount=left,
            reason=shop_refunds.FULLY_REFUNDED_REASON,
            quantities={},
            whole_lines=(),
            dp=self.price_decimals,
        )
        self._store_refund(order, refund)

    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        """Count a request being served (for :attr:`max_in_flight`)."""
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def reset_requests(self) -> None:
        """Forget the recorded requests (and the most seen at once)."""
        with self._lock:
            self.requests.clear()
            self.max_in_flight = 0

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 503,
        retry_after: int | None = None,
        html: bool = False,
        path_prefix: str = "/wp-json/wc/v3/",
        method: str | None = None,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` before WordPress sees them.

        The body is a WordPress-style JSON error, or with ``html=True`` a CDN's HTML error page;
        ``retry_after`` adds a ``Retry-After`` header (seconds).
        """
        with self._lock:
            self._faults.append(
                _Fault(
                    "fail", count, path_prefix, method and method.upper(), status, retry_after, html
                )
            )

    def drop_next(
        self,
        count: int = 1,
        *,
        path_prefix: str = "/wp-json/wc/v3/",
        method: str | None = None,
        after_processing: bool = False,
    ) -> None:
        """Close the connection of the next ``count`` matching requests without any answer.

        With ``after_processing=True`` the request takes effect first (a write is stored), as when
        a proxy times out after the shop committed.
        """
        with self._lock:
            self._faults.append(
                _Fault(
                    "drop",
                    count,
                    path_prefix,
                    method and method.upper(),
                    after_processing=after_processing,
                )
            )

    # -- request processing ----------------------------------------------------------------

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.matches(method, path):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _process(
        self, method: str, raw_path: str, headers: Message, body: bytes, *, https: bool
    ) -> Any:
        parts = urlsplit(raw_path)
        query_pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = _php_parse(query_pairs)
        path = parts.path or "/"
        route = self._rest_route(path, query)
        effective = "/wp-json" + route if route is not None else path
        form, json_body, json_error = _parse_body(headers.get("Content-Type", ""), body)
        request = _Request(
            raw_method=method,
            method=_effective_method(method, headers, query),
            raw_path=raw_path,
            route=route,
            query_pairs=query_pairs,
            query=query,
            form=form,
            json_body=json_body,
            json_error=json_error,
            headers=headers,
            body=body,
            https=https,
        )

        fault = self._take_fault(method, effective)
        auth = "none"
        if fault is not None and fault.kind == "fail":
            response: Any = _fault_response(fault)
        elif fault is not None and not fault.after_processing:
            response = _DROP
        else:
            response, auth = self._dispatch(request)
            if fault is not None:
                response = _DROP
        status = 0 if response is _DROP else response.status
        with self._lock:
            self.requests.append(
                RecordedRequest(method, path, _recorded_query(query_pairs), status, auth, body)
            )
        return response

    def _rest_route(self, path: str, query: Mapping[str, Any]) -> str | None:
        """The REST route of a request (``/wp-json/...`` or ``?rest_route=``), or None."""
        decoded = unquote(path)
        route: str | None = None
        if self.pretty_permalinks and (decoded == "/wp-json" or decoded.startswith("/wp-json/")):
            route = decoded[len("/wp-json") :]
        elif isinstance(query.get("rest_route"), str):
            route = query["rest_route"]
        if route is not None:
            route = "/" + route.strip("/") if route.strip("/") else "/"
        return route

    def _dispatch(self, req: _Request) -> tuple[_Response, str]:
        if req.route is None:
            return _html_response(
                404, "Pagina niet gevonden", "Oeps! Die pagina kan niet worden gevonden."
            ), "none"
        auth = "none"
        try:
            authenticated = False
            if req.route.startswith(("/wc/", "/wc-")):
                authenticated, auth, error = self._authenticate(req)
                if error is not None:
                    raise error
                if authenticated:
                    self._check_key_permissions(req.method)
            handler, args, allow = self._match(req.route, req.method)
            response = handler(req, authenticated, *args)
            response.headers.append(("Allow", allow))
            return response, auth
        except ApiError as error:
            return _json_response(error.status, error.body()), auth

    # -- authentication (class-wc-rest-authentication.php) --------------------------------

    def _authenticate(self, req: _Request) -> tuple[bool, str, ApiError | None]:
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
        self, req: _Request, authorization: str | None
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

    def _check_oauth_signature(self, req: _Request, params: dict[str, Any]) -> str | None:
        scheme = "https" if req.https else "http"
        home = scheme + self.url[self.url.index("://") :]
        path = urlsplit(req.raw_path).path
        base_uri = home + "/" + path.lstrip("/")
        params = dict(params)
        provided = unquote(str(params.pop("oauth_signature")).replace(" ", "+"))
        pieces: list[str] = []
        for name in sorted(params, key=lambda k: k.encode()):
            value = params[name]
            encoded_name = _rawurlencode(name)
            if isinstance(value, dict):
                for index, item in value.items():
                    pieces.append(
                        _rawurlencode(f"{encoded_name}%5B{index}%5D={_rawurlencode(str(item))}")
                    )
            else:
                pieces.append(_rawurlencode(f"{encoded_name}={_rawurlencode(str(value))}"))
        base_string = f"{req.raw_method}&{_rawurlencode(base_uri)}&{'%26'.join(pieces)}"
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

    # -- routing ---------------------------------------------------------------------------

    def _match(
        self, route: str, method: str
    ) -> tuple[Callable[..., _Response], tuple[Any, ...], str]:
        table: list[tuple[str, dict[str, Callable[..., _Response]]]] = [
            (r"/", {"GET": self._index}),
            (r"/wc/v3/orders", {"GET": self._list_orders, "POST": self._create_order}),
            (
                r"/wc/v3/orders/batch",
                {
                    "POST": self._batch_orders,
                    "PUT": self._batch_orders,
                    "PATCH": self._batch_orders,
                },
            ),
            (
                r"/wc/v3/orders/(\d+)",
                {
                    "GET": self._get_order,
                    "POST": self._update_order,
                    "PUT": self._update_order,
                    "PATCH": self._update_order,
                    "DELETE": self._delete_order,
                },
            ),
            (r"/wc/v3/orders/(\d+)/notes", {"GET": self._list_notes, "POST": self._create_note}),
            (
                r"/wc/v3/orders/(\d+)/notes/(\d+)",
                {"GET": self._get_note, "DELETE": self._delete_note},
            ),
            (r"/wc/v3/system_status", {"GET": self._system_status}),
            *self.catalogue.routes(),  # products and variations (shop_products.py)
            *(
                [(r"/wc/v3/refunds", {"GET": self._list_all_refunds})]
                if self.serves_all_refunds
                else []
            ),
            (r"/wc/v3/orders/(\d+)/refunds", {"GET": self._list_order_refunds}),
            (r"/wc/v3/orders/(\d+)/refunds/(\d+)", {"GET": self._get_refund}),
        ]
        for pattern, methods in table:
            match = re.fullmatch(pattern, route, flags=re.IGNORECASE)
            if not match:
                continue
            handler = methods.get("GET" if method == "HEAD" else method)
            if handler is None:
                break
            return handler, tuple(int(g) for g in match.groups()), ", ".join(methods)
        raise ApiError(
            404, "rest_no_route", "No route was found matching the URL and request method."
        )

    def _rest_url(self, route: str) -> str:
        if self.pretty_permalinks:
            return f"{self.url}/wp-json{route}"
        return f"{self.url}/?rest_route={route}"

    # -- orders ----------------------------------------------------------------------------

    def _present(
        self,
        order: dict[str, Any],
        dp: int,
        fields: list[str] | None,
        include_meta: list[str],
        exclude_meta: list[str],
    ) -> dict[str, Any]:
        out = copy.deepcopy(order)
        for name in _ORDER_MONEY:
            out[name] = _reformat(out.get(name), dp)
        for group, names in _LINE_MONEY.items():
            for line in out.get(group) or []:
                if isinstance(line, dict):
                    for name in names:
                        if name in line:
                            line[name] = _reformat(line[name], dp)
        if include_meta or exclude_meta:
            out["meta_data"] = [
                meta
                for meta in out.get("meta_data") or []
                if (not include_meta or meta.get("key") in include_meta)
                and meta.get("key") not in exclude_meta
            ]
        out["_links"] = order_links(
            int(out["id"]),
            int(out.get("customer_id") or 0),
            self.url,
            int(out.get("parent_id") or 0),
        )
        if fields is not None:
            out = {name: value for name, value in out.items() if name in fields}
        return out

    def _output_options(
        self, req: _Request, invalid: _Invalid
    ) -> tuple[int, list[str] | None, list[str], list[str]]:
        invalid.enum(req, "context", "view", ("view", "edit"))
        dp = invalid.integer(req, "dp", self.price_decimals)
        fields_value = req.param("_fields")
        fields = _wp_list(fields_value) if fields_value is not None else None
        include_meta = _wp_list(req.param("include_meta"))
        exclude_meta = _wp_list(req.param("exclude_meta"))
        return (
            abs(dp if dp is not None else self.price_decimals),
            fields,
            include_meta,
            exclude_meta,
        )

    def _list_orders(self, req: _Request, authenticated: bool) -> _Response:
        invalid = _Invalid()
        dp, fields, include_meta, exclude_meta = self._output_options(req, invalid)
        search = req.param("search")
        q = _list_query(req, invalid, with_modified=True)
        statuses = invalid.enum_list(req, "status", ["any"], LIST_STATUSES)
        customer = invalid.integer(req, "customer", None)
        product = invalid.integer(req, "product", None)
        invalid.raise_if_any()
        if not authenticated:
            raise ApiError(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")

        if self.on_list_page is not None:
            self.on_list_page(q.page)

        wanted = set(statuses)
        if "any" in wanted:
            wanted |= {s for s in ORDER_STATUSES}
        with self._lock:
            matching = [
                order
                for order in self.orders.values()
                if order.get("status") in wanted
                and q.admits(int(order["id"]), int(order.get("parent_id") or 0))
                and _customer_and_product_match(order, customer, product)
                and not (search and not _search_hit(order, str(search)))
                and self._in_date_windows(order, q)
            ]
            # post__in order (orderby=include) ignores the direction, as WP_Query does.
            matching.sort(key=_sort_key(q.orderby, q.include), reverse=q.descending)
            total, pages, shown = q.window(matching)
            body = [self._present(o, dp, fields, include_meta, exclude_meta) for o in shown]

        headers = [("X-WP-Total", str(total)), ("X-WP-TotalPages", str(pages))]
        links = []
        page = q.page
        if page > 1:
            previous = min(page - 1, pages)  # WooCommerce clamps prev to the last page
            links.append(f'<{self._page_link(req, previous, statuses, dp)}>; rel="prev"')
        if pages > page:
            links.append(f'<{self._page_link(req, page + 1, statuses, dp)}>; rel="next"')
        if links:
            headers.append(("Link", ", ".join(links)))
        return _json_response(200, body, headers)

    def _in_date_windows(self, order: dict[str, Any], q: _ListQuery) -> bool:
        """The order was created and modified within the ``after``/``before`` bounds."""
        windows = [
            ("date_created", q.after, True),
            ("date_created", q.before, False),
            ("date_modified", q.modified_after, True),
            ("date_modified", q.modified_before, False),
        ]
        return all(
            self._date_ok(order, column, value, q.dates_are_gmt, is_after)
            for column, value, is_after in windows
        )

    def _date_ok(
        self,
        order: dict[str, Any],
        column: str,
        value: tuple[datetime, bool] | None,
        dates_are_gmt: bool,
        is_after: bool,
    ) -> bool:
        """Section 3.1: an offset is converted to site-local time, then compared with the column
        ``dates_are_gmt`` picks (the GMT one when true: the double shift)."""
        if value is None:
            return True
        moment, has_offset = value
        if has_offset:
            moment = moment.astimezone(self.tz).replace(tzinfo=None)
        stored = _naive(order.get(column + "_gmt") if dates_are_gmt else order.get(column))
        if stored is None:
            return False
        return stored > moment if is_after else stored < moment

    def _page_link(self, req: _Request, page: int, statuses: list[str], dp: int) -> str:
        pairs: list[tuple[str, str]] = []
        seen: set[str] = set()
        sanitized_arrays = {"status": statuses}
        for name, value in req.query.items():
            if name == "rest_route" and not self.pretty_permalinks:
                continue
            seen.add(name)
            if name == "page":
                pairs.append(("page", str(page)))
            elif name in sanitized_arrays:
                pairs += [(f"{name}[{i}]", item) for i, item in enumerate(sanitized_arrays[name])]
            elif isinstance(value, dict):
                pairs += [(f"{name}[{i}]", str(item)) for i, item in value.items()]
            else:
                pairs.append((name, str(value)))
        if "status" not in seen:
            pairs += [(f"status[{i}]", item) for i, item in enumerate(statuses)]
        if "dp" not in seen:
            pairs.append(("dp", str(dp)))
        if "context" not in seen:
            pairs.append(("context", "view"))
        if "page" not in seen:
            pairs.append(("page", str(page)))
        base = self._rest_url("/wc/v3/orders")
        return base + ("&" if "?" in base else "?") + urlencode(pairs)

    # -- refunds (class-wc-rest-refunds-controller.php, …-order-refunds-v2-controller.php) ---

    def _list_all_refunds(self, req: _Request, authenticated: bool) -> _Response:
        return self._list_refunds(req, authenticated, None)

    def _list_order_refunds(self, req: _Request, authenticated: bool, order_id: int) -> _Response:
        return self._list_refunds(req, authenticated, order_id)

    def _list_refunds(self, req: _Request, authenticated: bool, order_id: int | None) -> _Response:
        invalid = _Invalid()
        invalid.enum(req, "context", "view", ("view", "edit"))
        dp = invalid.integer(req, "dp", self.price_decimals)
        fields_value = req.param("_fields")
        fields = _wp_list(fields_value) if fields_value is not None else None
        q = _list_query(req, invalid, with_modified=False)
        invalid.raise_if_any()
        if not authenticated:
            raise ApiError(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
        if order_id is not None and order_id not in self.orders:
            raise ApiError(404, "woocommerce_rest_order_invalid_id", "Invalid order ID.")
        with self._lock:
            matching = [
                refund
                for refund in self.refunds.values()
                if (order_id is None or int(refund["parent_id"]) == order_id)
                and q.admits(int(refund["id"]), int(refund["parent_id"]))
                and self._date_ok(refund, "date_created", q.after, q.dates_are_gmt, True)
                and self._date_ok(refund, "date_created", q.before, q.dates_are_gmt, False)
            ]
            # Refunds have no modified date of their own: "modified" sorts as their creation.
            key_name = "date" if q.orderby == "modified" else q.orderby
            matching.sort(key=_sort_key(key_name, q.include), reverse=q.descending)
            total, pages, shown_refunds = q.window(matching)
            shown = abs(dp if dp is not None else self.price_decimals)
            body = [
                shop_refunds.present_refund(
                    self._money(refund, shown), self.url, with_parent=order_id is None,
                    fields=fields,
                )
                for refund in shown_refunds
            ]  # fmt: skip
        route = "/wc/v3/refunds" if order_id is None else f"/wc/v3/orders/{order_id}/refunds"
        headers = [("X-WP-Total", str(total)), ("X-WP-TotalPages", str(pages))]
        link = self._refund_links(req, route, q.page, pages)
        if link:
            headers.append(("Link", link))
        return _json_response(200, body, headers)

    def _refund_links(self, req: _Request, route: str, page: int, pages: int) -> str:
        """The ``Link`` header of a refunds page: the same query with the page moved."""
        links = []
        base = self._rest_url(route)
        pairs = [(k, v) for k, v in req.query_pairs if k not in ("page", "rest_route")]
        for rel, number in (("prev", min(page - 1, pages)), ("next", page + 1)):
            if (rel == "prev" and page > 1) or (rel == "next" and pages > page):
                query = urlencode([*pairs, ("page", str(number))])
                links.append(f'<{base}{"&" if "?" in base else "?"}{query}>; rel="{rel}"')
        return ", ".join(links)

    def _get_refund(
        self, req: _Request, authenticated: bool, order_id: int, refund_id: int
    ) -> _Response:
        invalid = _Invalid()
        dp = invalid.integer(req, "dp", self.price_decimals)
        fields_value = req.param("_fields")
        fields = _wp_list(fields_value) if fields_value is not None else None
        invalid.raise_if_any()
        if not authenticated:
            raise ApiError(
                401, "woocommerce_rest_cannot_view", "Sorry, you cannot view this resource."
            )
        if order_id not in self.orders:
            raise ApiError(404, "woocommerce_rest_order_invalid_id", "Invalid order ID.")
        with self._lock:
            refund = self.refunds.get(refund_id)
            if refund is None or int(refund["parent_id"]) != order_id:
                raise ApiError(404, "woocommerce_rest_invalid_id", "Invalid resource ID.")
            shown = abs(dp if dp is not None else self.price_decimals)
            return _json_response(
                200,
                shop_refunds.present_refund(
                    self._money(refund, shown), self.url, with_parent=False, fields=fields
                ),
            )

    @staticmethod
    def _money(refund: dict[str, Any], dp: int) -> dict[str, Any]:
        out = copy.deepcopy(refund)
        out["amount"] = _reformat(out.get("amount"), dp)
        for group in ("line_items", "shipping_lines", "fee_lines"):
            for line in out.get(group) or []:
                for name in _LINE_MONEY[group]:
                    if name in line:
                        line[name] = _reformat(line[name], dp)
        return out

    def _order_or_none(self, order_id: int) -> dict[str, Any] | None:
        with self._lock:
            return self.orders.get(order_id)

    def _get_order(self, req: _Request, authenticated: bool, order_id: int) -> _Response:
        invalid = _Invalid()
        options = self._output_options(req, invalid)
        invalid.raise_if_any()
        order = self._order_or_none(order_id)
        # get_item_permissions_check() only refuses orders that exist.
        if order is not None and not authenticated:
            raise ApiError(
                401, "woocommerce_rest_cannot_view", "Sorry, you cannot view this resource."
            )
        if order is None:
            raise ApiError(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        with self._lock:
            return _json_response(200, self._present(order, *options))

    def _create_order(self, req: _Request, authenticated: bool) -> _Response:
        if not authenticated:
            raise ApiError(
                401,
                "woocommerce_rest_cannot_create",
                "Sorry, you are not allowed to create resources.",
            )
        raise ApiError(501, "sandbox_not_implemented", "The shop emulator does not create orders.")

    def _update_order(self, req: _Request, authenticated: bool, order_id: int) -> _Response:
        invalid = _Invalid()
        _refuse_invalid_json(req)
        options = self._output_options(req, invalid)
        status = invalid.enum(req, "status", "", ORDER_STATUSES) if req.has("status") else None
        meta = _meta_param(req, invalid)
        set_paid = invalid.boolean(req, "set_paid", False)
        invalid.raise_if_any()
        order = self._order_or_none(order_id)
        if order is not None and not authenticated:
            raise ApiError(
                401,
                "woocommerce_rest_cannot_edit",
                "Sorry, you are not allowed to edit this resource.",
            )
        if order is None:
            raise ApiError(400, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        for name in _UNSUPPORTED_WRITES:
            if req.has(name):
                raise ApiError(
                    501, "sandbox_not_implemented", f"The shop emulator does not write {name}."
                )
        with self._lock:
            # post_changed: what makes the legacy (CPT) storage touch post_modified
            post_changed = self._write_order_fields(order, req, meta)
            status_changed = self._pay_and_set_status(order, status, set_paid)
            if self.hpos or post_changed or status_changed:
                self._bump(order)
            return _json_response(200, self._present(order, *options))

    def _write_order_fields(self, order: dict[str, Any], req: _Request, meta: Any) -> bool:
        """Meta data, addresses and plain fields of an update; True when the note changed."""
        if isinstance(meta, list):
            for entry in meta:
                self._update_meta(order, entry)
        for name in ("billing", "shipping"):
            value = req.param(name)
            if isinstance(value, dict):
                order[name] = {**(order.get(name) or {}), **value}
        for name in ("transaction_id", "payment_method", "payment_method_title", "customer_id"):
            if req.has(name):
                order[name] = req.param(name)
        if req.has("customer_note") and req.param("customer_note") != order.get("customer_note"):
            order["customer_note"] = req.param("customer_note")
            return True
        return False

    def _pay_and_set_status(
        self, order: dict[str, Any], status: str | None, set_paid: bool
    ) -> bool:
        """``set_paid`` (an unpaid order goes to processing) and a new status; True on a change."""
        if set_paid and order.get("status") in ("pending", "failed", "on-hold", "checkout-draft"):
            status = status or "processing"
        if set_paid and not order.get("date_paid_gmt"):
            order["date_paid"], order["date_paid_gmt"] = self._stamps(self.now())
        if status and status != order.get("status"):
            self._change_status(order, status)
            return True
        return False

    def _batch_orders(self, req: _Request, authenticated: bool) -> _Response:
        """``WC_REST_Controller::batch_items``: each update runs as its own ``PUT``; a failed item
        is ``{"id", "error": {"code", "message", "data"}}`` inside a 200 answer."""
        _refuse_invalid_json(req)
        if not authenticated:
            raise ApiError(
                401,
                "woocommerce_rest_cannot_batch",
                "Sorry, you are not allowed to batch manipulate this resource.",
            )
        batches = {name: req.param(name) for name in ("create", "update", "delete")}
        batches = {name: value for name, value in batches.items() if value}
        total = sum(len(value) for value in batches.values() if isinstance(value, list | dict))
        if total > self.batch_limit:
            raise ApiError(
                413,
                "woocommerce_rest_request_entity_too_large",
                f"Unable to accept more than {self.batch_limit} items for this request.",
            )
        answer: dict[str, list[Any]] = {}
        for _item in _as_list(batches.get("create")):
            error = ApiError(501, "sandbox_not_implemented", "The shop emulator does not create.")
            answer.setdefault("create", []).append({"id": 0, "error": _item_error(error)})
        for item in _as_list(batches.get("update")):
            fields = item if isinstance(item, dict) else {}
            order_id = fields.get("id")
            sub = _Request(
                raw_method="PUT",
                method="PUT",
                raw_path=req.raw_path,
                route=req.route,
                query_pairs=[],
                query={},
                form={},
                json_body=fields,
                json_error=None,
                headers=req.headers,
                body=b"",
                https=req.https,
            )
            try:
                number = int(Decimal(str(order_id).strip())) if _is_integer(order_id) else 0
                done = self._update_order(sub, authenticated, number)
            except ApiError as refused:
                answer.setdefault("update", []).append(
                    {"id": order_id, "error": _item_error(refused)}
                )
                continue
            answer.setdefault("update", []).append(json.loads(done.body))
        for order_id in _as_list(batches.get("delete")):
            unsupported = ApiError(501, "sandbox_not_implemented", "The emulator does not delete.")
            answer.setdefault("delete", []).append(
                {"id": order_id, "error": _item_error(unsupported)}
            )
        return _json_response(200, answer)

    def _update_meta(self, order: dict[str, Any], entry: dict[str, Any]) -> None:
        """``WC_Data::update_meta_data(key, value, id)``: by id, else the first row with the key
        (further rows with that key are removed); a ``null`` value deletes the row."""
        metas: list[dict[str, Any]] = order.setdefault("meta_data", [])
        key, value, meta_id = entry.get("key"), entry.get("value"), entry.get("id")
        target = None
        if meta_id:
            target = next((m for m in metas if m.get("id") == meta_id), None)
        else:
            same = [m for m in metas if m.get("key") == key]
            if same:
                target = same[0]
                for extra in same[1:]:
                    metas.remove(extra)
        if target is not None:
            if value is None:
                metas.remove(target)
            else:
                target["key"] = key if key is not None else target.get("key")
                target["value"] = copy.deepcopy(value)
        elif value is not None and key is not None:
            metas.append({"id": self._next_meta_id, "key": key, "value": copy.deepcopy(value)})
            self._next_meta_id += 1

    def _change_status(self, order: dict[str, Any], status: str) -> None:
        old = order.get("status")
        if old == status:
            return
        order["status"] = status
        if status == "refunded":
            self._refund_the_rest(order)
        now = self.now()
        local, gmt = self._stamps(now)
        if status in ("processing", "completed") and not order.get("date_paid_gmt"):
            order["date_paid"], order["date_paid_gmt"] = local, gmt
        if status == "completed" and not order.get("date_completed_gmt"):
            order["date_completed"], order["date_completed_gmt"] = local, gmt
        order["is_editable"] = status in ("pending", "on-hold", "auto-draft")
        order["needs_payment"] = (
            status in ("pending", "failed") and _decimal(order.get("total")) > 0
        )
        if status != "trash":
            self.add_note(
                int(order["id"]),
                f"Order status changed from {status_label(str(old))} to {status_label(status)}.",
                at=now,
            )

    def _delete_order(self, req: _Request, authenticated: bool, order_id: int) -> _Response:
        invalid = _Invalid()
        options = self._output_options(req, invalid)
        force = invalid.boolean(req, "force", False)
        invalid.raise_if_any()
        order = self._order_or_none(order_id)
        if order is not None and not authenticated:
            raise ApiError(
                401,
                "woocommerce_rest_cannot_delete",
                "Sorry, you are not allowed to delete this resource.",
            )
        if order is None:
            raise ApiError(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        with self._lock:
            before = self._present(order, *options)
            if force:
                del self.orders[order_id]
                self.notes.pop(order_id, None)
                return _json_response(200, before)
            if order.get("status") == "trash":
                raise ApiError(
                    410, "woocommerce_rest_already_trashed", "The order has already been deleted."
                )
            order["status"] = "trash"
            self._bump(order)
            return _json_response(200, self._present(order, *options))

    # -- notes -----------------------------------------------------------------------------

    def _present_note(self, order_id: int, note: dict[str, Any]) -> dict[str, Any]:
        base = self._rest_url(f"/wc/v3/orders/{order_id}")
        return {
            **note,
            "_links": {
                "self": [
                    {
                        "href": f"{base}/notes/{note['id']}",
                        "targetHints": {"allow": ["GET", "DELETE"]},
                    }
                ],
                "collection": [{"href": f"{base}/notes"}],
                "up": [{"href": base}],
            },
        }

    def _list_notes(self, req: _Request, authenticated: bool, order_id: int) -> _Response:
        invalid = _Invalid()
        invalid.enum(req, "context", "view", ("view", "edit"))
        kind = invalid.enum(req, "type", "any", ("any", "customer", "internal"))
        invalid.raise_if_any()
        if not authenticated:
            raise ApiError(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
        with self._lock:
            if order_id not in self.orders:
                raise ApiError(404, "woocommerce_rest_shop_order_invalid_id", "Invalid order ID.")
            notes = [
                n
                for n in self.notes.get(order_id, [])
                if kind == "any" or bool(n.get("customer_note")) == (kind == "customer")
            ]
            ordered = sorted(notes, key=lambda n: n["id"])
            ordered.sort(key=lambda n: n.get("date_created_gmt") or "", reverse=True)
            return _json_response(200, [self._present_note(order_id, n) for n in ordered])

    def _create_note(self, req: _Request, authenticated: bool, order_id: int) -> _Response:
        _refuse_invalid_json(req)
        if not req.has("note"):
            raise ApiError(
                400, "rest_missing_callback_param", "Missing parameter(s): note", params=["note"]
            )
        invalid = _Invalid()
        customer_note = invalid.boolean(req, "customer_note", False)
        added_by_user = invalid.boolean(req, "added_by_user", False)
        invalid.raise_if_any()
        if not authenticated:
            raise ApiError(
                401,
                "woocommerce_rest_cannot_create",
                "Sorry, you are not allowed to create resources.",
            )
        if order_id not in self.orders:
            raise ApiError(404, "woocommerce_rest_shop_order_invalid_id", "Invalid order ID.")
        note = self.add_note(
            order_id,
            str(req.param("note")),
            customer_note=customer_note,
            author="Shop Manager" if added_by_user else "WooCommerce",
        )
        location = self._rest_url(f"/wc/v3/orders/{order_id}/notes/{note['id']}")
        return _json_response(201, self._present_note(order_id, note), [("Location", location)])

    def _find_note(self, order_id: int, note_id: int) -> dict[str, Any]:
        if order_id not in self.orders:
            raise ApiError(404, "woocommerce_rest_shop_order_invalid_id", "Invalid order ID.")
        for note in self.notes.get(order_id, []):
            if note["id"] == note_id:
                return note
        raise ApiError(404, "woocommerce_rest_invalid_id", "Invalid resource ID.")

    def _get_note(
        self, req: _Request, authenticated: bool, order_id: int, note_id: int
    ) -> _Response:
        if not authenticated:
            raise ApiError(
                401, "woocommerce_rest_cannot_view", "Sorry, you cannot view this resource."
            )
        with self._lock:
            return _json_response(
                200, self._present_note(order_id, self._find_note(order_id, note_id))
            )

    def _delete_note(
        self, req: _Request, authenticated: bool, order_id: int, note_id: int
    ) -> _Response:
        invalid = _Invalid()
        force = invalid.boolean(req, "force", False)
        invalid.raise_if_any()
        if not authenticated:
            raise ApiError(
                401,
                "woocommerce_rest_cannot_delete",
                "Sorry, you are not allowed to delete this resource.",
            )
        with self._lock:
            note = self._find_note(order_id, note_id)
            if not force:
                raise ApiError(
                    501, "woocommerce_rest_trash_not_supported", "Webhooks do not support trashing."
                )
            self.notes[order_id].remove(note)
            return _json_response(200, self._present_note(order_id, note))

    # -- site ------------------------------------------------------------------------------

    def _index(self, req: _Request, authenticated: bool) -> _Response:
        offset = self.now().astimezone(self.tz).utcoffset()
        hours = Decimal(int(offset.total_seconds()) if offset else 0) / 3600
        body = {
            "name": self.site_name,
            "description": "",
            "url": self.url,
            "home": self.url,
            "gmt_offset": int(hours) if hours == hours.to_integral_value() else float(hours),
            "timezone_string": self.timezone,
            "namespaces": [
                "oembed/1.0",
                "wc/store",
                "wc/store/v1",
                "wc/v1",
                "wc/v2",
                "wc/v3",
                "wc-telemetry",
                "wp/v2",
            ],
            "authentication": [],
            "routes": {
                f"/{route}": {"namespace": "wc/v3", "methods": methods}
                for route, methods in (
                    ("wc/v3/orders", ["GET", "POST"]),
                    ("wc/v3/orders/(?P<id>[\\d]+)", ["GET", "POST", "PUT", "PATCH", "DELETE"]),
                    ("wc/v3/orders/(?P<order_id>[\\d]+)/notes", ["GET", "POST"]),
                    ("wc/v3/system_status", ["GET"]),
                )
            },
        }
        fields = req.param("_fields")
        if fields is not None:
            body = {k: v for k, v in body.items() if k in _wp_list(fields)}
        return _json_response(200, body)

    def _system_status(self, req: _Request, authenticated: bool) -> _Response:
        """A small ``GET /system_status``: the keys a client uses to learn the WooCommerce version
        and the order storage (``settings.HPOS_enabled`` and ``settings.order_datastore``, as in
        WooCommerce ≥ 8). The site timezone is not here in WooCommerce either
        (``environment.default_timezone`` is PHP's, always UTC); it is in ``GET /wp-json/``."""
        invalid = _Invalid()
        invalid.enum(req, "context", "view", ("view",))
        invalid.raise_if_any()
        if not authenticated:
            raise ApiError(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
        body = {
            "environment": {
                "home_url": self.url,
                "site_url": self.url,
                "store_id": "3f1e0c8a-6b2d-4c1e-9a7f-0d5b8e2c4a16",
                "version": WC_VERSION,
                "wp_version": WP_VERSION,
                "wp_multisite": False,
                "server_info": _Handler.server_version,
                "php_version": "8.2.29",
                "default_timezone": "UTC",
            },
            "database": {"wc_database_version": WC_VERSION},
            "active_plugins": [
                {
                    "plugin": "woocommerce/woocommerce.php",
                    "name": "WooCommerce",
                    "version": WC_VERSION,
                }
            ],
            "settings": {
                "api_enabled": True,
                "force_ssl": False,
                "currency": "EUR",
                "currency_symbol": "&euro;",
                "currency_position": "left_space",
                "thousand_separator": ".",
                "decimal_separator": ",",
                "number_of_decimals": self.price_decimals,
                "HPOS_feature_screen_enabled": True,
                "HPOS_enabled": self.hpos,
                "order_datastore": HPOS_DATASTORE if self.hpos else CPT_DATASTORE,
                "HPOS_sync_enabled": False,
            },
        }
        fields = req.param("_fields")
        if fields is not None:
            body = {k: v for k, v in body.items() if k in _wp_list(fields)}
        return _json_response(200, body)


# --- small pure helpers ------------------------------------------------------------------------


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)


def _reformat(value: Any, dp: int) -> Any:
    """Money strings re-rounded to ``dp`` like ``wc_format_decimal``; anything else unchanged."""
    if not isinstance(value, str):
        return value
    try:
        number = Decimal(value)
    except InvalidOperation:
        return value
    return format_money(number, dp) if number.is_finite() else value


def _search_hit(order: dict[str, Any], term: str) -> bool:
    term = term.lower()
    texts = [str(order.get("id")), str(order.get("number"))]
    for group in ("billing", "shipping"):
        texts += [str(v) for v in (order.get(group) or {}).values() if v]
    for line in order.get("line_items") or []:
        texts += [str(line.get("name") or ""), str(line.get("sku") or "")]
    return any(term in text.lower() for text in texts)


def _sort_key(orderby: str, include: list[int]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    def key(order: dict[str, Any]) -> tuple[Any, ...]:
        order_id = int(order["id"])
        if orderby == "id":
            return (order_id,)
        if orderby == "modified":
            return (order.get("date_modified_gmt") or "", order_id)
        if orderby == "include" and include:
            return (include.index(order_id) if order_id in include else len(include), order_id)
        return (order.get("date_created_gmt") or "", order_id)

    return key
