"""SQLite backend: the zero-setup default (``sqlite:///woo2d365.db``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from woo2d365.errors import StoreUnavailable
from woo2d365.store.connection import Dialect
from woo2d365.store.migrations import Index

# sqlite3 raises its bare DatabaseError for a file that is not a database or is corrupt. That is
# the store being unusable (exit 3, state.url named), not a bug of the tool (exit 70).
_UNREADABLE = ("SQLITE_NOTADB", "SQLITE_CORRUPT")


class UnreadableDatabase(sqlite3.OperationalError):
    """The database file is not a SQLite database, or is corrupt."""


def _is_unreadable(exc: BaseException) -> bool:
    name = getattr(exc, "sqlite_errorname", None) or ""
    return type(exc) is sqlite3.DatabaseError and name.startswith(_UNREADABLE)


def _cause(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    text = str(exc).strip() or type(exc).__name__
    if _is_unreadable(exc) and getattr(exc, "sqlite_errorname", "") == "SQLITE_NOTADB":
        return "the file is not a SQLite database (another file, or a corrupt copy)"
    if _is_unreadable(exc):
        return f"the database file is corrupt ({text})"
    return text


class _Cursor(sqlite3.Cursor):
    """A cursor whose corrupt-file errors are :class:`UnreadableDatabase` (an operational error)."""

    def execute(self, *args: Any) -> Any:
        try:
            return super().execute(*args)
        except sqlite3.DatabaseError as exc:
            _raise_if_unreadable(exc)
            raise

    def executemany(self, *args: Any) -> Any:
        try:
            return super().executemany(*args)
        except sqlite3.DatabaseError as exc:
            _raise_if_unreadable(exc)
            raise

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.DatabaseError as exc:
            _raise_if_unreadable(exc)
            raise

    def fetchmany(self, *args: Any) -> list[Any]:
        try:
            return super().fetchmany(*args)
        except sqlite3.DatabaseError as exc:
            _raise_if_unreadable(exc)
            raise

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.DatabaseError as exc:
            _raise_if_unreadable(exc)
            raise


class _Connection(sqlite3.Connection):
    """Hands out :class:`_Cursor` objects; a corrupt file fails as :class:`UnreadableDatabase`."""

    def cursor(self, factory: Any = _Cursor) -> Any:
        return super().cursor(factory)

    def execute(self, *args: Any) -> Any:
        return self.cursor().execute(*args)

    def commit(self) -> None:
        try:
            super().commit()
        except sqlite3.DatabaseError as exc:
            _raise_if_unreadable(exc)
            raise


def _raise_if_unreadable(exc: sqlite3.DatabaseError) -> None:
    """:class:`UnreadableDatabase` when ``exc`` says the file is no (sound) database."""
    if _is_unreadable(exc):
        raise UnreadableDatabase(_cause(exc)) from exc


class SqliteDialect(Dialect):
    """stdlib ``sqlite3`` in WAL mode; write transactions take the lock up front."""

    name: ClassVar[str] = "sqlite"
    paramstyle_format: ClassVar[bool] = False
    ddl_types: ClassVar[dict[str, str]] = {
        "id": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "ts": "TEXT",
        "longtext": "TEXT",
        "opts": "",
    }
    unavailable_errors: ClassVar[tuple[type[BaseException], ...]] = (sqlite3.OperationalError,)
    integrity_errors: ClassVar[tuple[type[BaseException], ...]] = (sqlite3.IntegrityError,)
    insert_ignore_verb: ClassVar[str] = "INSERT OR IGNORE"

    def __init__(self, path: str, *, busy_timeout_seconds: float = 30.0) -> None:
        self.path = path
        self.busy_timeout_seconds = busy_timeout_seconds

    def connect(self) -> Any:
        """Open the database file (created when missing) with WAL and a busy timeout.

        The directory must exist: a typo in ``state.url`` must not start a fresh, empty store
        somewhere else. A file that cannot be opened or is not a SQLite database (another file,
        a corrupt copy) is :class:`StoreUnavailable` naming ``state.url`` and the cause.
        """
        if self.path != ":memory:" and not self.path.startswith("file:"):
            path = Path(self.path)
            if not path.parent.is_dir():
                raise self._unreadable(f"the directory {path.parent} does not exist")
            if path.is_dir():
                raise self._unreadable("it is a directory, not a database file")
        conn: Any = None
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout_seconds,
                isolation_level=None,  # we issue BEGIN ourselves
                check_same_thread=False,  # the store serialises access with its own lock
                factory=_Connection,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_seconds * 1000)}")
        except (sqlite3.DatabaseError, OSError) as exc:
            if conn is not None:
                conn.close()
            raise self._unreadable(_cause(exc)) from None
        return conn

    def creates_on_connect(self) -> bool:
        """True when the file is not there yet in a folder that is: :meth:`connect` creates it."""
        if self.path == ":memory:" or self.path.startswith("file:"):
            return False
        path = Path(self.path)
        return path.parent.is_dir() and not path.exists()

    def _unreadable(self, cause: str) -> StoreUnavailable:
        where = self.describe()
        return StoreUnavailable(f"state store {where} (state.url) cannot be opened: {cause}")

    def begin(self, conn: Any) -> None:
        """BEGIN IMMEDIATE: take the write lock now, so two writers never deadlock on upgrade."""
        conn.execute("BEGIN IMMEDIATE")

    def on_duplicate(self, keys: Sequence[str], updated: Sequence[str]) -> str:
        """``ON CONFLICT (keys) DO UPDATE``."""
        return f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET " + ", ".join(
            f"{c} = excluded.{c}" for c in updated
        )

    def index_exists(self, cursor: Any, index: Index) -> bool:
        """Look the index up in ``sqlite_master``."""
        cursor.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (index.name,)
        )
        return cursor.fetchone() is not None

    def table_exists(self, cursor: Any, table: str) -> bool:
        """Look the table up in ``sqlite_master``."""
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
        return cursor.fetchone() is not None

    def describe(self) -> str:
        """``sqlite:///PATH``."""
        return f"sqlite:///{self.path}"
