"""The scratch copy ``sync --dry-run`` runs over: what the steps read; the store is only read."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.store.test_store import pulled
from woo2d365.model import OrderState
from woo2d365.store import SqlStore
from woo2d365.store.base import CachedCustomer, CachedItem
from woo2d365.store.scratch import PAGE

T0 = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)


def test_the_copy_holds_what_the_steps_read_and_changes_in_it_stay_there(store: SqlStore) -> None:
    orders = PAGE * 2 + 7  # more than one page of each paged table
    with store.batch():
        for woo_id in range(1, orders + 1):
            store.save_pulled_order(pulled(woo_id))
    store.mark_pushed(1, d365_id="g-1", d365_number="S-1", external_number="WC-1", now=T0)
    store.set_state(2, OrderState.HELD, reason="SKU X is not mapped")
    store.map_sku("X", "1000", note="", by="test", now=T0)
    store.upsert_items([CachedItem(f"{n}", f"id-{n}", "Item", False) for n in range(PAGE + 1)])
    store.put_customer(CachedCustomer("a@example.com", "C1", "id-c1"))
    store.set_value("pull.cursor", "2026-11-01T12:00:00Z")

    with store.scratch_copy() as scratch:
        assert scratch.count_in_state(OrderState.NEW) == orders - 2
        held = scratch.get_order(2, with_raw=True)
        assert held is not None and held.reason == "SKU X is not mapped"
        assert held.raw == pulled(2).raw
        done = scratch.get_order(1, with_raw=True)
        assert done is not None and done.state is OrderState.PUSHED
        assert done.d365_number == "S-1" and done.raw == pulled(1).raw
        assert scratch.sku_mappings()[0].item_number == "1000"
        assert scratch.item_count() == PAGE + 1
        assert scratch.get_customer("a@example.com") is not None
        assert scratch.get_value("pull.cursor") == "2026-11-01T12:00:00Z"
        scratch.set_state(3, OrderState.READY)
        scratch.set_value("pull.cursor", "later")

    record = store.get_order(3)
    assert record is not None and record.state is OrderState.NEW, "the store was only read"
    assert store.get_value("pull.cursor") == "2026-11-01T12:00:00Z"
