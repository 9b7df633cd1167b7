"""What a process killed mid-run leaves behind stops blocking at once when it ran on this host.

A ``pushing`` order whose claim belongs to an ended process (``host:pid`` of this host, pid gone)
is looked up at once: found → pushed. Not found, it waits until its claim is older than
``dynamics.timeout_seconds``, because Dynamics may still finish a create the process sent just
before it died. The run lock of an ended process is taken over at once. A live process, another
host, or a pid that may still run are never judged ended.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.erp.fixtures import item_numbers_for
from tests.erp.pipeline_helpers import Clock, make_context, put_order, simple_order, state_of
from tests.erp.sandbox_fixtures import make_target, settle
from woo2d365.errors import LockHeld
from woo2d365.model import OrderState
from woo2d365.pipeline.push import PushResult, process_has_ended, push
from woo2d365.pipeline.sync import LOCK_NAME, run_lock
from woo2d365.sandbox.businesscentral import BusinessCentralEmulator
from woo2d365.sandbox.shop_data import product_by_sku
from woo2d365.settings import Settings
from woo2d365.shop.mapping import order_from_shop
from woo2d365.store import SqlStore

WIDGET = product_by_sku("WIDGET-001")
HOST = socket.gethostname()


@pytest.fixture
def ended_worker() -> str:
    """``host:pid`` of a process of this host that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=10)
    return f"{HOST}:{child.pid}"


@pytest.fixture
def live_worker() -> Iterator[str]:
    """``host:pid`` of a process of this host that is still running."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    yield f"{HOST}:{child.pid}"
    child.kill()
    child.wait(timeout=10)


def _pushing(store: SqlStore, woo_id: int, worker: str, clock: Clock) -> dict:
    raw = simple_order(woo_id, [(WIDGET, 1)])
    put_order(store, raw)
    assert store.set_state(woo_id, OrderState.READY)
    assert store.claim(woo_id, worker, clock(), token=f"t{woo_id}", key=f"WC-{woo_id}")
    return raw


def _creates(bc: BusinessCentralEmulator) -> int:
    settle(bc)
    return sum(1 for r in bc.requests if r.method == "POST" and "salesOrders" in r.path)


def test_only_an_ended_process_of_this_host_counts_as_ended(
    ended_worker: str, live_worker: str
) -> None:
    assert process_has_ended(ended_worker)
    assert not process_has_ended(live_worker)
    assert not process_has_ended(f"{HOST}:{os.getpid()}")  # this very process
    assert not process_has_ended("another-host:" + ended_worker.rpartition(":")[2])
    assert not process_has_ended("test:1") and not process_has_ended("garbage")


def test_an_order_claimed_by_an_ended_process_and_created_is_recorded_at_once(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore, ended_worker: str
) -> None:
    clock = Clock()
    raw = _pushing(sqlite_store, 9101, ended_worker, clock)
    order = order_from_shop(raw)
    target = make_target(bc_settings, sqlite_store)
    created = target.create(target.prepare(order, item_numbers_for(order)))  # it got through
    bc.reset_requests()
    result = push(
        make_context(bc_settings, sqlite_store, clock), make_target(bc_settings, sqlite_store)
    )
    assert [p.d365_number for p in result.resolved] == [created.number]
    record = sqlite_store.get_order(9101)
    assert record is not None and record.state is OrderState.PUSHED
    assert record.d365_number == created.number and _creates(bc) == 0


def test_an_order_sent_by_an_ended_process_and_not_found_waits_for_the_request_limit(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore, ended_worker: str
) -> None:
    clock = Clock()
    make_target(bc_settings, sqlite_store).refresh_items()  # what validate did before the claim
    _pushing(sqlite_store, 9102, ended_worker, clock)
    assert sqlite_store.confirm_claim(9102, "t9102", clock(), sent_at=clock())  # its create left

    def run() -> PushResult:
        return push(
            make_context(bc_settings, sqlite_store, clock), make_target(bc_settings, sqlite_store)
        )

    first = run()
    assert 9102 in first.in_doubt and first.requeued == []
    assert "may still be processed" in first.in_doubt[9102]
    assert state_of(sqlite_store, 9102) is OrderState.PUSHING and _creates(bc) == 0
    record = sqlite_store.get_order(9102)
    assert record is not None and record.claimed_by == ended_worker  # not taken over

    # Its claim expires, but Dynamics may still be working on the create: not sent yet.
    clock.advance(bc_settings.dynamics.timeout_seconds + 1)
    second = run()
    assert second.requeued == [] and 9102 in second.in_doubt and _creates(bc) == 0

    clock.advance(bc_settings.dynamics.request_limit_seconds)
    third = run()
    assert third.requeued == [9102] and [p.woo_id for p in third.pushed] == [9102]
    assert _creates(bc) == 1


def test_an_order_claimed_by_an_ended_process_that_never_sent_it_is_sent_at_once(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore, ended_worker: str
) -> None:
    clock = Clock()
    make_target(bc_settings, sqlite_store).refresh_items()
    _pushing(sqlite_store, 9104, ended_worker, clock)
    result = push(
        make_context(bc_settings, sqlite_store, clock), make_target(bc_settings, sqlite_store)
    )
    assert result.requeued == [9104] and [p.woo_id for p in result.pushed] == [9104]
    assert _creates(bc) == 1


def test_an_order_claimed_by_a_live_process_is_left_to_it(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore, live_worker: str
) -> None:
    clock = Clock()
    _pushing(sqlite_store, 9103, live_worker, clock)
    bc.reset_requests()
    result = push(
        make_context(bc_settings, sqlite_store, clock), make_target(bc_settings, sqlite_store)
    )
    assert result.in_doubt == {} and result.resolved == []
    assert state_of(sqlite_store, 9103) is OrderState.PUSHING
    settle(bc)
    assert not [r for r in bc.requests if "salesOrders" in r.path]  # not even looked up


def test_the_run_lock_of_an_ended_process_is_taken_over_at_once(
    bc_settings: Settings, sqlite_store: SqlStore, ended_worker: str
) -> None:
    clock = Clock()
    assert sqlite_store.acquire_lock(LOCK_NAME, ended_worker, clock(), 120)
    ctx = make_context(bc_settings, sqlite_store, clock)
    with run_lock(ctx):
        assert sqlite_store.lock_holder(LOCK_NAME) == ctx.worker
        other = make_context(bc_settings, sqlite_store, clock)
        other.worker = "other:2"
        with pytest.raises(LockHeld), run_lock(other):
            pass  # the new holder is alive (this process): it blocks as before
    assert sqlite_store.acquire_lock(LOCK_NAME, "next:3", clock(), 120)  # released at the end


def test_the_run_lock_of_a_live_process_or_another_host_blocks_until_its_lease_ends(
    bc_settings: Settings, sqlite_store: SqlStore, live_worker: str
) -> None:
    clock = Clock()
    for holder in (live_worker, "another-host:1"):
        assert sqlite_store.acquire_lock(LOCK_NAME, holder, clock(), 120)
        with pytest.raises(LockHeld), run_lock(make_context(bc_settings, sqlite_store, clock)):
            pass
        assert sqlite_store.lock_holder(LOCK_NAME) == holder
        assert sqlite_store.get_value("sync.lock.holder") is None, "a refused run writes nothing"
        sqlite_store.release_lock(LOCK_NAME, holder)
