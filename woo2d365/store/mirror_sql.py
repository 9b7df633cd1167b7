"""The Dynamics mirror room in SQL: ``bc_items``, ``bc_customers`` and, for its cursors, ``kv``
(see :mod:`woo2d365.store.mirror`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from woo2d365.store.connection import (
    chunks,
    marks,
    to_db_time,
)
from woo2d365.store.mirror import CachedCustomer, CachedItem
from woo2d365.store.runs_sql import SqlKeyValues


class SqlMirror(SqlKeyValues):
    """:class:`~woo2d365.store.mirror.DynamicsMirror` in SQL."""

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
            for chunk in chunks(unique):
                self._exec(
                    cur,
                    "SELECT number, id, display_name, blocked, last_modified, blocked_reason "
                    "FROM bc_items "
                    f"WHERE number IN ({marks(chunk)})",
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
        return self._count("SELECT COUNT(*) FROM bc_items")

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

    def count_customers_before(self, before: datetime) -> int:
        """Cached customers (e-mail → number) stored before ``before``."""
        return self._count(
            "SELECT COUNT(*) FROM bc_customers WHERE updated_at < ?", (to_db_time(before),)
        )

    def delete_customers_before(self, before: datetime) -> int:
        """Forget cached customers stored before ``before``; return how many."""
        with self._tx() as cur:
            return self._exec(
                cur, "DELETE FROM bc_customers WHERE updated_at < ?", (to_db_time(before),)
            )
