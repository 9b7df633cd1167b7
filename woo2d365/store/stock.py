"""The state store's part for ``woo2d365 stock`` (migration 8), mixed into :class:`SqlStore`.

``stock_targets``: every shop product and variation with a SKU (``(product_id, variation_id)``,
0 for a product) and what the shop last reported of its stock, so a run finds what to write
without searching the shop. ``stock_written``: the quantity last written per SKU.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from woo2d365.model import OrderState
from woo2d365.store.base import StateStore, StockTarget

_CHUNK = 500
_TARGET_COLUMNS = (
    "product_id",
    "variation_id",
    "sku",
    "manage_stock",
    "stock_quantity",
    "date_modified",
)


class StockStoreMixin:
    """Stock methods over :class:`~woo2d365.store.sql.SqlStore`'s plumbing."""

    # Provided by SqlStore.
    dialect: Any

    def _tx(self) -> AbstractContextManager[Any]:  # pragma: no cover - SqlStore's
        raise NotImplementedError

    def _exec(
        self, cur: Any, statement: str, params: Sequence[Any] = ()
    ) -> int:  # pragma: no cover
        raise NotImplementedError

    def _sql(self, statement: str) -> str:  # pragma: no cover - SqlStore's
        raise NotImplementedError

    # -- the SKU map ---------------------------------------------------------------------------
    def stock_targets(self, skus: list[str] | None = None) -> list[StockTarget]:
        """Shop products and variations by SKU (all, or those of ``skus``)."""
        select = f"SELECT {', '.join(_TARGET_COLUMNS)} FROM stock_targets"
        found: list[StockTarget] = []
        with self._tx() as cur:
            if skus is None:
                self._exec(cur, select + " ORDER BY product_id, variation_id")
                found = [_target(row) for row in cur.fetchall()]
            else:
                for chunk in _chunks(list(dict.fromkeys(skus))):
                    marks = ", ".join("?" for _ in chunk)
                    self._exec(cur, f"{select} WHERE sku IN ({marks})", chunk)
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
                for chunk in _chunks(sorted(set(product_ids))):
                    marks = ", ".join("?" for _ in chunk)
                    self._exec(
                        cur, f"DELETE FROM stock_targets WHERE product_id IN ({marks})", chunk
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

    # -- what was written ----------------------------------------------------------------------
    def stock_written(self, skus: list[str] | None = None) -> dict[str, int]:
        """The quantity last written per SKU."""
        written: dict[str, int] = {}
        with self._tx() as cur:
            if skus is None:
                self._exec(cur, "SELECT sku, quantity FROM stock_written")
                written = {str(r[0]): int(r[1]) for r in cur.fetchall()}
            else:
                for chunk in _chunks(list(dict.fromkeys(skus))):
                    marks = ", ".join("?" for _ in chunk)
                    self._exec(
                        cur,
                        f"SELECT sku, quantity FROM stock_written WHERE sku IN ({marks})",
                        chunk,
                    )
                    written.update({str(r[0]): int(r[1]) for r in cur.fetchall()})
        return written

    def record_stock_written(self, quantities: dict[str, int], at: datetime) -> None:
        """Remember the quantities just written."""
        if not quantities:
            return
        from woo2d365.store.sql import to_db_time

        statement = self._sql(
            self.dialect.upsert("stock_written", ("sku", "quantity", "written_at"), ("sku",))
        )
        stamp = to_db_time(at)
        with self._tx() as cur:
            cur.executemany(statement, [(sku[:191], q, stamp) for sku, q in quantities.items()])

    # -- orders whose goods are still in the warehouse -----------------------------------------
    def pushed_order_raws(self, shop_statuses: list[str]) -> list[dict[str, Any]]:
        """The shop JSON of pushed orders whose shop status is one of ``shop_statuses``."""
        if not shop_statuses:
            return []
        marks = ", ".join("?" for _ in shop_statuses)
        with self._tx() as cur:
            self._exec(
                cur,
                f"SELECT raw_json FROM orders WHERE state = ? AND shop_status IN ({marks})",
                [OrderState.PUSHED.value, *shop_statuses],
            )
            return [json.loads(row[0]) for row in cur.fetchall()]


def _target(row: Sequence[Any]) -> StockTarget:
    return StockTarget(
        product_id=int(row[0]),
        variation_id=int(row[1]),
        sku=str(row[2]),
        manage_stock=str(row[3]),
        stock_quantity=None if row[4] is None else int(row[4]),
        date_modified=str(row[5]),
    )


def _chunks(values: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


# -- the last stock run, for status ----------------------------------------------------------------
LAST_RUN_KEY = "stock.last_run"


@dataclass(frozen=True)
class StockRunSummary:
    """What the last (not dry) stock run did: SKUs checked, written and refused."""

    at: datetime
    checked: int
    written: int
    refused: int

    def as_json(self) -> dict[str, Any]:
        """For ``status --json``."""
        return {
            "at": self.at.isoformat(),
            "checked": self.checked,
            "written": self.written,
            "refused": self.refused,
        }


def save_stock_run(store: StateStore, summary: StockRunSummary) -> None:
    """Remember the summary of a stock run."""
    store.set_value(LAST_RUN_KEY, json.dumps(summary.as_json()))


def last_stock_run(store: StateStore) -> StockRunSummary | None:
    """The summary of the last stock run, if one ran."""
    try:
        data = json.loads(store.get_value(LAST_RUN_KEY) or "null")
        if not isinstance(data, dict):
            return None
        return StockRunSummary(
            at=datetime.fromisoformat(str(data["at"])),
            checked=int(data["checked"]),
            written=int(data["written"]),
            refused=int(data["refused"]),
        )
    except (ValueError, KeyError, TypeError):
        return None
