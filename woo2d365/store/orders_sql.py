"""The orders room in SQL: ``orders`` and ``events`` (see :mod:`woo2d365.store.orders`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from woo2d365.errors import StoreUnavailable
from woo2d365.model import OrderState
from woo2d365.store.claims import SINCE, ClaimedRoom, ClaimedTable
from woo2d365.store.connection import (
    chunks,
    from_db_time,
    marks,
    opt_db_time,
    opt_time,
    to_db_time,
)
from woo2d365.store.orders import Event, OrderRecord, PulledOrder

WAITING_STATES = (OrderState.NEW, OrderState.READY, OrderState.HELD, OrderState.FAILED)

_ORDER_COLUMNS = (
    "woo_id, number, state, shop_status, shop_modified_at, reason, attempts, d365_id, "
    "d365_number, external_number, currency, total, claimed_by, claimed_at, created_at, "
    "updated_at, pushed_at, write_back_pending, claim_token, last_sent_at, changed_at, state_since"
)

_SINCE = SINCE
ORDER_CLAIMS = ClaimedTable("orders", "woo_id", since=True)

_RAW_INDEX = _ORDER_COLUMNS.count(",") + 1  # raw_json, when asked for, follows the columns


class SqlOrders(ClaimedRoom):
    """:class:`~woo2d365.store.orders.OrderStore` in SQL."""

    def _order_from_row(self, row: Sequence[Any], raw: str | None = None) -> OrderRecord:
        return OrderRecord(
            woo_id=int(row[0]),
            number=row[1],
            state=OrderState(row[2]),
            shop_status=row[3],
            shop_modified_at=from_db_time(row[4]),
            reason=row[5],
            attempts=int(row[6]),
            d365_id=row[7],
            d365_number=row[8],
            external_number=row[9],
            currency=row[10],
            total=row[11],
            claimed_by=row[12],
            claimed_at=opt_time(row[13]),
            created_at=from_db_time(row[14]),
            updated_at=from_db_time(row[15]),
            pushed_at=opt_time(row[16]),
            write_back_pending=bool(row[17]),
            claim_token=row[18],
            last_sent_at=opt_time(row[19]),
            changed_at=opt_time(row[20]),
            since=opt_time(row[21]) or from_db_time(row[15]),
            raw=json.loads(raw) if raw is not None else None,
        )

    def _select_order(self, cur: Any, woo_id: int, *, with_raw: bool) -> OrderRecord | None:
        columns = _ORDER_COLUMNS + (", raw_json" if with_raw else "")
        self._exec(cur, f"SELECT {columns} FROM orders WHERE woo_id = ?", (woo_id,))
        row = cur.fetchone()
        if row is None:
            return None
        return self._order_from_row(row, row[_RAW_INDEX] if with_raw else None)

    def save_pulled_order(self, order: PulledOrder) -> OrderRecord | None:
        """Insert a new order (state ``new``) or update the raw copy of a known one."""
        raw = json.dumps(order.raw, ensure_ascii=False, separators=(",", ":"))
        now = self._now()
        modified = to_db_time(order.shop_modified_at)
        for _ in range(2):
            try:
                with self._tx() as cur:
                    before = self._select_order(cur, order.woo_id, with_raw=False)
                    if before is None:
                        self._exec(
                            cur,
                            "INSERT INTO orders (woo_id, number, state, shop_status, "
                            "shop_modified_at, attempts, currency, total, created_at, updated_at, "
                            "state_since, write_back_pending, raw_json) "
                            "VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, 0, ?)",
                            (
                                order.woo_id,
                                order.number,
                                OrderState.NEW.value,
                                order.shop_status,
                                modified,
                                order.currency,
                                order.total,
                                now,
                                now,
                                now,
                                raw,
                            ),
                        )
                    else:
                        self._exec(
                            cur,
                            "UPDATE orders SET number = ?, shop_status = ?, shop_modified_at = ?, "
                            "currency = ?, total = ?, updated_at = ?, raw_json = ? "
                            "WHERE woo_id = ?",
                            (
                                order.number,
                                order.shop_status,
                                modified,
                                order.currency,
                                order.total,
                                now,
                                raw,
                                order.woo_id,
                            ),
                        )
                    return before
            except self.dialect.integrity_errors:
                continue  # another process inserted it meanwhile: update instead
        raise StoreUnavailable(f"order {order.woo_id} could not be saved (concurrent writers)")

    def seen(self, woo_id: int, shop_modified_at: datetime) -> bool:
        """True when this exact version (id and modification time) is already stored."""
        with self._tx() as cur:
            self._exec(
                cur,
                "SELECT 1 FROM orders WHERE woo_id = ? AND shop_modified_at = ?",
                (woo_id, to_db_time(shop_modified_at)),
            )
            return cur.fetchone() is not None

    def get_order(self, woo_id: int, *, with_raw: bool = False) -> OrderRecord | None:
        """One order, optionally with its shop JSON."""
        with self._tx() as cur:
            return self._select_order(cur, woo_id, with_raw=with_raw)

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
        """Orders, most recently updated first; ``number`` (shop order number), ``email`` (the
        billing e-mail, any case) and ``updated_since`` narrow the list."""
        if woo_ids is not None and not woo_ids:
            return []
        where, params = _order_filters(states, woo_ids, number, email, updated_since)
        read_raw = bool(with_raw or email)
        sql = f"SELECT {_ORDER_COLUMNS}{', raw_json' if read_raw else ''} FROM orders"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY updated_at DESC, woo_id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        rows = self._rows(sql, params)
        records = [self._order_from_row(r, r[_RAW_INDEX] if read_raw else None) for r in rows]
        if email is None:
            return records
        wanted = email.strip().lower()
        return [
            r if with_raw else replace(r, raw=None)
            for r in records
            if _billing_email(r.raw) == wanted
        ]

    def order_ids_in_state(self, state: OrderState, *, limit: int | None = None) -> list[int]:
        """Ids of orders in ``state``, oldest update first (work queue order)."""
        return self._ids(
            "SELECT woo_id FROM orders WHERE state = ? ORDER BY updated_at, woo_id",
            [state.value],
            limit,
        )

    def _ids(self, sql: str, params: list[Any], limit: int | None) -> list[int]:
        """The ids a ``SELECT woo_id`` gives, at most ``limit`` of them when given."""
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [int(r[0]) for r in self._rows(sql, params)]

    def order_ids_after(self, states: list[OrderState], after: int | None, limit: int) -> list[int]:
        """Up to ``limit`` ids of orders in ``states`` greater than ``after``, ascending."""
        sql = f"SELECT woo_id FROM orders WHERE state IN ({marks(states)})"
        params: list[Any] = [state.value for state in states]
        if after is not None:
            sql += " AND woo_id > ?"
            params.append(int(after))
        return self._ids(sql + " ORDER BY woo_id", params, limit)

    def counts(self) -> dict[str, int]:
        """Number of orders per state (every state present, zero included)."""
        return self._counts_per_state(ORDER_CLAIMS)

    def oldest_waiting(self) -> OrderRecord | None:
        """The order in ``new``, ``ready``, ``held`` or ``failed`` waiting the longest (by the
        time it entered its state)."""
        found = [o for o in (self.oldest_in_state(s) for s in WAITING_STATES) if o is not None]
        return min(found, key=lambda o: (o.since or o.updated_at, o.woo_id), default=None)

    def orders_waiting_since(
        self, states: list[OrderState], before: datetime, *, limit: int = 100
    ) -> list[OrderRecord]:
        """Orders that entered one of ``states`` before ``before``, longest waiting first."""
        found: list[OrderRecord] = []
        with self._tx() as cur:
            for state in states:  # one indexed range per state
                self._exec(
                    cur,
                    f"SELECT {_ORDER_COLUMNS} FROM orders WHERE state = ? AND state_since < ? "
                    "ORDER BY state_since, woo_id LIMIT ?",
                    (state.value, to_db_time(before), int(limit)),
                )
                found += [self._order_from_row(row) for row in cur.fetchall()]
        found.sort(key=lambda o: (o.since or o.updated_at, o.woo_id))
        return found[:limit]

    def oldest_in_state(self, state: OrderState) -> OrderRecord | None:
        """The order that has been in ``state`` the longest (an indexed probe)."""
        with self._tx() as cur:
            self._exec(
                cur,
                f"SELECT {_ORDER_COLUMNS} FROM orders WHERE state = ? "
                "ORDER BY state_since, woo_id LIMIT 1",
                (state.value,),
            )
            row = cur.fetchone()
        return None if row is None else self._order_from_row(row)

    def count_in_state(self, state: OrderState) -> int:
        """Orders in ``state``: one range of the (state, updated_at) index."""
        return self._count("SELECT COUNT(*) FROM orders WHERE state = ?", (state.value,))

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
        """Move an order to ``state``; with ``expect`` only from those states, with ``token``
        only while that claim holds it (fencing). True if changed."""
        return self._changes_one(
            *ORDER_CLAIMS.set_state(
                woo_id,
                state,
                self._now(),
                reason=reason,
                expect=expect,
                token=token,
                reset_attempts=reset_attempts,
                uncount_attempt=uncount_attempt,
            )
        )

    def claim(
        self, woo_id: int, claimer: str, now: datetime, *, token: str, key: str | None
    ) -> bool:
        """``ready`` → ``pushing`` for this claimer and token, counting an attempt.

        ``key`` (the document's idempotency key) is stored unless the order already has one, so
        an order once sent keeps its key whatever the settings say later.
        """
        return self._changes_one(
            *ORDER_CLAIMS.claim(woo_id, claimer, to_db_time(now), token=token, key=key)
        )

    def claim_in_doubt(
        self, woo_id: int, claimer: str, now: datetime, older_than: datetime, *, token: str
    ) -> bool:
        """Take over a ``pushing`` order whose claim is older than ``older_than``, with a new
        token (the old claim's settling writes are then refused)."""
        return self._changes_one(
            *ORDER_CLAIMS.take_over(
                woo_id, claimer, to_db_time(now), to_db_time(older_than), token=token
            )
        )

    def confirm_claim(
        self, woo_id: int, token: str, now: datetime, *, sent_at: datetime | None = None
    ) -> bool:
        """Renew the claim ``token`` at ``now`` if it still holds the order; record ``sent_at`` as
        the time of the last create sent, if given. False: the claim is lost."""
        sending = sent_at is not None
        return self._changes_one(
            *ORDER_CLAIMS.confirm(woo_id, token, to_db_time(now), sent_at=opt_db_time(sent_at)),
            urgent=sending,
        )

    def set_last_sent(self, woo_id: int, token: str, sent_at: datetime | None) -> bool:
        """Put back the time of the last send (a create that certainly never ran)."""
        return self._changes_one(*ORDER_CLAIMS.set_last_sent(woo_id, token, opt_db_time(sent_at)))

    def renew_claims(self, claims: list[tuple[int, str]], now: datetime) -> set[str]:
        """Renew these ``(woo_id, token)`` claims; return the tokens that still hold their order.

        Each row is reached by its primary key, in id order, like every other write to an order:
        InnoDB then never locks two orders' rows in opposite orders (no deadlock with a pusher).
        """
        held: set[str] = set()
        stamp = to_db_time(now)
        with self._tx() as cur:
            for woo_id, token in sorted(claims):
                changed = self._exec(
                    cur,
                    "UPDATE orders SET claimed_at = ? "
                    "WHERE woo_id = ? AND state = ? AND claim_token = ?",
                    (stamp, woo_id, OrderState.PUSHING.value, token),
                )
                if changed == 1:
                    held.add(token)
        return held

    def in_doubt_ids(self, older_than: datetime) -> list[int]:
        """Ids of ``pushing`` orders claimed before ``older_than``."""
        return [
            int(r[0])
            for r in self._rows(
                *ORDER_CLAIMS.in_doubt(to_db_time(older_than), order_by="claimed_at, woo_id")
            )
        ]

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
        that claim holds it, with ``expect`` only from those states. ``write_back`` marks the
        shop write-back pending. True if recorded."""
        return self._changes_one(
            *ORDER_CLAIMS.mark_pushed(
                woo_id,
                (d365_id, d365_number, external_number),
                to_db_time(now),
                pending={"write_back_pending": write_back},
                token=token,
                expect=expect,
            )
        )

    def forget_document(self, woo_id: int, reason: str) -> bool:
        """A ``pushed`` order whose document no longer exists becomes ``ready`` again (its key
        kept, attempts reset). True if changed."""
        now = self._now()
        return self._changes_one(
            "UPDATE orders SET " + _SINCE + "state = ?, reason = ?, d365_id = NULL, "
            "d365_number = NULL, pushed_at = NULL, write_back_pending = 0, attempts = 0, "
            "updated_at = ? WHERE woo_id = ? AND state = ?",
            (
                OrderState.READY.value,
                now,
                OrderState.READY.value,
                reason,
                now,
                woo_id,
                OrderState.PUSHED.value,
            ),
        )

    def set_write_back_done(self, woo_id: int) -> None:
        """The shop has the note and meta for this order."""
        with self._tx() as cur:
            self._exec(cur, "UPDATE orders SET write_back_pending = 0 WHERE woo_id = ?", (woo_id,))

    def mark_changed_after_push(self, woo_id: int, now: datetime) -> None:
        """The shop order changed after it was pushed: it needs a person until acknowledged."""
        with self._tx() as cur:
            self._exec(
                cur, "UPDATE orders SET changed_at = ? WHERE woo_id = ?", (to_db_time(now), woo_id)
            )

    def acknowledge_change(self, woo_id: int) -> bool:
        """A person saw the change after push; True if there was one to acknowledge."""
        return self._changes_one(
            "UPDATE orders SET changed_at = NULL WHERE woo_id = ? AND changed_at IS NOT NULL",
            (woo_id,),
        )

    def changed_after_push_ids(self) -> list[int]:
        """Orders changed in the shop after their push and not acknowledged yet."""
        return [
            int(row[0])
            for row in self._rows(
                "SELECT woo_id FROM orders WHERE changed_at IS NOT NULL ORDER BY changed_at, woo_id"
            )
        ]

    def set_write_back_pending(self, woo_id: int) -> bool:
        """A pushed order's write-back is to be done (again) by the next push."""
        return self._changes_one(
            "UPDATE orders SET write_back_pending = 1 WHERE woo_id = ? AND state = ?",
            (woo_id, OrderState.PUSHED.value),
        )

    def write_back_pending_ids(self, *, limit: int | None = None) -> list[int]:
        """Pushed orders whose write-back to the shop is still to do."""
        return self._ids(
            "SELECT woo_id FROM orders WHERE write_back_pending = 1 ORDER BY pushed_at, woo_id",
            [],
            limit,
        )

    def pushed_orders_matching(
        self, *, external_numbers: list[str], d365_numbers: list[str], d365_ids: list[str]
    ) -> list[OrderRecord]:
        """Pushed orders whose key, Dynamics number or Dynamics id is one of these."""
        found: dict[int, OrderRecord] = {}
        pushed = OrderState.PUSHED.value
        with self._tx() as cur:
            for column, values in (
                ("external_number", sorted(set(external_numbers))),
                ("d365_number", sorted(set(d365_numbers))),
                ("d365_id", sorted(set(d365_ids))),
            ):
                for chunk in chunks(values):
                    self._exec(
                        cur,
                        f"SELECT {_ORDER_COLUMNS} FROM orders WHERE state = ? AND {column} IN "
                        f"({marks(chunk)})",
                        (pushed, *chunk),
                    )
                    for row in cur.fetchall():
                        record = self._order_from_row(row)
                        found[record.woo_id] = record
        return list(found.values())

    def pushed_order_raws(self, shop_statuses: list[str]) -> list[dict[str, Any]]:
        """The shop JSON of pushed orders whose shop status is one of ``shop_statuses``."""
        if not shop_statuses:
            return []
        return [
            json.loads(row[0])
            for row in self._rows(
                "SELECT raw_json FROM orders WHERE state = ? "
                f"AND shop_status IN ({marks(shop_statuses)})",
                [OrderState.PUSHED.value, *shop_statuses],
            )
        ]

    def count_orders_updated_between(
        self, state: OrderState, start: datetime | None, end: datetime
    ) -> int:
        """Orders in ``state`` last updated in ``[start, end)`` (``start`` None: no lower bound)."""
        where, params = _updated_in(state, start, end)
        return self._count(f"SELECT COUNT(*) FROM orders WHERE {where}", params)

    def order_raws_updated_between(
        self,
        state: OrderState,
        start: datetime | None,
        end: datetime,
        *,
        after: tuple[datetime, int] | None = None,
        limit: int = 500,
    ) -> list[tuple[int, datetime, dict[str, Any]]]:
        """``(woo_id, updated_at, shop JSON)`` of orders in ``state`` updated in ``[start, end)``.

        Oldest first, at most ``limit``, continuing after the ``(updated_at, woo_id)`` key of the
        previous batch: one state per call, so the (state, updated_at) index gives the order.
        """
        where, params = _updated_in(state, start, end)
        sql = f"SELECT woo_id, updated_at, raw_json FROM orders WHERE {where}"
        if after is not None:
            stamp = to_db_time(after[0])
            sql += " AND (updated_at > ? OR (updated_at = ? AND woo_id > ?))"
            params.extend((stamp, stamp, after[1]))
        sql += " ORDER BY updated_at, woo_id LIMIT ?"
        params.append(int(limit))
        rows = self._rows(sql, params)
        return [(int(r[0]), from_db_time(r[1]), json.loads(r[2])) for r in rows]

    def replace_raws(self, rows: list[tuple[int, dict[str, Any], datetime]]) -> int:
        """Store new shop JSON ``(woo_id, raw, updated_at)`` for orders not updated since.

        ``updated_at`` is left as it is; an order updated meanwhile (a pull stored a newer
        version) is left alone. Returns how many orders were changed.
        """
        if not rows:
            return 0
        params = [
            (json.dumps(raw, ensure_ascii=False, separators=(",", ":")), woo_id, to_db_time(at))
            for woo_id, raw, at in rows
        ]
        with self._tx() as cur:
            cur.executemany(
                self._sql("UPDATE orders SET raw_json = ? WHERE woo_id = ? AND updated_at = ?"),
                params,
            )
            return max(0, int(cur.rowcount))

    def count_pushed_until(self, moment: datetime) -> int:
        """Pushed orders with ``pushed_at`` at or before ``moment``, in one consistent statement.

        All pushed orders (index only) minus those pushed later; ``pushed_at <= updated_at``,
        so the latter are a short range of the (state, updated_at) index.
        """
        stamp = to_db_time(moment)
        pushed = OrderState.PUSHED.value
        return self._count(
            "SELECT (SELECT COUNT(*) FROM orders WHERE state = ?) - (SELECT COUNT(*) FROM "
            "orders WHERE state = ? AND updated_at > ? AND pushed_at > ?)",
            (pushed, pushed, stamp, stamp),
        )

    def count_pushed_between(self, after: datetime, until: datetime | None = None) -> int:
        """Pushed orders with ``after < pushed_at <= until`` (no upper bound when None)."""
        stamp = to_db_time(after)
        sql = "SELECT COUNT(*) FROM orders WHERE state = ? AND updated_at > ? AND pushed_at > ?"
        params: list[Any] = [OrderState.PUSHED.value, stamp, stamp]
        if until is not None:
            sql += " AND pushed_at <= ?"
            params.append(to_db_time(until))
        return self._count(sql, params)

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
        with self._tx() as cur:
            self._exec(
                cur,
                "INSERT INTO events (woo_id, run_id, at, step, level, message) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (woo_id, run_id, self._now(), step[:32], level[:16], message),
            )

    def _events(self, column: str, value: int, levels: Sequence[str] | None = None) -> list[Event]:
        sql = f"SELECT at, step, level, message, woo_id, run_id FROM events WHERE {column} = ?"
        params: list[Any] = [value]
        if levels is not None:
            sql += f" AND level IN ({marks(levels)})"
            params.extend(levels)
        rows = self._rows(sql + " ORDER BY id", params)
        return [
            Event(
                at=from_db_time(r[0]), step=r[1], level=r[2], message=r[3], woo_id=r[4], run_id=r[5]
            )
            for r in rows
        ]

    def events(self, woo_id: int) -> list[Event]:
        """Events of one order, oldest first."""
        return self._events("woo_id", woo_id)

    def run_events(self, run_id: int, *, levels: Sequence[str] | None = None) -> list[Event]:
        """Events of one run (only of ``levels`` when given), oldest first."""
        return self._events("run_id", run_id, levels)

    def count_events_before(self, before: datetime) -> int:
        """Number of events recorded before ``before``."""
        return self._count("SELECT COUNT(*) FROM events WHERE at < ?", (to_db_time(before),))

    def delete_events_before(self, before: datetime, *, batch: int = 5000) -> int:
        """Delete events recorded before ``before``, ``batch`` per transaction; return how many."""
        stamp = to_db_time(before)
        deleted = 0
        while True:
            with self._tx() as cur:
                self._exec(cur, "SELECT id FROM events WHERE at < ? LIMIT ?", (stamp, batch))
                ids = [int(r[0]) for r in cur.fetchall()]
                for chunk in chunks(ids):
                    deleted += self._exec(
                        cur,
                        f"DELETE FROM events WHERE id IN ({marks(chunk)})",
                        chunk,
                    )
            if len(ids) < batch:
                return deleted


def _order_filters(
    states: list[OrderState] | None,
    woo_ids: list[int] | None,
    number: str | None,
    email: str | None,
    updated_since: datetime | None,
) -> tuple[list[str], list[Any]]:
    """The WHERE conditions of :meth:`SqlOrders.list_orders`, and their parameters."""
    where: list[str] = []
    params: list[Any] = []
    if number is not None:
        where.append("number = ?")
        params.append(number)
    if updated_since is not None:
        where.append("updated_at >= ?")
        params.append(to_db_time(updated_since))
    if email is not None:
        # A coarse text match narrows the scan; the JSON is checked after.
        where.append("LOWER(raw_json) LIKE ? ESCAPE '!'")
        params.append("%" + _like_escape(email.strip().lower()) + "%")
    if states:
        where.append(f"state IN ({marks(states)})")
        params.extend(s.value for s in states)
    if woo_ids is not None:
        where.append(f"woo_id IN ({marks(woo_ids)})")
        params.extend(woo_ids)
    return where, params


def _updated_in(state: OrderState, start: datetime | None, end: datetime) -> tuple[str, list[Any]]:
    """Orders in ``state`` last updated in ``[start, end)`` (``start`` None: no lower bound):
    one range of the (state, updated_at) index."""
    where = "state = ? AND updated_at < ?"
    params: list[Any] = [state.value, to_db_time(end)]
    if start is not None:
        where += " AND updated_at >= ?"
        params.append(to_db_time(start))
    return where, params


def _like_escape(text: str) -> str:
    """``text`` as a literal inside ``LIKE ? ESCAPE '!'`` (one escape both dialects accept)."""
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def _billing_email(raw: dict[str, Any] | None) -> str | None:
    billing = (raw or {}).get("billing")
    email = billing.get("email") if isinstance(billing, dict) else None
    return email.strip().lower() if isinstance(email, str) else None
