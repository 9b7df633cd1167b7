"""The refunds room of the store: one row per shop refund, its state (as order states) and credit
memo.

Claims work as for orders (docs/architecture.md, "Exactly once"): ``ready`` → ``pushing`` under
a token unique to the claim, the idempotency key fixed at the first claim, every settling write
conditional on the token, the time of the last create sent kept for the request limit. The SQL
is in :mod:`woo2d365.store.refunds_sql`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from woo2d365.model import OrderState


@dataclass(frozen=True)
class RefundRecord:
    """One shop refund as the store knows it."""

    refund_id: int
    woo_id: int
    state: OrderState
    reason: str | None
    amount: str
    shop_created_at: datetime
    attempts: int
    external_number: str | None
    d365_id: str | None
    d365_number: str | None
    claimed_by: str | None
    claimed_at: datetime | None
    claim_token: str | None
    last_sent_at: datetime | None
    post_pending: bool
    note_pending: bool
    created_at: datetime
    updated_at: datetime
    pushed_at: datetime | None
    raw: dict[str, Any] | None = None


class RefundStore(Protocol):
    """Shop refunds and their credit memos."""

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
        self, refund_id: int, token: str, now: datetime, *, sent_at: datetime | None = None
    ) -> bool:
        """Renew the claim at ``now`` if ``token`` still holds it (with ``sent_at``, stamp the
        send)."""
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


def __getattr__(name: str) -> Any:
    """``RefundStoreMixin``: the former name of :mod:`woo2d365.store.refunds_sql`'s class."""
    if name == "RefundStoreMixin":
        from woo2d365.store.refunds_sql import SqlRefunds

        return SqlRefunds
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
