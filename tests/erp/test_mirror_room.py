"""The Business Central target needs the Dynamics mirror room of the store, not the whole store."""

from __future__ import annotations

from tests.erp.fixtures import fixture_orders, item_numbers_for
from tests.erp.sandbox_fixtures import make_client
from woo2d365.erp.businesscentral.target import ITEMS_CURSOR_KEY, BusinessCentralTarget
from woo2d365.sandbox.businesscentral import BusinessCentralEmulator
from woo2d365.settings import Settings
from woo2d365.shop.mapping import order_from_shop
from woo2d365.store import SqlStore
from woo2d365.store.mirror_sql import SqlMirror


def test_the_target_mirrors_items_and_customers_through_the_mirror_room_alone(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    mirror = SqlMirror(sqlite_store.dialect)  # the same database, no other room
    try:
        target = BusinessCentralTarget(bc_settings, mirror, make_client(bc_settings))
        refresh = target.refresh_items()
        order = order_from_shop(fixture_orders()["long_address"])
        document = target.prepare(order, item_numbers_for(order))
    finally:
        mirror.close()
    assert refresh.full and refresh.fetched == 16
    assert sqlite_store.item_count() == 16
    assert sqlite_store.get_value(ITEMS_CURSOR_KEY)
    cached = sqlite_store.get_customer(order.email)
    assert cached is not None and cached.number == document.payload["customerNumber"]
