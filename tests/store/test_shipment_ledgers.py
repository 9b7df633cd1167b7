"""The shipment and invoice ledgers of ``woo2d365 shipments``, on SQLite and on MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from woo2d365.store import SqlStore
from woo2d365.store.base import Fulfilment, InvoiceRecord, PulledOrder, ShipmentReport

T0 = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)


def _pushed(store: SqlStore, woo_id: int, *, at: datetime = T0) -> None:
    store.save_pulled_order(
        PulledOrder(woo_id, str(woo_id), "processing", at, "EUR", "10.00", {"id": woo_id})
    )
    assert store.mark_pushed(
        woo_id,
        d365_id=f"guid-{woo_id}",
        d365_number=f"SO{woo_id}",
        external_number=f"WC-{woo_id}",
        now=at,
        expect=None,
    )


def _shipment(woo_id: int, number: str, **fields: object) -> ShipmentReport:
    base = {
        "shipment_id": f"id-{number}",
        "woo_id": woo_id,
        "number": number,
        "posted_on": "2026-11-02",
        "lines": {10000: "1"},
        "modified": "2026-11-02T10:00:00Z",
    }
    base.update(fields)
    return ShipmentReport(**base)  # type: ignore[arg-type]


def test_pushed_orders_are_found_by_key_by_dynamics_number_and_by_dynamics_id(
    store: SqlStore,
) -> None:
    for woo_id in (1, 2, 3, 4):
        _pushed(store, woo_id)
    found = store.pushed_orders_matching(
        external_numbers=["WC-1", "WC-99"], d365_numbers=["SO2"], d365_ids=["guid-3"]
    )
    assert sorted(r.woo_id for r in found) == [1, 2, 3]


def test_a_shipment_is_recorded_once_and_a_second_read_keeps_what_the_shop_was_told(
    store: SqlStore,
) -> None:
    store.observe_shipments([_shipment(7, "102001")])
    assert store.set_shipment_note_state("id-102001", "claimed", expect=["pending"])
    assert not store.set_shipment_note_state("id-102001", "claimed", expect=["pending"])
    assert store.set_shipment_note_state("id-102001", "noted", expect=["claimed"])
    # The overlap reads it again, now with a tracking number typed in afterwards.
    store.observe_shipments(
        [_shipment(7, "102001", agent="DHL", tracking="JV1", modified="2026-11-03T08:00:00Z")]
    )
    [report] = store.shipment_reports([7])
    assert report.note_state == "noted" and report.tracking == "JV1" and report.agent == "DHL"
    assert report.lines == {10000: "1"}
    assert [r.number for r in store.shipment_reports(open_only=True)] == ["102001"]
    store.set_tracking_note("id-102001", claim="JV1")
    assert store.shipment_reports([7])[0].tracking_claim == "JV1"
    store.set_tracking_note("id-102001", claim="", noted="JV1")
    assert store.shipment_reports(open_only=True) == []
    assert store.shipment_reports([8]) == []


def test_an_invoice_status_change_updates_the_record_and_reopens_its_meta(store: SqlStore) -> None:
    record = InvoiceRecord(
        invoice_id="inv-1",
        woo_id=7,
        number="103001",
        status="Open",
        currency="EUR",
        total_including_tax="121.00",
        total_excluding_tax="100.00",
        remaining="121.00",
        posted_on="2026-11-02",
    )
    store.observe_invoices([record])
    assert store.set_invoice_note_state("inv-1", "noted", expect=["pending", "claimed"])
    store.set_invoice_meta_status("inv-1", "Open")
    assert store.invoice_records(open_only=True) == []
    paid = InvoiceRecord(**{**record.__dict__, "status": "Paid", "remaining": "0", "modified": "x"})
    store.observe_invoices([paid])
    [again] = store.invoice_records(open_only=True)
    assert again.status == "Paid" and again.remaining == "0" and again.note_state == "noted"
    assert again.meta_status == "Open"


def test_the_completion_is_claimed_once_and_counted(store: SqlStore) -> None:
    for woo_id in (1, 2, 3):
        _pushed(store, woo_id, at=T0)
    assert store.save_fulfilment(Fulfilment(1, "partly"))
    assert store.save_fulfilment(
        Fulfilment(1, "shipped", "claimed", "completed"), expect_complete=[""]
    )
    assert not store.save_fulfilment(
        Fulfilment(1, "shipped", "claimed", "completed"), expect_complete=[""]
    ), "a second claim loses"
    assert store.save_fulfilment(
        Fulfilment(1, "shipped", "done", "completed"), expect_complete=["claimed"]
    )
    assert store.save_fulfilment(Fulfilment(2, "partly"))
    assert store.fulfilments([1, 2, 3]) == {
        1: Fulfilment(1, "shipped", "done", "completed"),
        2: Fulfilment(2, "partly"),
    }
    store.observe_invoices(
        [InvoiceRecord("inv-9", 1, "103009", "Open", "EUR", "1", "1", "1", "2026-11-02")]
    )
    assert store.fulfilment_counts() == {"shipped": 1, "partly_shipped": 1, "invoiced": 1}
    count, ids = store.unshipped_pushed_before(T0 + timedelta(days=1))
    assert (count, ids) == (1, [3])
    assert store.unshipped_pushed_before(T0) == (0, [])
