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

import contextlib
import copy
import json
import re
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.message import Message
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit
from zoneinfo import ZoneInfo

from woo2d365.sandbox import shop_refunds
from woo2d365.sandbox.serving import ServedContext, take_next
from woo2d365.sandbox.shop_auth import WooCommerceAuthentication
from woo2d365.sandbox.shop_data import WC_VERSION, format_money, order_links, status_label
from woo2d365.sandbox.shop_notes import OrderNotes
from woo2d365.sandbox.shop_rest import (
    ApiError,
    Invalid,
    ListQuery,
    Request,
    Response,
    as_list,
    effective_method,
    format_wc,
    html_response,
    is_integer,
    item_error,
    json_response,
    list_query,
    meta_param,
    naive,
    parse_body,
    php_parse,
    refuse_invalid_json,
    refuse_unauthorised_batch,
    wp_list,
)
from woo2d365.sandbox.tls import SandboxCA

MAX_BODY_BYTES = 10 * 1024 * 1024
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


_DROP = object()


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
            outcome: Any = html_response(
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
        response: Response = outcome
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


def _fault_response(fault: _Fault) -> Response:
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
        return html_response(
            fault.status, title, f"{text}. Cloudflare Ray ID: <strong>{ray}</strong>", headers
        )
    return json_response(
        fault.status, {"code": code, "message": text, "data": {"status": fault.status}}, headers
    )


def _recorded_query(query_pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """The query of a request as recorded, credentials redacted."""
    recorded: dict[str, list[str]] = {}
    for key, value in query_pairs:
        recorded.setdefault(key, []).append(REDACTED if key in _CREDENTIAL_PARAMS else value)
    return recorded


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


class ShopEmulator(ServedContext, WooCommerceAuthentication, OrderNotes):
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

    def start(self) -> Self:
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

    # -- clock -----------------------------------------------------------------------------

    def now(self) -> datetime:
        """The server's clock, aware UTC, to the second."""
        moment = self.clock()
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).replace(microsecond=0)

    def _stamps(self, moment: datetime) -> tuple[str, str]:
        return format_wc(moment.astimezone(self.tz)), format_wc(moment.astimezone(UTC))

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

    # -- refunds (docs/systems.md W7) ----------------------------------------------

    def add_refund(
        self,
        order_id: int,
        *,
        amount: Decimal | str | None = None,
        reason: str = "",
        quantities: Mapping[int, int] | None = None,
        whole_lines: Iterable[int] = (),
        line_money: Mapping[int, Decimal] | None = None,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """Refund as a shop manager does in wp-admin (``wc_create_refund``), no gateway call.

        ``quantities`` maps order line item ids to the quantity refunded (at their price, tax
        included); ``whole_lines`` refunds whole shipping, fee or item lines by id;
        ``line_money`` maps line item ids to money refunded on them without a quantity; ``amount``
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
                line_money=line_money,
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
            return take_next(self._faults, lambda f: f.remaining > 0 and f.matches(method, path))

    def _process(
        self, method: str, raw_path: str, headers: Message, body: bytes, *, https: bool
    ) -> Any:
        parts = urlsplit(raw_path)
        query_pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = php_parse(query_pairs)
        path = parts.path or "/"
        route = self._rest_route(path, query)
        effective = "/wp-json" + route if route is not None else path
        form, json_body, json_error = parse_body(headers.get("Content-Type", ""), body)
        request = Request(
            raw_method=method,
            method=effective_method(method, headers, query),
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

    def _dispatch(self, req: Request) -> tuple[Response, str]:
        if req.route is None:
            return html_response(
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
            return json_response(error.status, error.body()), auth

    # -- routing ---------------------------------------------------------------------------

    def _match(
        self, route: str, method: str
    ) -> tuple[Callable[..., Response], tuple[Any, ...], str]:
        table: list[tuple[str, dict[str, Callable[..., Response]]]] = [
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
        self, req: Request, invalid: Invalid
    ) -> tuple[int, list[str] | None, list[str], list[str]]:
        invalid.enum(req, "context", "view", ("view", "edit"))
        dp = invalid.integer(req, "dp", self.price_decimals)
        fields_value = req.param("_fields")
        fields = wp_list(fields_value) if fields_value is not None else None
        include_meta = wp_list(req.param("include_meta"))
        exclude_meta = wp_list(req.param("exclude_meta"))
        return (
            abs(dp if dp is not None else self.price_decimals),
            fields,
            include_meta,
            exclude_meta,
        )

    def _list_orders(self, req: Request, authenticated: bool) -> Response:
        invalid = Invalid()
        dp, fields, include_meta, exclude_meta = self._output_options(req, invalid)
        search = req.param("search")
        q = list_query(req, invalid, with_modified=True)
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
        return json_response(200, body, headers)

    def _in_date_windows(self, order: dict[str, Any], q: ListQuery) -> bool:
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
        stored = naive(order.get(column + "_gmt") if dates_are_gmt else order.get(column))
        if stored is None:
            return False
        return stored > moment if is_after else stored < moment

    def _page_link(self, req: Request, page: int, statuses: list[str], dp: int) -> str:
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

    def _list_all_refunds(self, req: Request, authenticated: bool) -> Response:
        return self._list_refunds(req, authenticated, None)

    def _list_order_refunds(self, req: Request, authenticated: bool, order_id: int) -> Response:
        return self._list_refunds(req, authenticated, order_id)

    def _list_refunds(self, req: Request, authenticated: bool, order_id: int | None) -> Response:
        invalid = Invalid()
        invalid.enum(req, "context", "view", ("view", "edit"))
        dp = invalid.integer(req, "dp", self.price_decimals)
        fields_value = req.param("_fields")
        fields = wp_list(fields_value) if fields_value is not None else None
        q = list_query(req, invalid, with_modified=False)
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
        return json_response(200, body, headers)

    def _refund_links(self, req: Request, route: str, page: int, pages: int) -> str:
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
        self, req: Request, authenticated: bool, order_id: int, refund_id: int
    ) -> Response:
        invalid = Invalid()
        dp = invalid.integer(req, "dp", self.price_decimals)
        fields_value = req.param("_fields")
        fields = wp_list(fields_value) if fields_value is not None else None
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
            return json_response(
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

    def _get_order(self, req: Request, authenticated: bool, order_id: int) -> Response:
        invalid = Invalid()
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
            return json_response(200, self._present(order, *options))

    def _create_order(self, req: Request, authenticated: bool) -> Response:
        if not authenticated:
            raise ApiError(
                401,
                "woocommerce_rest_cannot_create",
                "Sorry, you are not allowed to create resources.",
            )
        raise ApiError(501, "sandbox_not_implemented", "The shop emulator does not create orders.")

    def _update_order(self, req: Request, authenticated: bool, order_id: int) -> Response:
        invalid = Invalid()
        refuse_invalid_json(req)
        options = self._output_options(req, invalid)
        status = invalid.enum(req, "status", "", ORDER_STATUSES) if req.has("status") else None
        meta = meta_param(req, invalid)
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
            return json_response(200, self._present(order, *options))

    def _write_order_fields(self, order: dict[str, Any], req: Request, meta: Any) -> bool:
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

    def _batch_orders(self, req: Request, authenticated: bool) -> Response:
        """``WC_REST_Controller::batch_items``: each update runs as its own ``PUT``; a failed item
        is ``{"id", "error": {"code", "message", "data"}}`` inside a 200 answer."""
        refuse_unauthorised_batch(req, authenticated)
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
        for _item in as_list(batches.get("create")):
            error = ApiError(501, "sandbox_not_implemented", "The shop emulator does not create.")
            answer.setdefault("create", []).append({"id": 0, "error": item_error(error)})
        for item in as_list(batches.get("update")):
            fields = item if isinstance(item, dict) else {}
            order_id = fields.get("id")
            sub = Request(
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
                number = int(Decimal(str(order_id).strip())) if is_integer(order_id) else 0
                done = self._update_order(sub, authenticated, number)
            except ApiError as refused:
                answer.setdefault("update", []).append(
                    {"id": order_id, "error": item_error(refused)}
                )
                continue
            answer.setdefault("update", []).append(json.loads(done.body))
        for order_id in as_list(batches.get("delete")):
            unsupported = ApiError(501, "sandbox_not_implemented", "The emulator does not delete.")
            answer.setdefault("delete", []).append(
                {"id": order_id, "error": item_error(unsupported)}
            )
        return json_response(200, answer)

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

    def _delete_order(self, req: Request, authenticated: bool, order_id: int) -> Response:
        invalid = Invalid()
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
                return json_response(200, before)
            if order.get("status") == "trash":
                raise ApiError(
                    410, "woocommerce_rest_already_trashed", "The order has already been deleted."
                )
            order["status"] = "trash"
            self._bump(order)
            return json_response(200, self._present(order, *options))

    # -- site ------------------------------------------------------------------------------

    def _index(self, req: Request, authenticated: bool) -> Response:
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
            body = {k: v for k, v in body.items() if k in wp_list(fields)}
        return json_response(200, body)

    def _system_status(self, req: Request, authenticated: bool) -> Response:
        """A small ``GET /system_status``: the keys a client uses to learn the WooCommerce version
        and the order storage (``settings.HPOS_enabled`` and ``settings.order_datastore``, as in
        WooCommerce ≥ 8). The site timezone is not here in WooCommerce either
        (``environment.default_timezone`` is PHP's, always UTC); it is in ``GET /wp-json/``."""
        invalid = Invalid()
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
            body = {k: v for k, v in body.items() if k in wp_list(fields)}
        return json_response(200, body)


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
