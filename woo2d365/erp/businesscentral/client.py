"""Business Central API v2.0 over HTTPS: one session, one retry policy, shared limits.

* Base URL ``{api_url}/v2.0/{tenant_id}/{environment}/api/v2.0``; the company is resolved once
  (by name or GUID) and every entity is addressed as ``companies({id})/…``.
* :func:`classify` is the one place that turns a response into an outcome (``docs/systems.md`` B3):
  ``BadRequest_*``, ``Application_*``, ``Authorization_*`` and the data-integrity ``Internal_*``
  codes are permanent; 429, 502 and 503 mean "not processed, come back later" (with
  ``Retry-After``); other ``Internal_*`` codes, 5xx and 408 are transient; 401 refreshes the token
  once.
* One ``backoff`` decorator retries reads (exponential backoff with jitter, ``Retry-After`` wins).
  A create is never repeated blindly: it is repeated only when the answer proves it was not
  processed (429/502/503, a connection that was never made) or, after a 500/408 answer, when a
  lookup by its natural key shows nothing was created. A create without an answer raises
  :class:`~woo2d365.erp.base.DocumentInDoubt`.
* The request path (slots and pace, the send guard, the token refresh, transport errors,
  paging) is the shared :class:`~woo2d365.erp.odata_client.ODataClient`: at most
  ``dynamics.max_concurrency`` requests are in flight and at most
  ``dynamics.requests_per_5_minutes`` start in any 5-minute window, across all threads.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import requests

from woo2d365.erp.base import SendGuard
from woo2d365.erp.odata_client import (
    NOT_PROCESSED_STATUSES,
    AnsweredInDoubt,
    ODataClient,
    TokenProvider,
    TransientError,
)
from woo2d365.erp.odata_query import (
    filter_batches,
    odata_datetime,
    odata_string,
    query_string,
    term_batches,
)
from woo2d365.erp.pacing import SlidingWindowLimiter
from woo2d365.errors import (
    ConfigError,
    DocumentInDoubt,
    DocumentRefused,
    DynamicsAuthenticationError,
    DynamicsError,
)
from woo2d365.http import retry_after_seconds
from woo2d365.retries import RetryPolicy
from woo2d365.settings import DynamicsSettings

log = logging.getLogger("woo2d365.dynamics")

KEYS_PER_LOOKUP = 50
"""Document keys per batched lookup before a create: ~2.6 KB of filter, so the lookup costs
0.02 requests per order (document numbers are short and regular, unlike e-mail addresses)."""
KEY_FILTER_CHARACTERS = 3000

PERMANENT_INTERNAL_CODES = frozenset(
    {
        "Internal_RecordNotFound",
        "Internal_EntityWithSameKeyExists",
        "Internal_DataNotFoundFilter",
        "Internal_InvalidTableRelation",
        "Internal_CompanyNotFound",
    }
)
PERMANENT_PREFIXES = (
    "BadRequest",
    "Application_",
    "Authorization_",
    "Request_",
    "RequestDataInvalid",
)


@dataclass(frozen=True)
class ErrorBody:
    """``{"error": {"code", "message"}}`` of a Business Central answer."""

    code: str
    message: str


def parse_error(response: requests.Response) -> ErrorBody:
    """The OData error of a response, or a stand-in built from the status line."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        error = data["error"]
        return ErrorBody(
            str(error.get("code") or "Unknown"), _first_line(str(error.get("message") or ""))
        )
    text = _first_line(response.text or "")[:200]
    return ErrorBody("Unknown", text or (response.reason or f"HTTP {response.status_code}"))


def classify(response: requests.Response, *, method: str) -> DynamicsError | None:
    """The one place that decides what an answer means; None for success.

    Returns (does not raise) :class:`TransientError` for "not processed / try again",
    :class:`AnsweredInDoubt` for a create answered with a server error (it ran and rolled back),
    :class:`DocumentInDoubt` for a create the gateway timed out (504), :class:`DocumentRefused`
    (writes) or a non-retryable :class:`DynamicsError` (reads) for permanent refusals, and
    :class:`DynamicsAuthenticationError` for 401.
    """
    status = response.status_code
    if 200 <= status < 300:
        return None
    error = parse_error(response)
    text = f"Dynamics answered HTTP {status} {error.code}: {error.message}"
    if status == 401 or error.code.startswith("Authentication_"):
        return DynamicsAuthenticationError(
            f"{text} (is the app registered and enabled in Business Central under "
            "Microsoft Entra applications? check dynamics.client_id and dynamics.tenant_id)",
            status=status,
            code=error.code,
        )
    if status in NOT_PROCESSED_STATUSES:
        return TransientError(
            text, status=status, code=error.code, retry_after=retry_after_seconds(response)
        )
    permanent = error.code.startswith(PERMANENT_PREFIXES) or error.code in PERMANENT_INTERNAL_CODES
    if error.code.startswith("Internal_") and not permanent:
        transient = True
    elif status >= 500 or status == 408:
        transient = not permanent
    else:
        transient = False
    if transient:
        if method != "GET" and status == 504:
            # The gateway gave up, Business Central may still be working on it: only a later
            # lookup (after dynamics.timeout_seconds) can tell.
            return DocumentInDoubt(text, status=status, code=error.code)
        if method != "GET":
            return AnsweredInDoubt(text, status=status, code=error.code)
        return TransientError(
            text, status=status, code=error.code, retry_after=retry_after_seconds(response)
        )
    if method != "GET":
        return DocumentRefused(text, status=status, code=error.code)
    return DynamicsError(text, status=status, code=error.code, retryable=False)


SALES_ORDER_FIELDS = "id,number,externalDocumentNumber,totalAmountIncludingTax"
CREDIT_MEMO_FIELDS = (
    "id,number,externalDocumentNumber,status,pricesIncludeTax,totalAmountIncludingTax"
)


class BusinessCentralClient(ODataClient):
    """The Business Central API v2.0 endpoints the tool uses; share one instance between threads."""

    def __init__(
        self,
        settings: DynamicsSettings,
        tokens: TokenProvider,
        *,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
        limiter: SlidingWindowLimiter | None = None,
        page_size: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        base_url = (
            f"{settings.api_url.rstrip('/')}/v2.0/{quote(settings.tenant_id.strip(), safe='')}/"
            f"{quote(settings.environment.strip(), safe='')}/api/v2.0"
        )
        super().__init__(
            settings,
            tokens,
            base_url=base_url,
            where=settings.api_url,
            headers={"Accept": "application/json"},
            session=session,
            retry=retry,
            limiter=limiter,
            sleep=sleep,
        )
        self.page_size = page_size
        self._company_id: str | None = None
        self._company_lock = threading.Lock()
        self._attempt_with_retries = self._retrying(self._attempt)

    def _classify(self, response: requests.Response, method: str) -> DynamicsError | None:
        return classify(response, method=method)

    def _attempt(
        self,
        method: str,
        url: str,
        body: dict[str, Any] | None,
        extra: dict[str, str],
        guard: SendGuard | None = None,
    ) -> Any:
        """Send once on the shared request path; the JSON answer (see :meth:`_send`)."""
        if body is None:
            response = self._send(method, url, None, extra, guard)
        else:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers = {**extra, "Content-Type": "application/json"}
            response = self._send(method, url, data, headers, guard)
        return _json_answer(method, url, response)

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        guard: SendGuard | None = None,
    ) -> Any:
        """One API call with the retry policy; ``path_or_url`` relative to the base or absolute.

        ``guard`` (creates) is consulted before every send, re-sends after a backoff included.
        """
        url = path_or_url if "://" in path_or_url else f"{self.base_url}/{path_or_url}"
        return self._attempt_with_retries(method, url, body, headers or {}, guard)

    def get_all(self, path: str, params: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Every entity of a collection, following ``@odata.nextLink`` verbatim."""
        return self.get_all_at(f"{self.base_url}/{path}", params)

    def get_all_at(
        self, url: str, params: dict[str, str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """:meth:`get_all` for an absolute collection URL (a custom API page)."""
        return self._pages(f"{url}{query_string(params or {})}", self._get_page)

    def custom_api_url(self, publisher: str, group: str, version: str, entity_set: str) -> str:
        """``…/api/{publisher}/{group}/{version}/companies({id})/{entitySet}``."""
        root = self.base_url.removesuffix("/api/v2.0")
        parts = "/".join(quote(p.strip(), safe="") for p in (publisher, group, version))
        entity = quote(entity_set.strip(), safe="")
        return f"{root}/api/{parts}/companies({self.company_id()})/{entity}"

    def _get_page(self, url: str) -> Any:
        if self.page_size is None:
            return self.request("GET", url)
        # Smaller pages only when asked (tests); BC's own page size is 20,000.
        return self.request("GET", url, headers={"Prefer": f"odata.maxpagesize={self.page_size}"})

    # -- company --------------------------------------------------------------------------------
    def company_id(self) -> str:
        """The GUID of ``dynamics.company`` (matched by id, name or display name), resolved once."""
        with self._company_lock:
            if self._company_id is None:
                self._company_id = self._resolve_company()
            return self._company_id

    def _resolve_company(self) -> str:
        wanted = self.settings.company.strip()
        companies = self._companies()
        if wanted:
            return _company_named(companies, wanted)
        if len(companies) == 1:
            return str(companies[0]["id"])
        raise ConfigError(
            "dynamics.company is required: the environment has "
            + ", ".join(repr(c.get("name")) for c in companies)
        )

    def _companies(self) -> list[dict[str, Any]]:
        """The environment's companies; :class:`ConfigError` when it has none or is not found."""
        try:
            companies = list(self.get_all("companies"))
        except DynamicsError as exc:
            if exc.status == 404 and not exc.retryable:
                raise ConfigError(
                    f"{exc.message} (check dynamics.environment {self.settings.environment!r} "
                    "and dynamics.tenant_id)"
                ) from None
            raise
        if not companies:
            raise ConfigError(f"environment {self.settings.environment!r} has no companies")
        return companies

    def company_path(self, entity: str) -> str:
        """``companies({id})/{entity}``."""
        return f"companies({self.company_id()})/{entity}"

    # -- items ----------------------------------------------------------------------------------
    def items(self, *, modified_after: datetime | None = None) -> Iterator[dict[str, Any]]:
        """Items with the fields the mirror keeps; only those changed after ``modified_after``."""
        params = {"$select": "id,number,displayName,blocked,lastModifiedDateTime"}
        if modified_after is not None:
            params["$filter"] = f"lastModifiedDateTime gt {odata_datetime(modified_after)}"
        return self.get_all(self.company_path("items"), params)

    def inventory(self) -> Iterator[dict[str, Any]]:
        """``number`` and ``inventory`` of every stock-kept item (type Inventory), in as few
        pages as the server allows (``docs/systems.md`` B4: inventory is never written)."""
        params = {"$select": "number,inventory", "$filter": "type eq 'Inventory'"}
        return self.get_all(self.company_path("items"), params)

    # -- countries ------------------------------------------------------------------------------
    def country_codes(self) -> set[str] | None:
        """Codes of ``countriesRegions``; None when the endpoint is not available."""
        try:
            return {
                str(entry.get("code", "")).upper()
                for entry in self.get_all(
                    self.company_path("countriesRegions"), {"$select": "code"}
                )
                if entry.get("code")
            }
        except DynamicsError as exc:
            if exc.status in (400, 404) and not exc.retryable:
                log.info("countriesRegions not available (%s); country codes unchecked", exc)
                return None
            raise

    # -- customers ------------------------------------------------------------------------------
    def find_customers_by_email(self, address: str) -> list[dict[str, Any]]:
        """Customers whose e-mail equals ``address`` (BC compares case-sensitively)."""
        params = {
            "$filter": f"email eq {odata_string(address)}",
            "$select": "id,number,displayName,email",
        }
        return list(self.get_all(self.company_path("customers"), params))

    def find_customers_by_emails(self, addresses: Sequence[str]) -> list[dict[str, Any]]:
        """Customers whose e-mail equals one of ``addresses``: ``email eq 'a' or email eq 'b'``.

        One request per batch of addresses (the query string stays under
        :data:`~woo2d365.erp.odata_query.MAX_FILTER_CHARACTERS`), instead of one per address.
        """
        found: list[dict[str, Any]] = []
        for batch in filter_batches("email", addresses):
            params = {"$filter": batch, "$select": "id,number,displayName,email"}
            found.extend(self.get_all(self.company_path("customers"), params))
        return found

    def create_customer(
        self, body: dict[str, Any], guard: SendGuard | None = None
    ) -> dict[str, Any]:
        """``POST customers``; :class:`DocumentInDoubt` when it may have been created unanswered."""
        return self._create(self.company_path("customers"), body, guard)

    # -- sales orders ---------------------------------------------------------------------------
    def find_sales_orders(self, external_number: str) -> list[dict[str, Any]]:
        """Sales orders with this ``externalDocumentNumber``."""
        params = {
            "$filter": f"externalDocumentNumber eq {odata_string(external_number)}",
            "$select": SALES_ORDER_FIELDS,
        }
        return list(self.get_all(self.company_path("salesOrders"), params))

    def find_sales_orders_with_prefix(self, prefix: str) -> list[dict[str, Any]]:
        """Sales orders whose ``externalDocumentNumber`` starts with ``prefix``."""
        params = {
            "$filter": f"startswith(externalDocumentNumber,{odata_string(prefix)})",
            "$select": SALES_ORDER_FIELDS,
        }
        return list(self.get_all(self.company_path("salesOrders"), params))

    def find_sales_orders_by_number(self, number: str) -> list[dict[str, Any]]:
        """The sales order with this ``number``."""
        params = {
            "$filter": f"number eq {odata_string(number)}",
            "$select": SALES_ORDER_FIELDS,
        }
        return list(self.get_all(self.company_path("salesOrders"), params))

    def find_sales_orders_by_external_numbers(
        self, external_numbers: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Sales orders whose ``externalDocumentNumber`` is one of these: one request per
        :data:`KEYS_PER_LOOKUP` keys (``externalDocumentNumber eq 'a' or ...``)."""
        return self._find_by_external_numbers("salesOrders", external_numbers, SALES_ORDER_FIELDS)

    def create_sales_order(
        self, payload: dict[str, Any], guard: SendGuard | None = None
    ) -> dict[str, Any]:
        """One deep-insert ``POST salesOrders`` (see :meth:`create_document`)."""
        return self.create_document("salesOrders", payload, guard)

    def create_document(
        self, entity_set: str, payload: dict[str, Any], guard: SendGuard | None = None
    ) -> dict[str, Any]:
        """One deep-insert ``POST`` of a document, repeated only when proven not processed.

        One retry loop (the client's policy): a throttled or refused-before-running POST is sent
        again; after a 500/408 answer the document is looked up by ``externalDocumentNumber``
        first: found, it is returned; not found, the POST is sent again.
        """
        external_number = str(payload["externalDocumentNumber"])
        url = f"{self.base_url}/{self.company_path(entity_set)}"

        def once() -> dict[str, Any]:
            try:
                return _created_record(self._attempt("POST", url, payload, {}, guard))
            except AnsweredInDoubt as exc:
                try:
                    found = self.find_documents(entity_set, external_number)
                except DynamicsError:
                    raise DocumentInDoubt(
                        f"{exc}; the lookup by externalDocumentNumber failed too"
                    ) from None
                if found:
                    return found[0]
                raise TransientError(
                    f"{exc} (looked up: not created)", status=exc.status, code=exc.code
                ) from None

        return self._retrying(once)()

    def find_documents(self, entity_set: str, external_number: str) -> list[dict[str, Any]]:
        """Documents of ``entity_set`` with this ``externalDocumentNumber``."""
        if entity_set == "salesOrders":
            return self.find_sales_orders(external_number)
        params = {
            "$filter": f"externalDocumentNumber eq {odata_string(external_number)}",
            "$select": CREDIT_MEMO_FIELDS,
        }
        return list(self.get_all(self.company_path(entity_set), params))

    def find_documents_by_external_numbers(
        self, entity_set: str, external_numbers: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Documents of ``entity_set`` whose ``externalDocumentNumber`` is one of these: one
        request per :data:`KEYS_PER_LOOKUP` keys."""
        if entity_set == "salesOrders":
            return self.find_sales_orders_by_external_numbers(external_numbers)
        return self._find_by_external_numbers(entity_set, external_numbers, CREDIT_MEMO_FIELDS)

    def _find_by_external_numbers(
        self, entity_set: str, external_numbers: Sequence[str], select: str
    ) -> list[dict[str, Any]]:
        return self.find_where(entity_set, "externalDocumentNumber", external_numbers, select)

    def find_where(
        self,
        entity_set: str,
        field: str,
        values: Sequence[str],
        select: str,
        *,
        literal: Callable[[str], str] = odata_string,
    ) -> list[dict[str, Any]]:
        """Rows of ``entity_set`` whose ``field`` is one of ``values`` (``literal`` writes each:
        a quoted string, or a GUID as it is): one paged request per :data:`KEYS_PER_LOOKUP`
        values, ``or``-joined. Business Central rejects ``or`` across different fields."""
        terms = [f"{field} eq {literal(value)}" for value in values]
        found: list[dict[str, Any]] = []
        for batch in term_batches(
            terms, max_characters=KEY_FILTER_CHARACTERS, max_terms=KEYS_PER_LOOKUP
        ):
            params = {"$filter": batch, "$select": select}
            found.extend(self.get_all(self.company_path(entity_set), params))
        return found

    # -- credit memos (refunds) -----------------------------------------------------------------
    def get_credit_memo(self, document_id: str) -> dict[str, Any]:
        """One credit memo by id (its number changes when it is posted, its id does not)."""
        result = self.request(
            "GET",
            f"{self.company_path('salesCreditMemos')}({document_id})"
            + query_string({"$select": CREDIT_MEMO_FIELDS}),
        )
        return result if isinstance(result, dict) else {}

    def credit_memo_prices_include_tax(self, customer_number: str) -> bool | None:
        """``pricesIncludeTax`` of the customer's credit memos (the card's), None if it has none."""
        params = {
            "$filter": f"customerNumber eq {odata_string(customer_number)}",
            "$select": "id,pricesIncludeTax",
            "$top": "1",
        }
        for row in self.get_all(self.company_path("salesCreditMemos"), params):
            value = row.get("pricesIncludeTax")
            return value if isinstance(value, bool) else None
        return None

    def post_credit_memo(self, document_id: str) -> None:
        """``Microsoft.NAV.post`` on a draft credit memo."""
        self.request(
            "POST", f"{self.company_path('salesCreditMemos')}({document_id})/Microsoft.NAV.post"
        )

    def sales_order_customer(self, document_id: str) -> str | None:
        """The customer number of a sales order, None when Dynamics has no such order."""
        try:
            result = self.request(
                "GET",
                f"{self.company_path('salesOrders')}({document_id})"
                + query_string({"$select": "id,customerNumber"}),
            )
        except DynamicsError as exc:
            if exc.status == 404:
                return None
            raise
        number = result.get("customerNumber") if isinstance(result, dict) else None
        return str(number) if number else None

    def _create(
        self, path: str, body: dict[str, Any], guard: SendGuard | None = None
    ) -> dict[str, Any]:
        return _created_record(self.request("POST", path, body=body, guard=guard))


def _created_record(result: Any) -> dict[str, Any]:
    """The record a create answered with; a create answered without one may have run."""
    if not isinstance(result, dict):
        raise AnsweredInDoubt("Dynamics answered a create without the created record")
    return result


def _first_line(text: str) -> str:
    text = text.strip()
    return text.splitlines()[0] if text else ""


def _company_named(companies: list[dict[str, Any]], wanted: str) -> str:
    """The id of the company whose id, name or display name is ``wanted``, in that order."""
    for company in companies:
        if str(company.get("id", "")).lower().strip("{}") == wanted.lower().strip("{}"):
            return str(company["id"])
    for key in ("name", "displayName"):
        for company in companies:
            if str(company.get(key, "")).casefold() == wanted.casefold():
                return str(company["id"])
    names = ", ".join(repr(c.get("name")) for c in companies)
    raise ConfigError(f"dynamics.company {wanted!r} not found; the environment has {names}")


def _json_answer(method: str, url: str, response: requests.Response) -> Any:
    """The JSON of an answer (amounts as exact decimals); None when it has no body."""
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json(parse_float=Decimal)  # amounts stay exact
    except ValueError:
        if method == "GET":
            raise TransientError(f"Dynamics sent a non-JSON answer to GET {url}") from None
        raise AnsweredInDoubt(
            f"Dynamics sent a non-JSON answer (HTTP {response.status_code}) to {method}"
        ) from None
