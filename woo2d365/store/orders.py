"""The orders room of the store: each shop order, its state and claim, and the events recorded
for it (docs/architecture.md, "The path of an order", "Exactly once").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from woo2d365.model import OrderState


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


class OrderStore(Protocol):
    """Orders, their claims and their events."""

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

    def count_in_state(self, state: OrderState) -> int:
        """Orders in ``state``."""
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
        self, woo_id: int, token: str, now: datetime, *, sent_at: datetime | None = None
    ) -> bool:
        """Renew claim ``token`` at ``now``; record ``sent_at`` as the last send if given (a
        send about to leave, by that time). False: the claim is lost."""
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

    def pushed_orders_matching(
        self, *, external_numbers: list[str], d365_numbers: list[str], d365_ids: list[str]
    ) -> list[OrderRecord]:
        """Pushed orders whose key, Dynamics number or Dynamics id is one of these."""
        ...

    def pushed_order_raws(self, shop_statuses: list[str]) -> list[dict[str, Any]]:
        """The shop JSON of pushed orders whose shop status is one of ``shop_statuses``."""
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

    def count_pushed_until(self, moment: datetime) -> int:
        """Pushed orders with ``pushed_at`` at or before ``moment``."""
        ...

    def count_pushed_between(self, after: datetime, until: datetime | None = None) -> int:
        """Pushed orders with ``after < pushed_at <= until`` (no upper bound when None)."""
        ...

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

    def count_events_before(self, before: datetime) -> int:
        """Number of events recorded before ``before``."""
        ...

    def delete_events_before(self, before: datetime, *, batch: int = 5000) -> int:
        """Delete events recorded before ``before`` in batches; return how many."""
        ...
