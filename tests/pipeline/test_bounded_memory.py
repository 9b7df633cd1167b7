"""A backlog of any size in bounded memory: windows read from the store, results that keep the
first entries of a kind and count every one, and summaries that say how many more there are."""

from __future__ import annotations

import pytest

from tests.erp import sandbox_fixtures as fx
from tests.erp.pipeline_helpers import Clock, RecordingShop, make_context, put_order, simple_order
from tests.erp.sandbox_fixtures import make_target, settle
from woo2d365.erp.businesscentral import target as bc_target
from woo2d365.model import OrderState
from woo2d365.pipeline import kept, push, validate
from woo2d365.pipeline.context import RunContext
from woo2d365.pipeline.kept import KeptDict, KeptList
from woo2d365.pipeline.push import PushResult
from woo2d365.pipeline.sync import SyncResult
from woo2d365.pipeline.validate import ValidateResult
from woo2d365.runs import sync_summary
from woo2d365.sandbox.businesscentral import BusinessCentralEmulator
from woo2d365.sandbox.shop_data import product_by_sku
from woo2d365.settings import Settings
from woo2d365.store.base import StateStore

WIDGET = product_by_sku("WIDGET-001")

bc = fx.bc
bc_settings = fx.bc_settings
sandbox_ca = fx.sandbox_ca
sqlite_store = fx.sqlite_store


def test_a_kept_list_and_dict_keep_the_first_entries_and_count_them_all() -> None:
    names = KeptList[int](range(7), keep=3)
    assert list(names) == [0, 1, 2] and len(names) == 7 and names.left_out == 4
    reasons = KeptDict[int, str](keep=2)
    for woo_id in (5, 6, 7, 8):
        reasons[woo_id] = f"held {woo_id}"
    reasons[5] = "held again"  # a kept key takes the new value and is not counted twice
    assert dict(reasons) == {5: "held again", 6: "held 6"}
    assert len(reasons) == 4 and reasons.left_out == 2 and bool(reasons)
    assert not KeptDict[int, str]() and not KeptList[int]()


def test_the_cron_summary_counts_every_held_and_failed_order_when_only_the_first_are_kept() -> None:
    validated = ValidateResult(held=KeptDict(keep=3))
    for woo_id in range(100, 109):
        validated.held[woo_id] = "SKU X is not mapped"
    pushed = PushResult(failed=KeptDict(keep=2))
    for woo_id in range(200, 212):
        pushed.failed[woo_id] = "refused"
    lines = sync_summary(SyncResult(run_id=1, validate=validated, push=pushed)).splitlines()
    assert "9 ready" not in lines[0] and "0 ready, 9 held;" in lines[0]
    assert "0 pushed, 12 failed;" in lines[0]
    held = lines.index("held: 9 orders (woo2d365 status --state held)")
    assert lines[held + 1 : held + 5] == [
        "  order 100: SKU X is not mapped",
        "  order 101: SKU X is not mapped",
        "  order 102: SKU X is not mapped",
        "  and 6 more",
    ]
    failed = lines.index("failed: 12 orders (woo2d365 status --state failed)")
    assert lines[failed + 1 :] == ["  order 200: refused", "  order 201: refused", "  and 10 more"]


def test_a_backlog_larger_than_the_windows_is_validated_and_pushed_once_in_bounded_memory(
    bc: BusinessCentralEmulator,
    bc_settings: Settings,
    sqlite_store: StateStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(validate, "CHUNK", 4)
    monkeypatch.setattr(push, "WINDOW", 7)
    monkeypatch.setattr(push, "CHUNK", 3)
    monkeypatch.setattr(kept, "KEEP", 5)
    monkeypatch.setattr(bc_target, "RECENT_CUSTOMERS", 4)
    ids = [put_order(sqlite_store, simple_order(9500 + i, [(WIDGET, 1)])) for i in range(23)]
    clock = Clock()
    ctx = make_context(bc_settings, sqlite_store, clock)
    erp = make_target(bc_settings, sqlite_store)
    validated = validate.validate(ctx, erp)
    assert len(validated.ready) == 23 and list(validated.ready) == ids[:5]
    shop = RecordingShop()
    bc.reset_requests()
    done: list[int] = []
    context = RunContext(
        settings=bc_settings,
        store=sqlite_store,
        clock=clock,
        worker="test:1",
        progress=lambda _step, count, _total: done.append(count),
    )
    result = push.push(context, erp, shop_writer=shop)
    assert len(result.pushed) == 23 and len(list(result.pushed)) == 5
    assert len(result.written_back) == 23 and len(shop.notes) == 23
    assert max(done) == 23
    assert all(sqlite_store.get_order(i).state is OrderState.PUSHED for i in ids)  # type: ignore[union-attr]
    settle(bc)
    numbers = [o["externalDocumentNumber"] for o in bc.sales_orders()]
    assert sorted(numbers) == sorted(f"WC-{i}" for i in ids)  # each once
    emails = [c["email"] for c in bc.customers()]
    assert len(emails) == len(set(emails)) == 23  # each buyer's customer created once
    assert erp._customer_locks == {}, "a customer's lock is dropped once nobody holds it"
    assert len(erp._prefetched._values) <= 4 and len(erp._absent._values) <= 4
