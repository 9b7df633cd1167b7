"""Dynamics 365 Finance & Operations end to end: the real CLI against the F&O emulator.

The same pipeline as for Business Central (``dynamics.product = "finance-operations"`` is the only
difference in the config): orders become one ``SalesOrderHeadersV2`` record with its
``SalesOrderLines``, created in one ``$batch`` changeset, exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, run_woo2d365
from woo2d365.model import OrderState
from woo2d365.sandbox.financeoperations import FinanceOperationsEmulator
from woo2d365.sandbox.world import FINANCE_OPERATIONS, FO_LEGAL_ENTITY, UNMAPPED, Sandbox
from woo2d365.store import SqlStore, open_store


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """The shop and the F&O emulator with 12 orders (3 of them need map-sku)."""
    sandbox = Sandbox(tmp_path / "sandbox", orders=12, seed=3, erp=FINANCE_OPERATIONS)
    sandbox.start()
    for name, value in sandbox.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    yield sandbox
    sandbox.stop()


def _common_sku(sandbox: Sandbox) -> str:
    """The SKU on most taken shop orders that would be pushed."""
    unmapped = {u.product.sku for u in UNMAPPED}
    counts = Counter(
        line["sku"]
        for order in sandbox.shop.orders.values()
        if order["status"] in ("processing", "completed")
        and all(line["sku"] and line["sku"] not in unmapped for line in order["line_items"])
        for line in order["line_items"]
    )
    return counts.most_common(1)[0][0]


def _sent_and_pushing(store: SqlStore) -> bool:
    return any(r.last_sent_at is not None for r in store.list_orders(states=[OrderState.PUSHING]))


def _fo(sandbox: Sandbox) -> FinanceOperationsEmulator:
    assert sandbox.fo is not None
    return sandbox.fo


def _references(sandbox: Sandbox) -> Counter[str]:
    return Counter(o["CustomersOrderReference"] for o in _fo(sandbox).sales_orders())


def _status(sandbox: Sandbox) -> dict:
    result = run_woo2d365(sandbox, "status", "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def _states(sandbox: Sandbox) -> dict[int, tuple[str, str]]:
    return {o["woo_id"]: (o["state"], o["reason"] or "") for o in _status(sandbox)["orders"]}


def _with(sandbox: Sandbox, **env: str) -> dict[str, str]:
    result = {k: v for k, v in os.environ.items() if not k.startswith("WOO2D365_")}
    result.update(sandbox.environment())
    result.pop("CURL_CA_BUNDLE", None)
    result.update(env)
    return result


def _run(sandbox: Sandbox, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "woo2d365", "--config", str(sandbox.config_path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=_with(sandbox, **env),
        cwd=ROOT,
        check=False,
    )


def test_sync_creates_each_order_once_as_header_and_lines_and_a_second_sync_creates_nothing(
    world: Sandbox,
) -> None:
    fo = _fo(world)
    first = run_woo2d365(world, "sync")
    assert first.exit_code == 1, first.stderr  # the unmapped SKUs are held
    states = _states(world)
    pushed = [i for i, (state, _) in states.items() if state == "pushed"]
    assert len(pushed) >= 4
    orders = {o["CustomersOrderReference"]: o for o in fo.sales_orders()}
    assert set(_references(world).values()) == {1}
    customers = {c["CustomerAccount"]: c for c in fo.customers()}
    for woo_id in pushed:
        shop = world.shop.orders[woo_id]
        reference = f"WC-{shop['number']}"
        header = orders[reference]
        assert header["SalesOrderNumber"] == reference, "mode own: our number is the key"
        assert header["dataAreaId"] == FO_LEGAL_ENTITY
        customer = customers[header["OrderingCustomerAccountNumber"]]
        assert customer["PrimaryContactEmail"].lower() == shop["billing"]["email"].lower()
        assert customer["CustomerGroupId"] == "WEB"
        items = [line for line in shop["line_items"]]
        assert [line["ItemNumber"] for line in header["lines"]][: len(items)] == [
            line["sku"] for line in items
        ]
        total = header["total"]
        if header["ArePricesIncludingSalesTax"] == "No":
            total += Decimal(shop["total_tax"])
        assert total == Decimal(shop["total"]), reference
        assert header["DeliveryAddressCountryRegionId"] in {"NLD", "DEU", "BEL"}
    one_customer_per_email = Counter(c["PrimaryContactEmail"].lower() for c in fo.customers())
    assert set(one_customer_per_email.values()) == {1}

    second = run_woo2d365(world, "sync")
    assert second.exit_code == 0, "nothing new needs attention: " + second.stderr
    assert _references(world) == Counter({r: 1 for r in orders})
    assert len(fo.customers()) == len(customers), "no customer created twice"

    for unmapped in UNMAPPED:
        assert run_woo2d365(world, "map-sku", "add", unmapped.product.sku, unmapped.item_number)
    third = run_woo2d365(world, "sync")
    assert third.exit_code == 0, third.stdout + third.stderr
    assert set(_references(world).values()) == {1}
    assert len(_references(world)) == len(orders) + len(UNMAPPED)


def test_changeset_answers_in_another_order_are_matched_to_their_requests_by_content_id(
    world: Sandbox,
) -> None:
    """OData lets a service answer a changeset's requests in any order: the header is the
    answer whose Content-ID is the header request's, not the first one."""
    fo = _fo(world)
    fo.changeset_answers_reversed = True
    result = run_woo2d365(world, "sync")
    assert result.exit_code == 1, result.stdout + result.stderr  # the unmapped SKUs are held
    assert "differs" not in result.stderr, result.stderr  # no total compared against a line
    headers = {o["CustomersOrderReference"]: o for o in fo.sales_orders()}
    status = _status(world)["orders"]
    pushed = {o["woo_id"]: o["d365_number"] for o in status if o["state"] == "pushed"}
    assert len(pushed) >= 4
    for woo_id, number in pushed.items():
        reference = f"WC-{world.shop.orders[woo_id]['number']}"
        assert number == headers[reference]["SalesOrderNumber"], (woo_id, number)


def test_every_read_names_the_legal_entity_across_companies_and_every_write_its_dataareaid(
    world: Sandbox,
) -> None:
    fo = _fo(world)
    assert run_woo2d365(world, "sync").exit_code == 1
    reads = [r for r in fo.requests if r.method == "GET" and not r.path.endswith("$metadata")]
    assert reads
    for request in reads:
        if request.path.endswith(("/LegalEntities", "/AddressCountryRegions")):
            continue  # shared tables
        assert "cross-company=true" in request.query, request
        assert "dataAreaId" in request.query, request
    batches = [r for r in fo.requests if r.path == "/data/$batch"]
    assert batches and all(r.status == 200 for r in batches)


def test_a_sync_killed_while_fo_commits_leaves_every_order_once(world: Sandbox) -> None:
    fo = _fo(world)
    fo.commit_delay = 1.5
    env = _with(world, WOO2D365_DYNAMICS__TIMEOUT_SECONDS="3")
    process = subprocess.Popen(
        [sys.executable, "-m", "woo2d365", "--config", str(world.config_path), "sync"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
    )
    store = open_store(f"sqlite:///{world.state_path}")
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _sent_and_pushing(store):
            time.sleep(0.02)
        time.sleep(0.3)  # inside F&O: the changeset commits when the delay ends, answered or not
        assert _sent_and_pushing(store), "killed with a create in flight"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        store.close()
    fo.commit_delay = 0.0
    time.sleep(3.5)  # the killed run's claims are no longer renewed: in doubt
    for _ in range(3):
        result = _run(world, "sync", WOO2D365_DYNAMICS__TIMEOUT_SECONDS="3")
        assert result.returncode in (0, 1, 3), result.stderr
        if all(state != "pushing" for state, _ in _states(world).values()):
            break
        time.sleep(3.5)
    states = _states(world)
    assert all(state != "pushing" for state, _ in states.values()), states
    assert set(_references(world).values()) == {1}
    pushed = {i for i, (state, _) in states.items() if state == "pushed"}
    assert len(pushed) == len(_references(world))


def test_an_item_stopped_for_sales_holds_its_orders_with_the_reason(world: Sandbox) -> None:
    fo = _fo(world)
    sku = _common_sku(world)
    fo.set_sales_stopped(sku, True)
    run_woo2d365(world, "sync")
    held = {i: reason for i, (state, reason) in _states(world).items() if state == "held"}
    with_item = [
        i
        for i, o in world.shop.orders.items()
        if any(line["sku"] == sku for line in o["line_items"]) and i in held
    ]
    assert with_item, held
    assert all(f"item {sku} is stopped for sales" in held[i] for i in with_item)
    assert not any(line["ItemNumber"] == sku for o in fo.sales_orders() for line in o["lines"]), (
        "never sent"
    )


def test_a_country_fo_does_not_know_holds_the_order_naming_the_code(world: Sandbox) -> None:
    fo = _fo(world)
    del fo.data.countries["DEU"]
    run_woo2d365(world, "sync")
    states = _states(world)
    german = [
        i for i, o in world.shop.orders.items() if o["billing"]["country"] == "DE" and i in states
    ]
    assert german
    for woo_id in german:
        state, reason = states[woo_id]
        if state == "held":
            assert "'DE'" in reason and "AddressCountryRegions" in reason
    assert any(states[i][0] == "held" for i in german)


def test_a_changeset_fo_refuses_fails_the_order_with_the_infolog_and_creates_nothing_of_it(
    world: Sandbox,
) -> None:
    fo = _fo(world)
    assert run_woo2d365(world, "pull").exit_code == 0
    assert run_woo2d365(world, "validate").exit_code == 1
    sku = _common_sku(world)
    fo.set_sales_stopped(sku, True)  # after validation: only the create finds out
    push = run_woo2d365(world, "push")
    assert push.exit_code == 1, push.stderr
    states = _states(world)
    failed = {i: reason for i, (state, reason) in states.items() if state == "failed"}
    assert failed
    for reason in failed.values():
        assert f"Item {sku} is stopped for sales" in reason
        assert "stacktrace" not in reason and "AxODataDelegatingHandler" not in reason
    failed_references = {f"WC-{world.shop.orders[i]['number']}" for i in failed}
    assert not failed_references & set(_references(world)), "no header without its lines"


def test_throttled_requests_and_changesets_are_sent_again_after_retry_after(
    world: Sandbox,
) -> None:
    fo = _fo(world)
    fo.throttle_next(2, retry_after=1, path_contains="SalesOrderHeadersV2")
    fo.throttle_next(1, retry_after=1, in_changeset=True)
    result = run_woo2d365(world, "sync")
    assert result.exit_code == 1, result.stderr  # the held orders only
    assert [r.status for r in fo.requests if r.status == 429] == [429, 429]
    assert set(_references(world).values()) == {1}
    assert all(state != "failed" for state, _ in _states(world).values())


def test_an_app_not_registered_in_fo_stops_the_run_and_doctor_explains_it(world: Sandbox) -> None:
    fo = _fo(world)
    fo.unregister_app()
    sync = run_woo2d365(world, "sync")
    assert sync.exit_code == 2, sync.stdout + sync.stderr
    assert "Microsoft Entra applications" in sync.stderr
    assert _fo(world).sales_orders() == []
    doctor = _run(world, "doctor", COLUMNS="1000")
    assert doctor.returncode == 1
    assert "Microsoft Entra applications" in doctor.stdout
    assert "Dynamics: token" in doctor.stdout


def test_doctor_checks_the_token_the_legal_entity_and_the_entity_sets(world: Sandbox) -> None:
    doctor = _run(world, "doctor", COLUMNS="1000")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    for line in (
        "Dynamics: token",
        "legal entity",
        "entity sets",
        "customer_group",
        "shipping_account",
    ):
        assert line in doctor.stdout, line
    wrong = _run(world, "doctor", WOO2D365_DYNAMICS__LEGAL_ENTITY="usmf", COLUMNS="1000")
    assert wrong.returncode == 1
    assert "usmf" in wrong.stdout and "not found" in wrong.stdout


def test_own_numbers_refused_by_the_number_sequence_fail_with_the_reason(world: Sandbox) -> None:
    _fo(world).set_manual_numbers(False)
    run_woo2d365(world, "sync")
    failed = [reason for state, reason in _states(world).values() if state == "failed"]
    assert failed and all("does not allow" in reason for reason in failed)
    assert _references(world) == Counter()


def test_push_dry_run_prints_header_and_lines_and_writes_nothing(world: Sandbox) -> None:
    assert run_woo2d365(world, "pull").exit_code == 0
    assert run_woo2d365(world, "validate").exit_code == 1
    result = run_woo2d365(world, "push", "--dry-run")
    assert result.exit_code == 0, result.stderr
    payloads = json.loads(result.stdout)
    first = payloads[0]["payload"] if "payload" in payloads[0] else payloads[0]
    assert first["header"]["dataAreaId"] == FO_LEGAL_ENTITY
    assert first["lines"] and all("ItemNumber" in line for line in first["lines"])
    assert _fo(world).sales_orders() == [] and _fo(world).customers() == []


def test_the_demo_runs_against_finance_operations(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "woo2d365", "demo", "--erp", "finance-operations"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Finance & Operations exactly once" in result.stdout
    assert list(tmp_path.iterdir()) == []


SEQUENCE = {"WOO2D365_DYNAMICS__FO_ORDER_NUMBERS": "sequence"}


def test_in_mode_sequence_f_and_o_numbers_the_orders_and_each_has_all_its_lines_once(
    world: Sandbox,
) -> None:
    fo = _fo(world)
    fo.set_manual_numbers(False)  # the number sequence forbids our own numbers
    first = _run(world, "sync", **SEQUENCE)
    assert first.returncode == 1, first.stderr
    orders = fo.sales_orders()
    assert orders and set(_references(world).values()) == {1}
    states = _states(world)
    for header in orders:
        assert header["SalesOrderNumber"].startswith("WCNL-"), "numbered by F&O"
        woo_id = next(
            i
            for i, o in world.shop.orders.items()
            if f"WC-{o['number']}" == header["CustomersOrderReference"]
        )
        assert states[woo_id][0] == "pushed"
        shop = world.shop.orders[woo_id]
        assert [line["LineNumber"] for line in header["lines"]] == list(
            range(1, len(header["lines"]) + 1)
        )
        total = header["total"]
        if header["ArePricesIncludingSalesTax"] == "No":
            total += Decimal(shop["total_tax"])
        assert total == Decimal(shop["total"])
    second = _run(world, "sync", **SEQUENCE)
    assert second.returncode == 0, second.stderr
    assert len(fo.sales_orders()) == len(orders), "nothing created twice"


def test_in_mode_sequence_a_header_left_without_its_lines_is_completed_never_doubled(
    world: Sandbox,
) -> None:
    fo = _fo(world)
    fo.set_manual_numbers(False)
    fo.drop_next(1, path_contains="$batch")  # the first lines changeset never reaches F&O
    env = {
        **SEQUENCE,
        "WOO2D365_DYNAMICS__TIMEOUT_SECONDS": "1",
        "WOO2D365_DYNAMICS__REQUEST_LIMIT_SECONDS": "2",
    }
    first = _run(world, "sync", **env)
    assert first.returncode == 1, first.stderr  # held orders; the one in doubt stays pushing
    bare = [o for o in fo.sales_orders() if not o["lines"]]
    assert len(bare) == 1, "one header without lines in F&O"
    pushing = [i for i, (state, _) in _states(world).items() if state == "pushing"]
    assert len(pushing) == 1, "and its order is not reported pushed"
    time.sleep(2.5)  # in doubt, and older than the request limit: completed by the next run
    second = _run(world, "sync", **env)
    assert second.returncode == 0, second.stderr  # the held orders were held before
    assert _states(world)[pushing[0]][0] == "pushed"
    completed = [
        o for o in fo.sales_orders() if o["SalesOrderNumber"] == bare[0]["SalesOrderNumber"]
    ]
    assert completed and completed[0]["lines"], "the same header got its lines"
    assert set(_references(world).values()) == {1}, "no second header"


def test_an_item_released_in_fo_after_the_full_refresh_is_found_by_the_next_run(
    world: Sandbox,
) -> None:
    fo = _fo(world)
    assert run_woo2d365(world, "sync").exit_code == 1
    sku = UNMAPPED[0].product.sku
    held = [i for i, (state, reason) in _states(world).items() if state == "held" and sku in reason]
    assert held
    fo.add_product(sku, UNMAPPED[0].product.name, price=UNMAPPED[0].product.price)
    fo.reset_requests()
    second = run_woo2d365(world, "sync")
    assert second.exit_code == 0, second.stderr  # nothing new held
    assert all(_states(world)[i][0] == "pushed" for i in held), "no map-sku needed"
    item_reads = [r for r in fo.requests if "ReleasedProductsV2" in r.path]
    assert len(item_reads) == 1, "a lookup of the SKUs not found, not a full refresh"


def test_in_mode_sequence_two_headers_with_the_reference_hold_the_order_not_a_third(
    world: Sandbox,
) -> None:
    fo = _fo(world)
    fo.set_manual_numbers(False)
    customer = fo.add_fo_customer(
        {"CustomerGroupId": "WEB", "SalesCurrencyCode": "EUR", "OrganizationName": "By hand"}
    )
    taken = sorted(
        i for i, o in world.shop.orders.items() if o["status"] in ("processing", "completed")
    )
    reference = f"WC-{world.shop.orders[taken[0]]['number']}"
    for _ in range(2):  # entered by hand in F&O, twice: the reference is not unique there
        fo.data.create(
            "SalesOrderHeadersV2",
            {
                "dataAreaId": FO_LEGAL_ENTITY,
                "OrderingCustomerAccountNumber": customer["CustomerAccount"],
                "CustomersOrderReference": reference,
            },
        )
    _run(world, "sync", **SEQUENCE)
    state, reason = _states(world)[taken[0]]
    assert state == "held" and "2 sales orders carry CustomersOrderReference" in reason
    assert _references(world)[reference] == 2, "no third header"


def test_with_a_fixed_customer_every_order_is_on_it_and_no_customer_is_created(
    world: Sandbox,
) -> None:
    fo = _fo(world)
    account = fo.add_fo_customer(
        {"CustomerGroupId": "WEB", "SalesCurrencyCode": "EUR", "OrganizationName": "Web shop"}
    )["CustomerAccount"]
    env = {
        "WOO2D365_ORDERS__CUSTOMER_MODE": "fixed",
        "WOO2D365_ORDERS__CUSTOMER_NUMBER": account,
        "COLUMNS": "1000",
    }
    doctor = _run(world, "doctor", **env)
    assert doctor.returncode == 0, doctor.stdout
    assert f"{account} exists" in doctor.stdout
    result = _run(world, "sync", **env)
    assert result.returncode == 1, result.stderr
    orders = fo.sales_orders()
    assert orders and {o["OrderingCustomerAccountNumber"] for o in orders} == {account}
    assert len(fo.customers()) == 1


def test_in_mode_sequence_a_header_whose_answer_was_lost_gets_its_lines_not_a_twin(
    world: Sandbox,
) -> None:
    fo = _fo(world)
    fo.set_manual_numbers(False)
    fo.drop_after_commit_next(1, path_contains="SalesOrderHeadersV2")
    env = {
        **SEQUENCE,
        "WOO2D365_DYNAMICS__TIMEOUT_SECONDS": "1",
        "WOO2D365_DYNAMICS__REQUEST_LIMIT_SECONDS": "2",
    }
    first = _run(world, "sync", **env)
    assert first.returncode == 1, first.stderr  # held orders; the one in doubt stays pushing
    pushing = [i for i, (state, _) in _states(world).items() if state == "pushing"]
    assert len(pushing) == 1
    time.sleep(2.5)
    second = _run(world, "sync", **env)
    assert second.returncode == 0, second.stderr  # the held orders were held before
    assert _states(world)[pushing[0]][0] == "pushed"
    assert set(_references(world).values()) == {1}
    assert all(order["lines"] for order in fo.sales_orders()), "every header has its lines"
