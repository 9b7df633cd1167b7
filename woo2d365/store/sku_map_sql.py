"""The SKU map room in SQL: ``sku_map`` and ``held_skus`` (see :mod:`woo2d365.store.sku_map`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from woo2d365.model import OrderState
from woo2d365.store.connection import (
    SqlRoom,
    chunks,
    from_db_time,
    marks,
    to_db_time,
)
from woo2d365.store.sku_map import SkuMapping, UpsertOutcome


class SqlSkuMap(SqlRoom):
    """:class:`~woo2d365.store.sku_map.SkuMap` in SQL."""

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
            for chunk in chunks(skus):
                self._exec(
                    cur,
                    f"SELECT sku, item_number, note FROM sku_map WHERE sku IN ({marks(chunk)})",
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
        return self._changes_one("DELETE FROM sku_map WHERE sku = ?", (sku,))

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
                for chunk in chunks(unique):
                    self._exec(cur, f"{base} WHERE sku IN ({marks(chunk)})", chunk)
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
        return [
            (r[0], int(r[1]))
            for r in self._rows(
                "SELECT h.sku, COUNT(*) FROM held_skus h "
                "JOIN orders o ON o.woo_id = h.woo_id AND o.state = ? "
                "LEFT JOIN sku_map m ON m.sku = h.sku WHERE m.sku IS NULL "
                "GROUP BY h.sku ORDER BY h.sku",
                (OrderState.HELD.value,),
            )
        ]
