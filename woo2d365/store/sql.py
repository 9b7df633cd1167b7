"""The state store in SQL, shared by the SQLite and MySQL backends.

Statements are written once with ``?`` parameters; a :class:`Dialect` supplies the driver, the
parameter style and the few statements that differ (upsert, insert-or-ignore, DDL types).
One connection per store, guarded by a lock, so worker threads of one process can share it.
"""

from __future__ import annotations

import contextlib
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from woo2d365.clock import utc_now
from woo2d365.errors import StoreUnavailable
from woo2d365.model import OrderState
from woo2d365.store.base import (
    AlertRecord,
    CachedCustomer,
    CachedItem,
    Event,
    OrderRecord,
    PulledOrder,
    RunRecord,
    SkuMapping,
    UpsertOutcome,
)
from woo2d365.store.migrations import MIGRATIONS, Index
from woo2d365.store.refunds import RefundStoreMixin
from woo2d365.store.shipments import ShipmentLedgers
from woo2d365.store.stock import StockStoreMixin

_TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
_CHUNK = 500
WAITING_STATES = (OrderState.NEW, OrderState.READY, OrderState.HELD, OrderState.FAILED)

_ORDER_COLUMNS = (
    "woo_id, number, state, shop_status, shop_modified_at, reason, attempts, d365_id, "
    "d365_number, external_number, currency, total, claimed_by, claimed_at, created_at, "
    "updated_at, pushed_at, write_back_pending, claim_token, last_sent_at, changed_at, state_since"
)
# Set before ``state`` in an UPDATE (MySQL assigns left to right): the moment an order enters a
# state, kept while it stays there (a held order validated again is not held anew).
_SINCE = "state_since = CASE WHEN state = ? THEN COALESCE(state_since, updated_at) ELSE ? END, "
_RAW_INDEX = _ORDER_COLUMNS.count(",") + 1  # raw_json, when asked for, follows the columns


def to_db_time(value: datetime) -> str:
    """Aware datetime → the fixed-width UTC text both backends store and compare."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the state store")
    return value.astimezone(UTC).strftime(_TS_FORMAT)


def from_db_time(value: Any) -> datetime:
    """A stored timestamp (text from SQLite, datetime from MySQL) → aware UTC datetime."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def _opt_time(value: Any) -> datetime | None:
    return None if value is None else from_db_time(value)


class Dialect(ABC):
    """What differs between the SQL backends."""

    name: ClassVar[str]
    paramstyle_format: ClassVar[bool]  # True: driver wants %s instead of ?
    ddl_types: ClassVar[dict[str, str]]
    unavailable_errors: ClassVar[tuple[type[BaseException], ...]]
    integrity_errors: ClassVar[tuple[type[BaseException], ...]]

    @abstractmethod
    def connect(self) -> Any:
        """Open a new DB-API connection."""

    @abstractmethod
    def begin(self, conn: Any) -> None:
        """Start a write transaction."""

    @abstractmethod
    def upsert(self, table: str, columns: Sequence[str], keys: Sequence[str]) -> str:
        """INSERT … that updates the non-key columns when the key exists."""

    @abstractmethod
    def insert_ignore(self, table: str, columns: Sequence[str]) -> str:
        """INSERT … that does nothing when the key exists."""

    @abstractmethod
    def index_exists(self, cursor: Any, index: Index) -> bool:
        """True when the named index exists."""

    @abstractmethod
    def table_exists(self, cursor: Any, table: str) -> bool:
        """True when the table exists."""

    def lock_for_migration(self, cursor: Any) -> None:  # noqa: B027 - optional hook
        """Serialise concurrent migrators (no-op where the transaction already does)."""

    def unlock_after_migration(self, cursor: Any) -> None:  # noqa: B027 - optional hook
        """Counterpart of :meth:`lock_for_migration`."""

    def describe(self) -> str:
        """A printable name of the database, without secrets."""
        return self.name


class SqlStore(StockStoreMixin, ShipmentLedgers, RefundStoreMixin):
    """:class:`~woo2d365.store.base.StateStore` on any :class:`Dialect`."""

    def __init__(self, dialect: Dialect, *, clock: Callable[[], datetime] | None = None) -> None:
        self.dialect = dialect
        self.clock = clock or utc_now
        self._lock = threading.RLock()
        self._conn: Any = None
        self._shared: Any = None  # the cursor of an open batch(); its owner holds _lock

    def reopen(self) -> SqlStore:
        """The same database through a connection of its own (for a heartbeat thread)."""
        if getattr(self.dialect, "path", None) == ":memory:":
            return self  # a second connection would open another, empty database
        return SqlStore(self.dialect, clock=self.clock)

    # -- plumbing --------------------------------------------------------------------------
    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.dialect.paramstyle_format else statement

    def _connection(self) -> Any:
        if self._conn is None:
            try:
                self._conn = self.dialect.connect()
            except self.dialect.unavailable_errors as exc:
                raise StoreUnavailable(
                    f"state store {self.dialect.describe()} cannot be reached: {_first_line(exc)}"
                ) from None
        return self._conn

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Run the block's store calls in one transaction: one commit instead of one per call.

        Other threads wait for the block; an error anywhere rolls the whole block back.
        """
        with self._lock:
            if self._shared is not None:
                yield  # already inside a batch
                return
            with self._tx() as cur:
                self._shared = cur
                try:
                    yield
                finally:
                    self._shared = None

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """One transaction; operational errors become :class:`StoreUnavailable`."""
        with self._lock:
            if self._shared is not None:
                yield self._shared  # part of the open batch, committed with it
                return
            conn = self._connection()
            try:
                self.dialect.begin(conn)
                cursor = conn.cursor()
                try:
                    yield cursor
                finally:
                    cursor.close()
                conn.commit()
            except self.dialect.unavailable_errors as exc:
                self._discard()
                raise StoreUnavailable(
                    f"state store {self.dialect.describe()} failed: {_first_line(exc)}"
                ) from None
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        try:
            self._conn.rollback()
        except self.dialect.unavailable_errors:
            self._discard()

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # A broken connection may fail to close; it is gone anyway.
            with contextlib.suppress(Exception):
                conn.close()

    def _exec(self, cur: Any, statement: str, params: Sequence[Any] = ()) -> int:
        cur.execute(self._sql(statement), tuple(params))
        return int(cur.rowcount)

    def _now(self) -> str:
        return to_db_time(self.clock())

    def close(self) -> None:
        """Release the connection."""
        with self._lock:
            self._discard()

    # -- lifecycle -------------------------------------------------------------------------
    def migrate(self) -> int:
        """Apply pending migrations; return the schema version."""
        types = self.dialect.ddl_types
        with self._tx() as cur:
            self.dialect.lock_for_migration(cur)
            try:
                self._exec(
                    cur,
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER NOT NULL "
                    "PRIMARY KEY, description VARCHAR(255) NOT NULL, applied_at {ts} NOT NULL) "
                    "{opts}".format(**types),
                )
                self._exec(cur, "SELECT version FROM schema_migrations")
                applied = {int(row[0]) for row in cur.fetchall()}
                for migration in MIGRATIONS:
                    if migration.version in applied:
                        continue
                    for statement in migration.tables:
                        self._exec(cur, statement.format(**types))
                    for column in migration.columns:
                        if column.name not in self._column_names(cur, column.table):
                            self._exec(
                                cur,
                                f"ALTER TABLE {column.table} ADD COLUMN {column.name} "
                                + column.ddl.format(**types),
                            )
                    for statement in migration.data:
                        self._exec(cur, statement)
                    for index in migration.indexes:
                        if not self.dialect.index_exists(cur, index):
                            unique = "UNIQUE " if index.unique else ""
                            columns = ", ".join(index.columns)
                            self._exec(
                                cur,
                                f"CREATE {unique}INDEX {index.name} ON {index.table} ({columns})",
                            )
                    self._exec(
                        cur,
                        self.dialect.insert_ignore(
                            "schema_migrations", ("version", "description", "applied_at")
                        ),
                        (migration.version, migration.description, self._now()),
                    )
            finally:
                self.dialect.unlock_after_migration(cur)
        return self.schema_version()

    def _column_names(self, cur: Any, table: str) -> set[str]:
        # Both drivers describe the columns of an empty result: no catalogue query per dialect.
        cur.execute(f"SELECT * FROM {table} WHERE 1 = 0")
        cur.fetchall()
        return {str(column[0]).lower() for column in cur.description or ()}

    def applied_versions(self) -> set[int]:
        """The schema versions applied to this database (empty for a new one)."""
        with self._tx() as cur:
            if not self.dialect.table_exists(cur, "schema_migrations"):
                return set()
            self._exec(cur, "SELECT version FROM schema_migrations")
            return {int(row[0]) for row in cur.fetchall()}

    def schema_version(self) -> int:
        """The version of the applied schema (0 for an empty database)."""
        with self._tx() as cur:
            if not self.dialect.table_exists(cur, "schema_migrations"):
                return 0
            self._exec(cur, "SELECT MAX(version) FROM schema_migrations")
            row = cur.fetchone()
        return int(row[0] or 0) if row else 0

    # -- orders ----------------------------------------------------------------------------
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
            claimed_at=_opt_time(row[13]),
            created_at=from_db_time(row[14]),
            updated_at=from_db_time(row[15]),
            pushed_at=_opt_time(row[16]),
            write_back_pending=bool(row[17]),
            claim_token=row[18],
            last_sent_at=_opt_time(row[19]),
            changed_at=_opt_time(row[20]),
            since=_opt_time(row[21]) or from_db_time(row[15]),
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
        columns = _ORDER_COLUMNS + (", raw_json" if with_raw or email else "")
        where: list[str] = []
        params: list[Any] = []
        if number is not None:
            where.append("number = ?")
            params.append(number)
        if updated_since is not None:
            where.append("updated_at >= ?")
            params.append(to_db_time(updated_since))
        if email is not None:
            # A coarse text match narrows the scan; the JSON is checked below.
            where.append("LOWER(raw_json) LIKE ? ESCAPE '!'")
            params.append("%" + _like_escape(email.strip().lower()) + "%")
        if states:
            where.append(f"state IN ({', '.join('?' for _ in states)})")
            params.extend(s.value for s in states)
        if woo_ids is not None:
            if not woo_ids:
                return []
            where.append(f"woo_id IN ({', '.join('?' for _ in woo_ids)})")
            params.extend(woo_ids)
        sql = f"SELECT {columns} FROM orders"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY updated_at DESC, woo_id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._tx() as cur:
            self._exec(cur, sql, params)
            rows = cur.fetchall()
        records = [
            self._order_from_row(r, r[_RAW_INDEX] if with_raw or email else None) for r in rows
        ]
        if email is not None:
            wanted = email.strip().lower()
            records = [r for r in records if _billing_email(r.raw) == wanted]
            if not with_raw:
                records = [replace(r, raw=None) for r in records]
        return records

    def order_ids_in_state(self, state: OrderState, *, limit: int | None = None) -> list[int]:
        """Ids of orders in ``state``, oldest update first (work queue order)."""
        sql = "SELECT woo_id FROM orders WHERE state = ? ORDER BY updated_at, woo_id"
        params: list[Any] = [state.value]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._tx() as cur:
            self._exec(cur, sql, params)
            return [int(r[0]) for r in cur.fetchall()]

    def order_ids_after(self, states: list[OrderState], after: int | None, limit: int) -> list[int]:
        """Up to ``limit`` ids of orders in ``states`` greater than ``after``, ascending."""
        marks = ", ".join("?" for _ in states)
        sql = f"SELECT woo_id FROM orders WHERE state IN ({marks})"
        params: list[Any] = [state.value for state in states]
        if after is not None:
            sql += " AND woo_id > ?"
            params.append(int(after))
        sql += " ORDER BY woo_id LIMIT ?"
        params.append(int(limit))
        with self._tx() as cur:
            self._exec(cur, sql, params)
            return [int(r[0]) for r in cur.fetchall()]

    def counts(self) -> dict[str, int]:
        """Number of orders per state (every state present, zero included)."""
        result = {state.value: 0 for state in OrderState}
        with self._tx() as cur:
            self._exec(cur, "SELECT state, COUNT(*) FROM orders GROUP BY state")
            for state, count in cur.fetchall():
                result[str(state)] = int(count)
        return result

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
        now = self._now()
        sets = _SINCE + "state = ?, reason = ?, updated_at = ?"
        params: list[Any] = [state.value, now, state.value, reason, now]
        if state is not OrderState.PUSHING:
            sets += ", claimed_by = NULL, claimed_at = NULL, claim_token = NULL"
        if reset_attempts:
            sets += ", attempts = 0"
        elif uncount_attempt:
            sets += ", attempts = attempts - 1"
        sql = f"UPDATE orders SET {sets} WHERE woo_id = ?"
        params.append(woo_id)
        if expect:
            sql += f" AND state IN ({', '.join('?' for _ in expect)})"
            params.extend(s.value for s in expect)
        if token is not None:
            sql += " AND claim_token = ?"
            params.append(token)
        with self._tx() as cur:
            return self._exec(cur, sql, params) == 1

    def claim(
        self, woo_id: int, claimer: str, now: datetime, *, token: str, key: str | None
    ) -> bool:
        """``ready`` → ``pushing`` for this claimer and token, counting an attempt.

        ``key`` (the document's idempotency key) is stored unless the order already has one, so
        an order once sent keeps its key whatever the settings say later.
        """
        stamp = to_db_time(now)
        with self._tx() as cur:
            changed = self._exec(
                cur,
                "UPDATE orders SET " + _SINCE + "state = ?, claimed_by = ?, claimed_at = ?, "
                "claim_token = ?, external_number = COALESCE(external_number, ?), "
                "attempts = attempts + 1, updated_at = ? WHERE woo_id = ? AND state = ?",
                (
                    OrderState.PUSHING.value,
                    stamp,
                    OrderState.PUSHING.value,
                    claimer,
                    stamp,
                    token,
                    key,
                    stamp,
                    woo_id,
                    OrderState.READY.value,
                ),
            )
        return changed == 1

    def claim_in_doubt(
        self, woo_id: int, claimer: str, now: datetime, older_than: datetime, *, token: str
    ) -> bool:
        """Take over a ``pushing`` order whose claim is older than ``older_than``, with a new
        token (the old claim's settling writes are then refused)."""
        stamp = to_db_time(now)
        with self._tx() as cur:
            changed = self._exec(
                cur,
                "UPDATE orders SET claimed_by = ?, claimed_at = ?, claim_token = ?, updated_at = ? "
                "WHERE woo_id = ? AND state = ? AND (claimed_at IS NULL OR claimed_at < ?)",
                (
                    claimer,
                    stamp,
                    token,
                    stamp,
                    woo_id,
                    OrderState.PUSHING.value,
                    to_db_time(older_than),
                ),
            )
        return changed == 1

    def confirm_claim(
        self, woo_id: int, token: str, now: datetime, *, sending: bool = False
    ) -> bool:
        """Renew the claim ``token`` if it still holds the order; with ``sending``, also record
        ``now`` as the time of the last create sent. False: the claim is lost."""
        stamp = to_db_time(now)
        sets = "claimed_at = ?" + (", last_sent_at = ?" if sending else "")
        params: list[Any] = [stamp, stamp] if sending else [stamp]
        with self._tx() as cur:
            return (
                self._exec(
                    cur,
                    f"UPDATE orders SET {sets} WHERE woo_id = ? AND state = ? AND claim_token = ?",
                    (*params, woo_id, OrderState.PUSHING.value, token),
                )
                == 1
            )

    def set_last_sent(self, woo_id: int, token: str, sent_at: datetime | None) -> bool:
        """Put back the time of the last send (a create that certainly never ran)."""
        with self._tx() as cur:
            return (
                self._exec(
                    cur,
                    "UPDATE orders SET last_sent_at = ? WHERE woo_id = ? AND claim_token = ?",
                    (None if sent_at is None else to_db_time(sent_at), woo_id, token),
                )
                == 1
            )

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
        with self._tx() as cur:
            self._exec(
                cur,
                "SELECT woo_id FROM orders WHERE state = ? AND (claimed_at IS NULL OR "
                "claimed_at < ?) ORDER BY claimed_at, woo_id",
                (OrderState.PUSHING.value, to_db_time(older_than)),
            )
            return [int(r[0]) for r in cur.fetchall()]

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
        stamp = to_db_time(now)
        sql = (
            "UPDATE orders SET " + _SINCE + "state = ?, d365_id = ?, d365_number = ?, "
            "external_number = ?, pushed_at = ?, updated_at = ?, reason = NULL, claimed_by = NULL, "
            "claimed_at = NULL, claim_token = NULL, write_back_pending = ? WHERE woo_id = ?"
        )
        params: list[Any] = [
            OrderState.PUSHED.value,
            stamp,
            OrderState.PUSHED.value,
            d365_id,
            d365_number,
            external_number,
            stamp,
            stamp,
            int(write_back),
            woo_id,
        ]
        if token is not None:
            sql += " AND state = ? AND claim_token = ?"
            params += [OrderState.PUSHING.value, token]
        if expect:
            sql += f" AND state IN ({', '.join('?' for _ in expect)})"
            params += [state.value for state in expect]
        with self._tx() as cur:
            return self._exec(cur, sql, params) == 1

    def forget_document(self, woo_id: int, reason: str) -> bool:
        """A ``pushed`` order whose document no longer exists becomes ``ready`` again (its key
        kept, attempts reset). True if changed."""
        now = self._now()
        with self._tx() as cur:
            return (
                self._exec(
                    cur,
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
                == 1
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
        with self._tx() as cur:
            return (
                self._exec(
                    cur,
                    "UPDATE orders SET changed_at = NULL "
                    "WHERE woo_id = ? AND changed_at IS NOT NULL",
                    (woo_id,),
                )
                == 1
            )

    def changed_after_push_ids(self) -> list[int]:
        """Orders changed in the shop after their push and not acknowledged yet."""
        with self._tx() as cur:
            self._exec(
                cur,
                "SELECT woo_id FROM orders WHERE changed_at IS NOT NULL "
                "ORDER BY changed_at, woo_id",
            )
            return [int(row[0]) for row in cur.fetchall()]

    def set_write_back_pending(self, woo_id: int) -> bool:
        """A pushed order's write-back is to be done (again) by the next push."""
        with self._tx() as cur:
            return (
                self._exec(
                    cur,
                    "UPDATE orders SET write_back_pending = 1 WHERE woo_id = ? AND state = ?",
                    (woo_id, OrderState.PUSHED.value),
                )
                == 1
            )

    def write_back_pending_ids(self, *, limit: int | None = None) -> list[int]:
        """Pushed orders whose write-back to the shop is still to do."""
        sql = "SELECT woo_id FROM orders WHERE write_back_pending = 1 ORDER BY pushed_at, woo_id"
        params: list[Any] = []
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._tx() as cur:
            self._exec(cur, sql, params)
            return [int(r[0]) for r in cur.fetchall()]

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
            sql += f" AND level IN ({', '.join('?' for _ in levels)})"
            params.extend(levels)
        with self._tx() as cur:
            self._exec(cur, sql + " ORDER BY id", params)
            rows = cur.fetchall()
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

    def start_run(self, command: str, now: datetime, worker: str = "") -> int:
        """Open a run record; return its id."""
        with self._tx() as cur:
            self._exec(
                cur,
                "INSERT INTO runs (command, worker, started_at) VALUES (?, ?, ?)",
                (command, worker[:128], to_db_time(now)),
            )
            return int(cur.lastrowid)

    def finish_run(self, run_id: int, outcome: str, counts: dict[str, int], now: datetime) -> None:
        """Close a run record with its outcome and counts."""
        with self._tx() as cur:
            self._exec(
                cur,
                "UPDATE runs SET finished_at = ?, outcome = ?, counts_json = ? WHERE id = ?",
                (to_db_time(now), outcome, json.dumps(counts, sort_keys=True), run_id),
            )

    def last_run(self, command: str = "sync", *, outcome: str | None = None) -> RunRecord | None:
        """The latest run of ``command`` (optionally only with ``outcome``)."""
        sql = "SELECT id, command, started_at, finished_at, outcome, counts_json FROM runs "
        params: list[Any] = [command]
        if outcome is None:
            sql += "WHERE command = ? ORDER BY id DESC LIMIT 1"
        else:
            sql += "WHERE command = ? AND outcome = ? ORDER BY id DESC LIMIT 1"
            params.append(outcome)
        with self._tx() as cur:
            self._exec(cur, sql, params)
            row = cur.fetchone()
        if row is None:
            return None
        return RunRecord(
            id=int(row[0]),
            command=row[1],
            started_at=from_db_time(row[2]),
            finished_at=_opt_time(row[3]),
            outcome=row[4],
            counts=json.loads(row[5]) if row[5] else {},
        )

    # -- SKU map ---------------------------------------------------------------------------
    _SKU_COLUMNS = ("sku", "item_number", "note", "updated_by", "created_at", "updated_at")

    def map_sku(
        self, sku: str, item_number: str, note: str, by: str, now: datetime
    ) -> UpsertOutcome:
        """Add or update one mapping."""
        return self.map_skus([(sku, item_number, note)], by, now)[0]

    def map_skus(
        self, rows: list[tuple[str, str, str]], by: str, now: datetime
    ) -> list[UpsertOutcome]:
        """Add or update many mappings (sku, item_number, note) in one transaction."""
        stamp = to_db_time(now)
        outcomes: list[UpsertOutcome] = []
        with self._tx() as cur:
            existing: dict[str, tuple[str, str]] = {}
            skus = list(dict.fromkeys(r[0] for r in rows))
            for start in range(0, len(skus), _CHUNK):
                chunk = skus[start : start + _CHUNK]
                self._exec(
                    cur,
                    "SELECT sku, item_number, note FROM sku_map "
                    f"WHERE sku IN ({', '.join('?' for _ in chunk)})",
                    chunk,
                )
                existing.update({r[0]: (r[1], r[2]) for r in cur.fetchall()})
            changed: dict[str, tuple[Any, ...]] = {}
            for sku, item, note in rows:
                before = existing.get(sku)
                if before == (item, note):
                    outcomes.append("unchanged")
                    continue
                outcomes.append("added" if before is None else "updated")
                existing[sku] = (item, note)
                changed[sku] = (sku, item, note, by[:128], stamp, stamp)
            if changed:
                statement = self._sql(self.dialect.upsert("sku_map", self._SKU_COLUMNS, ("sku",)))
                cur.executemany(statement, list(changed.values()))
        return outcomes

    def unmap_sku(self, sku: str) -> bool:
        """Remove a mapping; True if it existed."""
        with self._tx() as cur:
            return self._exec(cur, "DELETE FROM sku_map WHERE sku = ?", (sku,)) == 1

    def sku_mapping(self, sku: str) -> SkuMapping | None:
        """One mapping."""
        found = self.sku_mappings([sku])
        return found[0] if found else None

    def sku_mappings(self, skus: list[str] | None = None) -> list[SkuMapping]:
        """All mappings (or those of ``skus``), ordered by SKU."""
        base = "SELECT sku, item_number, note, updated_by, updated_at FROM sku_map"
        rows: list[Any] = []
        with self._tx() as cur:
            if skus is None:
                self._exec(cur, base + " ORDER BY sku")
                rows = list(cur.fetchall())
            else:
                unique = list(dict.fromkeys(skus))
                for start in range(0, len(unique), _CHUNK):
                    chunk = unique[start : start + _CHUNK]
                    placeholders = ", ".join("?" for _ in chunk)
                    self._exec(cur, f"{base} WHERE sku IN ({placeholders})", chunk)
                    rows.extend(cur.fetchall())
                rows.sort(key=lambda r: r[0])
        return [
            SkuMapping(
                sku=r[0],
                item_number=r[1],
                note=r[2],
                updated_by=r[3],
                updated_at=from_db_time(r[4]),
            )
            for r in rows
        ]

    def set_held_skus(self, woo_id: int, skus: list[str]) -> None:
        """Replace the list of unmapped SKUs that hold an order."""
        with self._tx() as cur:
            self._exec(cur, "DELETE FROM held_skus WHERE woo_id = ?", (woo_id,))
            unique = list(dict.fromkeys(skus))
            if unique:
                cur.executemany(
                    self._sql("INSERT INTO held_skus (woo_id, sku) VALUES (?, ?)"),
                    [(woo_id, sku) for sku in unique],
                )

    def unmapped_skus(self) -> list[tuple[str, int]]:
        """SKUs on held orders without a mapping, with the number of orders each holds."""
        with self._tx() as cur:
            self._exec(
                cur,
                "SELECT h.sku, COUNT(*) FROM held_skus h "
                "JOIN orders o ON o.woo_id = h.woo_id AND o.state = ? "
                "LEFT JOIN sku_map m ON m.sku = h.sku WHERE m.sku IS NULL "
                "GROUP BY h.sku ORDER BY h.sku",
                (OrderState.HELD.value,),
            )
            return [(r[0], int(r[1])) for r in cur.fetchall()]

    # -- key/value -------------------------------------------------------------------------
    def get_value(self, key: str) -> str | None:
        """A stored value (e.g. ``pull.cursor``)."""
        with self._tx() as cur:
            self._exec(cur, "SELECT value FROM kv WHERE name = ?", (key,))
            row = cur.fetchone()
        return None if row is None else str(row[0])

    def set_value(self, key: str, value: str) -> None:
        """Store a value."""
        with self._tx() as cur:
            self._exec(
                cur,
                self.dialect.upsert("kv", ("name", "value", "updated_at"), ("name",)),
                (key, value, self._now()),
            )

    # -- run lock --------------------------------------------------------------------------
    def acquire_lock(self, name: str, holder: str, now: datetime, ttl_seconds: float) -> bool:
        """Take the lease ``name`` if free or expired; True if ``holder`` now holds it."""
        stamp = to_db_time(now)
        expires = to_db_time(now + timedelta(seconds=ttl_seconds))
        with self._tx() as cur:
            taken = self._exec(
                cur,
                "UPDATE locks SET holder = ?, acquired_at = ?, expires_at = ? "
                "WHERE name = ? AND (expires_at < ? OR holder = ?)",
                (holder, stamp, expires, name, stamp, holder),
            )
            if taken == 1:
                return True
            inserted = self._exec(
                cur,
                self.dialect.insert_ignore(
                    "locks", ("name", "holder", "acquired_at", "expires_at")
                ),
                (name, holder, stamp, expires),
            )
            return inserted == 1

    def renew_lock(self, name: str, holder: str, now: datetime, ttl_seconds: float) -> bool:
        """Extend a held lease; False if it was lost."""
        expires = to_db_time(now + timedelta(seconds=ttl_seconds))
        with self._tx() as cur:
            return (
                self._exec(
                    cur,
                    "UPDATE locks SET expires_at = ? WHERE name = ? AND holder = ?",
                    (expires, name, holder),
                )
                == 1
            )

    def release_lock(self, name: str, holder: str) -> None:
        """Give a lease back."""
        with self._tx() as cur:
            self._exec(cur, "DELETE FROM locks WHERE name = ? AND holder = ?", (name, holder))

    def lock_holder(self, name: str) -> str | None:
        """Who holds the lease ``name`` (expired or not), or None."""
        with self._tx() as cur:
            self._exec(cur, "SELECT holder FROM locks WHERE name = ?", (name,))
            row = cur.fetchone()
        return None if row is None else str(row[0])

    # -- Dynamics caches -------------------------------------------------------------------
    _ITEM_COLUMNS = ("number", "id", "display_name", "blocked", "last_modified", "blocked_reason")

    def _item_rows(self, items: list[CachedItem]) -> list[tuple[Any, ...]]:
        return [
            (
                i.number,
                i.id,
                i.display_name[:255],
                int(i.blocked),
                i.last_modified[:40],
                i.blocked_reason[:100],
            )
            for i in items
        ]

    def upsert_items(self, items: list[CachedItem]) -> None:
        """Store or refresh mirrored items."""
        if not items:
            return
        statement = self._sql(self.dialect.upsert("bc_items", self._ITEM_COLUMNS, ("number",)))
        with self._tx() as cur:
            cur.executemany(statement, self._item_rows(items))

    def replace_items(self, items: list[CachedItem]) -> None:
        """Replace the whole item mirror (a full refresh catches deletions)."""
        statement = self._sql(self.dialect.upsert("bc_items", self._ITEM_COLUMNS, ("number",)))
        with self._tx() as cur:
            self._exec(cur, "DELETE FROM bc_items")
            if items:
                cur.executemany(statement, self._item_rows(items))

    def items_by_number(self, numbers: list[str]) -> dict[str, CachedItem]:
        """Mirrored items for these numbers."""
        found: dict[str, CachedItem] = {}
        unique = list(dict.fromkeys(numbers))
        with self._tx() as cur:
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                self._exec(
                    cur,
                    "SELECT number, id, display_name, blocked, last_modified, blocked_reason "
                    "FROM bc_items "
                    f"WHERE number IN ({', '.join('?' for _ in chunk)})",
                    chunk,
                )
                for r in cur.fetchall():
                    found[r[0]] = CachedItem(
                        number=r[0],
                        id=r[1],
                        display_name=r[2],
                        blocked=bool(r[3]),
                        last_modified=r[4],
                        blocked_reason=r[5] or "",
                    )
        return found

    def item_count(self) -> int:
        """Number of mirrored items."""
        with self._tx() as cur:
            self._exec(cur, "SELECT COUNT(*) FROM bc_items")
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def get_customer(self, email: str) -> CachedCustomer | None:
        """The cached customer for an e-mail address (case-insensitive)."""
        key = email.strip().lower()
        with self._tx() as cur:
            self._exec(cur, "SELECT email, number, id FROM bc_customers WHERE email = ?", (key,))
            row = cur.fetchone()
        return None if row is None else CachedCustomer(email=row[0], number=row[1], id=row[2])

    def put_customer(self, customer: CachedCustomer) -> None:
        """Cache a customer for an e-mail address."""
        with self._tx() as cur:
            self._exec(
                cur,
                self.dialect.upsert(
                    "bc_customers", ("email", "number", "id", "updated_at"), ("email",)
                ),
                (customer.email.strip().lower(), customer.number, customer.id, self._now()),
            )

    # -- alerts ----------------------------------------------------------------------------
    _ALERT_COLUMNS = ("alert_key", "kind", "message", "active", "first_seen", "last_sent")

    def alert_records(self) -> list[AlertRecord]:
        """Every remembered alert condition."""
        with self._tx() as cur:
            self._exec(
                cur,
                "SELECT alert_key, kind, message, active, first_seen, last_sent FROM alerts "
                "ORDER BY alert_key",
            )
            rows = cur.fetchall()
        return [
            AlertRecord(
                key=r[0],
                kind=r[1],
                message=r[2],
                active=bool(r[3]),
                first_seen=from_db_time(r[4]),
                last_sent=_opt_time(r[5]),
            )
            for r in rows
        ]

    def save_alert_records(self, upsert: list[AlertRecord], delete: list[str]) -> None:
        """Store changed alert conditions and forget others, in one transaction."""
        statement = self._sql(self.dialect.upsert("alerts", self._ALERT_COLUMNS, ("alert_key",)))
        rows = [
            (
                a.key[:191],
                a.kind[:32],
                a.message,
                int(a.active),
                to_db_time(a.first_seen),
                to_db_time(a.last_sent) if a.last_sent else None,
            )
            for a in upsert
        ]
        with self._tx() as cur:
            if rows:
                cur.executemany(statement, rows)
            for key in delete:
                self._exec(cur, "DELETE FROM alerts WHERE alert_key = ?", (key,))

    # -- retention and monitoring ---------------------------------------------------------
    def last_successful_run(self, command: str = "sync") -> RunRecord | None:
        """The latest run of ``command`` that reached both systems (outcome ok or attention)."""
        found = [self.last_run(command, outcome=outcome) for outcome in ("ok", "attention")]
        runs = [run for run in found if run is not None]
        return max(runs, key=lambda run: run.id) if runs else None

    def count_events_before(self, before: datetime) -> int:
        """Number of events recorded before ``before``."""
        with self._tx() as cur:
            self._exec(cur, "SELECT COUNT(*) FROM events WHERE at < ?", (to_db_time(before),))
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def delete_events_before(self, before: datetime, *, batch: int = 5000) -> int:
        """Delete events recorded before ``before``, ``batch`` per transaction; return how many."""
        stamp = to_db_time(before)
        deleted = 0
        while True:
            with self._tx() as cur:
                self._exec(cur, "SELECT id FROM events WHERE at < ? LIMIT ?", (stamp, batch))
                ids = [int(r[0]) for r in cur.fetchall()]
                for start in range(0, len(ids), _CHUNK):
                    chunk = ids[start : start + _CHUNK]
                    deleted += self._exec(
                        cur,
                        f"DELETE FROM events WHERE id IN ({', '.join('?' for _ in chunk)})",
                        chunk,
                    )
            if len(ids) < batch:
                return deleted

    def count_orders_updated_between(
        self, state: OrderState, start: datetime | None, end: datetime
    ) -> int:
        """Orders in ``state`` last updated in ``[start, end)`` (``start`` None: no lower bound)."""
        sql = "SELECT COUNT(*) FROM orders WHERE state = ? AND updated_at < ?"
        params: list[Any] = [state.value, to_db_time(end)]
        if start is not None:
            sql += " AND updated_at >= ?"
            params.append(to_db_time(start))
        with self._tx() as cur:
            self._exec(cur, sql, params)
            row = cur.fetchone()
        return int(row[0]) if row else 0

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
        sql = "SELECT woo_id, updated_at, raw_json FROM orders WHERE state = ? AND updated_at < ?"
        params: list[Any] = [state.value, to_db_time(end)]
        if start is not None:
            sql += " AND updated_at >= ?"
            params.append(to_db_time(start))
        if after is not None:
            stamp = to_db_time(after[0])
            sql += " AND (updated_at > ? OR (updated_at = ? AND woo_id > ?))"
            params.extend((stamp, stamp, after[1]))
        sql += " ORDER BY updated_at, woo_id LIMIT ?"
        params.append(int(limit))
        with self._tx() as cur:
            self._exec(cur, sql, params)
            rows = cur.fetchall()
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

    def count_customers_before(self, before: datetime) -> int:
        """Cached customers (e-mail → number) stored before ``before``."""
        with self._tx() as cur:
            self._exec(
                cur, "SELECT COUNT(*) FROM bc_customers WHERE updated_at < ?", (to_db_time(before),)
            )
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def delete_customers_before(self, before: datetime) -> int:
        """Forget cached customers stored before ``before``; return how many."""
        with self._tx() as cur:
            return self._exec(
                cur, "DELETE FROM bc_customers WHERE updated_at < ?", (to_db_time(before),)
            )

    def count_in_state(self, state: OrderState) -> int:
        """Orders in ``state``: one range of the (state, updated_at) index."""
        with self._tx() as cur:
            self._exec(cur, "SELECT COUNT(*) FROM orders WHERE state = ?", (state.value,))
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def count_pushed_until(self, moment: datetime) -> int:
        """Pushed orders with ``pushed_at`` at or before ``moment``, in one consistent statement.

        All pushed orders (index only) minus those pushed later; ``pushed_at <= updated_at``,
        so the latter are a short range of the (state, updated_at) index.
        """
        stamp = to_db_time(moment)
        pushed = OrderState.PUSHED.value
        with self._tx() as cur:
            self._exec(
                cur,
                "SELECT (SELECT COUNT(*) FROM orders WHERE state = ?) - (SELECT COUNT(*) FROM "
                "orders WHERE state = ? AND updated_at > ? AND pushed_at > ?)",
                (pushed, pushed, stamp, stamp),
            )
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def count_pushed_between(self, after: datetime, until: datetime | None = None) -> int:
        """Pushed orders with ``after < pushed_at <= until`` (no upper bound when None)."""
        stamp = to_db_time(after)
        sql = "SELECT COUNT(*) FROM orders WHERE state = ? AND updated_at > ? AND pushed_at > ?"
        params: list[Any] = [OrderState.PUSHED.value, stamp, stamp]
        if until is not None:
            sql += " AND pushed_at <= ?"
            params.append(to_db_time(until))
        with self._tx() as cur:
            self._exec(cur, sql, params)
            row = cur.fetchone()
        return int(row[0]) if row else 0


def _like_escape(text: str) -> str:
    """``text`` as a literal inside ``LIKE ? ESCAPE '!'`` (one escape both dialects accept)."""
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def _billing_email(raw: dict[str, Any] | None) -> str | None:
    billing = (raw or {}).get("billing")
    email = billing.get("email") if isinstance(billing, dict) else None
    return email.strip().lower() if isinstance(email, str) else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
