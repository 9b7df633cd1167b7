"""Dynamics 365 Finance & Operations as an :class:`~woo2d365.erp.base.ErpTarget`.

One legal entity (``dynamics.legal_entity``). What differs from Business Central, and why:

* **Items** are mirrored by a full paged read of ``ReleasedProductsV2`` (plus the stopped flags of
  ``ProductDefaultOrderSettings``): F&O items have no modification time to read incrementally.
  The mirror is replaced every :data:`FULL_REFRESH_EVERY`, and on the next run after F&O refused
  an order over an item; between full reads each run looks up the SKUs held orders did not
  find. The mirror's key is the item number upper-cased (how validation looks items up); the
  exact ``ItemNumber`` is kept as the item's id and sent as it is, never trimmed.
  An item whose sales are stopped, or a product master (it needs a variant), is blocked.
* **Countries** are F&O's own ids, mapped from ISO-2 through ``AddressCountryRegions``.
* **Customers** are found by ``PrimaryContactEmail`` (per-email) or fixed; created with
  ``dynamics.customer_group`` and the order's currency. The find-or-create-once logic (locks per
  address, the request-limit guard after a lost answer) is Business Central's, inherited.
* **Orders**, mode ``own`` (``fo_order_numbers``, the default): ``SalesOrderNumber`` =
  ``CustomersOrderReference`` = prefix + shop number, header and lines in one ``$batch``
  changeset — atomic, and a second create fails on the primary key and is settled by a lookup.
  Mode ``sequence`` (F&O numbers the order): look up by reference, POST the header unless it
  exists, then the missing lines (by our own ``LineNumber``) in one changeset, then a GET that
  confirms every line. A header found without all its lines is *not* the document: :meth:`find`
  does not return it, so the pipeline creates again, which completes that header.
* **Totals**: F&O computes no header totals at create (``AreTotalsCalculated: No``), so the
  document's total is the sum of its lines' ``LineAmount`` — with prices excl. tax plus the
  shop's tax, which F&O calculates only later (so only the net is really compared).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NoReturn

from woo2d365.clock import Clock, utc_now
from woo2d365.erp.base import (
    CreatedDocument,
    DocumentRef,
    DocumentTrace,
    ItemRefresh,
    PreparedDocument,
    SendGuard,
)
from woo2d365.erp.businesscentral.payload import Draft
from woo2d365.erp.businesscentral.target import BusinessCentralTarget, ItemOverlay, ReadOnce
from woo2d365.erp.financeoperations.client import (
    HEADERS_SET,
    LINES_SET,
    BatchOperation,
    FinanceOperationsClient,
)
from woo2d365.erp.financeoperations.payload import (
    build_customer,
    build_sales_order,
    country_problems,
    line_total,
    order_reference,
)
from woo2d365.erp.odata_client import AnsweredInDoubt, TransientError
from woo2d365.errors import ConfigError, DocumentInDoubt, DocumentRefused, OrderDataError
from woo2d365.model import Order
from woo2d365.settings import Settings
from woo2d365.store.mirror import CachedItem, MirrorAndSkuMap

EXPECTED_LINES_PREFIX = "fo.lines."
"""Store key prefix + reference: how many lines the order's header must have (mode sequence)."""
ITEMS_FULL_REFRESH_KEY = "fo.items.full_refresh_at"
"""Store key: when the item mirror was last replaced; blank forces a refresh."""
FULL_REFRESH_EVERY = timedelta(minutes=15)
NOT_FOUND_PER_RUN = 100
"""SKUs held as not found that are looked up between full refreshes, per run."""


def _not_built(section: str) -> Callable[..., NoReturn]:
    """A method of the follow-up step ``section``, not built for F&O yet: it says so."""

    def not_built(self: object, *args: object, **kwargs: object) -> NoReturn:
        raise _not_yet(section)

    return not_built


class FinanceOperationsTarget(BusinessCentralTarget):
    """Sales orders in one F&O legal entity; one instance per run, thread-safe."""

    display_name = "Dynamics 365"
    store: MirrorAndSkuMap  # the item lookups between full reads read the SKU map too
    items_full_refresh_key = ITEMS_FULL_REFRESH_KEY
    customer_key = "account"

    def __init__(
        self,
        settings: Settings,
        store: MirrorAndSkuMap,
        client: FinanceOperationsClient,
        *,
        clock: Clock = utc_now,
    ) -> None:
        # The customer logic inherited from Business Central needs only the client's customer
        # methods (find_customers_by_email(s), create_customer, request_count), which this
        # client has with the same shapes.
        super().__init__(settings, store, client, clock=clock)  # type: ignore[arg-type]
        self.fo = client
        self.dynamics = settings.dynamics
        self.own_numbers = self.dynamics.fo_order_numbers == "own"
        if self.orders.customer_mode == "per-email" and not self.dynamics.customer_group.strip():
            raise ConfigError(
                'dynamics.customer_group is required when customer_mode = "per-email"'
            )
        # Asked again after a failure: the delivery address needs F&O's country ids at push.
        self._map = ReadOnce(client.countries, "countries", again_after_failure=True)
        self._shop_tax: dict[str, Decimal] = {}
        self._shop_tax_lock = threading.Lock()

    def close(self) -> None:
        """Close the HTTP session."""
        self.fo.close()

    def check_follow_up(self, step: str) -> None:
        """No follow-up step is built for F&O yet."""
        raise _not_yet(step)

    # -- after the push: not built for F&O yet (docs/architecture.md, "Two Dynamics products") --
    item_inventory = _not_built("stock")
    posted_shipments = shipment_tracking = posted_invoices = _not_built("shipments")
    goods_lines = _not_built("shipments")
    credit_memo_number = prepare_credit_memo = create_credit_memo = _not_built("refunds")
    find_credit_memo = find_credit_memos = post_credit_memo = _not_built("refunds")

    def connect(self) -> None:
        """A token, and the legal entity exists (one request)."""
        entities = self.fo.legal_entities()
        if self.dynamics.legal_entity not in entities:
            raise ConfigError(
                f"dynamics.legal_entity {self.dynamics.legal_entity!r} is not a legal entity of "
                f"{self.dynamics.fo_url}; it has {', '.join(sorted(entities)) or 'none'}"
            )

    # -- items ----------------------------------------------------------------------------------
    def refresh_items(self, *, full: bool = False, dry_run: bool = False) -> ItemRefresh:
        """Replace the mirror by a full read when it is due (F&O has no change stamps); between
        full reads, look up the SKUs held orders did not find (released since, perhaps)."""
        now = self.clock()
        last = _parse(self.store.get_value(ITEMS_FULL_REFRESH_KEY) or "")
        if not full and last is not None and now - FULL_REFRESH_EVERY < last <= now:
            return self._refresh_not_found(dry_run)
        before = self.fo.request_count
        stopped = self.fo.sales_stopped()
        items = [_cached_item(row, stopped) for row in self.fo.released_products()]
        requests = self.fo.request_count - before
        if dry_run:
            view = ItemOverlay(self.store, items, replace=True)
            return ItemRefresh(full=True, fetched=len(items), requests=requests, items=view)
        self.store.replace_items(items)
        self.store.set_value(ITEMS_FULL_REFRESH_KEY, now.isoformat())
        return ItemRefresh(full=True, fetched=len(items), requests=requests)

    def _refresh_not_found(self, dry_run: bool) -> ItemRefresh:
        """The items of SKUs held as not found, looked up by number (at most
        :data:`NOT_FOUND_PER_RUN` a run), added to the mirror when F&O has them now."""
        skus = [sku for sku, _count in self.store.unmapped_skus()][:NOT_FOUND_PER_RUN]
        if not skus:
            return ItemRefresh(full=False, fetched=0, requests=0)
        before = self.fo.request_count
        rows = self.fo.released_products(skus)
        stopped = (
            self.fo.sales_stopped([str(r.get("ItemNumber", "")) for r in rows]) if rows else set()
        )
        items = [_cached_item(row, stopped) for row in rows]
        requests = self.fo.request_count - before
        if dry_run:
            view = ItemOverlay(self.store, items, replace=False)
            return ItemRefresh(full=False, fetched=len(items), requests=requests, items=view)
        self.store.upsert_items(items)
        return ItemRefresh(full=False, fetched=len(items), requests=requests)

    # -- checks ---------------------------------------------------------------------------------
    def external_number(self, order: Order) -> str:
        """``CustomersOrderReference``: prefix + shop number (also the number in mode own)."""
        return order_reference(
            self.orders.document_prefix,
            order.number,
            own_numbers=self.own_numbers,
        )

    def check_order(self, order: Order) -> list[str]:
        """The key, an e-mail address in per-email mode, and F&O countries for every address."""
        return self._key_and_customer_problems(order) + self._country_problems(order)

    def load_checks(self) -> None:
        """Read the country map now (not lazily inside a store transaction)."""
        self.country_map()

    def country_map(self) -> dict[str, str] | None:
        """ISO-2 → F&O country/region id, read once; None when it cannot be read."""
        return self._map.get()

    def country_codes(self) -> set[str] | None:
        """The ISO-2 codes F&O knows."""
        found = self.country_map()
        return None if found is None else set(found)

    # -- documents ------------------------------------------------------------------------------
    def _country_problems(self, order: Order) -> list[str]:
        return country_problems(order, self.country_map())

    def _sales_order(
        self, order: Order, item_numbers: Sequence[str | None], key: str, customer: str
    ) -> Draft:
        """Header and lines (items by their exact ``ItemNumber``); the shop's tax is kept for
        the created order's total when prices exclude tax."""
        exact = self.store.items_by_number([n for n in item_numbers if n])
        numbers = [exact[n].id or n if n and n in exact else n for n in item_numbers]
        draft = build_sales_order(
            order,
            reference=key,
            own_numbers=self.own_numbers,
            item_numbers=numbers,
            customer_account=customer,
            dynamics=self.dynamics,
            orders=self.orders,
            countries=self.country_map() or {},
        )
        if not order.prices_include_tax:
            with self._shop_tax_lock:
                self._shop_tax[key] = order.total_tax
        return draft

    def _fixed_customer(self) -> str:
        return self.orders.customer_number.strip()

    def _customer_draft(self, order: Order) -> Draft:
        return build_customer(order, self.dynamics, self.country_map() or {})

    def create(self, document: PreparedDocument, guard: SendGuard | None = None) -> CreatedDocument:
        """Header and lines in one changeset (see :meth:`FinanceOperationsClient.create_order`)."""
        header = dict(document.payload["header"])
        with self._creating(document):
            if self.own_numbers:
                operations = [BatchOperation(HEADERS_SET, header)]
                number = str(header.get("SalesOrderNumber") or "")
                for line in document.payload["lines"]:
                    operations.append(
                        BatchOperation(LINES_SET, {**line, "SalesOrderNumber": number})
                    )
                raw = self.fo.create_order(document.external_number, operations, guard)
            else:
                raw = self._create_in_sequence(document, guard)
        with self._shop_tax_lock:
            tax = self._shop_tax.pop(document.external_number, None)
        return _created(raw, document.external_number, tax)

    def _refused_over_item(self, exc: DocumentRefused) -> bool:
        # The mirror may be older than F&O's items.
        return "released products" in exc.message.lower() or "stopped for sales" in exc.message

    def _create_in_sequence(
        self, document: PreparedDocument, guard: SendGuard | None
    ) -> dict[str, Any]:
        """Mode sequence: header (unless it exists), the missing lines, a GET confirming all."""
        reference = document.external_number
        lines = list(document.payload["lines"])
        self.store.set_value(EXPECTED_LINES_PREFIX + reference, str(len(lines)))
        existing = self._by_reference(reference)
        if existing is None:
            try:
                head = self.fo.create_record(HEADERS_SET, dict(document.payload["header"]), guard)
            except AnsweredInDoubt as exc:
                # It ran and most likely rolled back; the next try looks it up first.
                raise TransientError(str(exc), status=exc.status) from None
        else:
            head = existing
        number = str(head.get("SalesOrderNumber") or "")
        have = {_line_number(line) for line in head.get("SalesOrderLines") or []}
        missing = [line for line in lines if _line_number(line) not in have]
        if missing:
            operations = [
                BatchOperation(LINES_SET, {**line, "SalesOrderNumber": number}) for line in missing
            ]
            try:
                self.fo.create_changeset_retrying(operations, guard)
            except DocumentRefused as exc:
                raise DocumentRefused(
                    f"{exc.message} (sales order {number} exists without these lines; "
                    "`woo2d365 retry` adds them once the cause is fixed)",
                    status=exc.status,
                    code=exc.code,
                ) from None
            except AnsweredInDoubt as exc:
                raise DocumentInDoubt(
                    f"{exc}: the lines of sales order {number} are looked up before they are "
                    "sent again"
                ) from None
        confirmed = self._by_reference(reference)
        if confirmed is None or not self._complete(confirmed):
            raise DocumentInDoubt(
                f"sales order {number} does not show all {len(lines)} lines yet; looked up again"
            )
        self.store.set_value(EXPECTED_LINES_PREFIX + reference, "")
        return confirmed

    def _by_reference(self, reference: str) -> dict[str, Any] | None:
        """The one header with this reference; more than one holds the order (not unique)."""
        found = self.fo.find_orders_by_references([reference])
        if len(found) > 1:
            numbers = ", ".join(sorted(str(row.get("SalesOrderNumber")) for row in found))
            raise OrderDataError(
                f"{len(found)} sales orders carry CustomersOrderReference {reference} ({numbers}): "
                "keep one in F&O, then `woo2d365 resolve` the order with its number"
            )
        return found[0] if found else None

    def _complete(self, row: dict[str, Any]) -> bool:
        """Mode own: always (atomic). Mode sequence: every expected line exists."""
        if self.own_numbers:
            return True
        lines = row.get("SalesOrderLines") or []
        reference = str(row.get("CustomersOrderReference") or "")
        expected = self.store.get_value(EXPECTED_LINES_PREFIX + reference) or ""
        if expected.isdigit():
            return len(lines) >= int(expected)
        return bool(lines)  # no record of the count: a header without lines is never complete

    def find(self, external_number: str) -> CreatedDocument | None:
        """The sales order with this ``CustomersOrderReference``; any further ones as ``others``
        (the field is not unique in F&O)."""
        found = self.fo.find_orders_by_references([external_number])
        found = sorted(
            (row for row in found if self._complete(row)),
            key=lambda row: str(row.get("SalesOrderNumber", "")),
        )
        if not found:
            return None
        others = tuple(str(row.get("SalesOrderNumber", "")) for row in found[1:])
        return _created(found[0], external_number, None, others)

    def find_number(self, number: str) -> CreatedDocument | None:
        """The sales order with this ``SalesOrderNumber``."""
        found = self.fo.find_order_by_number(number.strip())
        if not found:
            return None
        return _created(found[0], str(found[0].get("CustomersOrderReference") or ""), None)

    def find_traces(self, refs: Sequence[DocumentRef]) -> dict[DocumentRef, DocumentTrace]:
        """The sales order of each order, by ``SalesOrderNumber``, else by reference: F&O keeps
        an invoiced sales order (status Invoiced), so the order lookup is the whole answer."""
        numbers = [ref.number.strip() for ref in refs if ref.number.strip()]
        rows = self.fo.find_orders_by_numbers(numbers) if numbers else []
        by_number = {str(row.get("SalesOrderNumber") or "").casefold(): row for row in rows}
        by_key = self.find_many([ref.external_number for ref in refs if ref.external_number])
        traces: dict[DocumentRef, DocumentTrace] = {}
        for ref in refs:
            row = by_number.get(ref.number.strip().casefold()) if ref.number.strip() else None
            found = (
                _created(row, str(row.get("CustomersOrderReference") or ""), None)
                if row is not None
                else by_key.get(ref.external_number)
            )
            traces[ref] = DocumentTrace(found)
        return traces

    def posted_keys(self, prefix: str, since: datetime) -> set[str]:
        """None, without a request: F&O keeps an invoiced sales order, so :meth:`find_many`
        finds it."""
        return set()

    def documents_with_prefix(self, prefix: str) -> list[CreatedDocument]:
        """Sales orders whose ``CustomersOrderReference`` starts with ``prefix`` (``eq 'P*'``)."""
        prefix = prefix.strip().upper()
        if "*" in prefix:
            raise ConfigError("orders.document_prefix must not contain '*' with F&O")
        rows = self.fo.find_orders(
            f"CustomersOrderReference eq '{prefix.replace(chr(39), chr(39) * 2)}*'"
        )
        return [
            _created(row, str(row.get("CustomersOrderReference") or ""), None)
            for row in rows
            if str(row.get("CustomersOrderReference") or "").upper().startswith(prefix)
        ]

    def find_many(self, external_numbers: Sequence[str]) -> dict[str, CreatedDocument]:
        """Sales orders of these references (``or`` filters, one request per ~25 keys)."""
        wanted = {n.upper(): n for n in external_numbers}
        grouped: dict[str, list[dict[str, Any]]] = {}
        rows = self.fo.find_orders_by_references(list(external_numbers))
        for row in sorted(rows, key=lambda r: str(r.get("SalesOrderNumber", ""))):
            key = wanted.get(str(row.get("CustomersOrderReference") or "").upper())
            if key and self._complete(row):
                grouped.setdefault(key, []).append(row)
        return {
            key: _created(
                rows[0], key, None, tuple(str(r.get("SalesOrderNumber", "")) for r in rows[1:])
            )
            for key, rows in grouped.items()
        }


def _line_number(line: dict[str, Any]) -> Decimal:
    return Decimal(str(line.get("LineNumber", 0)))


def _cached_item(row: dict[str, Any], stopped: set[str]) -> CachedItem:
    number = str(row.get("ItemNumber", ""))
    reason = ""
    if number in stopped:
        reason = "stopped for sales (IsSalesProcessingStopped)"
    elif str(row.get("ProductSubType") or "") == "ProductMaster":
        reason = "a product master (a variant is needed)"
    return CachedItem(
        number=number.upper(),
        id=number,
        display_name=str(row.get("SearchName") or ""),
        blocked=bool(reason),
        blocked_reason=reason,
    )


def _created(
    row: dict[str, Any],
    reference: str,
    shop_tax: Decimal | None,
    others: tuple[str, ...] = (),
) -> CreatedDocument:
    number = str(row.get("SalesOrderNumber", ""))
    lines = row.get("SalesOrderLines")
    total: Decimal | None = None
    if isinstance(lines, list) and lines:
        total = line_total(lines)
        if str(row.get("ArePricesIncludingSalesTax") or "No") != "Yes":
            total = None if shop_tax is None else total + shop_tax
    return CreatedDocument(
        id=number,
        number=number,
        external_number=str(row.get("CustomersOrderReference") or reference),
        total_including_tax=total,
        others=others,
    )


def _parse(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _not_yet(section: str) -> ConfigError:
    return ConfigError(
        f'[{section}] is not available with dynamics.product = "finance-operations" yet; '
        f"set [{section}] enabled = false"
    )
