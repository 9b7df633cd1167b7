"""The pipeline's promises, the same for both Dynamics products, through the real CLI.

Each test runs against Business Central and against Finance & Operations
(``dynamics.product``): nothing above the ERP interface may tell them apart.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, run_woo2d365
from woo2d365.sandbox.world import BUSINESS_CENTRAL, FINANCE_OPERATIONS, UNMAPPED, Sandbox
from woo2d365.store import open_store


@pytest.fixture(params=[BUSINESS_CENTRAL, FINANCE_OPERATIONS])
def world(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Sandbox]:
    """The shop and one Dynamics emulator with 12 orders (3 of them need map-sku)."""
    sandbox = Sandbox(tmp_path / "sandbox", orders=12, seed=3, erp=request.param)
    sandbox.start()
    for name, value in sandbox.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    yield sandbox
    sandbox.stop()


def _documents(sandbox: Sandbox) -> Counter[str]:
    return Counter(number for number, _ in sandbox.documents())


def _states(sandbox: Sandbox) -> dict[int, str]:
    result = run_woo2d365(sandbox, "status", "--json")
    assert result.exit_code == 0, result.stderr
    return {o["woo_id"]: o["state"] for o in json.loads(result.stdout)["orders"]}


def _run(sandbox: Sandbox, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WOO2D365_")}
    environment.update(sandbox.environment())
    environment.pop("CURL_CA_BUNDLE", None)
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "woo2d365", "--config", str(sandbox.config_path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        cwd=ROOT,
        check=False,
    )


def test_orders_are_held_until_mapped_then_pushed_once_with_the_shop_totals(
    world: Sandbox,
) -> None:
    first = run_woo2d365(world, "sync")
    assert first.exit_code == 1, first.stderr
    held = [i for i, state in _states(world).items() if state == "held"]
    assert len(held) >= len(UNMAPPED)
    assert set(_documents(world).values()) == {1}
    for unmapped in UNMAPPED:
        assert run_woo2d365(world, "map-sku", "add", unmapped.product.sku, unmapped.item_number)
    second = run_woo2d365(world, "sync")
    assert second.exit_code == 0, second.stderr
    pushed = [i for i, state in _states(world).items() if state == "pushed"]
    documents = dict(world.documents())
    assert len(documents) == len(pushed) and set(_documents(world).values()) == {1}
    for woo_id in pushed:
        shop = world.shop.orders[woo_id]
        total = documents[f"WC-{shop['number']}"]
        assert abs(total - Decimal(shop["total"])) <= Decimal("0.01"), woo_id
    third = run_woo2d365(world, "sync")
    assert third.exit_code == 0, third.stdout + third.stderr
    assert dict(world.documents()) == documents, "a third run creates nothing"


def test_one_customer_per_e_mail_address(world: Sandbox) -> None:
    assert run_woo2d365(world, "sync").exit_code == 1
    pushed = [i for i, state in _states(world).items() if state == "pushed"]
    addresses = {world.shop.orders[i]["billing"]["email"].lower() for i in pushed}
    assert len(world.bc.customers()) == len(addresses)
    assert run_woo2d365(world, "sync").exit_code == 0
    assert len(world.bc.customers()) == len(addresses), "found again, not created again"


def test_a_create_whose_answer_is_lost_after_the_commit_is_found_not_doubled(
    world: Sandbox,
) -> None:
    world.bc.drop_after_commit_next(path_contains=world.create_path)
    env = {"WOO2D365_DYNAMICS__TIMEOUT_SECONDS": "1"}
    first = _run(world, "sync", **env)
    assert first.returncode == 1, first.stderr  # held orders; the one in doubt stays pushing
    pushing = [i for i, state in _states(world).items() if state == "pushing"]
    assert len(pushing) == 1
    time.sleep(1.5)
    second = _run(world, "sync", **env)
    assert second.returncode == 0, second.stderr  # found; the held orders were held before
    assert _states(world)[pushing[0]] == "pushed"
    assert set(_documents(world).values()) == {1}


def test_with_dynamics_down_orders_are_pulled_and_nothing_is_lost(world: Sandbox) -> None:
    world.bc.stop()
    result = run_woo2d365(world, "sync")
    assert result.exit_code == 3, result.stdout + result.stderr
    states = Counter(_states(world).values())
    assert states["new"] > 0 and states["pushed"] == 0 and states["pushing"] == 0


def test_a_dry_run_names_each_order_and_writes_nothing(world: Sandbox) -> None:
    result = run_woo2d365(world, "sync", "--dry-run")
    assert result.exit_code == 1, result.stderr
    assert "would create sales order WC-" in result.stdout
    assert world.documents() == [] and world.bc.customers() == []
    assert _states(world) == {}


def test_a_second_run_while_one_holds_the_lock_exits_4_and_sends_nothing(world: Sandbox) -> None:
    store = open_store(f"sqlite:///{world.state_path}")
    try:
        assert store.acquire_lock("sync", "another-host:1", datetime.now(UTC), ttl_seconds=300)
        result = run_woo2d365(world, "sync")
        assert result.exit_code == 4
        assert world.documents() == []
    finally:
        store.close()


def _plant_twice(sandbox: Sandbox, reference: str) -> None:
    """Two sales orders carrying ``reference``, entered by hand in Dynamics."""
    if sandbox.fo is None:
        customer = sandbox.bc.add_customer("By hand")
        for _ in range(2):
            sandbox.bc.add_sales_order(
                {
                    "customerNumber": customer["number"],
                    "externalDocumentNumber": reference,
                    "salesOrderLines": [
                        {"lineType": "Item", "lineObjectNumber": "WIDGET-001", "quantity": 1}
                    ],
                }
            )
        return
    fo = sandbox.fo
    customer = fo.add_fo_customer(
        {"CustomerGroupId": "WEB", "SalesCurrencyCode": "EUR", "OrganizationName": "By hand"}
    )
    for number in ("HAND-1", "HAND-2"):
        fo.data.create(
            "SalesOrderHeadersV2",
            {
                "dataAreaId": fo.legal_entity,
                "SalesOrderNumber": number,
                "OrderingCustomerAccountNumber": customer["CustomerAccount"],
                "CustomersOrderReference": reference,
            },
        )


def test_two_documents_with_an_orders_key_hold_the_order_and_nothing_is_created(
    world: Sandbox,
) -> None:
    taken = sorted(
        i for i, o in world.shop.orders.items() if o["status"] in ("processing", "completed")
    )
    reference = f"WC-{world.shop.orders[taken[0]]['number']}"
    _plant_twice(world, reference)
    result = run_woo2d365(world, "sync")
    assert result.exit_code == 1
    status = json.loads(run_woo2d365(world, "status", str(taken[0]), "--json").stdout)
    assert status["state"] == "held"
    assert f"2 sales orders in Dynamics 365 carry {reference}" in status["reason"]
    assert _documents(world)[reference] == 2, "no third"


def test_retry_force_and_reconcile_treat_only_an_order_dynamics_no_longer_has_as_missing(
    world: Sandbox,
) -> None:
    assert run_woo2d365(world, "sync").exit_code == 1
    kept, gone = [i for i, state in _states(world).items() if state == "pushed"][:2]
    details = {
        woo_id: json.loads(run_woo2d365(world, "status", str(woo_id), "--json").stdout)
        for woo_id in (kept, gone)
    }
    refused = run_woo2d365(world, "retry", str(kept), "--force")
    assert refused.exit_code == 1
    assert f"still exists in Dynamics 365 as sales order {details[kept]['d365_number']}" in (
        refused.stderr
    )
    emulator = world.fo if world.fo is not None else world.bc
    emulator.delete_sales_order(details[gone]["d365_number"])  # deleted, nothing posted

    report = run_woo2d365(world, "reconcile", "--json")
    missing = json.loads(report.stdout)["missing_in_dynamics"]
    assert [f["woo_id"] for f in missing] == [gone], report.stderr
    forced = run_woo2d365(world, "retry", str(gone), "--force")
    assert forced.exit_code == 0, forced.stderr
    run_woo2d365(world, "sync")
    assert _documents(world)[f"WC-{details[gone]['number']}"] == 1, "sent again, once"
