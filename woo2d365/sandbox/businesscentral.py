"""A strict Business Central API v2.0 emulator with its own identity provider, over real HTTPS.

One ``ThreadingHTTPServer`` on 127.0.0.1 serves both:

* the Entra ID (Azure AD) endpoints msal needs: ``{authority}/{tenant}/v2.0/.well-known/
  openid-configuration`` and ``{authority}/{tenant}/oauth2/v2.0/token`` (client credentials);
* the API under ``/v2.0/{tenant}/{environment}/api/v2.0`` (and the tenant-less form).

It follows ``docs/systems.md`` (B1–B3) strictly: bearer tokens it issued and has not revoked,
BC's error bodies and codes, OData query rules, the API pages' validation order and messages,
atomic deep inserts, BC-style VAT rounding, 5 concurrent requests per app (more wait in a queue)
and a sliding-window rate limit answered with 429 + ``Retry-After``. Faults can be injected:
error answers, dropped connections, and a POST that commits but never answers.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Self
from urllib.parse import unquote, urlsplit

from woo2d365.sandbox import bc_credit_memos as cm
from woo2d365.sandbox import bc_model as m
from woo2d365.sandbox import bc_postings as posted
from woo2d365.sandbox import bc_sales_orders as so
from woo2d365.sandbox.bc_entity_sets import (
    READ_ONLY_SETS,
    ROW_SOURCES,
    SETS,
    TRACKING_SET,
    EntitySet,
    check_depth,
    require_document_filter,
    segment_not_found,
    served_set,
)
from woo2d365.sandbox.bc_http import (
    AppLimits,
    Dropped,
    Fault,
    Handler,
    RecordedRequest,
    TLSServer,
)
from woo2d365.sandbox.bc_identity import EntraIdentityProvider, IssuedToken
from woo2d365.sandbox.bc_odata import (
    Filter,
    ODataError,
    QueryOptions,
    Schema,
    decode_skiptoken,
    encode_skiptoken,
    parse_expand,
    parse_filter,
    parse_max_page_size,
    parse_non_negative_int,
    parse_orderby,
    parse_query,
    parse_select,
    query_syntax_error,
    rows_after,
    sort_rows,
)
from woo2d365.sandbox.serving import ServedContext, take_next
from woo2d365.sandbox.tls import SandboxCA

BC_SCOPE = "https://api.businesscentral.dynamics.com/.default"
BC_RESOURCE = "https://api.businesscentral.dynamics.com"
MAX_QUEUED_PER_APP = 95  # docs/systems.md B3: max request queue per user
QUEUE_TIMEOUT_SECONDS = 480.0  # docs/systems.md B3: 503 after 8 minutes queued
TRACKING_API = "woo2d365/shipping/v1.0/shipmentTrackings"
"""Where the emulator serves the custom tracking page unless told otherwise."""
_DEFAULT_COUNTRIES = ("NL", "DE", "BE", "FR", "AT", "GB", "US", "ES", "IT", "DK", "SE", "PL", "CH")


def _correlation(message: str) -> str:
    text = message.rstrip()
    return f"{text}  CorrelationId:  {m.new_guid()}."


def _error_document(error: ODataError) -> dict[str, Any]:
    return {"error": {"code": error.code, "message": _correlation(error.message)}}


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate property {key}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


@dataclass(frozen=True)
class _Call:
    """One API request on its way through the routes."""

    handler: Handler
    method: str
    options: QueryOptions
    root: str
    path: str
    body: bytes


@contextlib.contextmanager
def _refusal_as_value_error() -> Iterator[None]:
    """A setup call Business Central would refuse raises ``ValueError("code: message")``."""
    try:
        yield
    except ODataError as error:
        raise ValueError(f"{error.code}: {error.message}") from None


def _by_number(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: row["number"])


def _render_document(
    header: dict[str, Any],
    schema: Schema,
    lines_key: str,
    lines: Mapping[str, list[dict[str, Any]]],
    line_schema: Schema,
) -> dict[str, Any]:
    """A document as the API shows it with its lines expanded."""
    doc = m.render(header, schema, None)
    doc[lines_key] = [m.render(line, line_schema, None) for line in lines.get(header["id"], [])]
    return doc


class BusinessCentralEmulator(ServedContext, EntraIdentityProvider):
    """Business Central online (API v2.0) and its Entra ID token endpoint, on 127.0.0.1 over TLS.

    Use as a context manager or call :meth:`start` / :meth:`stop`. Point the tool's
    ``dynamics.api_url`` at :attr:`url` and ``dynamics.authority_host`` at
    :attr:`authority_host`, with the CA bundle ``ca.ca_path`` trusted.
    """

    def __init__(
        self,
        *,
        ca: SandboxCA,
        tenant_id: str = "00000000-0000-0000-0000-00000000abcd",
        client_id: str = "sandbox-client",
        client_secret: str = "sandbox-secret",
        environment: str = "production",
        companies: Sequence[str] = ("CRONUS NL",),
        latency: float = 0.0,
        rate_limit: int = 6000,
        rate_window_seconds: float = 300.0,
        max_concurrent: int = 5,
        token_lifetime_seconds: int = 3600,
        countries: Iterable[str] = _DEFAULT_COUNTRIES,
    ) -> None:
        if not companies:
            raise ValueError("at least one company is needed")
        self.ca = ca
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.environment = environment
        self.latency = latency
        self.commit_delay = 0.0  # seconds a POST is processed before it commits
        self.rate_limit = rate_limit
        self.rate_window_seconds = rate_window_seconds
        self.max_concurrent = max_concurrent
        self.token_lifetime_seconds = token_lifetime_seconds
        self.scope = BC_SCOPE
        self.requests: list[RecordedRequest] = []
        self.token_requests = 0
        self.max_in_flight_seen = 0
        self._lock = threading.RLock()
        self._slots = threading.Condition(self._lock)
        self._tokens: dict[str, IssuedToken] = {}
        self._apps: dict[str, AppLimits] = {}
        self._faults: list[Fault] = []
        self._companies: dict[str, m.Company] = {}
        self._credit_memos: dict[str, cm.CreditMemoBook] = {}  # company id -> its credit memos
        created = m.now_ms()
        country_codes = [c.upper() for c in countries]
        for name in companies:
            company = m.Company(id=m.new_guid(), name=name, created=created)
            for code in m.UNITS_OF_MEASURE:
                company.units[code] = m.new_guid()
            for code in m.CURRENCY_ROUNDING:
                company.currencies[code] = m.new_guid()
            for rate in (Decimal("21"), Decimal("9"), Decimal("0")):
                company.vat_group_for(rate)
            for code in country_codes:
                m.make_country(company, code)
            self._companies[company.id] = company
        self._server: TLSServer | None = None
        self._thread: threading.Thread | None = None
        self._postings: dict[str, posted.Postings] = {c: posted.Postings() for c in self._companies}
        self.max_page_size = 20000  # the server's page size (benchmarks lower it to show paging)
        self.tracking_api: str | None = TRACKING_API
        """``publisher/group/version/entitySet`` of the installed tracking page (None: none)."""

    # ------------------------------------------------------------------ lifecycle and URLs
    def start(self) -> Self:
        """Bind a free port and serve in a daemon thread."""
        if self._server is not None:
            return self
        self._server = TLSServer(self, self.ca.server_context())
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="bc-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_all_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT``, the tool's ``dynamics.api_url``."""
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    @property
    def authority_host(self) -> str:
        """The same server, as the tool's ``dynamics.authority_host``."""
        return self.url

    def api_base(self) -> str:
        """``{url}/v2.0/{tenant}/{environment}/api/v2.0``."""
        return f"{self.url}/v2.0/{self.tenant_id}/{self.environment}/api/v2.0"

    # ------------------------------------------------------------------ data helpers
    def _company(self, name: str | None) -> m.Company:
        if name is None:
            return next(iter(self._companies.values()))
        for company in self._companies.values():
            if company.name == name or company.id == name:
                return company
        raise KeyError(f"no company {name!r}")

    def company_id(self, name: str | None = None) -> str:
        """The GUID of a company (the first one by default)."""
        with self._lock:
            return self._company(name).id

    def add_item(
        self,
        number: str,
        display_name: str = "",
        *,
        blocked: bool = False,
        unit_price: Decimal = Decimal("0"),
        vat_percent: Decimal = Decimal("21"),
        company: str | None = None,
    ) -> dict[str, Any]:
        """Create an item (No. is Code[20]: upper-cased) and return it as the API shows it."""
        with self._lock:
            item = m.make_item(
                self._company(company),
                number,
                display_name,
                blocked=blocked,
                unit_price=unit_price,
                vat_percent=vat_percent,
            )
            return m.render(item, m.ITEM_SCHEMA, None)

    def add_account(
        self,
        number: str,
        display_name: str = "",
        *,
        vat_percent: Decimal = Decimal("21"),
        company: str | None = None,
        blocked: bool = False,
    ) -> dict[str, Any]:
        """Create a G/L account whose lines carry ``vat_percent`` VAT."""
        with self._lock:
            account = m.make_account(
                self._company(company),
                number,
                display_name,
                vat_percent=vat_percent,
                blocked=blocked,
            )
            return m.render(account, m.ACCOUNT_SCHEMA, None)

    def add_customer(
        self,
        display_name: str,
        *,
        email: str = "",
        number: str | None = None,
        company: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Create a customer through the same rules as ``POST customers`` (API field names)."""
        body: dict[str, Any] = {"displayName": display_name, **fields}
        if email:
            body["email"] = email
        if number is not None:
            body["number"] = number
        with self._lock, _refusal_as_value_error():
            customer = m.create_customer(self._company(company), body, ieee754=False)
            return m.render(customer, m.CUSTOMER_SCHEMA, None)

    def add_sales_order(self, body: dict[str, Any], company: str | None = None) -> dict[str, Any]:
        """Create a sales order as a person would in Business Central (the rules of ``POST
        salesOrders``, with ``salesOrderLines`` deep-inserted; API field names)."""
        with self._lock, _refusal_as_value_error():
            order, _lines = so.create_sales_order(self._company(company), body, ieee754=False)
            return m.render(order, m.ORDER_SCHEMA, None)

    def set_item(self, number: str, **fields: Any) -> dict[str, Any]:
        """Change an item's fields (API names, e.g. ``blocked=True``; ``vat_percent`` too)."""
        with self._lock:
            company_name = fields.pop("company", None)
            company = self._company(company_name)
            item = self._item_by_number(number, company_name)
            for name, value in fields.items():
                if name == "vat_percent":
                    item["_vat"] = Decimal(value)
                    item["_vat_group"] = company.vat_group_for(Decimal(value))
                    continue
                if name not in m.ITEM_SCHEMA or name in ("id", "lastModifiedDateTime"):
                    raise KeyError(f"items have no settable field {name!r}")
                if name == "number":
                    raise KeyError("renaming items is not supported")
                item[name] = Decimal(value) if m.ITEM_SCHEMA[name].type == "decimal" else value
            m.touch(item)
            return m.render(item, m.ITEM_SCHEMA, None)

    # -- inventory (stock): Item Ledger Entries as their sum on the item ---------------------
    def set_inventory(
        self, number: str, quantity: Decimal | int | str, company: str | None = None
    ) -> Decimal:
        """Post an adjustment so the item's ``inventory`` becomes ``quantity``.

        Like posting in Business Central, it does not move the item's ``lastModifiedDateTime``
        (``docs/systems.md`` B4: inventory is posted quantities, not a field of the item).
        """
        with self._lock:
            item = self._item_by_number(number, company)
            item["inventory"] = Decimal(str(quantity))
            return Decimal(item["inventory"])

    def adjust_inventory(
        self, number: str, delta: Decimal | int | str, company: str | None = None
    ) -> Decimal:
        """Post an entry of ``delta`` (a shipment posts a negative one); returns the new sum."""
        with self._lock:
            item = self._item_by_number(number, company)
            item["inventory"] = Decimal(item["inventory"]) + Decimal(str(delta))
            return Decimal(item["inventory"])

    def _item_by_number(self, number: str, company: str | None) -> dict[str, Any]:
        comp = self._company(company)
        item_id = comp.item_by_number.get(number.strip().upper())
        if item_id is None:
            raise KeyError(f"no item {number!r}")
        return comp.items[item_id]

    def delete_sales_order(self, number: str, company: str | None = None) -> None:
        """Remove a sales order, as Business Central does once it is fully invoiced
        (``docs/systems.md`` B4); its posted documents are not modelled."""
        with self._lock:
            comp = self._company(company)
            order_id = comp.order_by_number.pop(number, None)
            if order_id is None:
                return
            order = comp.orders.pop(order_id)
            comp.lines.pop(order_id, None)
            ids = comp.order_by_ext.get(str(order.get("externalDocumentNumber") or ""), [])
            if order_id in ids:
                ids.remove(order_id)

    # -- credit memos (refunds)
    def set_customer_prices_include_tax(
        self, number: str, value: bool, company: str | None = None
    ) -> None:
        """Set "Prices Including VAT" on a customer card (the API does not show it)."""
        with self._lock:
            customer = self._company(company).customer_by_no(number.strip().upper())
            if customer is None:
                raise KeyError(f"no customer {number!r}")
            customer["_pricesIncludeTax"] = value

    def credit_memos(self, company: str | None = None) -> list[dict[str, Any]]:
        """Every credit memo (drafts and posted) with its lines, by id of creation."""
        with self._lock:
            comp = self._company(company)
            book = self._book(comp)
            return [
                _render_document(
                    memo, cm.CREDIT_MEMO_SCHEMA, cm.LINES, book.lines, cm.CREDIT_MEMO_LINE_SCHEMA
                )
                for memo in book.memos.values()
            ]

    def sales_orders(self, company: str | None = None) -> list[dict[str, Any]]:
        """Every sales order as ``GET salesOrders?$expand=salesOrderLines`` shows it."""
        with self._lock:
            comp = self._company(company)
            return [
                _render_document(
                    order, m.ORDER_SCHEMA, "salesOrderLines", comp.lines, m.LINE_SCHEMA
                )
                for order in _by_number(comp.orders.values())
            ]

    def customers(self, company: str | None = None) -> list[dict[str, Any]]:
        """Every customer, by number."""
        with self._lock:
            comp = self._company(company)
            return [
                m.render(c, m.CUSTOMER_SCHEMA, None) for c in _by_number(comp.customers.values())
            ]

    def items(self, company: str | None = None) -> list[dict[str, Any]]:
        """Every item, by number."""
        with self._lock:
            comp = self._company(company)
            return [m.render(i, m.ITEM_SCHEMA, None) for i in _by_number(comp.items.values())]

    # ------------------------------------------------------------------ posting (bc_postings)
    def ship(
        self,
        order_number: str,
        quantities: Mapping[int, Decimal | int | str] | None = None,
        *,
        invoice: bool = False,
        company: str | None = None,
        posting_date: date | None = None,
    ) -> dict[str, Any] | None:
        """Post a shipment of the sales order as a warehouse person would: the given quantities
        per line ``sequence`` (None: everything not shipped yet); with ``invoice`` "Ship and
        Invoice" in one go (a fully invoiced order is deleted). The shipment as the API shows it."""
        wanted = None if quantities is None else {k: Decimal(str(v)) for k, v in quantities.items()}
        with self._lock:
            shipment, _ = self._post_order(
                order_number,
                company,
                ship=wanted,
                invoice=invoice,
                posting_date=posting_date,
                everything=quantities is None,
            )
            return None if shipment is None else m.render(shipment, posted.SHIPMENT_SCHEMA, None)

    def invoice(
        self, order_number: str, *, company: str | None = None, posting_date: date | None = None
    ) -> dict[str, Any] | None:
        """Post an invoice for what is shipped and not invoiced (the order goes when all is)."""
        with self._lock:
            _, invoice = self._post_order(
                order_number, company, ship=None, invoice=True, posting_date=posting_date
            )
            return None if invoice is None else m.render(invoice, posted.INVOICE_SCHEMA, None)

    def ship_and_invoice(
        self, order_number: str, *, company: str | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """ "Ship and Invoice" of everything: shipment and invoice posted, the order deleted."""
        with self._lock:
            shipment, invoice = self._post_order(
                order_number, company, ship=None, invoice=True, everything=True
            )
            assert shipment is not None and invoice is not None
            return (
                m.render(shipment, posted.SHIPMENT_SCHEMA, None),
                m.render(invoice, posted.INVOICE_SCHEMA, None),
            )

    def _post_order(
        self, order_number: str, company: str | None, **options: Any
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(shipment, invoice) posted for a sales order (see :func:`bc_postings.post`)."""
        comp = self._company(company)
        return posted.post(comp, self._postings[comp.id], order_number, **options)

    def set_tracking(
        self,
        shipment_number: str,
        agent: str,
        tracking_number: str,
        *,
        service: str = "",
        company: str | None = None,
    ) -> dict[str, Any]:
        """ "Update Document" on a posted shipment: agent and package tracking number."""
        with self._lock:
            comp = self._company(company)
            row = posted.set_tracking(
                self._postings[comp.id],
                shipment_number,
                agent=agent,
                tracking_number=tracking_number,
                service=service,
            )
            return m.render(posted.tracking_row(row), posted.TRACKING_SCHEMA, None)

    def set_invoice_status(
        self, invoice_number: str, status: str, *, company: str | None = None
    ) -> dict[str, Any]:
        """A posted invoice's status changes (``Paid`` when a payment is applied)."""
        with self._lock:
            comp = self._company(company)
            invoice = posted.set_invoice_status(self._postings[comp.id], invoice_number, status)
            return m.render(invoice, posted.INVOICE_SCHEMA, None)

    def set_credit_memo_status(
        self, external_number: str, status: str, *, company: str | None = None
    ) -> None:
        """What a person does to a draft credit memo in Business Central: send it for approval
        (``In_x0020_Review``), approve or release it (``Open``, as the API shows a released
        draft: the same status as a posted memo not paid yet), or reopen it (``Draft``)."""
        if status not in ("Draft", "In_x0020_Review", "Open"):
            raise ValueError(f"a draft becomes Draft, In_x0020_Review or Open, not {status}")
        with self._lock:
            book = self._book(self._company(company))
            (memo,) = book.by_external_number(external_number)
            cm.set_draft_status(memo, status)

    def shipments(self, company: str | None = None) -> list[dict[str, Any]]:
        """Every posted shipment with its lines, by number."""
        with self._lock:
            book = self._postings[self._company(company).id]
            result = []
            for header in sorted(book.shipments.values(), key=lambda h: h["number"]):
                doc = m.render(header, posted.SHIPMENT_SCHEMA, None)
                doc["salesShipmentLines"] = [
                    m.render(line, posted.SHIPMENT_LINE_SCHEMA, None)
                    for line in book.shipment_lines.get(header["id"], [])
                ]
                result.append(doc)
            return result

    def invoices(self, company: str | None = None) -> list[dict[str, Any]]:
        """Every posted invoice, by number."""
        with self._lock:
            book = self._postings[self._company(company).id]
            return [
                m.render(i, posted.INVOICE_SCHEMA, None)
                for i in sorted(book.invoices.values(), key=lambda i: i["number"])
            ]

    # ------------------------------------------------------------------ faults and tokens
    def reset_requests(self) -> None:
        """Forget recorded requests, the token request count and ``max_in_flight_seen``."""
        with self._lock:
            self.requests.clear()
            self.token_requests = 0
            self.max_in_flight_seen = 0

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 503,
        code: str = "Internal_ServerError",
        message: str = "The service is temporarily unavailable. Try again later.",
        retry_after: int | None = None,
        method: str | None = None,
        path_contains: str = "",
    ) -> None:
        """Answer the next ``count`` matching API requests with this error (nothing processed)."""
        with self._lock:
            self._faults.append(
                Fault("fail", count, method, path_contains, status, code, message, retry_after)
            )

    def clear_faults(self) -> None:
        """Forget every fault not used up yet: the service is well again."""
        with self._lock:
            self._faults.clear()

    def drop_after_commit_next(self, count: int = 1, *, path_contains: str = "salesOrders") -> None:
        """Process the next ``count`` matching POSTs fully (commit), then close without answer."""
        with self._lock:
            self._faults.append(Fault("drop_after_commit", count, "POST", path_contains))

    def drop_next(
        self, count: int = 1, *, method: str | None = None, path_contains: str = ""
    ) -> None:
        """Close the next ``count`` matching API connections without processing or answering."""
        with self._lock:
            self._faults.append(Fault("drop", count, method, path_contains))

    def revoke_tokens(self) -> None:
        """Invalidate every issued token: the API answers 401 until a new one is fetched."""
        with self._lock:
            self._tokens.clear()

    def _take_fault(self, kind: str, method: str, target: str) -> Fault | None:
        with self._lock:
            return take_next(self._faults, lambda f: f.kind == kind and f.matches(method, target))

    # ------------------------------------------------------------------ HTTP plumbing
    def _handle(self, handler: Handler) -> None:
        method = handler.command
        split = urlsplit(handler.path)
        if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._send(handler, 411, b"", {})
            return
        try:
            length = int(handler.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._send(handler, 400, b"", {})
            return
        body = handler.rfile.read(length) if length else b""
        segments = split.path.split("/")
        if (
            len(segments) > 2
            and segments[1] != "v2.0"
            and (segments[2:4] == ["oauth2", "v2.0"] or segments[2] in ("v2.0", "discovery"))
        ):
            self._handle_idp(handler, method, split.path, body)
            return
        self._handle_api(handler, method, split.path, split.query, body)

    def _send(self, handler: Handler, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)

    def _drop(self, handler: Handler, method: str, path: str, query: str) -> None:
        """Close the connection without an answer (recorded with status 0)."""
        self._record(method, path, query, 0)
        handler.close_connection = True

    def _wait_out_latency(self, started: float) -> None:
        """Answer ``latency`` seconds after ``started``, the emulator's own processing included
        (as a service's response time would)."""
        remaining = self.latency - (time.monotonic() - started)
        if remaining > 0:
            time.sleep(remaining)

    def _record(self, method: str, path: str, query: str, status: int) -> None:
        with self._lock:
            self.requests.append(RecordedRequest(method, path, query, status, time.time()))

    # ------------------------------------------------------------------ identity provider
    def _handle_idp(self, handler: Handler, method: str, path: str, body: bytes) -> None:
        status, doc = self._idp_answer(handler, method, path, body)
        payload = json.dumps(doc).encode()
        self._send(
            handler,
            status,
            payload,
            {
                "Content-Type": "application/json; charset=utf-8",
                "Cache-Control": "no-store, no-cache",
                "Pragma": "no-cache",
            },
        )

    # ------------------------------------------------------------------ API: gatekeeping
    def _authenticate(self, handler: Handler, url_tenant: str | None) -> str:
        header = handler.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        token = None
        if scheme.lower() == "bearer" and value.strip():
            with self._lock:
                token = self._tokens.get(value.strip())
                if token is not None and token.expires_at <= time.monotonic():
                    del self._tokens[value.strip()]
                    token = None
        if token is None or (url_tenant is not None and url_tenant.lower() != token.tenant.lower()):
            raise ODataError(
                401,
                "Authentication_InvalidCredentials",
                "The server has rejected the client credentials.",
                {
                    "WWW-Authenticate": (
                        f'Bearer authorization_uri="{self.authority_host}/{self.tenant_id}/oauth2/'
                        f'authorize", resource_id="{BC_RESOURCE}"'
                    )
                },
            )
        return token.client_id

    def _check_rate(self, client: str) -> None:
        with self._lock:
            limits = self._apps.setdefault(client, AppLimits())
            now = time.monotonic()
            window = limits.window
            while window and window[0] <= now - self.rate_window_seconds:
                window.popleft()
            if len(window) >= self.rate_limit:
                retry = max(1, math.ceil(window[0] + self.rate_window_seconds - now))
                raise ODataError(
                    429,
                    "Application_TooManyRequests",
                    f"Too many requests: the limit of {self.rate_limit} requests in "
                    f"{self.rate_window_seconds:g} seconds was reached. Retry after {retry} "
                    "seconds.",
                    {"Retry-After": str(retry)},
                )
            window.append(now)

    def _acquire_slot(self, client: str) -> None:
        with self._slots:
            limits = self._apps.setdefault(client, AppLimits())
            if limits.waiting >= MAX_QUEUED_PER_APP:
                raise ODataError(
                    429,
                    "Application_TooManyRequests",
                    f"Too many requests in the queue: at most {MAX_QUEUED_PER_APP} requests may "
                    "wait for a free slot.",
                    {"Retry-After": "1"},
                )
            limits.waiting += 1
            try:
                deadline = time.monotonic() + QUEUE_TIMEOUT_SECONDS
                while limits.in_flight >= self.max_concurrent:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise ODataError(
                            503,
                            "Internal_ServiceUnavailable",
                            "The request waited too long in the queue.",
                            {"Retry-After": "60"},
                        )
                    self._slots.wait(remaining)
            finally:
                limits.waiting -= 1
            limits.in_flight += 1
            self.max_in_flight_seen = max(self.max_in_flight_seen, limits.in_flight)

    def _release_slot(self, client: str) -> None:
        with self._slots:
            self._apps[client].in_flight -= 1
            self._slots.notify_all()

    def _handle_api(
        self, handler: Handler, method: str, path: str, query: str, body: bytes
    ) -> None:
        target = f"{path}?{query}" if query else path
        if self._take_fault("drop", method, target) is not None:
            self._drop(handler, method, path, query)
            return
        headers: dict[str, str] = {}
        try:
            route = self._split_api_path(path)
            client = self._authenticate(handler, route[0] if route else None)
            if route is None:
                raise ODataError(
                    404, "BadRequest_ResourceNotFound", f"No resource was found at '{path}'."
                )
            self._check_rate(client)
            self._acquire_slot(client)
            started = time.monotonic()
            try:
                fault = self._take_fault("fail", method, target)
                if fault is not None:
                    fault_headers = (
                        {"Retry-After": str(fault.retry_after)}
                        if fault.retry_after is not None
                        else {}
                    )
                    raise ODataError(fault.status, fault.code, fault.message, fault_headers)
                if method == "POST" and self.commit_delay > 0:
                    # Business Central goes on with a request whose client is gone
                    # (docs/systems.md B3): the create commits after the delay, waited for or not.
                    time.sleep(self.commit_delay)
                status, document, headers = self._api(handler, method, route, path, query, body)
                if (
                    method == "POST"
                    and 200 <= status < 300
                    and self._take_fault("drop_after_commit", method, target) is not None
                ):
                    raise Dropped
            finally:
                # The answer leaves ``latency`` after the slot was granted.
                self._wait_out_latency(started)
                self._release_slot(client)
        except Dropped:
            self._drop(handler, method, path, query)
            return
        except ODataError as error:
            status, document, headers = error.status, _error_document(error), error.headers
        payload = m.dumps(document) if document is not None else b""
        all_headers = {
            "Content-Type": "application/json; odata.metadata=minimal; "
            "odata.streaming=true; IEEE754Compatible=false; "
            "charset=utf-8",
            "OData-Version": "4.0",
            "request-id": m.new_guid(),
            **headers,
        }
        self._record(method, path, query, status)  # before answering: clients may look at once
        self._send(handler, status, payload, all_headers)

    def _split_api_path(self, path: str) -> tuple[str | None, str, str, list[str]] | None:
        """``(tenant or None, environment, api prefix, resource segments)`` or None."""
        parts = path.split("/")
        if len(parts) < 5 or parts[0] != "" or parts[1] != "v2.0":
            return None
        if parts[3] == "api" and len(parts) >= 5 and parts[4] == "v2.0":
            tenant, env, rest = None, parts[2], parts[5:]
            prefix = "/".join(parts[:5])
        elif len(parts) >= 6 and parts[4] == "api" and parts[5] == "v2.0":
            tenant, env, rest = unquote(parts[2]), parts[3], parts[6:]
            prefix = "/".join(parts[:6])
        elif len(parts) >= 9 and parts[4] == "api":
            # A custom API page: api/{publisher}/{group}/{version}/companies({id})/{entitySet}
            tenant, env, rest = unquote(parts[2]), parts[3], parts[8:]
            prefix = "/".join(parts[:8])
        else:
            return None
        return tenant, unquote(env), prefix, rest

    # ------------------------------------------------------------------ API: resources
    def _api(
        self,
        handler: Handler,
        method: str,
        route: tuple[str | None, str, str, list[str]],
        path: str,
        query: str,
        body: bytes,
    ) -> tuple[int, Any, dict[str, str]]:
        _tenant, env, prefix, rest = route
        if env != self.environment:
            raise ODataError(
                404, "BadRequest_ResourceNotFound", f"The environment '{env}' does not exist."
            )
        root = f"{self.url}{prefix}"
        options = parse_query(query)
        if not prefix.endswith("/api/v2.0"):
            return self._custom_api(handler, method, prefix, rest, options, root, path)
        segments = [self._segment(s) for s in rest if s != ""] if rest != [""] else []
        if not segments:
            return self._service_document(method, root)
        name = segments[0][0]
        self._check_served(method, name)
        call = _Call(handler, method, options, root, path, body)
        with self._lock:
            if name == "companies":
                return self._companies_route(call, segments)
            company = self._company_from_option(options)
            return self._company_resource(call, company, segments, "")

    def _service_document(self, method: str, root: str) -> tuple[int, Any, dict[str, str]]:
        if method != "GET":
            raise self._method_not_allowed(method, "service document")
        return (
            200,
            {
                "@odata.context": f"{root}/$metadata",
                "value": [{"name": name, "kind": "EntitySet", "url": name} for name in SETS],
            },
            {},
        )

    def _check_served(self, method: str, name: str) -> None:
        """Only GET and POST on entity sets: ``$metadata``, ``$batch`` and updates are 501."""
        if name in ("$metadata", "$batch"):
            raise ODataError(
                501,
                "BadRequest_MethodNotImplemented",
                f"'{name}' is not supported by the sandbox emulator.",
            )
        if method in ("PATCH", "PUT", "DELETE"):
            raise ODataError(
                501,
                "BadRequest_MethodNotImplemented",
                f"{method} is not supported by the sandbox emulator.",
            )
        if method not in ("GET", "POST"):
            raise self._method_not_allowed(method, name)

    def _companies_route(
        self, call: _Call, segments: list[tuple[str, str | None]]
    ) -> tuple[int, Any, dict[str, str]]:
        """``companies``, ``companies({id})`` and everything below a company."""
        key = segments[0][1]
        if key is None:
            if len(segments) > 1:
                raise query_syntax_error("A key is needed after 'companies'.")
            if call.method != "GET":
                raise self._method_not_allowed(call.method, "companies")
            rows = [c.entity() for c in self._companies.values()]
            return self._list(call, SETS["companies"], rows, {}, "companies", None)
        company = self._companies.get(self._guid_key(key))
        if company is None:
            raise ODataError(
                404, "Internal_CompanyNotFound", f"The company '{key}' does not exist."
            )
        if len(segments) == 1:
            if call.method != "GET":
                raise self._method_not_allowed(call.method, "companies")
            return self._single(
                SETS["companies"],
                company.entity(),
                call.options,
                call.root,
                f"companies({company.id})",
                company,
            )
        return self._company_resource(call, company, segments[1:], f"companies({company.id})/")

    def _custom_api(
        self,
        handler: Handler,
        method: str,
        prefix: str,
        rest: list[str],
        options: QueryOptions,
        root: str,
        path: str,
    ) -> tuple[int, Any, dict[str, str]]:
        """The tracking page of a per-tenant extension, when installed (else BC's 404)."""
        api = "/".join(prefix.split("/")[5:8])
        segments = [self._segment(s) for s in rest if s != ""]
        installed = (self.tracking_api or "").rsplit("/", 1)
        if len(installed) != 2 or installed[0] != api:
            raise ODataError(
                404, "BadRequest_ResourceNotFound", f"No resource was found at '{path}'."
            )
        if len(segments) != 2 or segments[0][0] != "companies" or segments[0][1] is None:
            raise ODataError(
                404, "BadRequest_ResourceNotFound", f"No resource was found at '{path}'."
            )
        name, key = segments[1]
        if name != installed[1]:
            raise ODataError(
                404, "BadRequest_ResourceNotFound", f"Resource not found for the segment '{name}'."
            )
        if method != "GET":
            raise self._method_not_allowed(method, name)
        with self._lock:
            company = self._companies.get(self._guid_key(segments[0][1]))
            if company is None:
                raise ODataError(
                    404,
                    "Internal_CompanyNotFound",
                    f"The company '{segments[0][1]}' does not exist.",
                )
            rows = [posted.tracking_row(h) for h in self._postings[company.id].shipments.values()]
            context = f"companies({company.id})/{name}"
            if key is not None:
                wanted = self._guid_key(key)
                match = [row for row in rows if row["id"] == wanted]
                if not match:
                    raise self._not_found(TRACKING_SET, wanted)
                return self._single(
                    TRACKING_SET, match[0], options, root, f"{context}({wanted})", company
                )
            return self._collection(
                TRACKING_SET, rows, {}, options, handler, root, path, context, company
            )

    @staticmethod
    def _segment(raw: str) -> tuple[str, str | None]:
        text = unquote(raw)
        if "(" in text:
            if not text.endswith(")"):
                raise query_syntax_error(f"Invalid segment '{text}'.")
            name, _, key = text[:-1].partition("(")
            return name, key
        return text, None

    @staticmethod
    def _guid_key(key: str) -> str:
        if not m.GUID_RE.match(key):
            raise query_syntax_error(f"The key value '{key}' is not a valid Edm.Guid.")
        return key.lower()

    @staticmethod
    def _method_not_allowed(method: str, name: str) -> ODataError:
        return ODataError(
            405,
            "BadRequest_MethodNotAllowed",
            f"'{method}' requests for '{name}' of EdmType 'Entity' are not allowed within "
            "Dynamics 365 Business Central OData web services.",
        )

    def _company_from_option(self, options: QueryOptions) -> m.Company:
        wanted = options.custom.get("company")
        if wanted:
            for company in self._companies.values():
                if company.id == wanted.lower() or company.name == wanted:
                    return company
            raise ODataError(
                400,
                "Internal_CompanyNotFound",
                f"Cannot open company '{wanted}': it does not exist.",
            )
        raise ODataError(
            400,
            "Internal_CompanyNotFound",
            "Cannot process the request because the default company cannot be found. You can "
            "specify a default company in the service configuration file, or specify one for "
            'each tenant, or you can add a query string in the form of "company=[name]".',
        )

    def _company_resource(
        self,
        call: _Call,
        company: m.Company,
        segments: list[tuple[str, str | None]],
        context: str,
    ) -> tuple[int, Any, dict[str, str]]:
        name, key = segments[0]
        if name in ("salesCreditMemos", "salesCreditMemoLines"):
            return self._credit_memo_resource(call, company, segments, context)
        spec = served_set(name)
        check_depth(segments)
        if key is None:
            if len(segments) > 1:
                raise segment_not_found(segments[1][0])
            return self._entity_set(call, company, spec, context)
        entity = self._find(company, spec, self._guid_key(key))
        if len(segments) == 1:
            if call.method != "GET":
                raise self._method_not_allowed(call.method, name)
            return self._single(
                spec, entity, call.options, call.root, f"{context}{name}({entity['id']})", company
            )
        nav, nav_key = segments[1]
        if name == "salesShipments" and nav == "salesShipmentLines" and nav_key is None:
            return self._shipment_lines(call, company, entity, context)
        if name != "salesOrders" or nav != "salesOrderLines":
            raise segment_not_found(nav)
        return self._order_lines(call, company, entity, nav_key, context)

    def _entity_set(
        self, call: _Call, company: m.Company, spec: EntitySet, context: str
    ) -> tuple[int, Any, dict[str, str]]:
        """GET (list) or POST (create) on an entity set of a company."""
        name = spec.name
        if call.method == "POST":
            if name in READ_ONLY_SETS:
                raise self._method_not_allowed(call.method, name)
            if name == "salesInvoices":
                raise ODataError(
                    501,
                    "BadRequest_MethodNotImplemented",
                    "Creating sales invoices is not supported by the sandbox emulator.",
                )
            return self._post(
                call.handler, company, spec, call.options, call.root, context, call.body
            )
        rows, indexes = self._rows(company, spec)
        if name == "salesOrderLines":
            require_document_filter(
                call.options, spec, "You must specify an Id or a Document Id to get the lines."
            )
        return self._list(call, spec, rows, indexes, f"{context}{name}", company)

    def _shipment_lines(
        self, call: _Call, company: m.Company, shipment: Mapping[str, Any], context: str
    ) -> tuple[int, Any, dict[str, str]]:
        """``salesShipments({id})/salesShipmentLines``."""
        if call.method != "GET":
            raise self._method_not_allowed(call.method, "salesShipmentLines")
        shipment_lines = self._postings[company.id].shipment_lines.get(shipment["id"], [])
        return self._list(
            call,
            SETS["salesShipmentLines"],
            list(shipment_lines),
            {},
            f"{context}salesShipments({shipment['id']})/salesShipmentLines",
            company,
        )

    def _order_lines(
        self,
        call: _Call,
        company: m.Company,
        order: dict[str, Any],
        line_key: str | None,
        context: str,
    ) -> tuple[int, Any, dict[str, str]]:
        """``salesOrders({id})/salesOrderLines``: list, one line, or POST one more."""
        lines_spec = SETS["salesOrderLines"]
        lines = company.lines.get(order["id"], [])
        nav_context = f"{context}salesOrders({order['id']})/salesOrderLines"
        if line_key is not None:
            line_id, line = self._line_by_key(lines_spec, lines, line_key)
            if call.method != "GET":
                raise self._method_not_allowed(call.method, "salesOrderLines")
            return self._single(
                lines_spec, line, call.options, call.root, f"{nav_context}({line_id})", company
            )
        if call.method == "POST":
            self._require_json(call.handler)
            values = self._json_body(call.body)
            line = so.add_sales_order_line(company, order, values, self._ieee754(call.handler))
            doc = m.render(line, m.LINE_SCHEMA, None)
            doc = {"@odata.context": f"{call.root}/$metadata#{nav_context}/$entity", **doc}
            return 201, doc, {"Location": f"{call.root}/{nav_context}({line['id']})"}
        return self._list(call, lines_spec, list(lines), {}, nav_context, company)

    def _line_by_key(
        self, spec: EntitySet, lines: Sequence[dict[str, Any]], key: str
    ) -> tuple[str, dict[str, Any]]:
        """(id, line) of the document line with this key; 404 when the document has none."""
        line_id = self._guid_key(key)
        match = [line for line in lines if line["id"] == line_id]
        if not match:
            raise self._not_found(spec, line_id)
        return line_id, match[0]

    # ------------------------------------------------------------------ credit memos (refunds)
    def _book(self, company: m.Company) -> cm.CreditMemoBook:
        return self._credit_memos.setdefault(company.id, cm.CreditMemoBook())

    def _credit_memo_resource(
        self,
        call: _Call,
        company: m.Company,
        segments: list[tuple[str, str | None]],
        context: str,
    ) -> tuple[int, Any, dict[str, str]]:
        """``salesCreditMemos``: list, filter, get, deep-insert POST, lines and ``post``."""
        book = self._book(company)
        name, key = segments[0]
        spec = SETS[name]
        check_depth(segments)
        if name == cm.LINES:
            return self._all_credit_memo_lines(call, company, book, segments, context)
        if key is None:
            if len(segments) > 1:
                raise segment_not_found(segments[1][0])
            if call.method == "POST":
                return self._post_credit_memo(call, company, book, context)
            indexes = {"externalDocumentNumber": book.by_external_number}
            rows = list(book.memos.values())
            return self._list(call, spec, rows, indexes, f"{context}{name}", company)
        memo_id = self._guid_key(key)
        if memo_id not in book.memos:
            raise self._not_found(spec, memo_id)
        memo = book.memos[memo_id]
        own = f"{context}{name}({memo_id})"
        if len(segments) == 1:
            if call.method != "GET":
                raise self._method_not_allowed(call.method, name)
            return self._single(spec, memo, call.options, call.root, own, company)
        return self._credit_memo_navigation(call, company, book, memo, segments[1], own)

    def _all_credit_memo_lines(
        self,
        call: _Call,
        company: m.Company,
        book: cm.CreditMemoBook,
        segments: list[tuple[str, str | None]],
        context: str,
    ) -> tuple[int, Any, dict[str, str]]:
        """``salesCreditMemoLines``: only a GET filtered by document or line id."""
        name, key = segments[0]
        spec = SETS[name]
        message = "You must specify an id or a Document Id to get the lines."
        if call.method == "POST" or key is not None or len(segments) > 1:
            raise m.app_error(message)
        require_document_filter(call.options, spec, message)
        rows = [line for lines in book.lines.values() for line in lines]
        return self._list(call, spec, rows, {}, f"{context}{name}", company)

    def _post_credit_memo(
        self, call: _Call, company: m.Company, book: cm.CreditMemoBook, context: str
    ) -> tuple[int, Any, dict[str, str]]:
        """``POST salesCreditMemos`` (deep insert); only ``$select``/``$expand`` allowed."""
        name = "salesCreditMemos"
        spec = SETS[name]
        for option in ("$filter", "$top", "$skip", "$orderby", "$count", "$skiptoken"):
            if option in call.options.options:
                raise query_syntax_error(f"The query option '{option}' is not allowed on a POST.")
        select = parse_select(call.options.options.get("$select"), spec.schema, spec.entity)
        expand = self._expand_names(spec, call.options)
        self._require_json(call.handler)
        memo = cm.create_credit_memo(
            company, book, self._json_body(call.body), self._ieee754(call.handler)
        )
        doc = self._render(spec, memo, select, expand, company)
        document = {"@odata.context": f"{call.root}/$metadata#{context}{name}/$entity", **doc}
        return 201, document, {"Location": f"{call.root}/{context}{name}({memo['id']})"}

    def _credit_memo_navigation(
        self,
        call: _Call,
        company: m.Company,
        book: cm.CreditMemoBook,
        memo: dict[str, Any],
        segment: tuple[str, str | None],
        own: str,
    ) -> tuple[int, Any, dict[str, str]]:
        """``Microsoft.NAV.post`` and the lines of one credit memo."""
        nav, nav_key = segment
        if nav == "Microsoft.NAV.post":
            if call.method != "POST":
                raise self._method_not_allowed(call.method, nav)
            cm.post_credit_memo(book, memo)
            return 204, None, {}
        if nav != cm.LINES:
            raise segment_not_found(nav)
        lines_spec = SETS[cm.LINES]
        lines = book.lines.get(memo["id"], [])
        if call.method != "GET":
            raise self._method_not_allowed(call.method, nav)
        if nav_key is not None:
            _line_id, line = self._line_by_key(lines_spec, lines, nav_key)
            return self._single(lines_spec, line, call.options, call.root, f"{own}/{nav}", company)
        return self._list(call, lines_spec, list(lines), {}, f"{own}/{nav}", company)

    def _rows(
        self, company: m.Company, spec: EntitySet
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """All rows of an entity set and the indexes that can narrow an ``eq`` filter."""
        source = ROW_SOURCES.get(spec.name)
        if source is None:
            raise AssertionError(spec.name)
        return source(company, self._postings[company.id])

    def _find(self, company: m.Company, spec: EntitySet, key: str) -> dict[str, Any]:
        table: Mapping[str, dict[str, Any]]
        if spec.name == "salesOrderLines":
            order_id = company.line_index.get(key)
            found = (
                [line for line in company.lines.get(order_id, []) if line["id"] == key]
                if order_id
                else []
            )
            if not found:
                raise self._not_found(spec, key)
            return found[0]
        book = self._postings[company.id]
        if spec.name == "salesShipmentLines":
            table = {line["id"]: line for line in book.all_shipment_lines()}
            if key not in table:
                raise self._not_found(spec, key)
            return table[key]
        table = {
            "salesShipments": book.shipments,
            "salesInvoices": book.invoices,
            "items": company.items,
            "customers": company.customers,
            "salesOrders": company.orders,
            "accounts": company.accounts,
            "countriesRegions": {c["id"]: c for c in company.countries.values()},
            "taxGroups": {g["id"]: g for g in company.tax_groups()},
        }[spec.name]
        entity = table.get(key)
        if entity is None:
            raise self._not_found(spec, key)
        return entity

    @staticmethod
    def _not_found(spec: EntitySet, key: str) -> ODataError:
        return ODataError(
            404,
            "BadRequest_NotFound",
            f"The {spec.table} does not exist. Identification fields and values: Id='{key}'",
        )

    # ------------------------------------------------------------------ API: reading
    def _expand_names(self, spec: EntitySet, options: QueryOptions) -> set[str]:
        navs = {
            "salesOrders": ["salesOrderLines"],
            "salesShipments": ["salesShipmentLines"],
            "salesCreditMemos": [cm.LINES],
        }
        unserved = m.UNSERVED_NAVIGATIONS.get(spec.entity) or posted.NAVIGATIONS.get(spec.entity)
        return parse_expand(
            options.options.get("$expand"),
            navs.get(spec.name, []),
            unserved or (),
            spec.entity,
        )

    def _render(
        self,
        spec: EntitySet,
        entity: Mapping[str, Any],
        select: list[str] | None,
        expand: set[str],
        company: m.Company | None,
    ) -> dict[str, Any]:
        doc = m.render(entity, spec.schema, select)
        if "salesOrderLines" in expand and company is not None:
            doc["salesOrderLines"] = [
                m.render(line, m.LINE_SCHEMA, None) for line in company.lines.get(entity["id"], [])
            ]
        if "salesShipmentLines" in expand and company is not None:
            doc["salesShipmentLines"] = [
                m.render(line, posted.SHIPMENT_LINE_SCHEMA, None)
                for line in self._postings[company.id].shipment_lines.get(entity["id"], [])
            ]
        if cm.LINES in expand and company is not None:
            doc[cm.LINES] = [
                m.render(line, cm.CREDIT_MEMO_LINE_SCHEMA, None)
                for line in self._book(company).lines.get(entity["id"], [])
            ]
        return doc

    def _single(
        self,
        spec: EntitySet,
        entity: Mapping[str, Any],
        options: QueryOptions,
        root: str,
        context: str,
        company: m.Company | None,
    ) -> tuple[int, Any, dict[str, str]]:
        for option in ("$filter", "$top", "$skip", "$orderby", "$count", "$skiptoken"):
            if option in options.options:
                raise query_syntax_error(
                    f"The query option '{option}' is not allowed on a single entity."
                )
        select = parse_select(options.options.get("$select"), spec.schema, spec.entity)
        expand = self._expand_names(spec, options)
        doc = self._render(spec, entity, select, expand, company)
        return 200, {"@odata.context": f"{root}/$metadata#{context}/$entity", **doc}, {}

    def _list(
        self,
        call: _Call,
        spec: EntitySet,
        rows: list[dict[str, Any]],
        indexes: Mapping[str, Any],
        context: str,
        company: m.Company | None,
    ) -> tuple[int, Any, dict[str, str]]:
        """:meth:`_collection` for a routed call."""
        return self._collection(
            spec, rows, indexes, call.options, call.handler, call.root, call.path, context, company
        )

    def _collection(
        self,
        spec: EntitySet,
        rows: list[dict[str, Any]],
        indexes: Mapping[str, Any],
        options: QueryOptions,
        handler: Handler,
        root: str,
        path: str,
        context: str,
        company: m.Company | None,
    ) -> tuple[int, Any, dict[str, str]]:
        opts = options.options
        allow_in = opts.get("$schemaversion") == "2.1"
        flt: Filter | None = (
            parse_filter(opts["$filter"], spec.schema, spec.entity, allow_in=allow_in)
            if "$filter" in opts
            else None
        )
        select = parse_select(opts.get("$select"), spec.schema, spec.entity)
        expand = self._expand_names(spec, options)
        order = parse_orderby(opts.get("$orderby"), spec.schema, spec.entity)
        order = [*order, (spec.default_order, False), ("id", False)]
        top = parse_non_negative_int("$top", opts["$top"]) if "$top" in opts else None
        skip = parse_non_negative_int("$skip", opts["$skip"]) if "$skip" in opts else 0
        count = opts.get("$count")
        if count not in (None, "true", "false"):
            raise query_syntax_error(f"Invalid value '{count}' for $count.")
        page_size = min(parse_max_page_size(handler.headers.get("Prefer")), self.max_page_size)

        candidates = rows
        if flt is not None:
            for field_name, value in flt.equalities.items():
                if field_name in indexes:
                    candidates = indexes[field_name](value)
                    break
            candidates = [row for row in candidates if flt.predicate(row)]
        ordered = sort_rows(candidates, order)
        if "$skiptoken" in opts:
            key, top = decode_skiptoken(opts["$skiptoken"])
            remaining = rows_after(ordered, order, key)
        else:
            remaining = ordered[skip:]
        take = page_size if top is None else min(page_size, top)
        page = remaining[:take]
        more = len(remaining) > take and (top is None or top > take)

        document: dict[str, Any] = {"@odata.context": f"{root}/$metadata#{context}"}
        if count == "true":
            document["@odata.count"] = len(candidates)
        document["value"] = [self._render(spec, row, select, expand, company) for row in page]
        headers: dict[str, str] = {}
        if handler.headers.get("Prefer") and page_size != 20000:
            headers["Preference-Applied"] = f"odata.maxpagesize={page_size}"
        if more and page:
            last = page[-1]
            token = encode_skiptoken(
                [last.get(name) for name, _ in order], None if top is None else top - take
            )
            kept = [
                raw
                for name, raw in options.raw_pairs
                if name not in ("$skiptoken", "$top", "$skip")
            ]
            kept.append(f"$skiptoken={token}")
            document["@odata.nextLink"] = f"{self.url}{path}?{'&'.join(kept)}"
        return 200, document, headers

    # ------------------------------------------------------------------ API: writing
    @staticmethod
    def _ieee754(handler: Handler) -> bool:
        content_type = handler.headers.get("Content-Type", "")
        params = [p.strip().lower() for p in content_type.split(";")[1:]]
        return "ieee754compatible=true" in params

    @staticmethod
    def _require_json(handler: Handler) -> None:
        content_type = handler.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            raise ODataError(
                415,
                "BadRequest",
                f"The content type '{content_type}' is not supported; use 'application/json'.",
            )

    @staticmethod
    def _json_body(body: bytes) -> dict[str, Any]:
        try:
            document = json.loads(
                body.decode("utf-8"),
                parse_float=Decimal,
                object_pairs_hook=_no_duplicates,
                parse_constant=_reject_constant,
            )
        except (ValueError, UnicodeDecodeError):
            raise m.bad_request("Invalid Request Body") from None
        if not isinstance(document, dict):
            raise m.bad_request("Invalid Request Body")
        return document

    def _post(
        self,
        handler: Handler,
        company: m.Company,
        spec: EntitySet,
        options: QueryOptions,
        root: str,
        context: str,
        body: bytes,
    ) -> tuple[int, Any, dict[str, str]]:
        if spec.name not in ("customers", "salesOrders"):
            if spec.name == "salesOrderLines":
                raise m.app_error("You must specify an Id or a Document Id to get the lines.")
            raise ODataError(
                501,
                "BadRequest_MethodNotImplemented",
                f"POST {spec.name} is not supported by the sandbox emulator.",
            )
        for option in ("$filter", "$top", "$skip", "$orderby", "$count", "$skiptoken"):
            if option in options.options:
                raise query_syntax_error(f"The query option '{option}' is not allowed on a POST.")
        select = parse_select(options.options.get("$select"), spec.schema, spec.entity)
        expand = self._expand_names(spec, options)
        self._require_json(handler)
        values = self._json_body(body)
        ieee754 = self._ieee754(handler)
        if spec.name == "customers":
            entity = m.create_customer(company, values, ieee754)
        else:
            entity, _lines = so.create_sales_order(company, values, ieee754)
        doc = self._render(spec, entity, select, expand, company)
        location = f"{root}/{context}{spec.name}({entity['id']})"
        document = {"@odata.context": f"{root}/$metadata#{context}{spec.name}/$entity", **doc}
        return 201, document, {"Location": location}
