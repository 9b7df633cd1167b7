"""``woo2d365 stock`` through the CLI against both emulators: Dynamics inventory → shop stock.

The sandbox shop has the fixtures' products (simple ones, and the variable T-shirt 11 with
variations SHIRT-S 12, SHIRT-M 13 and 15 without a SKU of its own, which reports its parent's
SKU "SHIRT"); Business Central has an item per SKU with a fixed inventory. Nothing manages stock
in the shop before the first run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.cli import run_cli, running_sandbox, with_config
from woo2d365.sandbox.shop_data import CATALOGUE, build_order, product_by_sku
from woo2d365.sandbox.world import Sandbox
from woo2d365.store import open_store
from woo2d365.store.stock import StockRunSummary, save_stock_run

SIMPLE = [p for p in CATALOGUE if not p.variation_id]
BATCH = "/wp-json/wc/v3/products/batch"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with running_sandbox(tmp_path / "sandbox", orders=0, unmapped_orders=0, seed=4) as world:
        with_config(world, stock={"enabled": True})
        yield world


def inventory(sandbox: Sandbox, number: str) -> int:
    return int(next(i["inventory"] for i in sandbox.bc.items() if i["number"] == number))


def shown(sandbox: Sandbox, object_id: int) -> tuple[Any, Any]:
    obj = sandbox.shop.catalogue.present(object_id)
    return obj["manage_stock"], obj["stock_quantity"]


def writes(sandbox: Sandbox) -> list[tuple[str, list[tuple[int, int]]]]:
    """Every stock batch the shop received: path and (id, quantity) of each item."""
    return [
        (r.path, [(u["id"], u["stock_quantity"]) for u in r.json["update"]])
        for r in sandbox.shop.requests
        if r.method == "POST" and r.path.endswith("/batch") and "/products" in r.path
    ]


def stock(sandbox: Sandbox, *args: str) -> Any:
    sandbox.shop.reset_requests()
    return run_cli(sandbox, "stock", *args)


def test_every_mapped_product_and_variation_gets_its_inventory_and_a_second_run_writes_nothing(
    sandbox: Sandbox,
) -> None:
    result = stock(sandbox)
    assert result.exit_code == 0, result.stdout + result.stderr
    for product in SIMPLE:
        assert shown(sandbox, product.product_id) == (True, inventory(sandbox, str(product.sku)))
    # The variable product's own SKU and each variation with a SKU of its own.
    assert shown(sandbox, 11) == (True, inventory(sandbox, "SHIRT"))
    assert shown(sandbox, 12) == (True, inventory(sandbox, "SHIRT-S"))
    assert shown(sandbox, 13) == (True, inventory(sandbox, "SHIRT-M"))
    # Variation L has no SKU of its own: it keeps its parent's stock, now managed.
    assert shown(sandbox, 15) == ("parent", inventory(sandbox, "SHIRT"))
    # One batch for the products, one for the variations of product 11; every item with
    # manage_stock true.
    paths = sorted(path for path, _ in writes(sandbox))
    assert paths == ["/wp-json/wc/v3/products/11/variations/batch", BATCH]
    sent = [r.json for r in sandbox.shop.requests if r.method == "POST"]
    assert all(item["manage_stock"] is True for body in sent for item in body["update"])
    # Dynamics inventory is read in one request, never written.
    items = [r for r in sandbox.bc.requests if r.path.endswith("/items")]
    assert len(items) == 1 and "inventory" in items[0].query
    assert not [r for r in sandbox.bc.requests if r.method != "GET" and "items" in r.path]

    saves = sandbox.shop.catalogue.saves()
    again = stock(sandbox)
    assert again.exit_code == 0, again.stdout + again.stderr
    assert writes(sandbox) == [], "nothing changed, so nothing is written"
    assert sandbox.shop.catalogue.saves() == saves, "no product was saved (no product.updated)"
    assert "0 written" in again.stdout


def test_only_what_changed_in_dynamics_or_in_the_shop_is_written(sandbox: Sandbox) -> None:
    assert stock(sandbox).exit_code == 0
    sandbox.bc.set_inventory("WIDGET-001", 3)
    bell = product_by_sku("BELL-DINGDONG").product_id
    sandbox.shop.catalogue.sell(bell, 2)  # an order in the shop lowered its stock
    result = stock(sandbox)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert writes(sandbox) == [(BATCH, [(10, 3), (bell, inventory(sandbox, "BELL-DINGDONG"))])]
    assert shown(sandbox, 10) == (True, 3)


def test_a_variation_whose_parent_manages_stock_gets_its_own(sandbox: Sandbox) -> None:
    catalogue = sandbox.shop.catalogue
    catalogue.products[11]["manage_stock"] = True
    catalogue.products[11]["stock_quantity"] = 99
    assert shown(sandbox, 12) == ("parent", 99)
    assert stock(sandbox, "--sku", "SHIRT-S").exit_code == 0
    assert shown(sandbox, 12) == (True, inventory(sandbox, "SHIRT-S"))
    assert writes(sandbox) == [
        ("/wp-json/wc/v3/products/11/variations/batch", [(12, inventory(sandbox, "SHIRT-S"))])
    ], "--sku narrows the run to that SKU"
    assert shown(sandbox, 11) == (True, 99)
    unknown = stock(sandbox, "--sku", "NOPE", "--sku", "KLOMPEN-MT42")
    assert unknown.exit_code == 0, unknown.stdout + unknown.stderr
    assert "SKU NOPE: no product or variation in the shop has it" in unknown.stdout
    assert "SKU KLOMPEN-MT42: not mapped to a stock-kept Dynamics item" in unknown.stdout
    assert writes(sandbox) == []


def test_two_shop_skus_on_one_item_each_get_its_quantity(sandbox: Sandbox) -> None:
    sandbox.shop.catalogue.add_product("MUG-BLAUW", "Mok blauw", product_id=70)
    sandbox.shop.catalogue.add_product("MUG-DELFTS", "Mok Delfts", product_id=71)
    sandbox.bc.set_inventory("1996-S", 17)
    for sku in ("MUG-BLAUW", "MUG-DELFTS"):
        assert run_cli(sandbox, "map-sku", "add", sku, "1996-S").exit_code == 0
    assert stock(sandbox).exit_code == 0
    assert shown(sandbox, 70) == shown(sandbox, 71) == (True, 17)


def test_unshipped_pushed_orders_and_the_reserve_are_subtracted_never_below_zero(
    sandbox: Sandbox,
) -> None:
    with_config(sandbox, stock={"enabled": True, "reserve": 2})
    created = datetime.now(UTC) - timedelta(hours=2)
    widget, socks = product_by_sku("WIDGET-001"), product_by_sku("SOCKS-3P")
    orders = [
        build_order(2001, items=[(widget, 3), (socks, 1)], created_gmt=created),
        build_order(2002, items=[(widget, 2)], created_gmt=created + timedelta(minutes=1)),
    ]
    for order in orders:
        order["_links"] = {}
    sandbox.shop.add_orders(orders)
    sandbox.bc.set_inventory("WIDGET-001", 20)
    sandbox.bc.set_inventory("SOCKS-3P", 2)
    result = run_cli(sandbox, "sync")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert shown(sandbox, widget.product_id) == (True, 20 - 5 - 2)
    assert shown(sandbox, socks.product_id) == (True, 0), "2 - 1 - 2 is never below 0"

    # Order 2002 is shipped (completed in the shop): its 2 widgets are in Dynamics' inventory no
    # more, and no longer subtracted.
    sandbox.bc.set_inventory("WIDGET-001", 18)
    sandbox.shop.set_status(2002, "completed")
    assert run_cli(sandbox, "sync").exit_code == 0
    assert shown(sandbox, widget.product_id) == (True, 18 - 3 - 2)


def test_what_dynamics_shipped_is_not_subtracted_again_while_the_shop_order_is_open(
    sandbox: Sandbox,
) -> None:
    with_config(sandbox, stock={"enabled": True}, shipments={"enabled": True})
    widget = product_by_sku("WIDGET-001")
    order = build_order(2101, items=[(widget, 3)], created_gmt=datetime.now(UTC))
    order["_links"] = {}
    sandbox.shop.add_orders([order])
    sandbox.bc.set_inventory("WIDGET-001", 20)
    assert run_cli(sandbox, "sync").exit_code == 0
    assert shown(sandbox, widget.product_id) == (True, 20 - 3)

    sales_order = next(
        o for o in sandbox.bc.sales_orders() if o["externalDocumentNumber"] == "WC-2101"
    )
    sequence = sales_order["salesOrderLines"][0]["sequence"]
    sandbox.bc.ship(sales_order["number"], {sequence: 1})  # posting lowers inventory to 19
    assert inventory(sandbox, "WIDGET-001") == 19
    assert run_cli(sandbox, "sync").exit_code == 0
    assert sandbox.shop.orders[2101]["status"] == "processing", "partly shipped: still open"
    assert shown(sandbox, widget.product_id) == (True, 19 - 2), "only the 2 not shipped yet"


def test_with_shipments_off_stock_still_reads_what_dynamics_shipped(sandbox: Sandbox) -> None:
    with_config(sandbox, stock={"enabled": True})  # [shipments] stays off
    widget = product_by_sku("WIDGET-001")
    order = build_order(2102, items=[(widget, 3)], created_gmt=datetime.now(UTC))
    order["_links"] = {}
    sandbox.shop.add_orders([order])
    sandbox.bc.set_inventory("WIDGET-001", 20)
    assert run_cli(sandbox, "sync").exit_code == 0
    assert shown(sandbox, widget.product_id) == (True, 17)
    sales_order = next(
        o for o in sandbox.bc.sales_orders() if o["externalDocumentNumber"] == "WC-2102"
    )
    sandbox.bc.ship(sales_order["number"])  # inventory 17; the shop still says processing
    assert run_cli(sandbox, "stock").exit_code == 0
    assert shown(sandbox, widget.product_id) == (True, 17), "shipped once, not subtracted again"
    assert sandbox.shop.notes.get(2102, []) == [] or not any(
        "Dynamics 365 shipment" in str(n.get("note")) for n in sandbox.shop.notes[2102]
    ), "the shop is told nothing while [shipments] is off"


def test_a_refused_product_is_reported_and_the_others_are_written(sandbox: Sandbox) -> None:
    sandbox.shop.catalogue.refuse(10, "Stock is locked by the warehouse plugin.")
    result = stock(sandbox)
    assert result.exit_code == 1, result.stdout + result.stderr
    assert "SKU WIDGET-001 (product 10)" in result.stderr
    assert "Stock is locked by the warehouse plugin." in result.stderr
    assert shown(sandbox, 10) == (False, None)
    others = [p for p in SIMPLE if p.product_id != 10]
    assert all(shown(sandbox, p.product_id)[0] is True for p in others)
    status = run_cli(sandbox, "status", "--json")
    last = json.loads(status.stdout)["last_stock"]
    assert (last["checked"], last["refused"]) == (16, 1)
    assert last["written"] == 15


def test_a_413_halves_the_batch_until_the_shop_takes_it(sandbox: Sandbox) -> None:
    sandbox.shop.batch_limit = 5  # woocommerce_rest_batch_items_limit lowered by the host
    result = stock(sandbox)
    assert result.exit_code == 0, result.stdout + result.stderr
    products = [r for r in sandbox.shop.requests if r.path == BATCH]
    sizes = [(len(r.json["update"]), r.status) for r in products]
    assert sizes[:3] == [(len(SIMPLE) + 1, 413), (7, 413), (3, 200)]
    assert all(status == 200 for _, status in sizes[2:])
    assert all(shown(sandbox, p.product_id)[0] is True for p in SIMPLE)


def test_a_dry_run_writes_nowhere(sandbox: Sandbox) -> None:
    result = stock(sandbox, "--dry-run")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "SKU WIDGET-001 (product 10): stock not managed → " in result.stdout
    assert [r for r in sandbox.shop.requests if r.method != "GET"] == []
    store = open_store(f"sqlite:///{sandbox.state_path}")
    try:
        assert store.stock_targets() == [] and store.stock_written() == {}
        assert store.get_value("stock.products_cursor") is None
        assert store.last_run("stock") is None
    finally:
        store.close()


def test_switched_off_it_asks_neither_system(sandbox: Sandbox) -> None:
    with_config(sandbox, stock={"enabled": False})
    sandbox.bc.reset_requests()
    result = stock(sandbox)
    assert result.exit_code == 0 and "[stock] enabled = false" in result.stdout
    assert not [r for r in sandbox.shop.requests if "/products" in r.path]
    assert not [r for r in sandbox.bc.requests if r.path.endswith("/items")]


def test_status_shows_the_last_stock_run_and_check_warns_when_it_is_old(sandbox: Sandbox) -> None:
    assert stock(sandbox).exit_code == 0
    text = run_cli(sandbox, "status")
    assert (
        "Last stock run:" in text.stdout and "16 SKUs checked, 16 written, 0 refused" in text.stdout
    )
    assert run_cli(sandbox, "sync").exit_code == 0
    fresh = run_cli(sandbox, "status", "--check")
    assert "stock" not in fresh.stdout, fresh.stdout
    store = open_store(f"sqlite:///{sandbox.state_path}")
    try:
        old = datetime.now(UTC) - timedelta(hours=5)
        save_stock_run(store, StockRunSummary(at=old, checked=16, written=0, refused=0))
    finally:
        store.close()
    stale = run_cli(sandbox, "status", "--check")
    assert stale.exit_code == 1, stale.stdout
    assert "stock last synced 5.0 h ago" in stale.stdout and "expected within 3.0 h" in stale.stdout


def test_a_shop_gone_half_way_keeps_what_was_written_and_the_next_run_finishes(
    sandbox: Sandbox,
) -> None:
    variations = "/wp-json/wc/v3/products/11/variations/batch"
    sandbox.shop.fail_next(50, path_prefix=variations, method="POST")
    result = stock(sandbox)
    assert result.exit_code == 3, result.stdout + result.stderr
    assert shown(sandbox, 10)[0] is True, "the products' batch was written"
    assert shown(sandbox, 12)[0] == "parent", "the variations' batch was not"
    store = open_store(f"sqlite:///{sandbox.state_path}")
    try:
        written = store.stock_written()
    finally:
        store.close()
    assert "WIDGET-001" in written and "SHIRT-S" not in written
    sandbox.shop._faults.clear()
    again = stock(sandbox)
    assert again.exit_code == 0, again.stdout + again.stderr
    assert [path for path, _ in writes(sandbox)] == [variations]


def test_dynamics_out_of_reach_writes_nothing_to_the_shop(sandbox: Sandbox) -> None:
    sandbox.bc.fail_next(50, path_contains="/items")
    result = stock(sandbox)
    assert result.exit_code == 3, result.stdout + result.stderr
    assert writes(sandbox) == []
