"""Dynamics 365 Finance & Operations ``/data`` (OData v4) over HTTPS, for one legal entity.

Rules (``docs/systems.md``, F&O):

* The company is explicit everywhere: ``dataAreaId`` in every POST body and every ``$filter``,
  ``cross-company=true`` on every read — the service user's default company is never relied on.
* :func:`classify` is the one place that decides what an answer means, by ``innererror`` (F&O's
  ``error.code`` is always empty) and never by 400-versus-500 alone: an
  ``AxODataWriteException`` is a data error (the Infolog text, without stack trace); 401 is an
  app F&O does not know; 429/502/503 were not processed (``Retry-After`` in seconds); other 5xx
  answers to a create mean "ran and most likely rolled back"; 504 or no answer means in doubt.
* ``$batch`` answers 200 whatever happened: every part is read (:func:`parse_batch_response`); a
  failed changeset is one error part, a throttled one an inner 429 with its own ``Retry-After``.
* Paging follows ``@odata.nextLink`` verbatim until it is absent.
* A ``*`` inside an ``eq`` literal is a wildcard in F&O, so keys and e-mail addresses found by
  ``eq`` are compared again client-side, exactly.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import requests

from woo2d365.erp.base import SendGuard
from woo2d365.erp.odata_client import (
    NOT_PROCESSED_STATUSES,
    AnsweredInDoubt,
    ODataClient,
    TokenProvider,
    TransientError,
)
from woo2d365.erp.odata_query import filter_batches, odata_string, query_string
from woo2d365.erp.pacing import SlidingWindowLimiter
from woo2d365.errors import (
    DocumentInDoubt,
    DocumentRefused,
    DynamicsAuthenticationError,
    DynamicsError,
)
from woo2d365.http import retry_after_seconds
from woo2d365.retries import RetryPolicy
from woo2d365.settings import DynamicsSettings

log = logging.getLogger("woo2d365.dynamics")

HEADERS_SET = "SalesOrderHeadersV2"
LINES_SET = "SalesOrderLines"
CUSTOMERS_SET = "CustomersV3"
ITEMS_SET = "ReleasedProductsV2"
ORDER_SETTINGS_SET = "ProductDefaultOrderSettings"
COUNTRIES_SET = "AddressCountryRegions"
LEGAL_ENTITIES_SET = "LegalEntities"
ENTITY_SETS = (
    HEADERS_SET,
    LINES_SET,
    CUSTOMERS_SET,
    ITEMS_SET,
    ORDER_SETTINGS_SET,
    COUNTRIES_SET,
    LEGAL_ENTITIES_SET,
)
"""Every entity set the tool uses (``doctor`` checks ``$metadata`` has them)."""

WRITE_EXCEPTION = "AxODataWriteException"
UNREGISTERED_APP = (
    "F&O refused the token (HTTP 401): the app is not registered in F&O under System "
    "administration > Setup > Microsoft Entra applications (client id with a user), or the "
    "token's audience is not dynamics.fo_url (lower case, no trailing slash)"
)
ORDER_SELECT = "SalesOrderNumber,CustomersOrderReference,ArePricesIncludingSalesTax"
LINES_EXPAND = "SalesOrderLines($select=LineNumber,ItemNumber,OrderedSalesQuantity,LineAmount)"


@dataclass(frozen=True)
class FoErrorBody:
    """What an F&O error answer says: ``innererror`` message and type, or the plain text."""

    message: str
    type: str = ""


def parse_error(status: int, text: str) -> FoErrorBody:
    """The useful part of an error body: ``innererror.message`` (first Infolog lines kept)."""
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        error = data["error"]
        inner = error.get("innererror") if isinstance(error.get("innererror"), dict) else {}
        message = str(inner.get("message") or error.get("message") or "").strip()
        kind = str(inner.get("type") or "")
        return FoErrorBody(" ".join(message.split()), kind.rsplit(".", 1)[-1])
    if isinstance(data, dict) and isinstance(data.get("Message"), str):
        return FoErrorBody(data["Message"], "route")
    first = text.strip().splitlines()[0][:200] if text.strip() else ""
    return FoErrorBody(first or f"HTTP {status}")


def classify(
    status: int, text: str, *, method: str, retry_after: float | None = None
) -> DynamicsError | None:
    """The one place that turns an F&O answer (or a ``$batch`` part) into an outcome."""
    if 200 <= status < 300:
        return None
    body = parse_error(status, text)
    detail = f"Dynamics answered HTTP {status}: {body.message}"
    if status == 401:
        return DynamicsAuthenticationError(UNREGISTERED_APP, status=status)
    if status in NOT_PROCESSED_STATUSES:
        return TransientError(detail, status=status, retry_after=retry_after)
    if body.type == WRITE_EXCEPTION:
        # A data error whatever the status (400 today, 500 inside older changesets).
        return _refused(detail, status, method, code=WRITE_EXCEPTION)
    detail += _hint(status, body)
    if status >= 500 or status == 408:
        if method == "GET":
            return TransientError(detail, status=status, retry_after=retry_after)
        if status == 504:
            return DocumentInDoubt(detail, status=status)
        return AnsweredInDoubt(detail, status=status)
    return _refused(detail, status, method)


def _refused(detail: str, status: int, method: str, *, code: str | None = None) -> DynamicsError:
    """A refusal that sending again will not change: of a read, or of a document."""
    if method == "GET":
        return DynamicsError(detail, status=status, retryable=False)
    return DocumentRefused(detail, status=status, code=code)


def _hint(status: int, body: FoErrorBody) -> str:
    """What to check for a refusal that is about the set-up, not the data."""
    if status == 403:
        return " (the F&O user mapped to the app lacks the security roles for this)"
    if status == 404 and body.type == "route":
        return " (check dynamics.fo_url and the entity set name)"
    return ""


def infolog(exc: DynamicsError) -> str:
    """The Infolog text of a write error (what the order's reason shows)."""
    text = exc.message
    _, found, rest = text.partition("Infolog: ")
    return rest.strip() if found else text


# -- $batch -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchOperation:
    """One POST inside a changeset: ``entity_set`` relative to ``/data``."""

    entity_set: str
    body: dict[str, Any]


@dataclass
class BatchPartAnswer:
    """One part of a ``$batch`` answer."""

    status: int
    text: str
    headers: dict[str, str] = field(default_factory=dict)
    content_id: str = ""

    def json(self) -> Any:
        return json.loads(self.text, parse_float=Decimal) if self.text.strip() else None

    @property
    def retry_after(self) -> float | None:
        value = self.headers.get("retry-after", "").strip()
        return float(value) if re.fullmatch(r"\d+(\.\d+)?", value) else None


def build_changeset(base_url: str, operations: Sequence[BatchOperation]) -> tuple[str, bytes]:
    """``(Content-Type, body)`` of a ``$batch`` with one changeset of POSTs (CRLF line ends)."""
    batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
    lines = [f"--{batch}", f"Content-Type: multipart/mixed; boundary={changeset}", ""]
    for number, operation in enumerate(operations, 1):
        lines += [
            f"--{changeset}",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            f"Content-ID: {number}",
            "",
            f"POST {base_url}/{operation.entity_set} HTTP/1.1",
            "Content-Type: application/json;odata.metadata=minimal",
            "OData-Version: 4.0",
            "Accept: application/json",
            "",
            json.dumps(operation.body, ensure_ascii=False),
        ]
    lines += [f"--{changeset}--", f"--{batch}--", ""]
    return f"multipart/mixed; boundary={batch}", "\r\n".join(lines).encode("utf-8")


def _boundary(content_type: str) -> str | None:
    match = re.search(r'boundary="?([^";]+)"?', content_type, re.IGNORECASE)
    return match.group(1) if match else None


def _split(text: str, boundary: str) -> list[str]:
    pieces = re.split(r"(?:^|\r?\n)--" + re.escape(boundary) + r"(?:--)?[ \t]*(?=\r?\n|$)", text)
    return [p.lstrip("\r\n") for p in pieces[1:-1] if p.strip()]


def _head(text: str) -> tuple[dict[str, str], str]:
    match = re.search(r"\r?\n\r?\n", text)
    head, rest = (text, "") if match is None else (text[: match.start()], text[match.end() :])
    headers: dict[str, str] = {}
    for line in head.splitlines():
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers, rest


def parse_batch_response(content_type: str, text: str) -> list[list[BatchPartAnswer]]:
    """Every part of a ``$batch`` answer, grouped per changeset (or single request)."""
    boundary = _boundary(content_type)
    if boundary is None or not content_type.lower().startswith("multipart/mixed"):
        raise AnsweredInDoubt("Dynamics answered a $batch without a multipart body")
    groups: list[list[BatchPartAnswer]] = []
    for part in _split(text, boundary):
        headers, rest = _head(part)
        inner = headers.get("content-type", "")
        if inner.lower().startswith("multipart/mixed"):
            inner_boundary = _boundary(inner) or ""
            groups.append([_operation(p) for p in _split(rest, inner_boundary)])
        else:
            groups.append([_operation(part)])
    return groups


def _in_sent_order(parts: list[BatchPartAnswer]) -> list[BatchPartAnswer]:
    """The answers of a changeset in the order of its requests: by ``Content-ID`` (1, 2, ...
    as :func:`build_changeset` numbers them), which OData lets a service answer in any order;
    as they came when the service does not echo every id."""
    by_id = {part.content_id.strip(): part for part in parts}
    wanted = [str(number) for number in range(1, len(parts) + 1)]
    return [by_id[i] for i in wanted] if set(by_id) == set(wanted) else parts


def _operation(part: str) -> BatchPartAnswer:
    outer, rest = _head(part)
    status_line, _, after = rest.partition("\n")
    match = re.match(r"HTTP/1\.[01] (\d{3})", status_line.strip())
    if match is None:
        raise AnsweredInDoubt("Dynamics answered a $batch part without a status line")
    headers, body = _head(after)
    return BatchPartAnswer(int(match.group(1)), body.strip(), headers, outer.get("content-id", ""))


# -- the client ---------------------------------------------------------------------------------


class FinanceOperationsClient(ODataClient):
    """The ``/data`` entity sets the tool uses in ``dynamics.legal_entity``; thread-safe."""

    def __init__(
        self,
        settings: DynamicsSettings,
        tokens: TokenProvider,
        *,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
        limiter: SlidingWindowLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            settings,
            tokens,
            base_url=f"{settings.fo_url.rstrip('/')}/data",
            where=settings.fo_url,
            headers={"Accept": "application/json", "OData-Version": "4.0"},
            session=session,
            retry=retry,
            limiter=limiter,
            sleep=sleep,
        )
        self.legal_entity = settings.legal_entity.strip().lower()

    def _classify(self, response: requests.Response, method: str) -> DynamicsError | None:
        return classify(
            response.status_code,
            response.text,
            method=method,
            retry_after=retry_after_seconds(response),
        )

    def get_json(self, url: str) -> Any:
        """One GET with the retry policy; the JSON answer (decimals exact)."""

        def once() -> Any:
            response = self._send("GET", url)
            try:
                return response.json(parse_float=Decimal)
            except ValueError:
                raise TransientError(f"Dynamics sent a non-JSON answer to GET {url}") from None

        return self._retrying(once)()

    def get_text(self, path: str) -> str:
        """One GET of an XML resource (``$metadata``: EDMX, never JSON in OData 4.0)."""
        url = f"{self.base_url}/{path}"
        headers = {"Accept": "application/xml"}
        return str(self._retrying(lambda: self._send("GET", url, None, headers).text)())

    def get_all(
        self,
        entity_set: str,
        *,
        filter: str = "",
        select: str = "",
        expand: str = "",
        company: bool = True,
    ) -> Iterator[dict[str, Any]]:
        """Every row of a set in the legal entity (``cross-company=true``), following nextLink."""
        terms = []
        if company:
            terms.append(f"dataAreaId eq {odata_string(self.legal_entity)}")
        if filter:
            terms.append(f"({filter})" if company else filter)
        params: dict[str, str] = {}
        if terms:
            params["$filter"] = " and ".join(terms)
        if select:
            params["$select"] = select
        if expand:
            params["$expand"] = expand
        if company:
            params["cross-company"] = "true"
        first = f"{self.base_url}/{entity_set}{query_string(params)}"
        yield from self._pages(first, self.get_json)

    # -- setup ----------------------------------------------------------------------------------
    def legal_entities(self) -> list[str]:
        """Every ``LegalEntityId`` (lower case, as ``dataAreaId`` reads)."""
        rows = self.get_all(LEGAL_ENTITIES_SET, select="LegalEntityId", company=False)
        return [str(row.get("LegalEntityId", "")).lower() for row in rows]

    def entity_sets(self) -> set[str]:
        """The entity set names ``$metadata`` lists."""
        return set(re.findall(r'<EntitySet Name="([^"]+)"', self.get_text("$metadata")))

    def countries(self) -> dict[str, str]:
        """ISO-2 code → F&O country/region id (``AddressCountryRegions``)."""
        found: dict[str, str] = {}
        for row in self.get_all(COUNTRIES_SET, select="CountryRegion,ISOcode", company=False):
            iso = str(row.get("ISOcode") or "").strip().upper()
            if iso and iso not in found:
                found[iso] = str(row.get("CountryRegion") or "")
        return found

    def released_products(self, numbers: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Released products of the legal entity (all, or those ``numbers`` name exactly)."""
        select = "ItemNumber,SearchName,ProductSubType"
        if numbers is None:
            return list(self.get_all(ITEMS_SET, select=select))
        found: list[dict[str, Any]] = []
        for batch in filter_batches("ItemNumber", list(dict.fromkeys(numbers))):
            found.extend(self.get_all(ITEMS_SET, filter=batch, select=select))
        return found

    def sales_stopped(self, numbers: Sequence[str] | None = None) -> set[str]:
        """Item numbers whose default order settings stop sales (of ``numbers`` if given)."""
        stopped = "IsSalesProcessingStopped eq Microsoft.Dynamics.DataEntities.NoYes'Yes'"
        batches = [""] if numbers is None else list(filter_batches("ItemNumber", list(numbers)))
        found: set[str] = set()
        for batch in batches:
            condition = f"{stopped} and ({batch})" if batch else stopped
            rows = self.get_all(ORDER_SETTINGS_SET, filter=condition, select="ItemNumber")
            found.update(str(row.get("ItemNumber", "")) for row in rows)
        return found

    # -- customers ------------------------------------------------------------------------------
    def find_customers_by_email(self, address: str) -> list[dict[str, Any]]:
        """Customers whose ``PrimaryContactEmail`` is ``address`` (exactly, ignoring case)."""
        return self.find_customers_by_emails([address])

    def find_customers_by_emails(self, addresses: Sequence[str]) -> list[dict[str, Any]]:
        """Customers of any of ``addresses``, in ``or`` batches; rows as ``{number, id, email}``."""
        wanted = {a.strip().casefold() for a in addresses if a.strip()}
        found: list[dict[str, Any]] = []
        for batch in filter_batches("PrimaryContactEmail", sorted(wanted)):
            for row in self.get_all(
                CUSTOMERS_SET, filter=batch, select="CustomerAccount,PrimaryContactEmail"
            ):
                email = str(row.get("PrimaryContactEmail") or "")
                if email.strip().casefold() in wanted:  # a '*' in an address is a wildcard
                    account = str(row.get("CustomerAccount", ""))
                    found.append({"number": account, "id": account, "email": email})
        return found

    def create_customer(
        self, body: dict[str, Any], guard: SendGuard | None = None
    ) -> dict[str, Any]:
        """``POST CustomersV3``; returns ``{number, id}`` (the generated ``CustomerAccount``)."""
        row = self.create_record(CUSTOMERS_SET, body, guard)
        account = str(row.get("CustomerAccount") or "")
        if not account:
            raise AnsweredInDoubt("Dynamics answered a customer create without an account")
        return {"number": account, "id": account}

    def create_record(
        self, entity_set: str, body: dict[str, Any], guard: SendGuard | None = None
    ) -> dict[str, Any]:
        """One POST, sent again only when the answer proves it did not run; the created record.

        :class:`DocumentInDoubt` (no answer) and :class:`AnsweredInDoubt` (a server error) are
        the caller's to settle by a lookup.
        """
        url = f"{self.base_url}/{entity_set}"
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")

        def once() -> dict[str, Any]:
            response = self._send("POST", url, data, {"Content-Type": "application/json"}, guard)
            try:
                row = response.json(parse_float=Decimal)
            except ValueError:
                raise AnsweredInDoubt(
                    f"Dynamics answered a {entity_set} create without JSON"
                ) from None
            if not isinstance(row, dict):
                raise AnsweredInDoubt(f"Dynamics answered a {entity_set} create without a record")
            return row

        return self._retrying(once)()

    def create_changeset_retrying(
        self, operations: Sequence[BatchOperation], guard: SendGuard | None = None
    ) -> list[dict[str, Any]]:
        """:meth:`create_changeset`, sent again only while F&O proves nothing ran (429/502/503)."""
        return self._retrying(lambda: self.create_changeset(operations, guard))()

    # -- sales orders ---------------------------------------------------------------------------
    def find_orders(self, filter: str) -> list[dict[str, Any]]:
        """Sales order headers matching ``filter`` in the legal entity, with their lines."""
        return list(
            self.get_all(HEADERS_SET, filter=filter, select=ORDER_SELECT, expand=LINES_EXPAND)
        )

    def find_orders_by_references(self, references: Sequence[str]) -> list[dict[str, Any]]:
        """Headers whose ``CustomersOrderReference`` is one of ``references`` (exactly)."""
        wanted = {r.casefold() for r in references}
        found: list[dict[str, Any]] = []
        for batch in filter_batches("CustomersOrderReference", list(dict.fromkeys(references))):
            found.extend(
                row
                for row in self.find_orders(batch)
                if str(row.get("CustomersOrderReference") or "").casefold() in wanted
            )
        return found

    def find_order_by_number(self, number: str) -> list[dict[str, Any]]:
        """The header with this ``SalesOrderNumber``."""
        rows = self.find_orders(f"SalesOrderNumber eq {odata_string(number)}")
        return [
            r for r in rows if str(r.get("SalesOrderNumber", "")).casefold() == number.casefold()
        ]

    def find_orders_by_numbers(self, numbers: Sequence[str]) -> list[dict[str, Any]]:
        """Headers whose ``SalesOrderNumber`` is one of ``numbers`` (``or`` filters)."""
        wanted = {n.casefold() for n in numbers}
        found: list[dict[str, Any]] = []
        for batch in filter_batches("SalesOrderNumber", list(dict.fromkeys(numbers))):
            found.extend(
                row
                for row in self.find_orders(batch)
                if str(row.get("SalesOrderNumber") or "").casefold() in wanted
            )
        return found

    def create_changeset(
        self, operations: Sequence[BatchOperation], guard: SendGuard | None = None
    ) -> list[dict[str, Any]]:
        """Send ``operations`` as one atomic changeset; the created records, in order.

        The ``$batch`` answer is 200 whatever happened: each part is classified. A failed
        changeset (one error part) raises :class:`DocumentRefused` (data) or
        :class:`AnsweredInDoubt`; a throttled one :class:`TransientError` (nothing ran).
        One try: the caller decides what may be sent again.
        """
        content_type, data = build_changeset(self.base_url, operations)
        url = f"{self.base_url}/$batch"
        response = self._send("POST", url, data, {"Content-Type": content_type}, guard)
        groups = parse_batch_response(response.headers.get("Content-Type", ""), response.text)
        if len(groups) != 1:
            raise AnsweredInDoubt("Dynamics answered the $batch with an unexpected shape")
        parts = groups[0]
        for part in parts:
            problem = classify(part.status, part.text, method="POST", retry_after=part.retry_after)
            if problem is not None:
                if guard is not None and part.status in NOT_PROCESSED_STATUSES:
                    guard.not_sent()
                raise problem
        if len(parts) != len(operations):
            raise AnsweredInDoubt("Dynamics answered the changeset with fewer parts than sent")
        records = [part.json() for part in _in_sent_order(parts)]
        if not all(isinstance(r, dict) for r in records):
            raise AnsweredInDoubt("Dynamics answered the changeset without the created records")
        return records

    def create_order(
        self,
        reference: str,
        operations: Sequence[BatchOperation],
        guard: SendGuard | None = None,
    ) -> dict[str, Any]:
        """Create a sales order (header and lines in one changeset), exactly once.

        Sent again only when the answer proves nothing ran (429/502/503, no connection made), or
        when, after a server error (it ran and rolled back), a lookup by ``reference`` finds
        nothing. A duplicate-key refusal (our own number, created by an earlier send whose
        answer was lost) is settled by the same lookup. Returns the header with its lines.
        """

        def lookup(exc: DynamicsError) -> dict[str, Any] | None:
            try:
                found = self.find_orders_by_references([reference])
            except DynamicsError:
                raise DocumentInDoubt(f"{exc}; the lookup by reference failed too") from None
            return found[0] if found else None

        def once() -> dict[str, Any]:
            try:
                records = self.create_changeset(operations, guard)
            except AnsweredInDoubt as exc:
                found = lookup(exc)
                if found is not None:
                    return found
                raise TransientError(f"{exc} (looked up: not created)", status=exc.status) from None
            except DocumentRefused as exc:
                if not is_duplicate_key(exc):
                    raise
                found = lookup(exc)
                if found is not None:
                    return found
                raise DocumentRefused(
                    f"{infolog(exc)} (the sales order number is taken by an order with another "
                    "CustomersOrderReference: change orders.document_prefix or the number)",
                    status=exc.status,
                    code=exc.code,
                ) from None
            header = dict(records[0])
            header["SalesOrderLines"] = records[1:]
            return header

        return self._retrying(once)()


DUPLICATE_KEY = "record already exists"


def is_duplicate_key(exc: DynamicsError) -> bool:
    """True for the write error of a second create of the same primary key."""
    return DUPLICATE_KEY in exc.message.lower()
