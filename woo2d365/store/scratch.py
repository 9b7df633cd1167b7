"""Scratch copies of the state store: what a dry run works on (docs/architecture.md, "Dry run").

A scratch store is a SQLite file in a temporary folder (``sql.ScratchStore``); the store it is
copied from is only read, a page at a time. ``sync --dry-run`` copies :data:`COPIED`, what pull,
validate and push read: the orders, the SKU map, the key/value table (the pull cursor) and the
Dynamics mirror. Every order keeps its shop JSON: pull tells a pushed order's real change from
our own write-back by comparing it with the stored copy. A store whose migrations are pending is
copied whole (:func:`tables_of`) and the copy migrated, never the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from woo2d365.store.connection import SqlRoom, insert_statement

PAGE = 500
"""Rows read from the store per transaction."""

KEYS: dict[str, str | None] = {
    "orders": "woo_id",
    "events": "id",
    "runs": "id",
    "sku_map": "sku",
    "held_skus": None,  # one row per SKU of a held order: read whole
    "kv": "name",
    "locks": "name",
    "bc_items": "number",
    "bc_customers": "email",
    "alerts": "alert_key",
    "shipment_reports": "shipment_id",
    "invoice_records": "invoice_id",
    "fulfilments": "woo_id",
    "refunds": "refund_id",
    "stock_targets": None,  # a key of two columns: read whole
    "stock_written": "sku",
}
"""Each table with the key it is paged by (None: read whole)."""

COPIED: tuple[tuple[str, str | None], ...] = tuple(
    (table, KEYS[table])
    for table in ("orders", "sku_map", "held_skus", "kv", "bc_items", "bc_customers")
)
"""The tables the sync steps read, each with the key it is paged by."""


def copy_tables(
    source: SqlRoom, scratch: SqlRoom, tables: Iterable[tuple[str, str | None]]
) -> None:
    """Copy each of ``tables`` (name and paging key) from ``source`` into the same table of
    ``scratch``, :data:`PAGE` rows per read transaction."""
    for table, key in tables:
        for columns, rows in _pages(source, table, key):
            _insert(scratch, table, columns, rows)


def tables_of(scratch: SqlRoom) -> list[tuple[str, str | None]]:
    """Every table of the SQLite store ``scratch`` but the schema's own, with its key."""
    with scratch._tx() as cur:
        scratch._exec(
            cur,
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'schema_migrations' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        names = [str(row[0]) for row in cur.fetchall()]
    return [(name, KEYS.get(name)) for name in names]


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
