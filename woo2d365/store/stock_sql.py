"""The stock room in SQL: ``stock_targets`` and ``stock_written`` (see
:mod:`woo2d365.store.stock`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from woo2d365.store.connection import (
    SqlRoom,
    chunks,
    marks,
    to_db_time,
)
from woo2d365.store.stock import StockTarget

_TARGET_COLUMNS = (
    "product_id",
    "variation_id",
    "sku",
    "manage_stock",
    "stock_quantity",
    "date_modified",
)


class SqlStock(SqlRoom):
    """:class:`~woo2d365.store.stock.StockStore` in SQL."""

    def stock_targets(self, skus: list[str] | None = None) -> list[StockTarget]:
        """Shop products and variations by SKU (all, or those of ``skus``)."""
        select = f"SELECT {', '.join(_TARGET_COLUMNS)} FROM stock_targets"
        found: list[StockTarget] = []
        with self._tx() as cur:
            if skus is None:
                self._exec(cur, select + " ORDER BY product_id, variation_id")
                found = [_target(row) for row in cur.fetchall()]
            else:
                for chunk in chunks(list(dict.fromkeys(skus))):
                    self._exec(cur, f"{select} WHERE sku IN ({marks(chunk)})", chunk)
                    found += [_target(row) for row in cur.fetchall()]
        return found

    def put_stock_targets(
        self, targets: list[StockTarget], *, product_ids: list[int], everything: bool = False
    ) -> None:
        """Replace what is known of ``product_ids`` (variations included) with ``targets``;
        ``everything`` replaces the whole map."""
        with self._tx() as cur:
            if everything:
                self._exec(cur, "DELETE FROM stock_targets")
            else:
                for chunk in chunks(sorted(set(product_ids))):
                    self._exec(
                        cur,
                        f"DELETE FROM stock_targets WHERE product_id IN ({marks(chunk)})",
                        chunk,
                    )
            self._insert_targets(cur, targets)

    def update_stock_targets(self, targets: list[StockTarget]) -> None:
        """Store what the shop answered for these products and variations."""
        with self._tx() as cur:
            self._insert_targets(cur, targets)

    def _insert_targets(self, cur: Any, targets: list[StockTarget]) -> None:
        if not targets:
            return
        statement = self._sql(
            self.dialect.upsert("stock_targets", _TARGET_COLUMNS, ("product_id", "variation_id"))
        )
        cur.executemany(
            statement,
            [
                (
                    t.product_id,
                    t.variation_id,
                    t.sku[:191],
                    t.manage_stock[:8],
                    t.stock_quantity,
                    t.date_modified[:32],
                )
                for t in targets
            ],
        )

    def forget_stock_target(self, product_id: int, variation_id: int) -> None:
        """The shop no longer has this product or variation."""
        with self._tx() as cur:
            self._exec(
                cur,
                "DELETE FROM stock_targets WHERE product_id = ? AND variation_id = ?",
                (product_id, variation_id),
            )

    def stock_written(self, skus: list[str] | None = None) -> dict[str, int]:
        """The quantity last written per SKU."""
        written: dict[str, int] = {}
        with self._tx() as cur:
            if skus is None:
                self._exec(cur, "SELECT sku, quantity FROM stock_written")
                written = {str(r[0]): int(r[1]) for r in cur.fetchall()}
            else:
                for chunk in chunks(list(dict.fromkeys(skus))):
                    self._exec(
                        cur,
                        f"SELECT sku, quantity FROM stock_written WHERE sku IN ({marks(chunk)})",
                        chunk,
                    )
                    written.update({str(r[0]): int(r[1]) for r in cur.fetchall()})
        return written

    def record_stock_written(self, quantities: dict[str, int], at: datetime) -> None:
        """Remember the quantities just written."""
        if not quantities:
            return

        statement = self._sql(
            self.dialect.upsert("stock_written", ("sku", "quantity", "written_at"), ("sku",))
        )
        stamp = to_db_time(at)
        with self._tx() as cur:
            cur.executemany(statement, [(sku[:191], q, stamp) for sku, q in quantities.items()])


def _target(row: Sequence[Any]) -> StockTarget:
    return StockTarget(
        product_id=int(row[0]),
        variation_id=int(row[1]),
        sku=str(row[2]),
        manage_stock=str(row[3]),
        stock_quantity=None if row[4] is None else int(row[4]),
        date_modified=str(row[5]),
    )
