"""The store's refunds: one row per shop refund, its state (as order states) and credit memo.

Claims work as for orders (docs/architecture.md, "Exactly once"): ``ready`` → ``pushing`` under
a token unique to the claim, the idempotency key fixed at the first claim, every settling write
conditional on the token, the time of the last create sent kept for the request limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from woo2d365.model import OrderState

_COLUMNS = (
    "refund_id, woo_id, state, reason, amount, shop_created_at, attempts, external_number, "
    "d365_id, d365_number, claimed_by, claimed_at, claim_token, last_sent_at, post_pending, "
    "note_pending, created_at, updated_at, pushed_at"
)
_RAW_INDEX = _COLUMNS.count(",") + 1


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


class RefundStoreMixin:
    """Refund methods of :class:`~woo2d365.store.sql.SqlStore` (its ``_tx``/``_exec``)."""

    _tx: Callable[[], AbstractContextManager[Any]]
    _exec: Callable[[Any, str, Sequence[Any]], int]
    _now: Callable[[], str]

    def _refund_from_row(self, row: Sequence[Any], with_raw: bool) -> RefundRecord:
        from woo2d365.store.sql import _opt_time, from_db_time

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
            claimed_at=_opt_time(row[11]),
            claim_token=row[12],
            last_sent_at=_opt_time(row[13]),
            post_pending=bool(row[14]),
            note_pending=bool(row[15]),
            created_at=from_db_time(row[16]),
            updated_at=from_db_time(row[17]),
            pushed_at=_opt_time(row[18]),
            raw=json.loads(row[_RAW_INDEX]) if with_raw else None,
        )

    def save_refund(
        self, refund_id: int, woo_id: int, amount: str, shop_created_at: datetime, raw: Any
    ) -> bool:
        """Record a refund seen in the shop as ``new``; True if it was not known (refunds do
        not change in the shop, so a known one is left as it is)."""
        from woo2d365.store.sql import to_db_time

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
            where.append(f"{column} IN ({', '.join('?' for _ in values)})")
            params.extend(values)
        columns = _COLUMNS + (", raw_json" if with_raw else "")
        sql = f"SELECT {columns} FROM refunds"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._tx() as cur:
            self._exec(cur, sql + " ORDER BY refund_id", params)
            return [self._refund_from_row(row, with_raw) for row in cur.fetchall()]

    def refund_counts(self) -> dict[str, int]:
        """Refunds per state (every state, zeros included)."""
        counts = {state.value: 0 for state in OrderState}
        with self._tx() as cur:
            self._exec(cur, "SELECT state, COUNT(*) FROM refunds GROUP BY state", ())
            for state, count in cur.fetchall():
                counts[str(state)] = int(count)
        return counts

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
        sets = "state = ?, reason = ?, updated_at = ?"
        params: list[Any] = [state.value, reason, self._now()]
        if state is not OrderState.PUSHING:
            sets += ", claimed_by = NULL, claimed_at = NULL, claim_token = NULL"
        if reset_attempts:
            sets += ", attempts = 0"
        elif uncount_attempt:
            sets += ", attempts = attempts - 1"
        sql = f"UPDATE refunds SET {sets} WHERE refund_id = ?"
        params.append(refund_id)
        if expect:
            sql += f" AND state IN ({', '.join('?' for _ in expect)})"
            params.extend(s.value for s in expect)
        if token is not None:
            sql += " AND claim_token = ?"
            params.append(token)
        with self._tx() as cur:
            return self._exec(cur, sql, params) == 1

    def claim_refund(
        self, refund_id: int, claimer: str, now: datetime, *, token: str, key: str
    ) -> bool:
        """``ready`` → ``pushing`` under ``token``, counting an attempt; the key is fixed once."""
        from woo2d365.store.sql import to_db_time

        stamp = to_db_time(now)
        with self._tx() as cur:
            return (
                self._exec(
                    cur,
                    "UPDATE refunds SET state = ?, claimed_by = ?, claimed_at = ?, "
                    "claim_token = ?, external_number = COALESCE(external_number, ?), "
                    "attempts = attempts + 1, updated_at = ? WHERE refund_id = ? AND state = ?",
                    (
                        OrderState.PUSHING.value,
                        claimer,
                        stamp,
                        token,
                        key,
                        stamp,
                        refund_id,
                        OrderState.READY.value,
                    ),
                )
                == 1
            )

    def claim_refund_in_doubt(
        self, refund_id: int, claimer: str, now: datetime, older_than: datetime, *, token: str
    ) -> bool:
        """Take over a ``pushing`` refund claimed before ``older_than`` with a new token."""
        from woo2d365.store.sql import to_db_time

        stamp = to_db_time(now)
        with self._tx() as cur:
            return (
                self._exec(
                    cur,
                    "UPDATE refunds SET claimed_by = ?, claimed_at = ?, claim_token = ?, "
                    "updated_at = ? WHERE refund_id = ? AND state = ? "
                    "AND (claimed_at IS NULL OR claimed_at < ?)",
                    (
                        claimer,
                        stamp,
                        token,
                        stamp,
                        refund_id,
                        OrderState.PUSHING.value,
                        to_db_time(older_than),
                    ),
                )
                == 1
            )

    def confirm_refund_claim(
        self, refund_id: int, token: str, now: datetime, *, sending: bool = False
    ) -> bool:
        """Renew the claim if ``token`` still holds it (with ``sending``, stamp the send)."""
        from woo2d365.store.sql import to_db_time

        stamp = to_db_time(now)
        sets = "claimed_at = ?" + (", last_sent_at = ?" if sending else "")
        params: list[Any] = [stamp, stamp] if sending else [stamp]
        with self._tx() as cur:
            return (
                self._exec(
                    cur,
                    f"UPDATE refunds SET {sets} WHERE refund_id = ? AND state = ? "
                    "AND claim_token = ?",
                    (*params, refund_id, OrderState.PUSHING.value, token),
                )
                == 1
            )

    def set_refund_last_sent(self, refund_id: int, token: str, sent_at: datetime | None) -> bool:
        """Put back the time of the last send (a create that certainly never ran)."""
        from woo2d365.store.sql import to_db_time

        with self._tx() as cur:
            return (
                self._exec(
                    cur,
                    "UPDATE refunds SET last_sent_at = ? WHERE refund_id = ? AND claim_token = ?",
                    (None if sent_at is None else to_db_time(sent_at), refund_id, token),
                )
                == 1
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
        from woo2d365.store.sql import to_db_time

        stamp = to_db_time(now)
        with self._tx() as cur:
            return (
                self._exec(
                    cur,
                    "UPDATE refunds SET state = ?, d365_id = ?, d365_number = ?, "
                    "external_number = ?, pushed_at = ?, updated_at = ?, reason = NULL, "
                    "claimed_by = NULL, claimed_at = NULL, claim_token = NULL, "
                    "post_pending = ?, note_pending = ? "
                    "WHERE refund_id = ? AND state = ? AND claim_token = ?",
                    (
                        OrderState.PUSHED.value,
                        d365_id,
                        d365_number,
                        external_number,
                        stamp,
                        stamp,
                        int(post),
                        int(note),
                        refund_id,
                        OrderState.PUSHING.value,
                        token,
                    ),
                )
                == 1
            )

    def set_refund_posted(self, refund_id: int, d365_number: str) -> bool:
        """The credit memo is posted (under its new number): no post pending any more."""
        with self._tx() as cur:
            return (
                self._exec(
                    cur,
                    "UPDATE refunds SET post_pending = 0, d365_number = ?, updated_at = ? "
                    "WHERE refund_id = ? AND post_pending = 1",
                    (d365_number, self._now(), refund_id),
                )
                == 1
            )

    def set_refund_note_done(self, refund_id: int) -> None:
        """The shop note naming the credit memo is written."""
        with self._tx() as cur:
            self._exec(cur, "UPDATE refunds SET note_pending = 0 WHERE refund_id = ?", (refund_id,))

    def in_doubt_refund_ids(self, older_than: datetime) -> list[int]:
        """``pushing`` refunds claimed before ``older_than``."""
        from woo2d365.store.sql import to_db_time

        with self._tx() as cur:
            self._exec(
                cur,
                "SELECT refund_id FROM refunds WHERE state = ? AND (claimed_at IS NULL OR "
                "claimed_at < ?) ORDER BY refund_id",
                (OrderState.PUSHING.value, to_db_time(older_than)),
            )
            return [int(row[0]) for row in cur.fetchall()]
