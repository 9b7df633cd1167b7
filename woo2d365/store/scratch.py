"""A scratch copy of the state store: what ``sync --dry-run`` runs the real steps over.

The copy is a SQLite database in a temporary directory, removed when the block ends; the store it
is copied from is only read, a page at a time (docs/architecture.md, "Dry run"). It holds what
pull, validate and push read: the orders, the SKU map, the key/value table (the pull cursor) and
the Dynamics mirror. Every order keeps its shop JSON: pull tells a pushed order's real change
from our own write-back by comparing it with the stored copy.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from woo2d365.store.connection import SqlRoom, insert_statement
from woo2d365.store.sqlite import SqliteDialect

PAGE = 500
"""Rows read from the store per transaction."""

COPIED: tuple[tuple[str, str | None], ...] = (
    ("orders", "woo_id"),
    ("sku_map", "sku"),
    ("held_skus", None),  # one row per SKU of a held order: read whole
    ("kv", "name"),
    ("bc_items", "number"),
    ("bc_customers", "email"),
)
"""The tables the sync steps read, each with the key it is paged by."""

_Store = TypeVar("_Store", bound=SqlRoom)


@contextmanager
def scratch_copy(source: SqlRoom, open_new: Callable[[SqliteDialect], _Store]) -> Iterator[_Store]:
    """A store opened by ``open_new`` (schema applied) on a new SQLite file, holding a copy of
    ``source``'s :data:`COPIED` tables; closed and deleted after the block."""
    with tempfile.TemporaryDirectory(prefix="woo2d365-dry-run-") as folder:
        scratch = open_new(SqliteDialect(str(Path(folder) / "scratch.db")))
        try:
            for table, key in COPIED:
                for columns, rows in _pages(source, table, key):
                    _insert(scratch, table, columns, rows)
            yield scratch
        finally:
            scratch.close()


def _pages(
    source: SqlRoom, table: str, key: str | None
) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
    """The rows of ``table``, :data:`PAGE` at a time by ``key`` (all at once without one)."""
    after: Any = None
    while True:
        with source._tx() as cur:
            columns = _columns(source, cur, table)
            statement = f"SELECT {', '.join(columns)} FROM {table}"
            params: tuple[Any, ...] = ()
            if key is not None:
                if after is not None:
                    statement += f" WHERE {key} > ?"
                    params = (after,)
                statement += f" ORDER BY {key} LIMIT {PAGE}"
            source._exec(cur, statement, params)
            rows = [tuple(row) for row in cur.fetchall()]
        if rows:
            yield columns, rows
        if key is None or len(rows) < PAGE:
            return
        after = rows[-1][columns.index(key)]


def _columns(source: SqlRoom, cur: Any, table: str) -> list[str]:
    source._exec(cur, f"SELECT * FROM {table} WHERE 1 = 0")
    cur.fetchall()
    return [str(column[0]).lower() for column in cur.description or ()]


def _insert(scratch: SqlRoom, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    statement = insert_statement(table, columns)
    with scratch._tx() as cur:
        cur.executemany(scratch._sql(statement), rows)
