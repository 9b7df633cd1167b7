"""Closing an order by hand (``resolve``) and sending one again whose document was deleted
(``retry --force``), through the real CLI against both emulators."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tests.e2e.conftest import run_woo2d365
from tests.fixtures.cli import with_config
from woo2d365.sandbox.world import Sandbox


def _orders(sandbox: Sandbox) -> dict[int, dict]:
    status = json.loads(run_woo2d365(sandbox, "status", "--json").stdout)
    return {order["woo_id"]: order for order in status["orders"]}


def _detail(sandbox: Sandbox, woo_id: int) -> dict:
    return json.loads(run_woo2d365(sandbox, "status", str(woo_id), "--json").stdout)


def test_resolve_records_a_held_order_as_pushed_to_a_document_entered_by_hand(
    sandbox: Sandbox,
) -> None:
    assert run_woo2d365(sandbox, "sync").exit_code == 1  # the sandbox holds a few orders
    orders = _orders(sandbox)
    held = next(i for i, o in orders.items() if o["state"] == "held")
    by_hand = sandbox.bc.sales_orders()[0]["number"]  # stands for one a person entered

    missing = run_woo2d365(sandbox, "resolve", str(held), "--document", "S-NOPE")
    assert missing.exit_code == 2 and "no sales order S-NOPE" in missing.stderr
    assert _orders(sandbox)[held]["state"] == "held", "nothing changed"

    done = run_woo2d365(sandbox, "resolve", str(held), "--document", by_hand.lower())
    assert done.exit_code == 0, done.stderr
    detail = _detail(sandbox, held)
    assert (detail["state"], detail["d365_number"]) == ("pushed", by_hand)
    assert "entered by hand" in detail["events"][-1]["message"]
    again = run_woo2d365(sandbox, "resolve", str(held), "--document", by_hand)
    assert again.exit_code == 2 and "already in Dynamics" in again.stderr


def test_resolve_skip_closes_an_order_with_who_and_why(sandbox: Sandbox) -> None:
    run_woo2d365(sandbox, "sync")
    held = next(i for i, o in _orders(sandbox).items() if o["state"] == "held")
    bare = run_woo2d365(sandbox, "resolve", str(held), "--skip")
    assert bare.exit_code == 2 and "--reason" in bare.stderr
    done = run_woo2d365(sandbox, "resolve", str(held), "--skip", "--reason", "sample, not sold")
    assert done.exit_code == 0, done.stderr
    detail = _detail(sandbox, held)
    assert detail["state"] == "skipped" and "sample, not sold" in (detail["reason"] or "")
    check = run_woo2d365(sandbox, "status", "--check")
    assert str(held) not in check.stdout


def test_retry_force_sends_again_only_an_order_whose_document_was_deleted(
    sandbox: Sandbox,
) -> None:
    assert run_woo2d365(sandbox, "sync").exit_code == 1
    pushed = next(i for i, o in _orders(sandbox).items() if o["state"] == "pushed")
    old = _detail(sandbox, pushed)["d365_number"]

    refused = run_woo2d365(sandbox, "retry", str(pushed), "--force")
    assert refused.exit_code == 1 and f"still exists in Dynamics 365 as sales order {old}" in (
        refused.stderr
    )
    sandbox.bc.delete_sales_order(old)  # fully invoiced: Business Central deletes the order
    forced = run_woo2d365(sandbox, "retry", str(pushed), "--force")
    assert forced.exit_code == 0, forced.stderr
    assert run_woo2d365(sandbox, "sync").exit_code == 0  # the held ones were held before
    detail = _detail(sandbox, pushed)
    assert detail["state"] == "pushed" and detail["d365_number"] not in (None, old)
    counts = Counter(d["externalDocumentNumber"] for d in sandbox.bc.sales_orders())
    assert counts[f"WC-{detail['number']}"] == 1
    assert run_woo2d365(sandbox, "retry", "--failed", "--force").exit_code == 2


def test_a_new_store_holds_an_order_whose_recorded_document_is_gone_until_forced(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    assert run_woo2d365(sandbox, "sync").exit_code == 1
    pushed = next(i for i, o in _orders(sandbox).items() if o["state"] == "pushed")
    old = _detail(sandbox, pushed)["d365_number"]
    sandbox.bc.delete_sales_order(old)  # invoiced (or deleted) since
    with_config(sandbox, state={"url": f"sqlite:///{tmp_path / 'restored.db'}"})

    run_woo2d365(sandbox, "sync")
    detail = _detail(sandbox, pushed)
    assert detail["state"] == "held", "never created again on the word of an empty store"
    assert f"sales order {old}" in detail["reason"] and "--force" in detail["reason"]
    forced = run_woo2d365(sandbox, "retry", str(pushed), "--force")
    assert forced.exit_code == 0, forced.stderr
    run_woo2d365(sandbox, "sync")
    detail = _detail(sandbox, pushed)
    assert detail["state"] == "pushed" and detail["d365_number"] != old
    counts = Counter(d["externalDocumentNumber"] for d in sandbox.bc.sales_orders())
    assert counts[f"WC-{detail['number']}"] == 1


def _posted_for(sandbox: Sandbox, key: str) -> tuple[int, int]:
    """(sales orders, posted invoices) in Business Central carrying the order's key."""
    orders = sum(1 for d in sandbox.bc.sales_orders() if d["externalDocumentNumber"] == key)
    invoices = sum(1 for i in sandbox.bc.invoices() if i["externalDocumentNumber"] == key)
    return orders, invoices


def test_retry_force_refuses_an_order_invoiced_in_business_central_and_sync_creates_no_twin(
    sandbox: Sandbox,
) -> None:
    assert run_woo2d365(sandbox, "sync").exit_code == 1
    pushed = next(i for i, o in _orders(sandbox).items() if o["state"] == "pushed")
    detail = _detail(sandbox, pushed)
    key = f"WC-{detail['number']}"
    _, invoice = sandbox.bc.ship_and_invoice(detail["d365_number"])  # the sales order is deleted
    assert _posted_for(sandbox, key) == (0, 1)

    refused = run_woo2d365(sandbox, "retry", str(pushed), "--force")
    assert refused.exit_code == 1, refused.stderr
    [line] = [x for x in refused.stderr.splitlines() if f"order {pushed}" in x]
    assert f"posted invoice {invoice['number']}" in line and "never sent twice" in line
    assert _detail(sandbox, pushed)["d365_number"] == detail["d365_number"], "nothing changed"
    run_woo2d365(sandbox, "sync")
    assert _posted_for(sandbox, key) == (0, 1), "no second sales order for an invoiced order"
    assert _detail(sandbox, pushed)["state"] == "pushed"


def test_retry_force_refuses_an_order_shipped_and_invoiced_whose_shipment_alone_is_left_named(
    sandbox: Sandbox,
) -> None:
    """An order invoiced through a separate invoice ("Get Shipment Lines") keeps neither key nor
    order id on the invoice, and "Delete Invoiced Sales Orders" removes the order: the posted
    shipment alone still names it."""
    assert run_woo2d365(sandbox, "sync").exit_code == 1
    pushed = next(i for i, o in _orders(sandbox).items() if o["state"] == "pushed")
    number = _detail(sandbox, pushed)["d365_number"]
    shipment = sandbox.bc.ship(number)
    assert shipment is not None
    sandbox.bc.delete_sales_order(number)

    refused = run_woo2d365(sandbox, "retry", str(pushed), "--force")
    assert refused.exit_code == 1
    assert f"posted shipment {shipment['number']}" in refused.stderr


def test_a_new_store_meeting_an_invoiced_order_records_it_pushed_and_retry_force_refuses(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The shop order names its sales order (write-back on); Dynamics shows the invoice posted
    from it: adopted as pushed to that sales order (tests/e2e/test_invoiced.py: without meta)."""
    assert run_woo2d365(sandbox, "sync").exit_code == 1
    pushed = next(i for i, o in _orders(sandbox).items() if o["state"] == "pushed")
    detail = _detail(sandbox, pushed)
    _, invoice = sandbox.bc.ship_and_invoice(detail["d365_number"])
    with_config(sandbox, state={"url": f"sqlite:///{tmp_path / 'restored.db'}"})

    run_woo2d365(sandbox, "sync")
    again = _detail(sandbox, pushed)
    assert (again["state"], again["d365_number"]) == ("pushed", detail["d365_number"])
    assert f"posted invoice {invoice['number']}" in again["events"][-1]["message"]
    refused = run_woo2d365(sandbox, "retry", str(pushed), "--force")
    assert refused.exit_code == 1 and f"posted invoice {invoice['number']}" in refused.stderr
    run_woo2d365(sandbox, "sync")
    assert _posted_for(sandbox, f"WC-{detail['number']}") == (0, 1)
