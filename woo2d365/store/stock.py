"""The stock room of the store, for ``woo2d365 stock`` (migration 8).

``stock_targets``: every shop product and variation with a SKU (``(product_id, variation_id)``,
0 for a product) and what the shop last reported of its stock, so a run finds what to write
without searching the shop. ``stock_written``: the quantity last written per SKU. The SQL is in
:mod:`woo2d365.store.stock_sql`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from woo2d365.store.runs import KeyValues


@dataclass(frozen=True)
class StockTarget:
    """A shop product or variation with a SKU, as the shop last reported it.

    ``variation_id`` is 0 for a product; a variation's parent is ``product_id``.
    ``manage_stock`` is ``"true"``, ``"false"`` or ``"parent"`` (a variation whose parent keeps
    its stock); ``date_modified`` is the shop's ``date_modified_gmt``, verbatim.
    """

    product_id: int
    variation_id: int
    sku: str
    manage_stock: str
    stock_quantity: int | None
    date_modified: str = ""

    @property
    def key(self) -> tuple[int, int]:
        """``(product_id, variation_id)``."""
        return self.product_id, self.variation_id


class StockStore(Protocol):
    """Shop products by SKU and the quantities written to them."""

    def stock_targets(self, skus: list[str] | None = None) -> list[StockTarget]:
        """Shop products and variations by SKU (all, or those of ``skus``)."""
        ...

    def put_stock_targets(
        self, targets: list[StockTarget], *, product_ids: list[int], everything: bool = False
    ) -> None:
        """Replace what is known of these products (their variations included) with ``targets``;
        ``everything``: replace the whole map (a full listing of the shop)."""
        ...

    def update_stock_targets(self, targets: list[StockTarget]) -> None:
        """Store what the shop answered for these products and variations."""
        ...

    def forget_stock_target(self, product_id: int, variation_id: int) -> None:
        """The shop no longer has this product or variation."""
        ...

    def stock_written(self, skus: list[str] | None = None) -> dict[str, int]:
        """The quantity last written per SKU."""
        ...

    def record_stock_written(self, quantities: dict[str, int], at: datetime) -> None:
        """Remember the quantities just written."""
        ...


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


def save_stock_run(store: KeyValues, summary: StockRunSummary) -> None:
    """Remember the summary of a stock run."""
    store.set_value(LAST_RUN_KEY, json.dumps(summary.as_json()))


def last_stock_run(store: KeyValues) -> StockRunSummary | None:
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


def __getattr__(name: str) -> Any:
    """``StockStoreMixin``: the former name of :mod:`woo2d365.store.stock_sql`'s class."""
    if name == "StockStoreMixin":
        from woo2d365.store.stock_sql import SqlStock

        return SqlStock
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
