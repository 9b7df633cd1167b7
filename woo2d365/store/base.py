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
    ) -> list[OrderRecord]:
        """Orders, most recently updated first."""
        ...

    def order_ids_in_state(self, state: OrderState, *, limit: int | None = None) -> list[int]:
        """Ids of orders in ``state``, oldest update first (work queue order)."""
        ...

    def counts(self) -> dict[str, int]:
        """Number of orders per state (every state present, zero included)."""
        ...

    def oldest_waiting(self) -> OrderRecord | None:
        """The order in ``new``, ``ready``, ``held`` or ``failed`` waiting the longest."""
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

    def run_events(self, run_id: int) -> list[Event]:
        """Events of one run, oldest first."""
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
