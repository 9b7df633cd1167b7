"""validate: ready or held with reasons naming each line and SKU; held orders come back by
themselves once the SKU is mapped. Against the Business Central emulator and a real store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest

from tests.erp import sandbox_fixtures as fx
from tests.erp.fixtures import fixture_orders
from tests.erp.pipeline_helpers import make_context, put_order, simple_order, state_of
from tests.erp.sandbox_fixtures import make_settings, make_target, settle
from woo2d365.errors import DynamicsUnreachable
from woo2d365.model import OrderState
from woo2d365.pipeline.validate import ValidateResult, validate
from woo2d365.sandbox.businesscentral import BusinessCentralEmulator
from woo2d365.sandbox.shop_data import (
    NO_SKU_PRODUCT,
    deleted_product,
    product_by_sku,
    unmapped_product,
)
from woo2d365.settings import Settings
from woo2d365.store import SqlStore

WIDGET = product_by_sku("WIDGET-001")

# the emulator fixtures, shared with tests/erp
bc = fx.bc
bc_settings = fx.bc_settings
sandbox_ca = fx.sandbox_ca
sqlite_store = fx.sqlite_store


def _validate(settings: Settings, store: SqlStore, **kwargs: Any) -> ValidateResult:
    return validate(make_context(settings, store), make_target(settings, store), **kwargs)


def test_orders_whose_lines_all_resolve_become_ready(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    ids = [put_order(sqlite_store, raw) for raw in fixture_orders().values()]
    result = _validate(bc_settings, sqlite_store)
    assert sorted(result.ready) == sorted(ids)
    assert result.held == {}
    assert all(state_of(sqlite_store, woo_id) is OrderState.READY for woo_id in ids)
    assert not result.needs_attention


def test_an_unmapped_sku_holds_the_order_naming_the_line_and_the_fix(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    new = unmapped_product("WIDGET-9", name="Blue Widget")
    woo_id = put_order(sqlite_store, simple_order(7001, [(WIDGET, 1), (new, 2)]))
    result = _validate(bc_settings, sqlite_store)
    assert result.held == {
        woo_id: 'line 2 "Blue Widget": SKU WIDGET-9 is not mapped (map-sku add WIDGET-9 ITEM)'
    }
    record = sqlite_store.get_order(woo_id)
    assert record is not None and record.state is OrderState.HELD
    assert record.reason == result.held[woo_id]
    assert sqlite_store.unmapped_skus() == [("WIDGET-9", 1)]
    assert [e.level for e in sqlite_store.events(woo_id)] == ["warning"]


def test_a_held_order_is_released_when_its_sku_is_mapped(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    new = unmapped_product("WIDGET-9", name="Blue Widget")
    woo_id = put_order(sqlite_store, simple_order(7002, [(new, 1)]))
    _validate(bc_settings, sqlite_store)
    again = _validate(bc_settings, sqlite_store)  # still held: no new event, not "newly" held
    assert woo_id in again.held and again.newly_held == []
    sqlite_store.map_sku(
        "WIDGET-9", "widget-001", "", "test", make_context(bc_settings, sqlite_store).clock()
    )
    result = _validate(bc_settings, sqlite_store)
    assert result.released == [woo_id] and result.ready == [woo_id]
    assert state_of(sqlite_store, woo_id) is OrderState.READY
    assert sqlite_store.unmapped_skus() == []


@pytest.mark.parametrize(
    ("product", "reason"),
    [
        (NO_SKU_PRODUCT, 'line 1 "Handgeschreven kaartje": has no SKU'),
        (
            deleted_product("Mok Koningsdag", Decimal("12.50")),
            'line 1 "Mok Koningsdag": has no SKU',
        ),
    ],
)
def test_a_line_without_sku_holds_the_order(
    bc: BusinessCentralEmulator,
    bc_settings: Settings,
    sqlite_store: SqlStore,
    product: object,
    reason: str,
) -> None:
    woo_id = put_order(sqlite_store, simple_order(7003, [(product, 1)]))  # type: ignore[list-item]
    result = _validate(bc_settings, sqlite_store)
    assert result.held[woo_id].startswith(reason)


def test_a_blocked_item_holds_the_order(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    bc.set_item("WIDGET-001", blocked=True)
    woo_id = put_order(sqlite_store, simple_order(7004, [(WIDGET, 1)]))
    result = _validate(bc_settings, sqlite_store)
    assert result.held[woo_id] == 'line 1 "Blue Widget": item WIDGET-001 is blocked in Dynamics'


def test_a_mapping_to_an_item_dynamics_does_not_have_holds_the_order(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    new = unmapped_product("GADGET-1", name="Gadget")
    sqlite_store.map_sku(
        "GADGET-1", "NO-SUCH-ITEM", "", "test", make_context(bc_settings, sqlite_store).clock()
    )
    woo_id = put_order(sqlite_store, simple_order(7005, [(new, 1)]))
    result = _validate(bc_settings, sqlite_store)
    assert result.held[woo_id] == (
        'line 1 "Gadget": SKU GADGET-1 is mapped to item NO-SUCH-ITEM, which does not exist in '
        "Dynamics"
    )


def test_shipping_and_fees_without_an_account_hold_the_order(
    bc: BusinessCentralEmulator, sqlite_store: SqlStore
) -> None:
    settings = make_settings(bc, orders={"shipping_account": "", "fee_account": ""})
    raw = simple_order(7006, [(WIDGET, 1)], fees=[("Cadeauverpakking", Decimal("2.50"))])
    woo_id = put_order(sqlite_store, raw)
    reason = _validate(settings, sqlite_store).held[woo_id]
    assert "shipping needs orders.shipping_account" in reason
    assert 'line 3 "Cadeauverpakking": fee needs orders.fee_account' in reason


def test_sku_match_map_ignores_item_numbers_and_direct_ignores_the_map(
    bc: BusinessCentralEmulator, sqlite_store: SqlStore
) -> None:
    woo_id = put_order(sqlite_store, simple_order(7007, [(WIDGET, 1)]))
    map_only = make_settings(bc, orders={"sku_match": "map"})
    assert "is not mapped" in _validate(map_only, sqlite_store).held[woo_id]
    new = unmapped_product("WIDGET-9")
    other = put_order(sqlite_store, simple_order(7008, [(new, 1)]))
    sqlite_store.map_sku(
        "WIDGET-9", "WIDGET-001", "", "t", make_context(map_only, sqlite_store).clock()
    )
    direct = make_settings(bc, orders={"sku_match": "direct"})
    result = _validate(direct, sqlite_store)
    assert result.held[other].endswith("SKU WIDGET-9 is not an item number in Dynamics")
    assert woo_id in result.ready


def test_an_unknown_country_holds_the_order_naming_the_code(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    billing = {**simple_order(1, [(WIDGET, 1)])["billing"], "country": "IE"}
    woo_id = put_order(sqlite_store, simple_order(7009, [(WIDGET, 1)], billing=billing))
    assert "country code 'IE'" in _validate(bc_settings, sqlite_store).held[woo_id]


def test_orders_in_a_status_that_is_not_taken_stay_new(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    woo_id = put_order(sqlite_store, simple_order(7010, [(WIDGET, 1)], status="pending"))
    result = _validate(bc_settings, sqlite_store)
    assert result.not_taken == [woo_id]
    assert state_of(sqlite_store, woo_id) is OrderState.NEW


def test_validation_costs_no_request_per_order(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    for woo_id in range(7100, 7140):
        put_order(sqlite_store, simple_order(woo_id, [(WIDGET, 1)]))
    result = _validate(bc_settings, sqlite_store)
    assert len(result.ready) == 40
    settle(bc)
    # companies, items (full refresh), countries: per run, not per order
    assert len(bc.requests) == 3


def test_an_unreachable_dynamics_uses_the_existing_item_mirror(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    _validate(bc_settings, sqlite_store)  # fills the mirror
    woo_id = put_order(sqlite_store, simple_order(7011, [(WIDGET, 1)]))
    bc.stop()
    result = _validate(bc_settings, sqlite_store)
    assert result.ready == [woo_id]
    assert any("not refreshed" in w for w in result.warnings)


def test_an_unreachable_dynamics_without_a_mirror_stops_validation(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    woo_id = put_order(sqlite_store, simple_order(7012, [(WIDGET, 1)]))
    bc.stop()
    with pytest.raises(DynamicsUnreachable):
        _validate(bc_settings, sqlite_store)
    assert state_of(sqlite_store, woo_id) is OrderState.NEW


def test_only_the_named_orders_are_validated(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    first = put_order(sqlite_store, simple_order(7013, [(WIDGET, 1)]))
    second = put_order(sqlite_store, simple_order(7014, [(WIDGET, 1)]))
    assert _validate(bc_settings, sqlite_store, order_ids=[second]).ready == [second]
    assert state_of(sqlite_store, first) is OrderState.NEW


def test_validate_asks_dynamics_nothing_while_it_holds_a_store_transaction(
    bc: BusinessCentralEmulator,
    bc_settings: Settings,
    sqlite_store: SqlStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for raw in fixture_orders().values():
        put_order(sqlite_store, raw)
    batches: list[tuple[float, float]] = []
    real_batch = sqlite_store.batch

    @contextmanager
    def timed_batch() -> Iterator[None]:
        started = time.time()
        with real_batch():
            yield
        batches.append((started, time.time()))

    monkeypatch.setattr(sqlite_store, "batch", timed_batch)
    bc.reset_requests()
    _validate(bc_settings, sqlite_store)  # a fresh target: country codes not read yet
    settle(bc)
    assert batches and any("countriesRegions" in r.path for r in bc.requests)
    inside = [r.path for r in bc.requests if any(a <= r.at <= b for a, b in batches)]
    assert inside == [], "a store transaction (SQLite: the write lock) waited for Dynamics"
