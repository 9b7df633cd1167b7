"""An order Business Central invoiced, and so deleted, is never created again by a new or
restored state store, through the real CLI against both emulators (docs/architecture.md,
"Exactly once", step 2).

With ``woocommerce.write_back = false`` the shop order carries no meta naming its sales order,
so the posted invoice is the only thing left that says the order is in Dynamics.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.conftest import run_woo2d365
from tests.fixtures.cli import with_config
from woo2d365.sandbox.shop_data import build_order, product_by_sku
from woo2d365.sandbox.world import Sandbox

POSTED_READS = 2
"""Extra Dynamics requests of a first sync for the rule: one paged read each of the posted
invoices and the posted shipments (one page each here), never one per order."""


def _pushed(sandbox: Sandbox) -> dict:
    """One pushed order's ``status ID --json``."""
    status = json.loads(run_woo2d365(sandbox, "status", "--json").stdout)
    woo_id = next(o["woo_id"] for o in status["orders"] if o["state"] == "pushed")
    return _detail(sandbox, woo_id)


def _detail(sandbox: Sandbox, woo_id: int) -> dict:
    return json.loads(run_woo2d365(sandbox, "status", str(woo_id), "--json").stdout)


def _in_dynamics(sandbox: Sandbox, key: str) -> tuple[int, int]:
    """(sales orders, posted invoices) in Business Central carrying the order's key."""
    orders = sum(1 for d in sandbox.bc.sales_orders() if d["externalDocumentNumber"] == key)
    invoices = sum(1 for i in sandbox.bc.invoices() if i["externalDocumentNumber"] == key)
    return orders, invoices


def _posted_reads(sandbox: Sandbox) -> list[str]:
    return [
        r.path.rsplit("/", 1)[-1]
        for r in sandbox.bc.requests
        if r.method == "GET" and r.path.endswith(("/salesInvoices", "/salesShipments"))
    ]


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_a_new_store_records_an_invoiced_order_as_pushed_by_its_invoice_and_creates_no_twin(
    sandbox: Sandbox, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "mysql":
        url = request.getfixturevalue("mysql_server").new_database_url()
        with_config(sandbox, woocommerce={"write_back": False}, state={"url": url})
    else:
        with_config(sandbox, woocommerce={"write_back": False})
    sandbox.bc.reset_requests()
    assert run_woo2d365(sandbox, "sync").exit_code == 1  # the sandbox holds a few orders
    assert len(_posted_reads(sandbox)) <= POSTED_READS, _posted_reads(sandbox)
    pushed = _pushed(sandbox)
    key, number = f"WC-{pushed['number']}", pushed["d365_number"]
    _, invoice = sandbox.bc.ship_and_invoice(number)  # Business Central deletes the sales order
    assert _in_dynamics(sandbox, key) == (0, 1)
    if backend == "mysql":  # a new, empty database
        url = request.getfixturevalue("mysql_server").new_database_url()
        with_config(sandbox, woocommerce={"write_back": False}, state={"url": url})
    else:
        sandbox.state_path.unlink()  # the store is lost; a new one starts empty

    run_woo2d365(sandbox, "sync")

    assert _in_dynamics(sandbox, key) == (0, 1), "no second sales order for an invoiced order"
    detail = _detail(sandbox, pushed["woo_id"])
    assert (detail["state"], detail["d365_number"]) == ("pushed", number)
    [event] = [e for e in detail["events"] if "adopted" in e["message"]]
    assert f"posted invoice {invoice['number']}" in event["message"], event
    assert f"sales order {number}" in event["message"], event


def test_a_dry_run_over_a_new_store_names_no_invoiced_order_and_the_sync_creates_what_it_named(
    sandbox: Sandbox,
) -> None:
    with_config(sandbox, woocommerce={"write_back": False})
    assert run_woo2d365(sandbox, "sync").exit_code == 1
    pushed = _pushed(sandbox)
    key = f"WC-{pushed['number']}"
    _, invoice = sandbox.bc.ship_and_invoice(pushed["d365_number"])
    sandbox.state_path.unlink()
    before = {d["externalDocumentNumber"] for d in sandbox.bc.sales_orders()}
    new = build_order(
        max(sandbox.shop.orders) + 1,
        items=[(product_by_sku("WIDGET-001"), 1)],
        created_gmt=datetime.now(UTC) - timedelta(hours=1),
        site_url=sandbox.shop.url,
    )
    sandbox.shop.add_order(new)  # the one order the next sync does create

    dry = run_woo2d365(sandbox, "sync", "--dry-run")  # no store yet: nothing is written
    named = set(re.findall(r"would create sales order (\S+) ", dry.stdout))
    assert key not in named, dry.stdout
    assert f"already in Dynamics as posted invoice {invoice['number']}" in dry.stdout
    assert named == {f"WC-{new['number']}"}, dry.stdout

    assert run_woo2d365(sandbox, "pull").exit_code == 0
    assert run_woo2d365(sandbox, "validate").exit_code == 1  # decided (a few held), not sent
    pushing = run_woo2d365(sandbox, "push", "--dry-run", "--order", str(pushed["woo_id"]))
    assert json.loads(pushing.stdout) == [], "push --dry-run prints no payload for it"
    assert f"posted invoice {invoice['number']}" in pushing.stderr

    run_woo2d365(sandbox, "sync")
    created = {d["externalDocumentNumber"] for d in sandbox.bc.sales_orders()} - before
    assert created == named
    assert _in_dynamics(sandbox, key) == (0, 1)
