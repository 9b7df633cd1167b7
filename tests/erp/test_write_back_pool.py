"""Write-backs to the shop run beside the pushes and stop for the run after a shop failure."""

from __future__ import annotations

import threading
import time

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

    def write_back(self, woo_id: int, sales_order_number: str, *, again: bool = True) -> None:
        with self._lock:
            self.calls += 1
            self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        super().write_back(woo_id, sales_order_number, again=again)


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
