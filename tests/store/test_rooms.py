"""The store in rooms: StateStore is the sum of its rooms, each room's SQL stands on its own."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from typing import Protocol

import pytest

from woo2d365.store import SqlStore
from woo2d365.store.base import StateStore
from woo2d365.store.mirror import CachedCustomer, CachedItem
from woo2d365.store.mirror_sql import SqlMirror
from woo2d365.store.shipments import InvoiceRecord, ShipmentReport
from woo2d365.store.shipments_sql import _INVOICES, _SHIPMENTS

ROOMS = tuple(base for base in StateStore.__bases__ if base is not Protocol)
LIFECYCLE = {"migrate", "schema_version", "close", "batch", "reopen", "scratch_copy"}


def _methods(protocol: type) -> set[str]:
    return {
        name
        for klass in protocol.__mro__
        if klass.__module__.startswith("woo2d365.store")
        for name, value in vars(klass).items()
        if callable(value) and not name.startswith("_")
    }


def test_the_state_store_is_its_rooms_and_the_lifecycle_nothing_else() -> None:
    assert {room.__name__ for room in ROOMS} == {
        "OrderStore",
        "SkuMap",
        "RunStore",
        "DynamicsMirror",
        "AlertStore",
        "FulfilmentStore",
        "RefundStore",
        "StockStore",
    }
    in_rooms = set().union(*(_methods(room) for room in ROOMS))
    assert _methods(StateStore) == in_rooms | LIFECYCLE


@pytest.mark.parametrize("room", ROOMS, ids=lambda room: room.__name__)
def test_the_sql_store_implements_every_method_of_each_room(room: type) -> None:
    missing = {name for name in _methods(room) if not callable(getattr(SqlStore, name, None))}
    assert not missing


def test_no_method_is_in_two_rooms() -> None:
    seen: dict[str, str] = {}
    for room in ROOMS:
        own = {n for n, v in vars(room).items() if callable(v) and not n.startswith("_")}
        for name in own:
            assert name not in seen, f"{name} in {seen[name]} and {room.__name__}"
            seen[name] = room.__name__


def test_the_mirror_room_works_alone_on_the_same_database(store: SqlStore) -> None:
    mirror = SqlMirror(store.dialect)
    try:
        mirror.upsert_items([CachedItem("WIDGET-001", "id-1", "Widget", blocked=False)])
        mirror.put_customer(CachedCustomer("ann@example.com", "C0001", "cust-1"))
        mirror.set_value("bc.items.cursor", "2026-01-01T00:00:00Z")
    finally:
        mirror.close()
    assert store.items_by_number(["WIDGET-001"])["WIDGET-001"].display_name == "Widget"
    assert store.get_customer("ANN@example.com") == CachedCustomer(
        "ann@example.com", "C0001", "cust-1"
    )
    assert store.get_value("bc.items.cursor") == "2026-01-01T00:00:00Z"
    assert store.count_customers_before(datetime.now(UTC).replace(year=2100)) == 1


@pytest.mark.parametrize(
    ("ledger", "record"), [(_SHIPMENTS, ShipmentReport), (_INVOICES, InvoiceRecord)]
)
def test_each_ledger_lists_its_columns_in_the_order_of_its_record(
    ledger: object, record: type
) -> None:
    columns = [c.removesuffix("_json") for c in ledger.columns]  # type: ignore[attr-defined]
    assert columns == [f.name for f in fields(record)]
