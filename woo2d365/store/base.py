"""The state store interface: orders, events, runs, SKU map, cursor, run lock and ERP caches.

Both backends (SQLite and MySQL/MariaDB) implement it with the same code and SQL in
:mod:`woo2d365.store.sql`; only the dialect differs. Every method is one transaction (or part of
the one of an open :meth:`StateStore.batch`) and safe to call from several threads of one process.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from woo2d365.model import OrderState

if TYPE_CHECKING:
    from woo2d365.store.refunds import RefundRecord

UpsertOutcome = Literal["added", "updated", "unchanged"]


@dataclass(frozen=True)
class OrderRecord:
    """One order as the store knows it."""

    woo_id: int
    number: str
    state: OrderState
    shop_status: str
    shop_modified_at: datetime
    reason: str | None
    attempts: int
    d365_id: str | None
    d365_number: str | None
    external_number: str | None
    currency: str
    total: str
    claimed_by: str | None
    claimed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    pushed_at: datetime | None
    write_back_pending: bool
    claim_token: str | None = None  # unique to the current claim (fencing)
    last_sent_at: datetime | None = None  # when a create for this order was last sent
    changed_at: datetime | None = None  # changed in the shop after its push, not acknowledged
    since: datetime | None = None  # when it entered its current state (``updated_at`` moves on)
    raw: dict[str, Any] | None = None  # the shop JSON, loaded only when asked for


@dataclass(frozen=True)
class PulledOrder:
    """What pull hands to the store for one shop order."""

    woo_id: int
    number: str
    shop_status: str
    shop_modified_at: datetime
    currency: str
    total: str
    raw: dict[str, Any]


@dataclass(frozen=True)
class Event:
    """One step recorded for an order and/or a run."""

    at: datetime
    step: str
    level: str  # info | warning | error
    message: str
    woo_id: int | None = None
    run_id: int | None = None


@dataclass(frozen=True)
class RunRecord:
    """One run of a command."""

    id: int
    command: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None  # ok | attention | unreachable | error | locked
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SkuMapping:
    """A shop SKU linked to a Dynamics item number."""

    sku: str
    item_number: str
    note: str
    updated_by: str
    updated_at: datetime


@dataclass(frozen=True)
class CachedItem:
    """A Dynamics item as mirrored in the store."""

    number: str
    id: str
    display_name: str
    blocked: bool
    last_modified: str = ""  # Dynamics' lastModifiedDateTime, verbatim
    blocked_reason: str = ""  # why it is blocked, when Dynamics says more than "blocked"


@dataclass(frozen=True)
class CachedCustomer:
    """A Dynamics customer found or created for an e-mail address."""

    email: str  # lower-cased key
    number: str
    id: str


@dataclass(frozen=True)
class AlertRecord:
    """An alert condition as last seen: for de-duplication and recovery messages."""

    key: str  # e.g. "held:1234", "unreachable:shop"
    kind: str  # held | failed | unreachable | changed | mismatch | ...
    message: str
    active: bool
    first_seen: datetime
    last_sent: datetime | None


# -- stock (woo2d365 stock) ---------------------------------------------------------------------
@dataclass(frozen=True)
class StockTarget:
    """A shop product or variation with a SKU, as the shop last reported it.

    ``variation_id`` is 0 for a product; a variation's parent is ``product_id``.
    ``manage_stock`` is ``"true"``, ``"false"`` or ``"parent"`` (a variation whose parent keeps
    its stock); ``date_modified`` is the shop's ``date_modified_gmt``, verbatim.
    """

    product_id: int
    variation_id: int
    sku: str
    manage_stock: str
    stock_quantity: int | None
    date_modified: str = ""

    @property
    def key(self) -> tuple[int, int]:
        """``(product_id, variation_id)``."""
        return self.product_id, self.variation_id


# -- end stock ----------------------------------------------------------------------------------


# -- shipments and invoices (woo2d365 shipments) ---------------------------------------------
@dataclass(frozen=True)
class ShipmentReport:
    """A posted Dynamics shipment of a pushed order and what the shop was told about it.

    ``note_state``: ``pending`` (not reported), ``claimed`` (the note was sent, its answer not
    recorded: look in the shop's notes before sending again), ``noted``, ``skipped`` (never
    reported: the order was cancelled in the shop). ``tracking_noted`` is the tracking number the
    shop has been told, ``tracking_claim`` one whose note was sent without a recorded answer.
    """

    shipment_id: str
    woo_id: int
    number: str
    posted_on: str  # YYYY-MM-DD
    lines: dict[int, str]  # line sequence -> quantity shipped by this shipment (decimal text)
    agent: str = ""
    tracking: str = ""
    note_state: str = "pending"
    tracking_noted: str = ""
    tracking_claim: str = ""
    modified: str = ""  # Dynamics' lastModifiedDateTime, verbatim


@dataclass(frozen=True)
class InvoiceRecord:
    """A posted Dynamics invoice of a pushed order, as last read, and what the shop was told."""

    invoice_id: str
    woo_id: int
    number: str
    status: str  # Open, Paid, Canceled, Corrective...
    currency: str
    total_including_tax: str
    total_excluding_tax: str
    remaining: str
    posted_on: str
    note_state: str = "pending"  # pending | claimed | noted
    meta_status: str = ""  # the status the shop's meta entry shows ('' none yet)
    modified: str = ""


@dataclass(frozen=True)
class Fulfilment:
    """How far a pushed order is shipped and whether its shop status was set.

    ``shipped``: ``partly`` or ``shipped``; ``complete_state``: ``""`` (not yet), ``claimed``
    (the status write was sent, its answer not recorded), ``done`` or ``skipped``.
    """

    woo_id: int
    shipped: str
    complete_state: str = ""
    status_set: str = ""


# -- end of shipments and invoices -------------------------------------------------------------


class StateStore(Protocol):
    """What the pipeline and the CLI need from persistent state."""

    # -- lifecycle -------------------------------------------------------------------------
    def migrate(self) -> int:
        """Apply pending migrations; return the schema version."""
        ...

    def schema_version(self) -> int:
        """The version of the applied schema (0 for an empty database)."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...

    def batch(self) -> AbstractContextManager[None]:
        """A block whose store calls share one transaction (committed at its end)."""
        ...

    # -- orders ----------------------------------------------------------------------------
    def save_pulled_order(self, order: PulledOrder) -> OrderRecord | None:
        """Insert a new order (state ``new``) or update the raw copy of a known one.

        Returns the record *before* the change for a known order, ``None`` for a new one.
        The caller decides the state change (see :meth:`set_state`).
        """
        ...

    def seen(self, woo_id: int, shop_modified_at: datetime) -> bool:
        """True when this exact version (id and modification time) is already stored."""
        ...

    def get_order(self, woo_id: int, *, with_raw: bool = False) -> OrderRecord | None:
        """One order, optionally with its shop JSON."""
        ...

    def list_orders(
        self,
        *,
        states: list[OrderState] | None = None,
        limit: int | None = None,
        with_raw: bool = False,
        woo_ids: list[int] | None = None,
        number: str | None = None,
        email: str | None = None,
        updated_since: datetime | None = None,
    ) -> list[OrderRecord]:
        """Orders, most recently updated first; ``number``, ``email`` (billing, any case) and
        ``updated_since`` narrow the list."""
        ...

    def order_ids_in_state(self, state: OrderState, *, limit: int | None = None) -> list[int]:
        """Ids of orders in ``state``, oldest update first (work queue order)."""
        ...

    def order_ids_after(self, states: list[OrderState], after: int | None, limit: int) -> list[int]:
        """Up to ``limit`` ids of orders in ``states`` greater than ``after``, ascending: one page
        of a run that reads its work from the store a chunk at a time."""
        ...

    def counts(self) -> dict[str, int]:
        """Number of orders per state (every state present, zero included)."""
        ...

    def oldest_waiting(self) -> OrderRecord | None:
        """The order in ``new``, ``ready``, ``held`` or ``failed`` waiting the longest."""
        ...

    def orders_waiting_since(
        self, states: list[OrderState], before: datetime, *, limit: int = 100
    ) -> list[OrderRecord]:
        """Orders that entered one of ``states`` before ``before``, longest waiting first."""
        ...

    def oldest_in_state(self, state: OrderState) -> OrderRecord | None:
        """The order that has been in ``state`` the longest."""
        ...

    def set_state(
        self,
        woo_id: int,
        state: OrderState,
        *,
        reason: str | None = None,
        expect: list[OrderState] | None = None,
        reset_attempts: bool = False,
        token: str | None = None,
        uncount_attempt: bool = False,
    ) -> bool:
        """Move an order to ``state``; with ``expect`` only from those states, with ``token`` only
        while that claim holds it; ``uncount_attempt`` takes back the claim's attempt. True if
        changed."""
        ...

    def claim(
        self, woo_id: int, claimer: str, now: datetime, *, token: str, key: str | None
    ) -> bool:
        """``ready`` → ``pushing`` under claim ``token``, counting an attempt; stores ``key`` as
        the idempotency key unless the order has one. True if it owns it now."""
        ...

    def claim_in_doubt(
        self, woo_id: int, claimer: str, now: datetime, older_than: datetime, *, token: str
    ) -> bool:
        """Take over a ``pushing`` order whose claim is older than ``older_than``."""
        ...

    def confirm_claim(
        self, woo_id: int, token: str, now: datetime, *, sending: bool = False
    ) -> bool:
        """Renew claim ``token``; with ``sending`` record the send time. False: claim lost."""
        ...

    def set_last_sent(self, woo_id: int, token: str, sent_at: datetime | None) -> bool:
        """Put back the time of the last send (a create that certainly never ran)."""
        ...

    def renew_claims(self, claims: list[tuple[int, str]], now: datetime) -> set[str]:
        """Renew these ``(woo_id, token)`` claims; the tokens that still hold their order."""
        ...

    def in_doubt_ids(self, older_than: datetime) -> list[int]:
        """Ids of ``pushing`` orders claimed before ``older_than``."""
        ...

    def mark_pushed(
        self,
        woo_id: int,
        *,
        d365_id: str,
        d365_number: str,
        external_number: str,
        now: datetime,
        token: str | None = None,
        write_back: bool = True,
        expect: list[OrderState] | None = None,
    ) -> bool:
        """Record the Dynamics document of an order (state ``pushed``); with ``token`` only while
        that claim holds it, with ``expect`` only from those states. True if recorded."""
        ...

    def forget_document(self, woo_id: int, reason: str) -> bool:
        """A ``pushed`` order whose document no longer exists: ``ready`` again, key kept."""
        ...

    def reopen(self) -> StateStore:
        """The same database through a connection of its own (for a heartbeat thread)."""
        ...

    def set_write_back_done(self, woo_id: int) -> None:
        """The shop has the note and meta for this order."""
        ...

    def mark_changed_after_push(self, woo_id: int, now: datetime) -> None:
        """The shop order changed after it was pushed: it needs a person until acknowledged."""
        ...

    def acknowledge_change(self, woo_id: int) -> bool:
        """A person saw the change after push; True if there was one to acknowledge."""
        ...

    def changed_after_push_ids(self) -> list[int]:
        """Orders changed in the shop after their push and not acknowledged yet."""
        ...

    def set_write_back_pending(self, woo_id: int) -> bool:
        """A pushed order's write-back is to be done (again) by the next push."""
        ...

    def write_back_pending_ids(self, *, limit: int | None = None) -> list[int]:
        """Pushed orders whose write-back to the shop is still to do."""
        ...

    # -- events and runs -------------------------------------------------------------------
    def add_event(
        self,
        step: str,
        message: str,
        *,
        level: str = "info",
        woo_id: int | None = None,
        run_id: int | None = None,
    ) -> None:
        """Record one event."""
        ...

    def events(self, woo_id: int) -> list[Event]:
        """Events of one order, oldest first."""
        ...

    def run_events(self, run_id: int, *, levels: Sequence[str] | None = None) -> list[Event]:
        """Events of one run (only of ``levels`` when given), oldest first."""
        ...

    def start_run(self, command: str, now: datetime, worker: str = "") -> int:
        """Open a run record; return its id."""
        ...

    def finish_run(self, run_id: int, outcome: str, counts: dict[str, int], now: datetime) -> None:
        """Close a run record with its outcome and counts."""
        ...

    def last_run(self, command: str = "sync", *, outcome: str | None = None) -> RunRecord | None:
        """The latest run of ``command`` (optionally only with ``outcome``)."""
        ...

    # -- SKU map ---------------------------------------------------------------------------
    def map_sku(
        self, sku: str, item_number: str, note: str, by: str, now: datetime
    ) -> UpsertOutcome:
        """Add or update one mapping."""
        ...

    def map_skus(
        self, rows: list[tuple[str, str, str]], by: str, now: datetime
    ) -> list[UpsertOutcome]:
        """Add or update many mappings (sku, item_number, note) in one transaction."""
        ...

    def unmap_sku(self, sku: str) -> bool:
        """Remove a mapping; True if it existed."""
        ...

    def sku_mapping(self, sku: str) -> SkuMapping | None:
        """One mapping."""
        ...

    def sku_mappings(self, skus: list[str] | None = None) -> list[SkuMapping]:
        """All mappings (or those of ``skus``), ordered by SKU."""
        ...

    def set_held_skus(self, woo_id: int, skus: list[str]) -> None:
        """Replace the list of unmapped SKUs that hold an order."""
        ...

    def unmapped_skus(self) -> list[tuple[str, int]]:
        """SKUs on held orders without a mapping, with the number of orders each holds."""
        ...

    # -- key/value (cursor etc.) -----------------------------------------------------------
    def get_value(self, key: str) -> str | None:
        """A stored value (e.g. ``pull.cursor``)."""
        ...

    def set_value(self, key: str, value: str) -> None:
        """Store a value."""
        ...

    # -- run lock --------------------------------------------------------------------------
    def acquire_lock(self, name: str, holder: str, now: datetime, ttl_seconds: float) -> bool:
        """Take the lease ``name`` if free or expired; True if ``holder`` now holds it."""
        ...

    def renew_lock(self, name: str, holder: str, now: datetime, ttl_seconds: float) -> bool:
        """Extend a held lease; False if it was lost."""
        ...

    def release_lock(self, name: str, holder: str) -> None:
        """Give a lease back."""
        ...

    def lock_holder(self, name: str) -> str | None:
        """Who holds the lease ``name`` (expired or not), or None."""
        ...

    # -- Dynamics caches -------------------------------------------------------------------
    def upsert_items(self, items: list[CachedItem]) -> None:
        """Store or refresh mirrored items."""
        ...

    def replace_items(self, items: list[CachedItem]) -> None:
        """Replace the whole item mirror (a full refresh catches deletions)."""
        ...

    def items_by_number(self, numbers: list[str]) -> dict[str, CachedItem]:
        """Mirrored items for these numbers."""
        ...

    def item_count(self) -> int:
        """Number of mirrored items."""
        ...

    def get_customer(self, email: str) -> CachedCustomer | None:
        """The cached customer for an e-mail address (case-insensitive)."""
        ...

    def put_customer(self, customer: CachedCustomer) -> None:
        """Cache a customer for an e-mail address."""
        ...

    # -- alerts ----------------------------------------------------------------------------
    def alert_records(self) -> list[AlertRecord]:
        """Every remembered alert condition."""
        ...

    def save_alert_records(self, upsert: list[AlertRecord], delete: list[str]) -> None:
        """Store changed alert conditions and forget others, in one transaction."""
        ...

    # -- retention and monitoring ---------------------------------------------------------
    def last_successful_run(self, command: str = "sync") -> RunRecord | None:
        """The latest run of ``command`` that reached both systems (outcome ok or attention)."""
        ...

    def count_events_before(self, before: datetime) -> int:
        """Number of events recorded before ``before``."""
        ...

    def delete_events_before(self, before: datetime, *, batch: int = 5000) -> int:
        """Delete events recorded before ``before`` in batches; return how many."""
        ...

    def count_orders_updated_between(
        self, state: OrderState, start: datetime | None, end: datetime
    ) -> int:
        """Orders in ``state`` last updated in ``[start, end)`` (``start`` None: no lower bound)."""
        ...

    def order_raws_updated_between(
        self,
        state: OrderState,
        start: datetime | None,
        end: datetime,
        *,
        after: tuple[datetime, int] | None = None,
        limit: int = 500,
    ) -> list[tuple[int, datetime, dict[str, Any]]]:
        """``(woo_id, updated_at, shop JSON)`` of orders in ``state`` updated in ``[start, end)``,
        oldest first, continuing after the ``(updated_at, woo_id)`` key ``after``."""
        ...

    def replace_raws(self, rows: list[tuple[int, dict[str, Any], datetime]]) -> int:
        """Store new shop JSON ``(woo_id, raw, updated_at)`` for orders not updated since."""
        ...

    def count_customers_before(self, before: datetime) -> int:
        """Cached customers (e-mail → number) stored before ``before``."""
        ...

    def delete_customers_before(self, before: datetime) -> int:
        """Forget cached customers stored before ``before``; return how many."""
        ...

    def count_in_state(self, state: OrderState) -> int:
        """Orders in ``state``."""
        ...

    def count_pushed_until(self, moment: datetime) -> int:
        """Pushed orders with ``pushed_at`` at or before ``moment``."""
        ...

    def count_pushed_between(self, after: datetime, until: datetime | None = None) -> int:
        """Pushed orders with ``after < pushed_at <= until`` (no upper bound when None)."""
        ...

    # -- stock (woo2d365 stock; store/stock.py) -----------------------------------------------
    def stock_targets(self, skus: list[str] | None = None) -> list[StockTarget]:
        """Shop products and variations by SKU (all, or those of ``skus``)."""
        ...

    def put_stock_targets(
        self, targets: list[StockTarget], *, product_ids: list[int], everything: bool = False
    ) -> None:
        """Replace what is known of these products (their variations included) with ``targets``;
        ``everything``: replace the whole map (a full listing of the shop)."""
        ...

    def update_stock_targets(self, targets: list[StockTarget]) -> None:
        """Store what the shop answered for these products and variations."""
        ...

    def forget_stock_target(self, product_id: int, variation_id: int) -> None:
        """The shop no longer has this product or variation."""
        ...

    def stock_written(self, skus: list[str] | None = None) -> dict[str, int]:
        """The quantity last written per SKU."""
        ...

    def record_stock_written(self, quantities: dict[str, int], at: datetime) -> None:
        """Remember the quantities just written."""
        ...

    def pushed_order_raws(self, shop_statuses: list[str]) -> list[dict[str, Any]]:
        """The shop JSON of pushed orders whose shop status is one of ``shop_statuses``."""
        ...

    # -- end stock ----------------------------------------------------------------------------

    # -- shipments and invoices (woo2d365 shipments; store/shipments.py) -------------------
    def pushed_orders_matching(
        self, *, external_numbers: list[str], d365_numbers: list[str], d365_ids: list[str]
    ) -> list[OrderRecord]:
        """Pushed orders whose key, Dynamics number or Dynamics id is one of these."""
        ...

    def observe_shipments(self, reports: list[ShipmentReport]) -> None:
        """Record shipments as read: new ones as given, known ones get the read fields
        (lines, agent, tracking, modified) and keep what the shop was told."""
        ...

    def shipment_reports(
        self, woo_ids: list[int] | None = None, *, open_only: bool = False
    ) -> list[ShipmentReport]:
        """Recorded shipments (of these orders), by number; ``open_only``: those with a note,
        a tracking note or their order's status change still to write."""
        ...

    def set_shipment_note_state(self, shipment_id: str, state: str, *, expect: list[str]) -> bool:
        """Move a shipment's note state, only from ``expect``; True if moved."""
        ...

    def set_tracking_note(self, shipment_id: str, *, claim: str, noted: str | None = None) -> None:
        """Record a tracking note claimed (``claim``) or written (``noted``, claim cleared)."""
        ...

    def observe_invoices(self, records: list[InvoiceRecord]) -> None:
        """Record invoices as read: new ones as given, known ones get status, amounts, modified."""
        ...

    def invoice_records(
        self, woo_ids: list[int] | None = None, *, open_only: bool = False
    ) -> list[InvoiceRecord]:
        """Recorded invoices (of these orders), by number; ``open_only``: with a note or a meta
        entry still to write."""
        ...

    def set_invoice_note_state(self, invoice_id: str, state: str, *, expect: list[str]) -> bool:
        """Move an invoice's note state, only from ``expect``; True if moved."""
        ...

    def set_invoice_meta_status(self, invoice_id: str, status: str) -> None:
        """The shop's meta entry now shows this status."""
        ...

    def fulfilments(self, woo_ids: list[int]) -> dict[int, Fulfilment]:
        """How far these orders are shipped (orders without a shipment are absent)."""
        ...

    def save_fulfilment(
        self, record: Fulfilment, *, expect_complete: list[str] | None = None
    ) -> bool:
        """Store an order's fulfilment; with ``expect_complete`` only while its complete state
        is one of those (absent counts as ``""``). True if stored."""
        ...

    def fulfilment_counts(self) -> dict[str, int]:
        """``shipped``, ``partly_shipped`` and ``invoiced`` pushed orders."""
        ...

    def unshipped_pushed_before(
        self, moment: datetime, *, limit: int = 20
    ) -> tuple[int, list[int]]:
        """Pushed orders pushed before ``moment`` with nothing shipped: how many, and some ids."""
        ...

    # -- refunds (woo2d365/store/refunds.py) ----------------------------------------------
    def save_refund(
        self, refund_id: int, woo_id: int, amount: str, shop_created_at: datetime, raw: Any
    ) -> bool:
        """Record a shop refund as ``new``; True if it was not known."""
        ...

    def get_refund(self, refund_id: int, *, with_raw: bool = False) -> RefundRecord | None:
        """One refund, or None."""
        ...

    def list_refunds(
        self,
        *,
        states: Sequence[OrderState] | None = None,
        woo_ids: Sequence[int] | None = None,
        refund_ids: Sequence[int] | None = None,
        with_raw: bool = False,
    ) -> list[RefundRecord]:
        """Refunds filtered by state, order and id; oldest refund first."""
        ...

    def refund_counts(self) -> dict[str, int]:
        """Refunds per state."""
        ...

    def set_refund_state(
        self,
        refund_id: int,
        state: OrderState,
        *,
        reason: str | None = None,
        expect: Sequence[OrderState] | None = None,
        token: str | None = None,
        uncount_attempt: bool = False,
        reset_attempts: bool = False,
    ) -> bool:
        """Move a refund to ``state`` (only from ``expect``; only under ``token``)."""
        ...

    def claim_refund(
        self, refund_id: int, claimer: str, now: datetime, *, token: str, key: str
    ) -> bool:
        """``ready`` → ``pushing`` under ``token``; the key is fixed at the first claim."""
        ...

    def claim_refund_in_doubt(
        self, refund_id: int, claimer: str, now: datetime, older_than: datetime, *, token: str
    ) -> bool:
        """Take over a ``pushing`` refund claimed before ``older_than``."""
        ...

    def confirm_refund_claim(
        self, refund_id: int, token: str, now: datetime, *, sending: bool = False
    ) -> bool:
        """Renew the claim if ``token`` still holds it (with ``sending``, stamp the send)."""
        ...

    def set_refund_last_sent(self, refund_id: int, token: str, sent_at: datetime | None) -> bool:
        """Put back the time of the last send."""
        ...

    def mark_refund_pushed(
        self,
        refund_id: int,
        *,
        d365_id: str,
        d365_number: str,
        external_number: str,
        now: datetime,
        token: str,
        post: bool,
        note: bool,
    ) -> bool:
        """Record the credit memo of a refund while ``token`` holds it."""
        ...

    def set_refund_posted(self, refund_id: int, d365_number: str) -> bool:
        """The credit memo is posted under ``d365_number``."""
        ...

    def set_refund_note_done(self, refund_id: int) -> None:
        """The shop note naming the credit memo is written."""
        ...

    def in_doubt_refund_ids(self, older_than: datetime) -> list[int]:
        """``pushing`` refunds claimed before ``older_than``."""
        ...

    # -- end of refunds ---------------------------------------------------------------------
