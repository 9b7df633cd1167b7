"""``woo2d365 shipments`` end to end: the real CLI against both emulators over HTTPS.

Business Central posts shipments and invoices through the emulator's admin methods, exactly as a
warehouse or finance person would; the shop is read back through its own data.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import run_woo2d365
from tests.fixtures.cli import order_detail, running_sandbox, start_cli, with_config
from woo2d365.pipeline.shipments import INVOICE_META_KEY, invoice_marker, shipment_marker
from woo2d365.sandbox.businesscentral import TRACKING_API
from woo2d365.sandbox.world import Sandbox
from woo2d365.store import open_store

CARRIERS = {"DHL": "DHL Parcel|https://dhl.example/track?id=%1"}


@pytest.fixture
def shipping(tmp_path: Path) -> Iterator[Sandbox]:
    """Five pushable orders, pushed, with [shipments] on (tracking page and a carrier)."""
    with running_sandbox(
        tmp_path / "sandbox", orders=5, unmapped_orders=0, seed=2, pushable_only=True
    ) as sandbox:
        with_config(
            sandbox,
            shipments={"enabled": True, "tracking_api": TRACKING_API, "carriers": CARRIERS},
        )
        pushed = run_woo2d365(sandbox, "sync")
        assert pushed.exit_code == 0, pushed.stdout + pushed.stderr
        yield sandbox


def _order_with_two_units(sandbox: Sandbox) -> tuple[int, str]:
    """A pushed order in processing whose goods can ship in two parts: (shop id, sales order
    number)."""
    for order in sandbox.bc.sales_orders():
        items = [line for line in order["salesOrderLines"] if line["lineType"] == "Item"]
        woo_id = _woo_id(sandbox, order["externalDocumentNumber"])
        processing = sandbox.shop.orders[woo_id]["status"] == "processing"
        if processing and sum(line["quantity"] for line in items) >= 2:
            return woo_id, order["number"]
    raise AssertionError("no order with two units")


def _woo_id(sandbox: Sandbox, external_number: str) -> int:
    for woo_id, order in sandbox.shop.orders.items():
        if f"WC-{order['number']}" == external_number:
            return int(woo_id)
    raise AssertionError(external_number)


def _notes(sandbox: Sandbox, woo_id: int, text: str) -> list[dict[str, Any]]:
    return [n for n in sandbox.shop.notes.get(woo_id, []) if text in str(n.get("note"))]


def _status_notes(sandbox: Sandbox, woo_id: int) -> list[dict[str, Any]]:
    return _notes(sandbox, woo_id, "Order status changed")


def _first_line_partly(sandbox: Sandbox, number: str) -> dict[int, int]:
    order = next(o for o in sandbox.bc.sales_orders() if o["number"] == number)
    first = order["salesOrderLines"][0]
    return {first["sequence"]: 1}


def test_a_partial_then_a_full_shipment_are_two_notes_and_one_status_change(
    shipping: Sandbox,
) -> None:
    woo_id, number = _order_with_two_units(shipping)
    first = shipping.bc.ship(number, _first_line_partly(shipping, number))
    assert first is not None
    result = run_woo2d365(shipping, "shipments")
    assert result.exit_code == 0, result.stdout + result.stderr
    [note] = _notes(shipping, woo_id, shipment_marker(first["number"]))
    assert note["customer_note"] is True and note["note"].startswith("Partly shipped")
    assert shipping.shop.orders[woo_id]["status"] == "processing"

    second = shipping.bc.ship(number)
    assert second is not None
    assert run_woo2d365(shipping, "shipments").exit_code == 0
    [full] = _notes(shipping, woo_id, shipment_marker(second["number"]))
    assert full["note"].startswith("Shipped:")
    assert shipping.shop.orders[woo_id]["status"] == "completed"
    assert len(_status_notes(shipping, woo_id)) == 1

    again = run_woo2d365(shipping, "sync")
    assert again.exit_code == 0, again.stdout + again.stderr
    assert len(_notes(shipping, woo_id, "Dynamics 365 shipment")) == 2, "nothing twice"
    assert len(_status_notes(shipping, woo_id)) == 1
    detail = order_detail(shipping, woo_id)
    assert [s["number"] for s in detail["shipments"]] == [first["number"], second["number"]]
    assert detail["state"] == "pushed"
    assert not any("changed in the shop" in e["message"] for e in detail["events"]), (
        "our own status change is no change after push"
    )


def test_ship_and_invoice_in_one_posting_completes_and_records_the_invoice(
    shipping: Sandbox,
) -> None:
    woo_id, number = _order_with_two_units(shipping)
    shipment, invoice = shipping.bc.ship_and_invoice(number)
    assert all(o["number"] != number for o in shipping.bc.sales_orders()), "order deleted"
    result = run_woo2d365(shipping, "shipments")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert shipping.shop.orders[woo_id]["status"] == "completed"
    assert _notes(shipping, woo_id, shipment_marker(shipment["number"]))
    [invoice_note] = _notes(shipping, woo_id, invoice_marker(invoice["number"]))
    assert invoice_note["customer_note"] is False
    meta = {m["key"]: m["value"] for m in shipping.shop.orders[woo_id]["meta_data"]}
    assert meta[INVOICE_META_KEY].startswith(f"{invoice['number']} Open")
    detail = order_detail(shipping, woo_id)
    assert detail["invoices"] == [{"number": invoice["number"], "status": "Open"}]

    shipping.bc.set_invoice_status(invoice["number"], "Paid")
    assert run_woo2d365(shipping, "shipments").exit_code == 0
    assert order_detail(shipping, woo_id)["invoices"] == [
        {"number": invoice["number"], "status": "Paid"}
    ]
    meta = {m["key"]: m["value"] for m in shipping.shop.orders[woo_id]["meta_data"]}
    assert meta[INVOICE_META_KEY].startswith(f"{invoice['number']} Paid")
    assert len(_notes(shipping, woo_id, invoice_marker(invoice["number"]))) == 1


def test_a_tracking_number_added_after_posting_reaches_the_shop_once(shipping: Sandbox) -> None:
    woo_id, number = _order_with_two_units(shipping)
    shipment = shipping.bc.ship(number)
    assert shipment is not None
    assert run_woo2d365(shipping, "shipments").exit_code == 0
    shipping.bc.set_tracking(shipment["number"], "DHL", "JVGL0123456789")
    for _ in range(2):
        assert run_woo2d365(shipping, "shipments").exit_code == 0
    [note] = _notes(shipping, woo_id, "JVGL0123456789")
    assert "DHL Parcel" in note["note"]
    assert "https://dhl.example/track?id=JVGL0123456789" in note["note"]
    assert order_detail(shipping, woo_id)["shipments"][0]["tracking"] == "JVGL0123456789"


def test_a_dry_run_writes_nowhere_and_a_step_switched_off_does_nothing(shipping: Sandbox) -> None:
    woo_id, number = _order_with_two_units(shipping)
    shipping.bc.ship_and_invoice(number)
    notes_before = len(shipping.shop.notes.get(woo_id, []))
    store = open_store(f"sqlite:///{shipping.state_path}")
    try:
        dry = run_woo2d365(shipping, "shipments", "--dry-run")
        assert dry.exit_code == 0, dry.stdout + dry.stderr
        assert "would add" in dry.stdout and "would set the shop status completed" in dry.stdout
        assert len(shipping.shop.notes.get(woo_id, [])) == notes_before
        assert store.shipment_reports() == [] and store.invoice_records() == []
        assert store.last_run("shipments") is None

        with_config(shipping, shipments={"enabled": False})
        off = run_woo2d365(shipping, "sync")
        assert off.exit_code == 0, off.stdout + off.stderr
        assert len(shipping.shop.notes.get(woo_id, [])) == notes_before
        assert store.shipment_reports() == []
    finally:
        store.close()


def test_an_order_cancelled_after_shipping_raises_an_alert_and_nothing_else(
    shipping: Sandbox,
) -> None:
    woo_id, number = _order_with_two_units(shipping)
    shipment = shipping.bc.ship(number)
    assert shipment is not None
    assert run_woo2d365(shipping, "shipments").exit_code == 0
    shipping.shop.set_status(woo_id, "cancelled")
    notes_before = len(shipping.shop.notes.get(woo_id, []))
    orders_before = shipping.bc.sales_orders()
    result = run_woo2d365(shipping, "sync")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "after it shipped" in result.stderr
    # The alert: a state of attention until acknowledged, which status --check reports.
    check = run_woo2d365(shipping, "status", "--check")
    assert check.exit_code == 1 and "changed in the shop after the push" in check.stdout
    detail = order_detail(shipping, woo_id)
    assert detail["changed_after_push_at"] is not None
    assert any(
        "after it shipped" in e["message"] and e["level"] == "warning" for e in detail["events"]
    ), detail["events"]
    assert shipping.shop.orders[woo_id]["status"] == "cancelled"
    assert len(shipping.shop.notes.get(woo_id, [])) == notes_before
    assert shipping.bc.sales_orders() == orders_before


def test_a_run_killed_after_the_note_never_writes_it_twice(shipping: Sandbox) -> None:
    woo_id, number = _order_with_two_units(shipping)
    shipment = shipping.bc.ship(number)
    assert shipment is not None
    # The shop takes the note and the status write but answers them slowly: the run is killed
    # while it waits, after the shop has acted.
    shipping.shop.latency = 1.0
    process = start_cli(shipping, "shipments")
    _wait_for(lambda: bool(_notes(shipping, woo_id, shipment_marker(shipment["number"]))))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    shipping.shop.latency = 0.0
    for _ in range(2):  # the dead run's lock does not block (its process is gone)
        result = run_woo2d365(shipping, "shipments")
        assert result.exit_code == 0, result.stdout + result.stderr
    assert len(_notes(shipping, woo_id, shipment_marker(shipment["number"]))) == 1
    assert shipping.shop.orders[woo_id]["status"] == "completed"
    assert len(_status_notes(shipping, woo_id)) == 1


def test_a_lost_answer_to_the_note_is_settled_by_reading_the_notes_not_by_writing_again(
    shipping: Sandbox,
) -> None:
    woo_id, number = _order_with_two_units(shipping)
    shipment = shipping.bc.ship(number, _first_line_partly(shipping, number))
    assert shipment is not None
    shipping.shop.drop_next(
        path_prefix=f"/wp-json/wc/v3/orders/{woo_id}/notes", method="POST", after_processing=True
    )
    lost = run_woo2d365(shipping, "shipments")
    assert lost.exit_code == 3, lost.stdout + lost.stderr
    assert len(_notes(shipping, woo_id, shipment_marker(shipment["number"]))) == 1
    again = run_woo2d365(shipping, "shipments")
    assert again.exit_code == 0, again.stdout + again.stderr
    assert len(_notes(shipping, woo_id, shipment_marker(shipment["number"]))) == 1
    events = order_detail(shipping, woo_id)["events"]
    assert sum(shipment_marker(shipment["number"]) in e["message"] for e in events) == 1


def test_a_note_that_landed_without_the_tracking_number_is_followed_by_the_tracking_note(
    shipping: Sandbox,
) -> None:
    woo_id, number = _order_with_two_units(shipping)
    shipment = shipping.bc.ship(number)
    assert shipment is not None
    shipping.shop.drop_next(
        path_prefix=f"/wp-json/wc/v3/orders/{woo_id}/notes", method="POST", after_processing=True
    )
    assert run_woo2d365(shipping, "shipments").exit_code == 3  # the note landed, no tracking
    shipping.bc.set_tracking(shipment["number"], "DHL", "JVGL0123456789")
    for _ in range(2):
        done = run_woo2d365(shipping, "shipments")
        assert done.exit_code == 0, done.stdout + done.stderr
    assert len(_notes(shipping, woo_id, "Shipped")) == 1, "the shipment note, once"
    assert len(_notes(shipping, woo_id, "JVGL0123456789")) == 1, "the tracking note, once"


def _wait_for(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def test_order_narrows_the_run_and_the_rest_is_reported_by_the_next_run(
    shipping: Sandbox,
) -> None:
    orders = shipping.bc.sales_orders()
    first, second = orders[0], orders[1]
    one = shipping.bc.ship(first["number"])
    other = shipping.bc.ship(second["number"])
    assert one is not None and other is not None
    woo_one = _woo_id(shipping, first["externalDocumentNumber"])
    woo_other = _woo_id(shipping, second["externalDocumentNumber"])
    narrowed = run_woo2d365(shipping, "shipments", "--order", str(woo_one))
    assert narrowed.exit_code == 0, narrowed.stdout + narrowed.stderr
    assert _notes(shipping, woo_one, shipment_marker(one["number"]))
    assert not _notes(shipping, woo_other, shipment_marker(other["number"]))
    assert run_woo2d365(shipping, "shipments").exit_code == 0
    assert len(_notes(shipping, woo_other, shipment_marker(other["number"]))) == 1
    assert len(_notes(shipping, woo_one, shipment_marker(one["number"]))) == 1


def test_a_run_killed_after_the_status_change_never_changes_it_twice(shipping: Sandbox) -> None:
    woo_id, number = _order_with_two_units(shipping)
    shipment = shipping.bc.ship(number)
    assert shipment is not None
    shipping.shop.latency = 1.0
    process = start_cli(shipping, "shipments")
    _wait_for(lambda: shipping.shop.orders[woo_id]["status"] == "completed")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    shipping.shop.latency = 0.0
    store = open_store(f"sqlite:///{shipping.state_path}")
    try:
        assert store.fulfilments([woo_id])[woo_id].complete_state == "claimed"
    finally:
        store.close()
    for _ in range(2):
        result = run_woo2d365(shipping, "shipments")
        assert result.exit_code == 0, result.stdout + result.stderr
    assert len(_status_notes(shipping, woo_id)) == 1
    assert len(_notes(shipping, woo_id, shipment_marker(shipment["number"]))) == 1
    resync = run_woo2d365(shipping, "sync")
    assert resync.exit_code == 0, resync.stdout + resync.stderr
    assert order_detail(shipping, woo_id)["changed_after_push_at"] is None


def test_a_tracking_page_that_is_not_installed_is_a_configuration_error(
    shipping: Sandbox,
) -> None:
    shipping.bc.tracking_api = None
    result = run_woo2d365(shipping, "shipments")
    assert result.exit_code == 2, result.stdout + result.stderr
    assert "shipments.tracking_api" in result.stderr


def test_switched_on_late_it_tells_no_customer_about_orders_the_shop_already_completed(
    tmp_path: Path,
) -> None:
    with running_sandbox(
        tmp_path / "sandbox", orders=5, unmapped_orders=0, seed=2, pushable_only=True
    ) as sandbox:
        assert run_woo2d365(sandbox, "sync").exit_code == 0  # shipments off
        done_id, done_number = _order_with_two_units(sandbox)
        sandbox.shop.modify_order(done_id, status="completed")  # settled by hand, long ago
        sandbox.bc.ship(done_number)
        open_id = next(i for i, o in sandbox.shop.orders.items() if o["status"] == "processing")
        open_number = next(
            o["number"]
            for o in sandbox.bc.sales_orders()
            if o["externalDocumentNumber"] == f"WC-{sandbox.shop.orders[open_id]['number']}"
        )
        sandbox.bc.ship(open_number)
        assert run_woo2d365(sandbox, "sync").exit_code == 0  # a change after push: no news

        with_config(sandbox, shipments={"enabled": True})
        narrowed = run_woo2d365(sandbox, "shipments", "--order", str(open_id))
        assert narrowed.exit_code == 0, narrowed.stdout + narrowed.stderr
        result = run_woo2d365(sandbox, "shipments")
        assert result.exit_code == 0, result.stdout + result.stderr
        assert _notes(sandbox, done_id, "Dynamics 365 shipment") == [], "no late e-mail"
        assert len(_notes(sandbox, open_id, "Dynamics 365 shipment")) == 1, "open: told"
        assert "1 already complete" in result.stdout, "a narrowed first run is no first run"
        again = run_woo2d365(sandbox, "shipments")
        assert again.exit_code == 0 and _notes(sandbox, done_id, "Dynamics 365 shipment") == []
