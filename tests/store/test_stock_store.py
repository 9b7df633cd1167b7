"""The stock part of the state store (migration 8), the same specification on SQLite and MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime

from woo2d365.model import OrderState
from woo2d365.store import SqlStore
from woo2d365.store.base import PulledOrder, StockTarget
from woo2d365.store.stock import StockRunSummary, last_stock_run, save_stock_run

T0 = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)


def target(pid: int, vid: int, sku: str, quantity: int | None = None) -> StockTarget:
    manage = "true" if quantity is not None else "false"
    return StockTarget(pid, vid, sku, manage, quantity, "2026-11-01T12:00:00")


def test_a_listing_replaces_what_was_known_of_its_products_and_keeps_the_others(
    store: SqlStore,
) -> None:
    store.put_stock_targets(
        [
            target(10, 0, "A"),
            target(11, 0, "SHIRT"),
            target(11, 12, "SHIRT-S"),
            target(11, 13, "X"),
        ],
        product_ids=[10, 11],
        everything=True,
    )
    # Product 11 listed again: variation 13 is gone, 12 now manages 4; product 10 is untouched.
    store.put_stock_targets(
        [target(11, 0, "SHIRT"), target(11, 12, "SHIRT-S", 4)], product_ids=[11]
    )
    assert [(t.key, t.sku, t.stock_quantity) for t in store.stock_targets()] == [
        ((10, 0), "A", None),
        ((11, 0), "SHIRT", None),
        ((11, 12), "SHIRT-S", 4),
    ]
    assert [t.key for t in store.stock_targets(["SHIRT-S", "nope"])] == [(11, 12)]
    # A full listing replaces the whole map.
    store.put_stock_targets([target(20, 0, "B")], product_ids=[20], everything=True)
    assert [t.sku for t in store.stock_targets()] == ["B"]


def test_what_the_shop_answered_and_what_was_written_are_kept(store: SqlStore) -> None:
    store.put_stock_targets([target(10, 0, "Ä-ß 🚀")], product_ids=[10], everything=True)
    store.update_stock_targets([target(10, 0, "Ä-ß 🚀", 7)])
    assert store.stock_targets(["Ä-ß 🚀"])[0].stock_quantity == 7
    store.record_stock_written({"Ä-ß 🚀": 7, "B": 0}, T0)
    store.record_stock_written({"B": 3}, T0)
    assert store.stock_written() == {"Ä-ß 🚀": 7, "B": 3}
    assert store.stock_written(["B"]) == {"B": 3}
    store.forget_stock_target(10, 0)
    assert store.stock_targets() == []


def test_pushed_orders_are_found_by_their_shop_status(store: SqlStore) -> None:
    for woo_id, status in ((1, "processing"), (2, "completed"), (3, "on-hold")):
        store.save_pulled_order(
            PulledOrder(woo_id, str(woo_id), status, T0, "EUR", "1.00", {"id": woo_id})
        )
    store.set_state(1, OrderState.PUSHED)
    store.set_state(2, OrderState.PUSHED)  # shipped: completed in the shop
    # Order 3 is on hold but was never pushed.
    raws = store.pushed_order_raws(["processing", "on-hold"])
    assert [raw["id"] for raw in raws] == [1]


def test_the_last_stock_run_is_remembered(store: SqlStore) -> None:
    assert last_stock_run(store) is None
    save_stock_run(store, StockRunSummary(at=T0, checked=12, written=3, refused=1))
    assert last_stock_run(store) == StockRunSummary(at=T0, checked=12, written=3, refused=1)
