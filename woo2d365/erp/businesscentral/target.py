"""Business Central as an :class:`~woo2d365.erp.base.ErpTarget`.

Caches (``docs/systems.md`` B4): items are mirrored in the state store and refreshed
incrementally by ``lastModifiedDateTime`` (cursor ``bc.items.cursor``), fully once a day and
after Dynamics refused a document over an item it does not have; customers found or created per
e-mail address are kept in the store, so a known customer costs no request. Country codes are
read once per run.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Generic, TypeVar

from woo2d365.clock import Clock, utc_now
from woo2d365.erp.base import (
    CreatedDocument,
    DocumentRef,
    DocumentTrace,
    ItemRefresh,
    PostedInvoice,
    PostedShipment,
    PreparedDocument,
    SendGuard,
    ShipmentTracking,
)
from woo2d365.erp.businesscentral import postings
from woo2d365.erp.businesscentral.client import SALES_ORDER_FIELDS, BusinessCentralClient
from woo2d365.erp.businesscentral.credit_memo import build_credit_memo, credit_memo_number
from woo2d365.erp.businesscentral.payload import (
    Draft,
    build_customer,
    build_sales_order,
    country_problems,
    external_document_number,
    tax_rate_problems,
)
from woo2d365.errors import (
    ConfigError,
    DocumentInDoubt,
    DocumentRefused,
    DynamicsAuthenticationError,
    DynamicsError,
    OrderDataError,
    WaitingForDynamics,
)
from woo2d365.logs import mask_contact
from woo2d365.model import Line, Order, Refund
from woo2d365.settings import Settings
from woo2d365.store.mirror import CachedCustomer, CachedItem, DynamicsMirror
from woo2d365.store.runs import KeyValues

log = logging.getLogger("woo2d365.dynamics")

ITEMS_CURSOR_KEY = "bc.items.cursor"
"""Store key: the newest ``lastModifiedDateTime`` seen among items (Dynamics' text, verbatim)."""
ITEMS_FULL_REFRESH_KEY = "bc.items.full_refresh_at"
"""Store key: when the item mirror was last replaced as a whole; blank forces a full refresh."""
FULL_REFRESH_EVERY = timedelta(hours=24)
CURSOR_OVERLAP = timedelta(minutes=1)  # items committed late with an older stamp are not missed
PLACEHOLDER_CUSTOMER = "(new customer)"
RECENT_CUSTOMERS = 4096  # e-mail keys prefetch_customers remembers: a few windows of a push
T = TypeVar("T")


CREATED_CUSTOMER = "created customer"
CUSTOMER_SENT_PREFIX = "bc.customer.sent."
"""Store key prefix: when a customer create was sent whose outcome is not known yet."""


@dataclass
class OrderCustomer:
    """The customer a sales order is for, and what finding it said."""

    number: str
    placeholder: bool = False  # a dry run's stand-in for a customer a real push creates
    new_customer: dict[str, Any] | None = None  # the body a dry run would create it with
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def document(self, order: Order, key: str, draft: Draft, *, dry_run: bool) -> PreparedDocument:
        """The prepared document of ``draft`` for this customer."""
        return PreparedDocument(
            woo_id=order.woo_id,
            external_number=key,
            payload=draft.payload,
            warnings=(*self.warnings, *draft.warnings),
            notes=tuple(self.notes),
            placeholder_customer=self.placeholder,
            new_customer=self.new_customer if dry_run else None,
        )


class ReadOnce(Generic[T]):
    """A reference list read from Dynamics once per run, on first use; thread-safe.

    When it cannot be read for a reason that may pass, it is None (not checked) and, unless
    ``again_after_failure``, not asked again in the run: a second try could come from inside
    validate's store transaction (docs/architecture.md).
    """

    def __init__(
        self, read: Callable[[], T], what: str, *, again_after_failure: bool = False
    ) -> None:
        self._read, self._what, self._again = read, what, again_after_failure
        self._value: T | None = None
        self._loaded = False
        self._lock = threading.Lock()

    def get(self) -> T | None:
        """The value, read now if it was not yet."""
        with self._lock:
            if not self._loaded:
                try:
                    self._value = self._read()
                except DynamicsAuthenticationError:
                    raise
                except DynamicsError as exc:
                    if not exc.retryable:
                        raise
                    log.warning("%s could not be read (%s); not checked", self._what, exc)
                    if self._again:
                        return None
                    self._value = None
                self._loaded = True
            return self._value


class BusinessCentralTarget:
    """Sales orders in one Business Central company; one instance per run, thread-safe."""

    display_name = "Dynamics 365"
    items_full_refresh_key = ITEMS_FULL_REFRESH_KEY
    customer_key = "number"  # what the customer's key is called in this Dynamics

    def __init__(
        self,
        settings: Settings,
        store: DynamicsMirror,
        client: BusinessCentralClient,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.settings = settings
        self.orders = settings.orders
        self.store = store
        self.client = client
        self.clock = clock
        self.cursor_overlap = CURSOR_OVERLAP
        self._countries = ReadOnce(lambda: self.client.country_codes(), "country codes")
        # One lock per e-mail key in use, dropped when no thread holds or waits for it.
        self._customer_locks: dict[str, _KeyLock] = {}
        self._customer_locks_guard = threading.Lock()
        # What prefetch_customers learnt lately (the last RECENT_CUSTOMERS e-mail keys, so a
        # backlog of any size is held in bounded memory): customers found, keys known absent.
        self._prefetched: _Recent[CachedCustomer] = _Recent(RECENT_CUSTOMERS)
        self._absent: _Recent[bool] = _Recent(RECENT_CUSTOMERS)
        if self.orders.customer_mode == "fixed" and not self.orders.customer_number.strip():
            raise ConfigError('orders.customer_number is required when customer_mode = "fixed"')

    def close(self) -> None:
        """Close the HTTP session."""
        self.client.close()

    # -- posted documents (woo2d365 shipments; postings.py) ---------------------------------------
    def posted_shipments(self, prefix: str, since: datetime | None) -> list[PostedShipment]:
        """Posted shipments of this tool's orders changed after ``since``, with their lines."""
        return postings.posted_shipments(self.client, prefix, since)

    def shipment_tracking(
        self, prefix: str, since: datetime | None
    ) -> list[ShipmentTracking] | None:
        """Agent and tracking number from ``[shipments] tracking_api``; None when not set."""
        api = self.settings.shipments.tracking_api
        return postings.shipment_tracking(self.client, api, prefix, since)

    def posted_invoices(self, prefix: str, since: datetime | None) -> list[PostedInvoice]:
        """Posted invoices of this tool's orders changed after ``since``."""
        return postings.posted_invoices(self.client, prefix, since)

    def check_follow_up(self, step: str) -> None:
        """Business Central does every follow-up step."""

    def goods_lines(self, order: Order) -> dict[int, Line]:
        """Sequence → quantity of the pushed item lines."""
        return postings.goods_lines(order)

    def connect(self) -> None:
        """A token and the company id (one request, once per run)."""
        self.client.company_id()

    # -- items ----------------------------------------------------------------------------------
    def refresh_items(self, *, full: bool = False, dry_run: bool = False) -> ItemRefresh:
        """Bring the item mirror up to date: incremental, or full once a day / when forced.

        A dry run fetches the same items but writes nothing; it returns them as a view over the
        mirror (``ItemRefresh.items``).
        """
        now = self.clock()
        cursor = self.store.get_value(ITEMS_CURSOR_KEY) or ""
        last_full = _parse_time(self.store.get_value(ITEMS_FULL_REFRESH_KEY) or "")
        since = _parse_time(cursor)
        do_full = full or since is None or last_full is None or last_full < now - FULL_REFRESH_EVERY
        before = self.client.request_count
        if do_full:
            items = [_cached_item(entry) for entry in self.client.items()]
        else:
            assert since is not None
            changed = self.client.items(modified_after=since - self.cursor_overlap)
            items = [_cached_item(entry) for entry in changed]
        requests = self.client.request_count - before
        if dry_run:
            view = ItemOverlay(self.store, items, replace=do_full)
            return ItemRefresh(full=do_full, fetched=len(items), requests=requests, items=view)
        if do_full:
            self.store.replace_items(items)
            self.store.set_value(ITEMS_FULL_REFRESH_KEY, now.isoformat())
        else:
            self.store.upsert_items(items)
        stamped = [(t, i.last_modified) for i in items if (t := _parse_time(i.last_modified))]
        if stamped:
            newest_at, newest = max(stamped)
            if since is None or newest_at > since:
                self.store.set_value(ITEMS_CURSOR_KEY, newest)
        return ItemRefresh(full=do_full, fetched=len(items), requests=requests)

    # -- stock ----------------------------------------------------------------------------------
    def item_inventory(self) -> dict[str, Decimal]:
        """Posted inventory over all locations of every stock-kept item, by item number."""
        found: dict[str, Decimal] = {}
        for entry in self.client.inventory():
            number = str(entry.get("number") or "").upper()
            try:
                found[number] = Decimal(str(entry.get("inventory") or 0))
            except ArithmeticError:
                log.warning("item %s: inventory %r is not a number", number, entry.get("inventory"))
        return found

    # -- checks ---------------------------------------------------------------------------------
    def external_number(self, order: Order) -> str:
        """``orders.document_prefix`` + shop number, upper-case, at most 35 characters."""
        return external_document_number(self.orders.document_prefix, order.number)

    def check_order(self, order: Order) -> list[str]:
        """Document number length, a customer e-mail in per-email mode, known country codes, and
        (with ``orders.tax_codes``) a known VAT rate on every line."""
        problems = self._key_and_customer_problems(order)
        problems.extend(self._country_problems(order))
        problems.extend(tax_rate_problems(order, self.orders))
        return problems

    def _key_and_customer_problems(self, order: Order) -> list[str]:
        """The order's key cannot be built; or it has no e-mail address in per-email mode."""
        problems: list[str] = []
        try:
            self.external_number(order)
        except OrderDataError as exc:
            problems.append(exc.message)
        if self.orders.customer_mode == "per-email" and not order.email:
            problems.append(
                'the order has no e-mail address, which customer_mode = "per-email" needs '
                "to find or create its customer"
            )
        return problems

    def load_checks(self) -> None:
        """Read the country codes now (not lazily inside a store transaction)."""
        self.country_codes()

    def country_codes(self) -> set[str] | None:
        """Business Central's country/region codes, read once; None when they cannot be read."""
        return self._countries.get()

    # -- documents ------------------------------------------------------------------------------
    def prepare(
        self,
        order: Order,
        item_numbers: Sequence[str | None],
        *,
        dry_run: bool = False,
        key: str | None = None,
    ) -> PreparedDocument:
        """The sales order body; finds or creates the customer (a dry run only looks it up)."""
        key = key or self.external_number(order)
        problems = self._country_problems(order)
        if problems:
            raise OrderDataError("; ".join(problems))
        customer = self._order_customer(order, dry_run)
        draft = self._sales_order(order, item_numbers, key, customer.number)
        return customer.document(order, key, draft, dry_run=dry_run)

    def _country_problems(self, order: Order) -> list[str]:
        return country_problems(order, self.country_codes())

    def _sales_order(
        self, order: Order, item_numbers: Sequence[str | None], key: str, customer: str
    ) -> Draft:
        """The body of the deep-insert POST, keyed by ``externalDocumentNumber``."""
        draft = build_sales_order(
            order, item_numbers=item_numbers, customer_number=customer, orders=self.orders
        )
        draft.payload["externalDocumentNumber"] = key
        return draft

    def _fixed_customer(self) -> str:
        """The customer of ``customer_mode = "fixed"``, as this Dynamics stores its key."""
        return self.orders.customer_number.strip().upper()

    def _order_customer(self, order: Order, dry_run: bool) -> OrderCustomer:
        """The order's customer: the fixed one, or found or created by e-mail address (a dry
        run only looks it up and uses a placeholder for one it would create)."""
        if self.orders.customer_mode == "fixed":
            return OrderCustomer(self._fixed_customer())
        number, new_customer, found_warnings = self._customer_for(order, dry_run)
        customer = OrderCustomer(
            PLACEHOLDER_CUSTOMER if number is None else number,
            placeholder=number is None,
            new_customer=new_customer,
            notes=[w for w in found_warnings if w.startswith(CREATED_CUSTOMER)],
            warnings=[w for w in found_warnings if not w.startswith(CREATED_CUSTOMER)],
        )
        if number is None:
            customer.warnings.append(
                f"no customer with e-mail {mask_contact(order.email)} yet: a real push creates "
                f"one first and uses its {self.customer_key} instead of {PLACEHOLDER_CUSTOMER!r}"
            )
        return customer

    def create(self, document: PreparedDocument, guard: SendGuard | None = None) -> CreatedDocument:
        """One deep-insert POST (see :meth:`BusinessCentralClient.create_sales_order`)."""
        with self._creating(document):
            raw = self.client.create_sales_order(document.payload, guard)
        return _created(raw, document.external_number)

    @contextmanager
    def _creating(self, document: PreparedDocument) -> Iterator[None]:
        """Around a create: never of a dry-run document; a refusal over an item forces a full
        item refresh next run (the mirror may list an item Dynamics no longer has)."""
        if document.placeholder_customer:
            raise ValueError("a dry-run document cannot be created")
        try:
            yield
        except DocumentRefused as exc:
            if self._refused_over_item(exc):
                self.store.set_value(self.items_full_refresh_key, "")
            raise

    def _refused_over_item(self, exc: DocumentRefused) -> bool:
        return _about_missing_item(exc)

    def find(self, external_number: str) -> CreatedDocument | None:
        """The sales order with this ``externalDocumentNumber`` (the first if there are more)."""
        found = self.client.find_sales_orders(external_number)
        if not found:
            return None
        found.sort(key=lambda entry: str(entry.get("number", "")))
        others = tuple(str(entry.get("number", "")) for entry in found[1:])
        return _created(found[0], external_number, others)

    def find_number(self, number: str) -> CreatedDocument | None:
        """The sales order with this number (Business Central stores numbers upper-case)."""
        found = self.client.find_sales_orders_by_number(number.strip().upper())
        if not found:
            return None
        return _created(found[0], str(found[0].get("externalDocumentNumber") or ""))

    def documents_with_prefix(self, prefix: str) -> list[CreatedDocument]:
        """Sales orders whose ``externalDocumentNumber`` starts with ``prefix`` (upper-case)."""
        rows = self.client.find_sales_orders_with_prefix(prefix.strip().upper())
        return [_created(row, str(row.get("externalDocumentNumber") or "")) for row in rows]

    def find_traces(self, refs: Sequence[DocumentRef]) -> dict[DocumentRef, DocumentTrace]:
        """The sales order of each order (by its number, else by key), else the invoices or
        shipments posted from it: a fully invoiced sales order is deleted, what was posted
        stays (docs/systems.md B4). Batched lookups, one field each; none per order."""
        traces: dict[DocumentRef, DocumentTrace] = {}
        for name, value in (
            ("number", postings.ref_number),
            ("externalDocumentNumber", postings.ref_key),
        ):
            wanted = postings.refs_by(refs, value, skip=traces)
            rows = self.client.find_where("salesOrders", name, list(wanted), SALES_ORDER_FIELDS)
            for row in sorted(rows, key=lambda r: str(r.get("number", ""))):
                for ref in wanted.get(str(row.get(name) or "").upper(), []):
                    key = str(row.get("externalDocumentNumber") or "")
                    traces.setdefault(ref, DocumentTrace(_created(row, key)))
        posted = postings.posted_from(self.client, [ref for ref in refs if ref not in traces])
        for ref in refs:
            traces.setdefault(ref, DocumentTrace(posted=posted.get(ref, ())))
        return traces

    def posted_keys(self, prefix: str, since: datetime) -> set[str]:
        """Keys with a posted invoice or shipment changed after ``since``: Business Central
        deletes a fully invoiced sales order, what was posted stays (docs/systems.md B4)."""
        return postings.posted_keys(self.client, prefix, since)

    def find_many(self, external_numbers: Sequence[str]) -> dict[str, CreatedDocument]:
        """Sales orders of these external numbers (``or`` filters of ~50 keys per request)."""
        grouped: dict[str, list[dict[str, Any]]] = {}
        rows = self.client.find_sales_orders_by_external_numbers(external_numbers)
        for row in sorted(rows, key=lambda entry: str(entry.get("number", ""))):
            key = str(row.get("externalDocumentNumber") or "")
            if key:
                grouped.setdefault(key, []).append(row)
        return {
            key: _created(rows[0], key, tuple(str(r.get("number", "")) for r in rows[1:]))
            for key, rows in grouped.items()
        }

    # -- credit memos (refunds) -----------------------------------------------------------------
    def credit_memo_number(self, order: Order, refund_id: int) -> str:
        """``orders.document_prefix`` + shop number + ``-R`` + refund id."""
        return credit_memo_number(self.orders.document_prefix, order.number, refund_id)

    def prepare_credit_memo(
        self,
        refund: Refund,
        order: Order,
        item_numbers: Mapping[int, str | None],
        *,
        sales_order_id: str | None,
        key: str,
    ) -> PreparedDocument:
        """The credit memo body, for the sales order's customer in the card's price basis.

        The customer is the pushed sales order's; once Dynamics no longer shows that order
        (invoiced and deleted), the one ``orders.customer_mode`` gives. ``pricesIncludeTax`` is
        read-only on credit memos: it is taken from the customer's credit memos, and is false
        (Business Central's default for a customer card) when the customer has none yet.
        """
        customer = self.client.sales_order_customer(sales_order_id) if sales_order_id else None
        if customer is None:
            customer = self._known_customer(order)
        basis = self.client.credit_memo_prices_include_tax(customer)
        draft = build_credit_memo(
            refund,
            order,
            item_numbers=item_numbers,
            customer_number=customer,
            prices_include_tax=bool(basis),
            orders=self.orders,
            account=self.settings.refunds.account,
            external_number=key,
        )
        return PreparedDocument(
            woo_id=order.woo_id,
            external_number=key,
            payload=draft.payload,
            warnings=draft.warnings,
        )

    def _known_customer(self, order: Order) -> str:
        if self.orders.customer_mode == "fixed":
            return self.orders.customer_number.strip().upper()
        key = order.email.lower()
        cached = self.store.get_customer(key) if key else None
        found = cached or (self._lookup_customer(order.email) if key else None)
        if found is None:
            raise OrderDataError(
                "the customer of the order is not found in Dynamics (no sales order, no "
                f"customer with e-mail {mask_contact(order.email)})"
            )
        return found.number

    def create_credit_memo(
        self, document: PreparedDocument, guard: SendGuard | None = None
    ) -> CreatedDocument:
        """One deep-insert ``POST salesCreditMemos``."""
        raw = self.client.create_document("salesCreditMemos", document.payload, guard)
        return _credit_memo(raw, document.external_number)

    def find_credit_memo(self, external_number: str) -> CreatedDocument | None:
        """The credit memo with this ``externalDocumentNumber`` (drafts and posted ones)."""
        found = self.client.find_documents("salesCreditMemos", external_number)
        return _credit_memo(found[0], external_number) if found else None

    def find_credit_memos(self, external_numbers: Sequence[str]) -> dict[str, CreatedDocument]:
        """Credit memos by ``externalDocumentNumber``, one request per 50 keys."""
        rows = self.client.find_documents_by_external_numbers("salesCreditMemos", external_numbers)
        found: dict[str, CreatedDocument] = {}
        for row in rows:
            key = str(row.get("externalDocumentNumber") or "")
            found.setdefault(key, _credit_memo(row, key))
        return found

    def post_credit_memo(self, document_id: str) -> CreatedDocument:
        """``Microsoft.NAV.post``, then the credit memo read again for its posted number."""
        self.client.post_credit_memo(document_id)
        raw = self.client.get_credit_memo(document_id)
        return _credit_memo(raw, str(raw.get("externalDocumentNumber") or ""))

    def prefetch_customers(self, addresses: Iterable[str], *, dry_run: bool = False) -> int:
        """Look up, in batches, the customers of e-mail addresses the store does not know yet.

        Called by push with the e-mail addresses of each window of orders about to be pushed,
        so a new customer costs one create and no lookup of its own (one batched lookup per ~30
        addresses instead of one per address). Found customers go into the store (not in a dry
        run); addresses without a customer are remembered (the last :data:`RECENT_CUSTOMERS`),
        and :meth:`prepare` creates their customer without looking again. Returns the number
        of requests made. A lookup that fails is logged and left to the per-order lookups.
        """
        if self.orders.customer_mode != "per-email":
            return 0
        wanted = self._unknown_addresses(addresses)
        if not wanted:
            return 0
        before = self.client.request_count
        try:
            rows = self.client.find_customers_by_emails(
                sorted({variant for variants in wanted.values() for variant in variants})
            )
        except DynamicsAuthenticationError:
            raise
        except DynamicsError as exc:
            log.warning("customers not looked up in advance (%s); looked up per order", exc)
            return self.client.request_count - before
        best = _lowest_number_per_email(rows, wanted)
        for key in wanted:
            match = best.get(key)
            if match is None:
                self._absent.put(key, True)
                continue
            customer = CachedCustomer(
                email=key, number=str(match["number"]), id=str(match.get("id", ""))
            )
            self._prefetched.put(key, customer)
            if not dry_run:
                self.store.put_customer(customer)
        return self.client.request_count - before

    def _unknown_addresses(self, addresses: Iterable[str]) -> dict[str, set[str]]:
        """E-mail key → the spellings to look up, for addresses neither this run nor the store
        knows: as given and lower-case (Business Central compares e-mails case-sensitively)."""
        wanted: dict[str, set[str]] = {}
        for address in addresses:
            address = address.strip()
            key = address.lower()
            if not address or self._prefetched.get(key) is not None or self._absent.get(key):
                continue
            if key not in wanted and self.store.get_customer(key) is not None:
                continue
            wanted.setdefault(key, set()).update({address, key})
        return wanted

    @contextmanager
    def _customer_lock(self, key: str) -> Iterator[None]:
        """Hold the lock of this e-mail key; the last thread out drops it."""
        with self._customer_locks_guard:
            entry = self._customer_locks.setdefault(key, _KeyLock())
            entry.users += 1
        try:
            with entry.lock:
                yield
        finally:
            with self._customer_locks_guard:
                entry.users -= 1
                if not entry.users:
                    del self._customer_locks[key]

    def _customer_for(
        self, order: Order, dry_run: bool
    ) -> tuple[str | None, dict[str, Any] | None, list[str]]:
        """``(number or None in a dry run, body a dry run would create, warnings)``."""
        address = order.email
        if not address:
            raise OrderDataError(
                'the order has no e-mail address, which customer_mode = "per-email" needs'
            )
        key = address.lower()
        # One lock per address: two orders of a new customer in parallel create it once.
        with self._customer_lock(key):
            cached = self.store.get_customer(key) or self._prefetched.get(key)
            if cached is not None:
                return cached.number, None, []
            guard = _CustomerSend(self.store, key, self.clock)
            # Known absent from this run's batched lookup: no lookup of its own, unless a create
            # sent earlier may have committed since that lookup.
            absent = bool(self._absent.get(key)) and not guard.previous
            found = None if absent else self._lookup_customer(address)
            if found is not None:
                if not dry_run:
                    self.store.put_customer(found)
                    guard.clear()
                return found.number, None, []
            draft = self._customer_draft(order)
            if dry_run:
                return None, draft.payload, list(draft.warnings)
            guard.check_request_limit(
                self.settings.dynamics.request_limit_seconds, mask_contact(address)
            )
            try:
                raw = self.client.create_customer(draft.payload, guard)
            except DocumentRefused:
                guard.clear()  # answered and refused: it did not run, nothing is in doubt
                raise
            except DocumentInDoubt as exc:
                self._absent.pop(key)  # it may exist now: later orders look it up again
                found = self._lookup_customer(address)
                if found is None:
                    raise WaitingForDynamics(
                        f"creating the customer for {mask_contact(address)} got no answer ({exc}); "
                        "it is looked up again before the next try, and created again only "
                        "after dynamics.request_limit_seconds"
                    ) from None
                self.store.put_customer(found)
                guard.clear()
                return found.number, None, list(draft.warnings)
            customer = CachedCustomer(email=key, number=str(raw["number"]), id=str(raw["id"]))
            self.store.put_customer(customer)
            guard.clear()
            log.info("created customer %s for %s", customer.number, mask_contact(address))
            return (
                customer.number,
                None,
                [
                    f"{CREATED_CUSTOMER} {customer.number} for {mask_contact(address)}",
                    *draft.warnings,
                ],
            )

    def _customer_draft(self, order: Order) -> Draft:
        """The body of the customer create for the order's buyer."""
        return build_customer(order)

    def _lookup_customer(self, address: str) -> CachedCustomer | None:
        """An existing customer with this e-mail (as given, then lower-case); lowest number."""
        candidates = self.client.find_customers_by_email(address)
        if not candidates and address.lower() != address:
            candidates = self.client.find_customers_by_email(address.lower())
        if not candidates:
            return None
        best = min(candidates, key=lambda entry: str(entry.get("number", "")))
        return CachedCustomer(
            email=address.lower(), number=str(best["number"]), id=str(best.get("id", ""))
        )


class _KeyLock:
    """The lock of one e-mail key and how many threads hold or wait for it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0


V = TypeVar("V")


class _Recent(Generic[V]):
    """The last ``size`` keys put, with their values; the oldest is dropped first (thread-safe)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._values: dict[str, V] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> V | None:
        """The value of ``key``, or None."""
        with self._lock:
            return self._values.get(key)

    def put(self, key: str, value: V) -> None:
        """Remember ``key`` as the newest; forget the oldest beyond ``size``."""
        with self._lock:
            self._values.pop(key, None)
            self._values[key] = value
            while len(self._values) > self._size:
                del self._values[next(iter(self._values))]

    def pop(self, key: str) -> None:
        """Forget ``key``."""
        with self._lock:
            self._values.pop(key, None)


class _CustomerSend:
    """The send time of a customer create, kept in the store until its outcome is known.

    A create whose answer was lost and whose customer is not found is sent again only once that
    time is older than ``dynamics.request_limit_seconds`` (docs/architecture.md, "Exactly once").
    The store key is a hash, not the e-mail address.
    """

    def __init__(self, store: KeyValues, email_key: str, clock: Callable[[], datetime]) -> None:
        digest = hashlib.sha256(email_key.encode("utf-8")).hexdigest()[:32]
        self.key = f"{CUSTOMER_SENT_PREFIX}{digest}"
        self.store = store
        self.clock = clock
        self.previous = store.get_value(self.key) or ""
        self.stamped = False

    def check_request_limit(self, limit_seconds: float, who: str) -> None:
        """Raise :class:`WaitingForDynamics` while an unanswered create may still be processed."""
        sent = _parse_time(self.previous)
        if sent is None:
            return
        again = sent + timedelta(seconds=limit_seconds)
        if again > self.clock():
            raise WaitingForDynamics(
                f"the customer for {who} was sent to Dynamics at {sent.isoformat()} without an "
                f"answer and is not found yet; created again from {again.isoformat()} "
                "(dynamics.request_limit_seconds)"
            )

    def before_slot(self) -> None:
        """Nothing yet: the stamp is written inside the slot (a customer create is rare)."""

    def before_send(self) -> None:
        """Stamp the send before the request leaves."""
        self.store.set_value(self.key, self.clock().isoformat())
        self.stamped = True

    def not_sent(self) -> None:
        """The create never ran: put the earlier stamp back."""
        self.store.set_value(self.key, self.previous)

    def clear(self) -> None:
        """The customer exists (or the create was refused): nothing is in doubt any more."""
        if self.previous or self.stamped:
            self.store.set_value(self.key, "")


class ItemOverlay:
    """Freshly fetched items over the stored mirror, without writing them (dry runs)."""

    def __init__(self, store: DynamicsMirror, fetched: list[CachedItem], *, replace: bool) -> None:
        self._store = store
        self._fetched = {item.number: item for item in fetched}
        self._replace = replace  # a full fetch: what it did not return does not exist

    def items_by_number(self, numbers: list[str]) -> dict[str, CachedItem]:
        """The fetched item where there is one, else the mirror's (unless the fetch was full)."""
        found = {} if self._replace else self._store.items_by_number(numbers)
        found.update({n: self._fetched[n] for n in numbers if n in self._fetched})
        return found


def _cached_item(entry: dict[str, Any]) -> CachedItem:
    return CachedItem(
        number=str(entry.get("number", "")).upper(),
        id=str(entry.get("id", "")),
        display_name=str(entry.get("displayName") or ""),
        blocked=entry.get("blocked") is True,
        last_modified=str(entry.get("lastModifiedDateTime") or ""),
    )


def _created(
    raw: dict[str, Any], external_number: str, others: tuple[str, ...] = ()
) -> CreatedDocument:
    total = raw.get("totalAmountIncludingTax")
    amount: Decimal | None = None
    if total is not None and not isinstance(total, bool):
        try:
            amount = Decimal(str(total))
        except InvalidOperation:
            amount = None
    return CreatedDocument(
        id=str(raw.get("id", "")),
        number=str(raw.get("number", "")),
        external_number=str(raw.get("externalDocumentNumber") or external_number),
        total_including_tax=amount,
        others=others,
        status=str(raw.get("status") or ""),
    )


def _credit_memo(raw: dict[str, Any], external_number: str) -> CreatedDocument:
    """A credit memo, with whether it is surely a draft and whether it waits for an approval.

    ``Open`` is both a released draft and a posted memo not yet paid (docs/systems.md B6): it
    is not called a draft."""
    status = postings.document_status(raw)
    return replace(
        _created(raw, external_number),
        status=status,
        draft=status in postings.NOT_POSTED,
        awaiting_approval=status == "In Review",
    )


def _about_missing_item(exc: DocumentRefused) -> bool:
    text = str(exc).lower()
    return exc.code == "Internal_RecordNotFound" or (
        "item" in text
        and any(word in text for word in ("not exist", "cannot be found", "not found"))
    )


def _parse_time(text: str) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _lowest_number_per_email(
    rows: Iterable[dict[str, Any]], wanted: Mapping[str, object]
) -> dict[str, dict[str, Any]]:
    """The customer with the lowest number for each wanted e-mail key (the oldest card)."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = str(row.get("email") or "").strip().lower()
        if key in wanted and (
            key not in best or str(row.get("number", "")) < str(best[key].get("number", ""))
        ):
            best[key] = row
    return best
