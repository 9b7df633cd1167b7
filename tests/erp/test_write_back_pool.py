"""Write-backs to the shop run beside the pushes and stop for the run after a shop failure."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from tests.erp.pipeline_helpers import Clock, RecordingShop, make_context, put_order, simple_order
from tests.erp.sandbox_fixtures import make_target
from woo2d365.pipeline.push import push
from woo2d365.pipeline.validate import validate
from woo2d365.sandbox.shop_data import product_by_sku
from woo2d365.settings import Settings
from woo2d365.store import SqlStore

WIDGET = product_by_sku("WIDGET-001")


class SlowShop(RecordingShop):
    """A shop whose write-backs take a while and that records which thread made them."""

    def __init__(self, delay: float, down: bool = False) -> None:
        super().__init__(down=down)
        self.delay = delay
        self.threads: set[str] = set()
        self.calls = 0
        self._lock = threading.Lock()

    def _call(self) -> None:
        with self._lock:
            self.calls += 1
            self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)

    def write_back_note(self, woo_id: int, sales_order_number: str, *, again: bool) -> None:
        self._call()
        super().write_back_note(woo_id, sales_order_number, again=again)

    def set_sales_order_numbers(self, numbers: Mapping[int, str]) -> dict[int, str]:
        self._call()
        return super().set_sales_order_numbers(numbers)


def _ready(settings: Settings, store: SqlStore, count: int, clock: Clock) -> list[int]:
    ids = [put_order(store, simple_order(9500 + n, [(WIDGET, 1)])) for n in range(count)]
    validate(make_context(settings, store, clock), make_target(settings, store))
    return ids


def test_write_backs_do_not_hold_up_the_pushes(
    bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    clock = Clock()
    ids = _ready(bc_settings, sqlite_store, 10, clock)
    shop = SlowShop(delay=0.1)
    result = push(
        make_context(bc_settings, sqlite_store, clock),
        make_target(bc_settings, sqlite_store),
        shop_writer=shop,
    )
    assert sorted(result.written_back) == sorted(ids)
    assert shop.threads and all(name.startswith("write-back") for name in shop.threads)
    assert sqlite_store.write_back_pending_ids() == []
    assert sorted(woo_id for woo_id, _ in shop.notes) == sorted(ids)  # one note each


def test_after_a_failed_write_back_the_rest_wait_for_the_next_run(
    bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    clock = Clock()
    ids = _ready(bc_settings, sqlite_store, 12, clock)
    down = SlowShop(delay=0.02, down=True)
    first = push(
        make_context(bc_settings, sqlite_store, clock),
        make_target(bc_settings, sqlite_store),
        shop_writer=down,
    )
    assert len(first.pushed) == 12 and first.written_back == []
    assert 1 <= down.calls <= bc_settings.dynamics.max_concurrency  # not one try per order
    assert sorted(sqlite_store.write_back_pending_ids()) == sorted(ids)

    up = SlowShop(delay=0.0)
    second = push(
        make_context(bc_settings, sqlite_store, clock),
        make_target(bc_settings, sqlite_store),
        shop_writer=up,
    )
    assert sorted(second.written_back) == sorted(ids)
    assert sqlite_store.write_back_pending_ids() == []


class RefusingShop(RecordingShop):
    """A shop whose batch refuses the meta of some orders (as a 200 with per-item errors)."""

    def __init__(self, refuse: set[int]) -> None:
        super().__init__()
        self.refuse = refuse
        self.batches: list[list[int]] = []

    def set_sales_order_numbers(self, numbers: Mapping[int, str]) -> dict[int, str]:
        self.batches.append(list(numbers))
        accepted = {k: v for k, v in numbers.items() if k not in self.refuse}
        super().set_sales_order_numbers(accepted)
        return dict.fromkeys(set(numbers) & self.refuse, "Invalid ID.")


def test_meta_goes_100_orders_a_request_and_a_refused_one_is_retried_next_run(
    bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    clock = Clock()
    ids = _ready(bc_settings, sqlite_store, 130, clock)
    shop = RefusingShop(refuse={ids[7]})
    ctx = make_context(bc_settings, sqlite_store, clock)
    first = push(ctx, make_target(bc_settings, sqlite_store), shop_writer=shop)
    assert sorted(len(batch) for batch in shop.batches) == [30, 100]
    assert first.write_back_failed == {ids[7]: "Invalid ID."}
    assert sorted(first.written_back) == sorted(set(ids) - {ids[7]})
    assert sqlite_store.write_back_pending_ids() == [ids[7]]
    assert "write-back to the shop failed (Invalid ID.)" in sqlite_store.events(ids[7])[-1].message

    shop.refuse.clear()
    second = push(ctx, make_target(bc_settings, sqlite_store), shop_writer=shop)
    assert second.written_back == [ids[7]]
    assert sqlite_store.write_back_pending_ids() == []
    assert len([n for n in shop.notes if n[0] == ids[7]]) == 1  # the note is not added twice
    assert sqlite_store.events(ids[7])[-1].message == "write-back to the shop done", (
        "the success that ends the failure is recorded"
    )
    assert not any("done" in e.message for e in sqlite_store.events(ids[8]) if e.step == "push"), (
        "a write-back that never failed needs no such event"
    )
