"""What every SQL room of the store shares: the dialect, one connection, transactions, time.

Statements are written once with ``?`` parameters; a :class:`Dialect` supplies the driver, the
parameter style and the few statements that differ (upsert, insert-or-ignore, DDL types).
One connection per store, guarded by a lock, so worker threads of one process can share it.
Each room's SQL class (``store/*_sql.py``) is a :class:`SqlRoom`; ``SqlStore`` combines them
over one connection (docs/architecture.md, "The store's rooms").
"""

from __future__ import annotations

import contextlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from woo2d365.clock import utc_now
from woo2d365.errors import StoreUnavailable
from woo2d365.store.migrations import Index

_TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
CHUNK = 500
"""Values in one ``IN (…)`` list."""

_T = TypeVar("_T")


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


def opt_time(value: Any) -> datetime | None:
    """:func:`from_db_time` of a nullable column."""
    return None if value is None else from_db_time(value)


def opt_db_time(value: datetime | None) -> str | None:
    """:func:`to_db_time` of a nullable value."""
    return None if value is None else to_db_time(value)


def chunks(values: Sequence[_T]) -> Iterator[Sequence[_T]]:
    """``values`` in slices of at most :data:`CHUNK`."""
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def marks(values: Sequence[Any]) -> str:
    """``?, ?, …``: one placeholder per value."""
    return ", ".join("?" for _ in values)


def insert_statement(table: str, columns: Sequence[str], verb: str = "INSERT") -> str:
    """``INSERT INTO table (columns) VALUES (?, …)`` (or another ``verb``'s)."""
    return f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({marks(columns)})"


class Dialect(ABC):
    """What differs between the SQL backends."""

    name: ClassVar[str]
    paramstyle_format: ClassVar[bool]  # True: driver wants %s instead of ?
    ddl_types: ClassVar[dict[str, str]]
    unavailable_errors: ClassVar[tuple[type[BaseException], ...]]
    integrity_errors: ClassVar[tuple[type[BaseException], ...]]
    insert_ignore_verb: ClassVar[str]  # the INSERT that skips a row whose key exists

    @abstractmethod
    def connect(self) -> Any:
        """Open a new DB-API connection."""

    @abstractmethod
    def begin(self, conn: Any) -> None:
        """Start a write transaction."""

    def upsert(self, table: str, columns: Sequence[str], keys: Sequence[str]) -> str:
        """INSERT … that updates the non-key columns when the key exists; ``created_at`` is
        kept on update."""
        updated = [c for c in columns if c not in keys and c != "created_at"]
        return f"{insert_statement(table, columns)} {self.on_duplicate(keys, updated)}"

    def insert_ignore(self, table: str, columns: Sequence[str]) -> str:
        """INSERT … that does nothing when the key exists."""
        return insert_statement(table, columns, self.insert_ignore_verb)

    @abstractmethod
    def on_duplicate(self, keys: Sequence[str], updated: Sequence[str]) -> str:
        """The clause of an upsert that sets the ``updated`` columns to the new row's values
        when a row with the same ``keys`` exists."""

    @abstractmethod
    def index_exists(self, cursor: Any, index: Index) -> bool:
        """True when the named index exists."""

    @abstractmethod
    def table_exists(self, cursor: Any, table: str) -> bool:
        """True when the table exists."""

    def creates_on_connect(self) -> bool:
        """True when connecting would create the database (a server's database never is)."""
        return False

    def lock_for_migration(self, cursor: Any) -> None:  # noqa: B027 - optional hook
        """Serialise concurrent migrators (no-op where the transaction already does)."""

    def unlock_after_migration(self, cursor: Any) -> None:  # noqa: B027 - optional hook
        """Counterpart of :meth:`lock_for_migration`."""

    def describe(self) -> str:
        """A printable name of the database, without secrets."""
        return self.name


class ConnectionLock:
    """The lock in front of a store's one connection: reentrant, with a lane for urgent callers.

    An urgent caller is the fence of a create, which writes to the store right before the request
    waits for its Dynamics slot (docs/architecture.md, "Exactly once", step 3): every millisecond
    it waits delays a send. When the lock is freed, a waiting urgent caller gets it before
    any other waiter, and no one else takes it while an urgent caller waits; a holder's own
    nested calls never wait.
    """

    def __init__(self) -> None:
        guard = threading.Lock()
        self._urgent_turn = threading.Condition(guard)
        self._other_turn = threading.Condition(guard)
        self._urgent = 0  # urgent callers waiting
        self._owner: int | None = None
        self._depth = 0

    def acquire(self, *, urgent: bool = False) -> None:
        """Take the lock (again, when this thread holds it)."""
        me = threading.get_ident()
        with self._urgent_turn:
            if self._owner == me:
                self._depth += 1
                return
            try:
                if urgent:
                    self._urgent += 1
                    try:
                        self._urgent_turn.wait_for(lambda: self._owner is None)
                    finally:
                        self._urgent -= 1
                else:
                    self._other_turn.wait_for(lambda: self._owner is None and not self._urgent)
            except BaseException:  # Ctrl-C while waiting: the turn it was given passes on
                self._wake()
                raise
            self._owner, self._depth = me, 1

    def release(self) -> None:
        """Give the lock back (the last nested release frees it)."""
        with self._urgent_turn:
            self._depth -= 1
            if self._depth:
                return
            self._owner = None
            self._wake()

    def _wake(self) -> None:
        """The lock is free: one waiter may take it, an urgent one first (guard held)."""
        if self._owner is None:
            (self._urgent_turn if self._urgent else self._other_turn).notify()

    @contextmanager
    def held(self, *, urgent: bool = False) -> Iterator[None]:
        """Hold the lock for the block."""
        self.acquire(urgent=urgent)
        try:
            yield
        finally:
            self.release()

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class SqlRoom:
    """One connection to the store's database and its transactions; each room builds on it."""

    def __init__(self, dialect: Dialect, *, clock: Callable[[], datetime] | None = None) -> None:
        self.dialect = dialect
        self.clock = clock or utc_now
        self._lock = ConnectionLock()
        self._conn: Any = None
        self._shared: Any = None  # the cursor of an open batch(); its owner holds _lock

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.dialect.paramstyle_format else statement

    def _connection(self) -> Any:
        if self._conn is None:
            try:
                self._conn = self.dialect.connect()
            except self.dialect.unavailable_errors as exc:
                raise StoreUnavailable(
                    f"state store {self.dialect.describe()} cannot be reached: {first_line(exc)}"
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
    def _tx(self, *, urgent: bool = False) -> Iterator[Any]:
        """One transaction (``urgent``: see :class:`ConnectionLock`); operational errors become
        :class:`StoreUnavailable`."""
        with self._lock.held(urgent=urgent):
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
                    f"state store {self.dialect.describe()} failed: {first_line(exc)}"
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

    def _changes_one(
        self, statement: str, params: Sequence[Any] = (), *, urgent: bool = False
    ) -> bool:
        """Run one write in its own transaction; True when it changed exactly one row."""
        with self._tx(urgent=urgent) as cur:
            return self._exec(cur, statement, params) == 1

    def _rows(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows one ``SELECT`` answers, in its own transaction (or the open batch)."""
        with self._tx() as cur:
            self._exec(cur, statement, params)
            return list(cur.fetchall())

    def _count(self, statement: str, params: Sequence[Any] = ()) -> int:
        """The single number a ``SELECT COUNT(*) …`` answers."""
        with self._tx() as cur:
            self._exec(cur, statement, params)
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def _now(self) -> str:
        return to_db_time(self.clock())

    def close(self) -> None:
        """Release the connection."""
        with self._lock:
            self._discard()


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (its type name when it has none)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
