"""The refunds room in SQL: ``refunds`` (see :mod:`woo2d365.store.refunds`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from woo2d365.model import OrderState
from woo2d365.store.claims import ClaimedRoom, ClaimedTable
from woo2d365.store.connection import (
    from_db_time,
    marks,
    opt_db_time,
    opt_time,
    to_db_time,
)
from woo2d365.store.refunds import RefundRecord

_COLUMNS = (
    "refund_id, woo_id, state, reason, amount, shop_created_at, attempts, external_number, "
    "d365_id, d365_number, claimed_by, claimed_at, claim_token, last_sent_at, post_pending, "
    "note_pending, created_at, updated_at, pushed_at"
)

_RAW_INDEX = _COLUMNS.count(",") + 1
REFUND_CLAIMS = ClaimedTable("refunds", "refund_id")


class SqlRefunds(ClaimedRoom):
    """:class:`~woo2d365.store.refunds.RefundStore` in SQL."""

    def _refund_from_row(self, row: Sequence[Any], with_raw: bool) -> RefundRecord:
        return RefundRecord(
            refund_id=int(row[0]),
            woo_id=int(row[1]),
            state=OrderState(row[2]),
            reason=row[3],
            amount=row[4],
            shop_created_at=from_db_time(row[5]),
            attempts=int(row[6]),
            external_number=row[7],
            d365_id=row[8],
            d365_number=row[9],
            claimed_by=row[10],
            claimed_at=opt_time(row[11]),
            claim_token=row[12],
            last_sent_at=opt_time(row[13]),
            post_pending=bool(row[14]),
            note_pending=bool(row[15]),
            created_at=from_db_time(row[16]),
            updated_at=from_db_time(row[17]),
            pushed_at=opt_time(row[18]),
            raw=json.loads(row[_RAW_INDEX]) if with_raw else None,
        )

    def save_refund(
        self, refund_id: int, woo_id: int, amount: str, shop_created_at: datetime, raw: Any
    ) -> bool:
        """Record a refund seen in the shop as ``new``; True if it was not known (refunds do
        not change in the shop, so a known one is left as it is)."""
        now = self._now()
        with self._tx() as cur:
            self._exec(cur, "SELECT 1 FROM refunds WHERE refund_id = ?", (refund_id,))
            if cur.fetchone() is not None:
                return False
            self._exec(
                cur,
                "INSERT INTO refunds (refund_id, woo_id, state, amount, shop_created_at, "
                "attempts, post_pending, note_pending, created_at, updated_at, raw_json) "
                "VALUES (?, ?, ?, ?, ?, 0, 0, 0, ?, ?, ?)",
                (
                    refund_id,
                    woo_id,
                    OrderState.NEW.value,
                    amount,
                    to_db_time(shop_created_at),
                    now,
                    now,
                    json.dumps(raw, ensure_ascii=False),
                ),
            )
            return True

    def get_refund(self, refund_id: int, *, with_raw: bool = False) -> RefundRecord | None:
        """One refund, or None."""
        found = self.list_refunds(refund_ids=[refund_id], with_raw=with_raw)
        return found[0] if found else None

    def list_refunds(
        self,
        *,
        states: Sequence[OrderState] | None = None,
        woo_ids: Sequence[int] | None = None,
        refund_ids: Sequence[int] | None = None,
        with_raw: bool = False,
    ) -> list[RefundRecord]:
        """Refunds filtered by state, order and id; oldest refund first."""
        where: list[str] = []
        params: list[Any] = []
        for column, values in (
            ("state", None if states is None else [s.value for s in states]),
            ("woo_id", woo_ids),
            ("refund_id", refund_ids),
        ):
            if values is None:
                continue
            if not values:
                return []
            where.append(f"{column} IN ({marks(values)})")
            params.extend(values)
        columns = _COLUMNS + (", raw_json" if with_raw else "")
        sql = f"SELECT {columns} FROM refunds"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [
            self._refund_from_row(row, with_raw)
            for row in self._rows(sql + " ORDER BY refund_id", params)
        ]

    def refund_counts(self) -> dict[str, int]:
        """Refunds per state (every state, zeros included)."""
        return self._counts_per_state(REFUND_CLAIMS)

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
        return self._changes_one(
            *REFUND_CLAIMS.set_state(
                refund_id,
                state,
                self._now(),
                reason=reason,
                expect=expect,
                token=token,
                reset_attempts=reset_attempts,
                uncount_attempt=uncount_attempt,
            )
        )

    def claim_refund(
        self, refund_id: int, claimer: str, now: datetime, *, token: str, key: str
    ) -> bool:
        """``ready`` → ``pushing`` under ``token``, counting an attempt; the key is fixed once."""
        return self._changes_one(
            *REFUND_CLAIMS.claim(refund_id, claimer, to_db_time(now), token=token, key=key)
        )

    def claim_refund_in_doubt(
        self, refund_id: int, claimer: str, now: datetime, older_than: datetime, *, token: str
    ) -> bool:
        """Take over a ``pushing`` refund claimed before ``older_than`` with a new token."""
        return self._changes_one(
            *REFUND_CLAIMS.take_over(
                refund_id, claimer, to_db_time(now), to_db_time(older_than), token=token
            )
        )

    def confirm_refund_claim(
        self, refund_id: int, token: str, now: datetime, *, sent_at: datetime | None = None
    ) -> bool:
        """Renew the claim at ``now`` if ``token`` still holds it (with ``sent_at``, stamp the
        send)."""
        return self._changes_one(
            *REFUND_CLAIMS.confirm(refund_id, token, to_db_time(now), sent_at=opt_db_time(sent_at)),
            urgent=sent_at is not None,
        )

    def set_refund_last_sent(self, refund_id: int, token: str, sent_at: datetime | None) -> bool:
        """Put back the time of the last send (a create that certainly never ran)."""
        return self._changes_one(
            *REFUND_CLAIMS.set_last_sent(refund_id, token, opt_db_time(sent_at))
        )

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
        """Record the credit memo of a refund (``pushed``) while ``token`` holds it; ``post`` and
        ``note`` leave its posting and the shop note pending."""
        return self._changes_one(
            *REFUND_CLAIMS.mark_pushed(
                refund_id,
                (d365_id, d365_number, external_number),
                to_db_time(now),
                pending={"post_pending": post, "note_pending": note},
                token=token,
            )
        )

    def set_refund_posted(self, refund_id: int, d365_number: str) -> bool:
        """The credit memo is posted (under its new number): no post pending any more."""
        return self._changes_one(
            "UPDATE refunds SET post_pending = 0, d365_number = ?, updated_at = ? "
            "WHERE refund_id = ? AND post_pending = 1",
            (d365_number, self._now(), refund_id),
        )

    def set_refund_note_done(self, refund_id: int) -> None:
        """The shop note naming the credit memo is written."""
        with self._tx() as cur:
            self._exec(cur, "UPDATE refunds SET note_pending = 0 WHERE refund_id = ?", (refund_id,))

    def in_doubt_refund_ids(self, older_than: datetime) -> list[int]:
        """``pushing`` refunds claimed before ``older_than``."""
        return [
            int(row[0])
            for row in self._rows(
                *REFUND_CLAIMS.in_doubt(to_db_time(older_than), order_by="refund_id")
            )
        ]
