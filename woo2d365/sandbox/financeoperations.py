"""A strict Dynamics 365 Finance & Operations ``/data`` (OData) emulator over real HTTPS.

It shares the Business Central emulator's server, identity provider (Entra ID token endpoint,
client credentials) and fault injection, and answers like F&O (``docs/systems.md``, F&O):

* a token is accepted only when its app is on the *Microsoft Entra applications* list
  (:attr:`entra_applications`) and its scope was this environment (``{url}/.default``, lower
  case, no trailing slash); otherwise **401 with an empty body**, as F&O gives for an app that
  Entra knows but F&O does not;
* reads return only the service user's default company (:attr:`default_company`) unless the
  query says ``cross-company=true``; writes land in the body's ``dataAreaId``;
* errors carry an empty ``error.code`` and the detail in ``innererror``; unknown URLs answer the
  routing layer's ``{"Message": …}`` 404;
* ``$batch`` answers 200 whatever happened inside; a failed changeset answers with one part
  (status 500, the ``AxODataWriteException``), nothing of it applied; a throttled changeset with
  one ``429`` part carrying ``Retry-After``;
* service protection: :meth:`throttle_next` answers 429 with ``Retry-After`` (seconds);
* server-driven paging with ``@odata.nextLink`` (:attr:`page_size`, 10,000 by default);
* the sales-order number sequence allows manual numbers or not (:meth:`set_manual_numbers`).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from woo2d365.sandbox import bc_model
from woo2d365.sandbox.bc_http import Dropped, Handler
from woo2d365.sandbox.businesscentral import BusinessCentralEmulator
from woo2d365.sandbox.fo_model import ENTITY_SETS, WRITE_EXCEPTION_STATUS, FoData
from woo2d365.sandbox.fo_odata import (
    WRITE_EXCEPTION,
    BatchAnswer,
    FoError,
    Row,
    Schema,
    parse_batch,
    parse_filter,
    parse_select,
    query_error,
    render_batch,
    split_options,
)
from woo2d365.sandbox.serving import take_next
from woo2d365.sandbox.tls import SandboxCA

THROTTLED = (
    "This request could not be processed at this time due to system experiencing high resource "
    "utilization. Retry the request after {0} seconds"
)
#: F&O country/region ids (alpha-3, as in Contoso data) and their ISO-2 codes.
DEFAULT_COUNTRIES = (
    ("NLD", "NL", "Netherlands"),
    ("DEU", "DE", "Germany"),
    ("BEL", "BE", "Belgium"),
    ("FRA", "FR", "France"),
    ("AUT", "AT", "Austria"),
    ("GBR", "GB", "United Kingdom"),
    ("USA", "US", "United States"),
    ("ESP", "ES", "Spain"),
    ("ITA", "IT", "Italy"),
    ("DNK", "DK", "Denmark"),
    ("SWE", "SE", "Sweden"),
    ("POL", "PL", "Poland"),
    ("CHE", "CH", "Switzerland"),
)
REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 404: "Not Found"}


@dataclass
class _Throttle:
    remaining: int
    retry_after: int
    in_changeset: bool
    path_contains: str


class FinanceOperationsEmulator(BusinessCentralEmulator):
    """F&O's ``/data`` endpoint and its Entra ID token endpoint on 127.0.0.1 over TLS.

    Point ``dynamics.fo_url`` at :attr:`url` and ``dynamics.authority_host`` at
    :attr:`authority_host`. Admin helpers (``add_*``, ``sales_orders``…) seed and inspect data.
    """

    def __init__(
        self,
        *,
        ca: SandboxCA,
        tenant_id: str = "00000000-0000-0000-0000-00000000f0f0",
        client_id: str = "sandbox-fo-client",
        client_secret: str = "sandbox-secret",
        legal_entities: Sequence[tuple[str, str]] = (("wcnl", "Woo Commerce NL"),),
        default_company: str = "dat",
        latency: float = 0.0,
        countries: Iterable[tuple[str, str, str]] = DEFAULT_COUNTRIES,
    ) -> None:
        super().__init__(
            ca=ca,
            tenant_id=tenant_id,
            client_id=client_id,
            client_secret=client_secret,
            latency=latency,
            countries=(),
        )
        self.data = FoData(default_company)
        # OData lets a service answer a changeset's requests in any order (matched by Content-ID).
        self.changeset_answers_reversed = False
        self.data.add_company(default_company, "Default company of the service user")
        for area, name in legal_entities:
            company = self.data.add_company(area, name)
            self.add_customer_group("WEB", "Web shop customers", company=company.data_area_id)
        for region, iso, name in countries:
            self.data.add_country(region, iso, name)
        self.entra_applications: set[str] = {client_id}
        self.page_size = 10000
        self._throttles: list[_Throttle] = []

    @property
    def legal_entity(self) -> str:
        """The first legal entity that is not the service user's default company."""
        for area in self.data.companies:
            if area != self.data.default_company:
                return area
        return self.data.default_company

    def start(self) -> FinanceOperationsEmulator:
        """Bind a port; the token scope is this environment's URL + ``/.default``."""
        super().start()
        self.scope = f"{self.url}/.default"
        return self

    # ------------------------------------------------------------------ admin: setup
    def add_customer_group(self, group: str, description: str, *, company: str = "") -> None:
        """A ``CustomerGroups`` row."""
        area = self.data.company(company or self.legal_entity)
        self.data.put(
            "CustomerGroups", area, {"CustomerGroupId": group, "Description": description}
        )

    def add_product(
        self,
        item_number: str,
        name: str,
        *,
        price: Decimal = Decimal(0),
        service: bool = False,
        sales_stopped: bool = False,
        company: str = "",
    ) -> None:
        """A released product and its default order settings."""
        area = self.data.company(company or self.legal_entity)
        self.data.put(
            "ReleasedProductsV2",
            area,
            {
                "ItemNumber": item_number,
                "ProductNumber": item_number,
                "ProductType": "Service" if service else "Item",
                "ProductSubType": "Product",
                "SearchName": name[:20],
                "ProductSearchName": name[:20],
                "SalesUnitSymbol": "pcs",
                "InventoryUnitSymbol": "pcs",
                "SalesPrice": price,
                "SalesPriceQuantity": Decimal(1),
                "StorageDimensionGroupName": "" if service else "SiteWH",
                "ItemModelGroupId": "FIFO",
                "SalesSalesTaxItemGroupCode": "",
            },
        )
        self.set_sales_stopped(item_number, sales_stopped, company=area.data_area_id)

    def set_sales_stopped(self, item_number: str, stopped: bool, *, company: str = "") -> None:
        """``ProductDefaultOrderSettings.IsSalesProcessingStopped`` of an item."""
        area = self.data.company(company or self.legal_entity)
        self.data.put(
            "ProductDefaultOrderSettings",
            area,
            {
                "ItemNumber": item_number,
                "IsSalesProcessingStopped": "Yes" if stopped else "No",
                "IsInventoryProcessingStopped": "No",
                "IsProcurementProcessingstopped": "No",
                "SalesSiteId": "1",
                "SalesWarehouseId": "11",
            },
        )

    def add_fo_customer(self, body: dict[str, Any], *, company: str = "") -> dict[str, Any]:
        """Create a customer as the API would (``CustomerAccount`` from the sequence)."""
        return dict(
            self.data.create("CustomersV3", {"dataAreaId": company or self.legal_entity, **body})
        )

    def set_manual_numbers(self, allowed: bool, *, company: str = "") -> None:
        """Whether the sales-order number sequence lets the caller choose ``SalesOrderNumber``."""
        self.data.company(company or self.legal_entity).manual_sales_numbers = allowed

    def unregister_app(self, client_id: str | None = None) -> None:
        """Remove the app from *Microsoft Entra applications*: tokens still issue, F&O says 401."""
        self.entra_applications.discard(client_id or self.client_id)

    def throttle_next(
        self,
        count: int = 1,
        *,
        retry_after: int = 1,
        in_changeset: bool = False,
        path_contains: str = "",
    ) -> None:
        """Answer the next ``count`` matching requests 429 (or, ``in_changeset``, their batch's
        changesets with an inner 429 part): nothing is processed."""
        with self._lock:
            self._throttles.append(_Throttle(count, retry_after, in_changeset, path_contains))

    # ------------------------------------------------------------------ admin: inspection
    def sales_orders(self, company: str | None = None) -> list[dict[str, Any]]:
        """Every sales order header of the legal entity, with its ``lines`` and ``total``."""
        area = company or self.legal_entity
        with self.data.lock:
            headers = self.data.rows("SalesOrderHeadersV2", [area])
            lines = self.data.rows("SalesOrderLines", [area])
            result = []
            for header in headers:
                own = sorted(
                    (dict(r) for r in lines if r["SalesOrderNumber"] == header["SalesOrderNumber"]),
                    key=lambda r: r["LineNumber"],
                )
                total = sum((Decimal(r["LineAmount"]) for r in own), Decimal(0))
                result.append({**header, "lines": own, "total": total})
            return result

    def customers(self, company: str | None = None) -> list[dict[str, Any]]:
        """Every customer of the legal entity."""
        with self.data.lock:
            return [dict(r) for r in self.data.rows("CustomersV3", [company or self.legal_entity])]

    def delete_sales_order(self, number: str, company: str | None = None) -> None:
        """Delete a header and its lines."""
        area = self.data.company(company or self.legal_entity)
        with self.data.lock:
            area.rows.get("SalesOrderHeadersV2", {}).pop(
                (area.data_area_id, number.casefold()), None
            )
            lines = area.rows.get("SalesOrderLines", {})
            for line_key in [k for k, r in lines.items() if r["SalesOrderNumber"] == number]:
                del lines[line_key]

    # ------------------------------------------------------------------ HTTP
    def _take_throttle(self, target: str, *, in_changeset: bool) -> _Throttle | None:
        with self._lock:
            return take_next(
                self._throttles,
                lambda t: t.in_changeset == in_changeset and t.path_contains in target,
            )

    def _fo_authenticate(self, handler: Handler) -> None:
        header = handler.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        with self._lock:
            token = self._tokens.get(value.strip()) if scheme.lower() == "bearer" else None
            if token is not None and token.expires_at <= time.monotonic():
                del self._tokens[value.strip()]
                token = None
            if token is None or token.client_id not in self.entra_applications:
                raise FoError(401, "", empty=True)

    def _admit(self, handler: Handler, method: str, target: str) -> None:
        """Authentication, then throttling and injected failures, before any processing."""
        self._fo_authenticate(handler)
        throttle = self._take_throttle(target, in_changeset=False)
        if throttle is not None:
            raise FoError(
                429,
                THROTTLED.format(throttle.retry_after),
                headers={"Retry-After": str(throttle.retry_after)},
            )
        fault = self._take_fault("fail", method, target)
        if fault is not None:
            extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
            raise FoError(fault.status, fault.message, headers=extra)

    def _handle_api(
        self, handler: Handler, method: str, path: str, query: str, body: bytes
    ) -> None:
        target = f"{path}?{query}" if query else path
        if self._take_fault("drop", method, target) is not None:
            self._drop(handler, method, path, query)
            return
        started = time.monotonic()
        headers: dict[str, str] = {}
        content_type = "application/json; odata.metadata=minimal; odata.streaming=true"
        try:
            try:
                self._admit(handler, method, target)
                if method != "GET" and self.commit_delay > 0:
                    time.sleep(self.commit_delay)
                status, payload, content_type = self._route(handler, method, path, query, body)
                if (
                    method == "POST"
                    and status < 300
                    and self._take_fault("drop_after_commit", method, target) is not None
                ):
                    raise Dropped
            finally:
                self._wait_out_latency(started)
        except Dropped:
            self._drop(handler, method, path, query)
            return
        except FoError as error:
            status, headers = error.status, error.headers
            document = error.document()
            payload = b"" if document is None else bc_model.dumps(document)
            if error.plain:
                content_type = "application/json; charset=utf-8"
        all_headers = {"OData-Version": "4.0", **headers}
        if payload:
            all_headers["Content-Type"] = content_type
        self._record(method, path, query, status)
        self._send(handler, status, payload, all_headers)

    def _route(
        self, handler: Handler, method: str, path: str, query: str, body: bytes
    ) -> tuple[int, bytes, str]:
        json_type = "application/json; odata.metadata=minimal; odata.streaming=true"
        if path.rstrip("/") == "/data" and method == "GET":
            sets = [{"name": n, "kind": "EntitySet", "url": n} for n in ENTITY_SETS]
            return (
                200,
                bc_model.dumps({"@odata.context": f"{self.url}/data/$metadata", "value": sets}),
                json_type,
            )
        if path == "/data/$metadata" and method == "GET":
            return 200, self._metadata().encode(), "application/xml"
        if path == "/data/$batch":
            if method != "POST":
                raise FoError(405, "The requested resource does not support http method 'GET'.")
            content_type, payload = self._batch(handler.headers.get("Content-Type", ""), body)
            return 200, payload, content_type
        if not path.startswith("/data/"):
            raise self._no_route(path)
        status, document = self._execute(method, path[len("/data/") :], query, body)
        return status, (bc_model.dumps(document) if document is not None else b""), json_type

    def _no_route(self, path: str) -> FoError:
        return FoError(
            404,
            f"No HTTP resource was found that matches the request URI '{self.url}{path}'. "
            "No route data was found for this request.",
            plain=True,
        )

    def _metadata(self) -> str:
        types = []
        sets = []
        for name, (entity, _aot, key, schema) in ENTITY_SETS.items():
            props = "".join(
                f'<Property Name="{p}" Type="{_edm(f.type, f.enum)}"/>' for p, f in schema.items()
            )
            keys = "".join(f'<PropertyRef Name="{k}"/>' for k in key)
            types.append(f'<EntityType Name="{entity}"><Key>{keys}</Key>{props}</EntityType>')
            sets.append(
                f'<EntitySet Name="{name}" EntityType="Microsoft.Dynamics.DataEntities.{entity}"/>'
            )
        return (
            '<?xml version="1.0" encoding="utf-8"?><edmx:Edmx Version="4.0" '
            'xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices>'
            '<Schema Namespace="Microsoft.Dynamics.DataEntities" '
            'xmlns="http://docs.oasis-open.org/odata/ns/edm">'
            + "".join(types)
            + '<EntityContainer Name="Resources">'
            + "".join(sets)
            + "</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>"
        )

    # ------------------------------------------------------------------ resources
    def _execute(
        self, method: str, resource: str, query: str, body: bytes, *, in_changeset: bool = False
    ) -> tuple[int, Any]:
        match = re.fullmatch(r"([A-Za-z0-9_]+)(?:\((.*)\))?", resource)
        if match is None or match.group(1) not in ENTITY_SETS:
            raise self._no_route(f"/data/{resource}")
        collection, key_text = match.group(1), match.group(2)
        if method == "GET":
            if key_text is not None:
                return 200, self._fo_single(collection, key_text, query)
            return 200, self._fo_collection(collection, resource, query)
        if method == "POST" and key_text is None:
            try:
                document = json.loads(body.decode("utf-8"), parse_float=Decimal)
            except (UnicodeDecodeError, ValueError):
                raise FoError(400, "The request body is not valid JSON.") from None
            if not isinstance(document, dict):
                raise FoError(400, "The request body must be a JSON object.")
            try:
                row = self.data.create(collection, document)
            except FoError as error:
                if error.kind == WRITE_EXCEPTION and in_changeset:
                    error.status = WRITE_EXCEPTION_STATUS
                raise
            return 201, self._shape(collection, row, None, {})
        raise FoError(405, f"The requested resource does not support http method '{method}'.")

    def _fo_single(self, collection: str, key_text: str, query: str) -> dict[str, Any]:
        key_names = ENTITY_SETS[collection][2]
        values: dict[str, str] = {}
        for part in re.findall(r"(\w+)='((?:[^']|'')*)'", key_text):
            values[part[0]] = part[1].replace("''", "'")
        if set(values) != set(key_names) or any(c in key_text for c in "/\\+"):
            raise self._no_route(f"/data/{collection}({key_text})")
        options, _custom = split_options(query)
        area = values.get("dataAreaId", "")
        company = self.data.companies.get(area.lower())
        row = None
        if company is not None:
            row = self.data.find(collection, company, *(values[k] for k in key_names[1:]))
        if row is None:
            raise FoError(404, f"Resource not found for the segment '{collection}'.")
        return self._shape(
            collection,
            row,
            parse_select(
                options.get("$select"), ENTITY_SETS[collection][3], ENTITY_SETS[collection][0]
            ),
            options,
        )

    def _fo_collection(self, collection: str, resource: str, query: str) -> dict[str, Any]:
        entity, _aot, key, schema = ENTITY_SETS[collection]
        options, custom = split_options(query)
        for name in options:
            if name not in ("$filter", "$select", "$top", "$skip", "$count", "$orderby", "$expand"):
                raise query_error(f"The query parameter '{name}' is not supported.")
        cross = custom.get("cross-company", "").lower() == "true"
        with self.data.lock:
            rows = [
                dict(r)
                for r in self.data.rows(collection, None if cross else [self.data.default_company])
            ]
        if "$filter" in options:
            predicate = parse_filter(options["$filter"], schema, entity)
            rows = [r for r in rows if predicate(r)]
        _order_rows(rows, options.get("$orderby", ""), key, schema)
        total = len(rows)
        skip = _int(options.get("$skip", "0"), "$skip")
        top = _int(options["$top"], "$top") if "$top" in options else None
        rows = rows[skip:]
        if top is not None:
            rows = rows[:top]
        page, rest = rows[: self.page_size], rows[self.page_size :]
        select = parse_select(options.get("$select"), schema, entity)
        document: dict[str, Any] = {"@odata.context": f"{self.url}/data/$metadata#{collection}"}
        if options.get("$count", "").lower() == "true":
            document["@odata.count"] = total
        document["value"] = [self._shape(collection, r, select, options) for r in page]
        if rest:
            remaining = None if top is None else top - len(page)
            query_after = _next_page_query({**options, **custom}, skip + len(page), remaining)
            document["@odata.nextLink"] = f"{self.url}/data/{resource}?{query_after}"
        return document

    def _shape(
        self, collection: str, row: Row, select: list[str] | None, options: dict[str, str]
    ) -> dict[str, Any]:
        entity = ENTITY_SETS[collection][0]
        shaped: dict[str, Any] = {"@odata.etag": f'W/"{_etag(row)}"'}
        names = select if select is not None else list(ENTITY_SETS[collection][3])
        for name in names:
            shaped[name] = row.get(name, "")
        expand = options.get("$expand", "")
        if expand:
            nav, _, inner = expand.partition("(")
            if collection != "SalesOrderHeadersV2" or nav.strip() != "SalesOrderLines":
                raise query_error(
                    f"Could not find a navigation property named '{nav.strip()}' on "
                    f"'Microsoft.Dynamics.DataEntities.{entity}'."
                )
            inner_options: dict[str, str] = {}
            inner = inner.rstrip(")")
            if inner:
                name, _, value = inner.partition("=")
                if name.strip() != "$select":
                    raise query_error("Only $select is supported inside $expand.")
                inner_options["$select"] = value
            line_schema = ENTITY_SETS["SalesOrderLines"][3]
            line_select = parse_select(inner_options.get("$select"), line_schema, "SalesOrderLine")
            with self.data.lock:
                lines = [
                    r
                    for r in self.data.rows("SalesOrderLines", [row["dataAreaId"]])
                    if r["SalesOrderNumber"].casefold() == row["SalesOrderNumber"].casefold()
                ]
            shaped["SalesOrderLines"] = [
                self._shape("SalesOrderLines", r, line_select, {}) for r in lines
            ]
        return shaped

    # ------------------------------------------------------------------ $batch
    def _batch(self, content_type: str, body: bytes) -> tuple[str, bytes]:
        parts = parse_batch(content_type, body)
        groups: list[tuple[bool, list[BatchAnswer]]] = []
        for part in parts:
            if not part.changeset:
                groups.append((False, [self._run(part.requests[0], in_changeset=False)]))
                continue
            throttle = self._take_throttle("$batch", in_changeset=True)
            first_id = part.requests[0].content_id if part.requests else ""
            if throttle is not None:
                error = FoError(429, THROTTLED.format(throttle.retry_after))
                answer = BatchAnswer(
                    429,
                    "Too Many Requests",
                    bc_model.dumps(error.document()),
                    first_id,
                    {"Retry-After": str(throttle.retry_after)},
                )
                groups.append((True, [answer]))
                continue
            answers: list[BatchAnswer] = []
            try:
                with self.data.transaction():
                    for request in part.requests:
                        answer = self._run(request, in_changeset=True)
                        if answer.status >= 400:
                            raise _ChangesetFailed(answer)
                        answers.append(answer)
            except _ChangesetFailed as failed:
                # One part for the whole changeset; its Content-ID is the first request's.
                failed.answer.content_id = first_id
                answers = [failed.answer]
            if self.changeset_answers_reversed:
                answers.reverse()
            groups.append((True, answers))
        batch_id = str(uuid.uuid4())
        return render_batch(groups, batch_id, [str(uuid.uuid4()) for _ in groups])

    def _run(self, request: Any, *, in_changeset: bool) -> BatchAnswer:
        split = urlsplit(request.url)
        path = unquote(split.path)
        if path.startswith("/data/"):
            resource = path[len("/data/") :]
        elif path.startswith("/"):
            return _answer_of(self._no_route(path), request.content_id)
        else:
            resource = path
        try:
            status, document = self._execute(
                request.method, resource, split.query, request.body, in_changeset=in_changeset
            )
        except FoError as error:
            return _answer_of(error, request.content_id)
        return BatchAnswer(
            status,
            REASONS.get(status, "OK"),
            bc_model.dumps(document) if document is not None else b"",
            request.content_id,
        )


class _ChangesetFailed(Exception):
    def __init__(self, answer: BatchAnswer) -> None:
        super().__init__(answer.status)
        self.answer = answer


def _answer_of(error: FoError, content_id: str) -> BatchAnswer:
    document = error.document()
    reason = {
        400: "Bad Request",
        401: "Unauthorized",
        404: "Not Found",
        405: "Method Not Allowed",
        429: "Too Many Requests",
        500: "Internal Server Error",
    }.get(error.status, "Error")
    return BatchAnswer(
        error.status,
        reason,
        b"" if document is None else bc_model.dumps(document),
        content_id,
        dict(error.headers),
    )


def _order_rows(rows: list[Row], orderby: str, key: Sequence[str], schema: Schema) -> None:
    """Sort ``rows`` in place by ``$orderby`` (default: the entity key), strings ignoring case."""
    order = [o.strip().split() for o in orderby.split(",") if o.strip()]
    for words in reversed(order or [[k] for k in key]):
        if words[0] not in schema:
            raise query_error(f"Could not find a property named '{words[0]}'.")
        rows.sort(key=_sort_key(words[0], schema[words[0]].type == "string"))
        if len(words) > 1 and words[1] == "desc":
            rows.reverse()


def _next_page_query(options: Mapping[str, str], skip: int, remaining: int | None) -> str:
    """The query string of the next page: the same options with ``$skip``/``$top`` moved on."""
    pairs = [
        f"{quote(k, safe='$')}={quote(v, safe='')}"
        for k, v in options.items()
        if k not in ("$skip", "$top")
    ]
    pairs.append(f"$skip={skip}")
    if remaining is not None:
        pairs.append(f"$top={remaining}")
    return "&".join(pairs)


def _sort_key(name: str, text: bool) -> Callable[[Row], Any]:
    def key(row: Row) -> Any:
        value = row.get(name, "")
        return str(value).casefold() if text else value

    return key


def _int(value: str, name: str) -> int:
    if not value.isdigit():
        raise query_error(f"Invalid value '{value}' for {name} query option found.")
    return int(value)


def _etag(row: Row) -> str:
    import base64
    import hashlib

    digest = hashlib.sha1(bc_model.dumps(row)).digest()[:12]  # noqa: S324 - an etag, not security
    return base64.b64encode(digest).decode()


def _edm(kind: str, enum: str) -> str:
    if kind == "enum":
        return f"Microsoft.Dynamics.DataEntities.{enum}"
    return {"string": "Edm.String", "decimal": "Edm.Decimal", "int": "Edm.Int32"}.get(
        kind, "Edm.DateTimeOffset"
    )
