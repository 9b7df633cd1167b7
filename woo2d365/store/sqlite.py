"""SQLite backend: the zero-setup default (``sqlite:///woo2d365.db``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from woo2d365.store.migrations import Index
from woo2d365.store.sql import Dialect


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

    def __init__(self, path: str, *, busy_timeout_seconds: float = 30.0) -> None:
        self.path = path
        self.busy_timeout_seconds = busy_timeout_seconds

    def connect(self) -> Any:
        """Open the database file (created when missing) with WAL and a busy timeout."""
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout_seconds,
            isolation_level=None,  # we issue BEGIN ourselves
            check_same_thread=False,  # the store serialises access with its own lock
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_seconds * 1000)}")
        return conn

    def begin(self, conn: Any) -> None:
        """BEGIN IMMEDIATE: take the write lock now, so two writers never deadlock on upgrade."""
        conn.execute("BEGIN IMMEDIATE")

    def upsert(self, table: str, columns: Sequence[str], keys: Sequence[str]) -> str:
        """``INSERT … ON CONFLICT (keys) DO UPDATE``; created_at is kept on update."""
        updates = ", ".join(
            f"{c} = excluded.{c}" for c in columns if c not in keys and c != "created_at"
        )
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)}) "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
        )

    def insert_ignore(self, table: str, columns: Sequence[str]) -> str:
        """``INSERT OR IGNORE``."""
        return (
            f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)})"
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
