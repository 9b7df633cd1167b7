"""The claim and fence statements shared by the rooms whose rows are pushed to Dynamics.

Orders and refunds are claimed the same way (docs/architecture.md, "Exactly once"): ``ready`` →
``pushing`` under a token unique to the claim, counting an attempt, the idempotency key fixed at
the first claim; every settling write is conditional on the token; the time of the last create
sent is kept for the request limit. :class:`ClaimedTable` writes each statement once for both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from woo2d365.model import OrderState
from woo2d365.store.connection import SqlRoom, marks

Statement = tuple[str, list[Any]]
"""SQL with ``?`` parameters, and the parameters."""

SINCE = "state_since = CASE WHEN state = ? THEN COALESCE(state_since, updated_at) ELSE ? END, "
"""Set before ``state`` in an UPDATE (MySQL assigns left to right): the moment a row enters a
state, kept while it stays there (a held order validated again is not held anew)."""

_PUSHING = OrderState.PUSHING.value


@dataclass(frozen=True)
class ClaimedTable:
    """A table of rows claimed for a create in Dynamics; ``key`` is its primary key column,
    ``since`` whether it keeps ``state_since``."""

    table: str
    key: str
    since: bool = False

    def _entering(self, state: OrderState, stamp: str) -> Statement:
        """The ``state_since`` assignment for a move to ``state`` (none without the column)."""
        return (SINCE, [state.value, stamp]) if self.since else ("", [])

    def set_state(
        self,
        row_id: int,
        state: OrderState,
        stamp: str,
        *,
        reason: str | None,
        expect: Sequence[OrderState] | None,
        token: str | None,
        reset_attempts: bool,
        uncount_attempt: bool,
    ) -> Statement:
        """Move a row to ``state``; only from ``expect``, only while ``token`` holds it."""
        since, params = self._entering(state, stamp)
        sets = since + "state = ?, reason = ?, updated_at = ?"
        params += [state.value, reason, stamp]
        if state is not OrderState.PUSHING:
            sets += ", claimed_by = NULL, claimed_at = NULL, claim_token = NULL"
        if reset_attempts:
            sets += ", attempts = 0"
        elif uncount_attempt:
            sets += ", attempts = attempts - 1"
        sql = f"UPDATE {self.table} SET {sets} WHERE {self.key} = ?"
        params.append(row_id)
        if expect:
            sql += f" AND state IN ({marks(expect)})"
            params.extend(s.value for s in expect)
        if token is not None:
            sql += " AND claim_token = ?"
            params.append(token)
        return sql, params

    def claim(
        self, row_id: int, claimer: str, stamp: str, *, token: str, key: str | None
    ) -> Statement:
        """``ready`` → ``pushing`` under ``token``, counting an attempt; ``key`` is stored unless
        the row has one."""
        since, params = self._entering(OrderState.PUSHING, stamp)
        sql = (
            f"UPDATE {self.table} SET {since}state = ?, claimed_by = ?, claimed_at = ?, "
            "claim_token = ?, external_number = COALESCE(external_number, ?), "
            f"attempts = attempts + 1, updated_at = ? WHERE {self.key} = ? AND state = ?"
        )
        params += [_PUSHING, claimer, stamp, token, key, stamp, row_id, OrderState.READY.value]
        return sql, params

    def take_over(
        self, row_id: int, claimer: str, stamp: str, older_than: str, *, token: str
    ) -> Statement:
        """A new claim of a ``pushing`` row whose claim is older than ``older_than``."""
        return (
            f"UPDATE {self.table} SET claimed_by = ?, claimed_at = ?, claim_token = ?, "
            f"updated_at = ? WHERE {self.key} = ? AND state = ? "
            "AND (claimed_at IS NULL OR claimed_at < ?)",
            [claimer, stamp, token, stamp, row_id, _PUSHING, older_than],
        )

    def confirm(self, row_id: int, token: str, stamp: str, *, sent_at: str | None) -> Statement:
        """Renew the claim ``token`` at ``stamp``; record ``sent_at`` as the last send if given."""
        sets = "claimed_at = ?" + (", last_sent_at = ?" if sent_at is not None else "")
        params: list[Any] = [stamp] if sent_at is None else [stamp, sent_at]
        return (
            f"UPDATE {self.table} SET {sets} WHERE {self.key} = ? AND state = ? "
            "AND claim_token = ?",
            [*params, row_id, _PUSHING, token],
        )

    def set_last_sent(self, row_id: int, token: str, sent_at: str | None) -> Statement:
        """Put back the time of the last send (a create that certainly never ran)."""
        return (
            f"UPDATE {self.table} SET last_sent_at = ? WHERE {self.key} = ? AND claim_token = ?",
            [sent_at, row_id, token],
        )

    def mark_pushed(
        self,
        row_id: int,
        document: tuple[str, str, str],
        stamp: str,
        *,
        pending: dict[str, bool],
        token: str | None,
        expect: Sequence[OrderState] | None = None,
    ) -> Statement:
        """Record the Dynamics ``document`` (id, number, key) of a row: ``pushed``, its claim
        released, the ``pending`` follow-up flags set; only while ``token`` holds it, only from
        ``expect``."""
        since, params = self._entering(OrderState.PUSHED, stamp)
        flags = "".join(f", {column} = ?" for column in pending)
        sql = (
            f"UPDATE {self.table} SET {since}state = ?, d365_id = ?, d365_number = ?, "
            "external_number = ?, pushed_at = ?, updated_at = ?, reason = NULL, claimed_by = NULL, "
            f"claimed_at = NULL, claim_token = NULL{flags} WHERE {self.key} = ?"
        )
        params += [OrderState.PUSHED.value, *document, stamp, stamp]
        params += [int(flag) for flag in pending.values()]
        params.append(row_id)
        if token is not None:
            sql += " AND state = ? AND claim_token = ?"
            params += [_PUSHING, token]
        if expect:
            sql += f" AND state IN ({marks(expect)})"
            params += [state.value for state in expect]
        return sql, params

    def in_doubt(self, older_than: str, *, order_by: str) -> Statement:
        """Keys of ``pushing`` rows claimed before ``older_than``."""
        return (
            f"SELECT {self.key} FROM {self.table} WHERE state = ? AND (claimed_at IS NULL OR "
            f"claimed_at < ?) ORDER BY {order_by}",
            [_PUSHING, older_than],
        )


class ClaimedRoom(SqlRoom):
    """A room whose rows are claimed: what it reads the same way for orders and refunds."""

    def _counts_per_state(self, claimed: ClaimedTable) -> dict[str, int]:
        """Rows per state (every state, zeros included)."""
        counts = {state.value: 0 for state in OrderState}
        with self._tx() as cur:
            self._exec(cur, f"SELECT state, COUNT(*) FROM {claimed.table} GROUP BY state")
            for state, count in cur.fetchall():
                counts[str(state)] = int(count)
        return counts
