"""push: one sales order per shop order, exactly once, against the Business Central emulator.

The dropped-after-commit case runs on both store backends (SQLite and MariaDB/MySQL).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest

from tests.erp import sandbox_fixtures as fx
from tests.erp.fixtures import fixture_orders
from tests.erp.pipeline_helpers import (
    Clock,
    RecordingShop,
    make_context,
    put_order,
    simple_order,
    state_of,
)
from tests.erp.sandbox_fixtures import make_settings, make_target, settle
from woo2d365.errors import (
    DynamicsAuthenticationError,
    DynamicsError,
    DynamicsUnreachable,
    ExitCode,
)
from woo2d365.model import OrderState
from woo2d365.pipeline.context import RunContext
from woo2d365.pipeline.push import WORKERS_PER_SLOT, PushResult, push
from woo2d365.pipeline.validate import validate
from woo2d365.sandbox.businesscentral import BusinessCentralEmulator
from woo2d365.sandbox.shop_data import product_by_sku, unmapped_product
from woo2d365.settings import Settings
from woo2d365.shop.client import SALES_ORDER_META_KEY
from woo2d365.store.base import StateStore

WIDGET = product_by_sku("WIDGET-001")

# the emulator fixtures, shared with tests/erp
bc = fx.bc
bc_settings = fx.bc_settings
sandbox_ca = fx.sandbox_ca
sqlite_store = fx.sqlite_store


def _ready(settings: Settings, store: StateStore, raws: list[dict], clock: Clock) -> list[int]:
    ids = [put_order(store, raw) for raw in raws]
    result = validate(make_context(settings, store, clock), make_target(settings, store))
    assert sorted(result.ready) == sorted(ids), result.held
    return ids


def _push(settings: Settings, store: StateStore, clock: Clock, **kwargs: object) -> PushResult:
    return push(make_context(settings, store, clock), make_target(settings, store), **kwargs)


def _posts(bc: BusinessCentralEmulator) -> list[int]:
    settle(bc)
    return [r.status for r in bc.requests if r.method == "POST" and "salesOrders" in r.path]


def _by_external(bc: BusinessCentralEmulator) -> dict[str, int]:
    counts: dict[str, int] = {}
    for order in bc.sales_orders():
        counts[order["externalDocumentNumber"]] = counts.get(order["externalDocumentNumber"], 0) + 1
    return counts


def test_ready_orders_become_sales_orders_and_are_recorded(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: StateStore
) -> None:
    clock = Clock()
    ids = _ready(bc_settings, sqlite_store, list(fixture_orders().values()), clock)
    bc.reset_requests()
    result = _push(bc_settings, sqlite_store, clock)
    assert sorted(p.woo_id for p in result.pushed) == sorted(ids)
    assert result.exit_code is ExitCode.OK
    assert len(_posts(bc)) == len(ids)  # one create per order
    for pushed in result.pushed:
        record = sqlite_store.get_order(pushed.woo_id)
        assert record is not None and record.state is OrderState.PUSHED
        assert record.d365_number == pushed.d365_number and record.d365_id == pushed.d365_id
        assert record.external_number == f"WC-{pushed.woo_id}"
    assert set(_by_external(bc).values()) == {1}
    bc.reset_requests()
    again = _push(bc_settings, sqlite_store, clock)
    assert again.pushed == [] and _posts(bc) == []


def test_push_tells_its_progress_order_by_order_up_to_the_total(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: StateStore
) -> None:
    clock = Clock()
    ids = _ready(bc_settings, sqlite_store, list(fixture_orders().values()), clock)
    seen: list[tuple[str, int, int | None]] = []
    lock = threading.Lock()

    def progress(step: str, done: int, total: int | None) -> None:
        with lock:
            seen.append((step, done, total))

    ctx = make_context(bc_settings, sqlite_store, clock)
    ctx.progress = progress
    push(ctx, make_target(bc_settings, sqlite_store))
    assert {step for step, _, _ in seen} == {"push"}
    assert {total for _, _, total in seen} == {len(ids)}
    assert max(done for _, done, _ in seen) == len(ids)
    assert len(seen) >= len(ids), "told as each order is done, not only at the end"


def test_a_refused_order_fails_with_dynamics_message(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: StateStore
) -> None:
    clock = Clock()
    [woo_id] = _ready(bc_settings, sqlite_store, [simple_order(8001, [(WIDGET, 1)])], clock)
    bc.set_item("WIDGET-001", blocked=True)  # after validation: Dynamics refuses the line
    result = _push(bc_settings, sqlite_store, clock)
    record = sqlite_store.get_order(woo_id)
    assert record is not None and record.state is OrderState.FAILED
    assert "Blocked must be equal to 'No'" in (record.reason or "")
    assert result.failed == {woo_id: record.reason}
    assert result.exit_code is ExitCode.ATTENTION
    assert _posts(bc) == [400]


def test_throttling_and_server_errors_are_retried_without_duplicates(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: StateStore
) -> None:
    clock = Clock()
    _ready(bc_settings, sqlite_store, [simple_order(8002, [(WIDGET, 1)])], clock)
    bc.fail_next(
        status=429,
        code="Application_TooManyRequests",
        retry_after=1,
        method="POST",
        path_contains="salesOrders",
    )
    bc.fail_next(
        status=500, code="Internal_ServerError", method="POST", path_contains="salesOrders"
    )
    result = _push(bc_settings, sqlite_store, clock)
    assert [p.woo_id for p in result.pushed] == [8002]
    assert _posts(bc) == [429, 500, 201]
    assert _by_external(bc) == {"WC-8002": 1}


def test_transient_failures_put_the_order_back_then_fail_it_after_max_attempts(
    bc: BusinessCentralEmulator, sqlite_store: StateStore
) -> None:
    settings = make_settings(bc, orders={"max_attempts": 2})
    clock = Clock()
    [woo_id] = _ready(settings, sqlite_store, [simple_order(8003, [(WIDGET, 1)])], clock)
    bc.fail_next(
        100,
        status=503,
        code="Internal_ServiceUnavailable",
        method="POST",
        path_contains="salesOrders",
    )
    first = _push(settings, sqlite_store, clock)
    assert woo_id in first.retry_later
    assert first.exit_code is ExitCode.UNREACHABLE, "Dynamics did not process it: run again later"
    record = sqlite_store.get_order(woo_id)
    assert record is not None and record.state is OrderState.READY and record.attempts == 1
    second = _push(settings, sqlite_store, clock)
    record = sqlite_store.get_order(woo_id)
    assert record is not None and record.state is OrderState.FAILED
    assert (record.reason or "").startswith("gave up after 2 attempts")
    assert second.failed and bc.sales_orders() == []
    assert second.exit_code is ExitCode.ATTENTION, "failed: a person looks at it"


@pytest.mark.parametrize("fault", ["drop_after_commit", "drop_before_processing"])
def test_a_create_without_answer_is_settled_by_lookup_and_exists_exactly_once(
    bc: BusinessCentralEmulator, store: StateStore, fault: str
) -> None:
    settings = make_settings(bc)
    clock = Clock()
    [woo_id] = _ready(settings, store, [simple_order(8004, [(WIDGET, 2)])], clock)
    if fault == "drop_after_commit":
        bc.drop_after_commit_next(path_contains="salesOrders")
    else:
        bc.drop_next(method="POST", path_contains="salesOrders")
    first = _push(settings, store, clock)
    assert woo_id in first.in_doubt
    assert state_of(store, woo_id) is OrderState.PUSHING

    # Too early: the claim is younger than dynamics.timeout_seconds, nothing is touched.
    clock.advance(1)
    early = _push(settings, store, clock)
    assert early.resolved == [] and early.requeued == [] and len(_posts(bc)) == 1

    clock.advance(settings.dynamics.timeout_seconds)
    if fault == "drop_before_processing":
        # Not found, but Dynamics may still be working on the create: nothing is sent until
        # its send is older than dynamics.request_limit_seconds.
        waiting = _push(settings, store, clock)
        assert woo_id in waiting.in_doubt and waiting.requeued == [] and len(_posts(bc)) == 1
        clock.advance(settings.dynamics.request_limit_seconds)
    second = _push(settings, store, clock)
    record = store.get_order(woo_id)
    assert record is not None and record.state is OrderState.PUSHED
    assert _by_external(bc) == {"WC-8004": 1}
    if fault == "drop_after_commit":
        assert [p.woo_id for p in second.resolved] == [woo_id]
        assert len(_posts(bc)) == 1  # found by lookup: never sent again
    else:
        assert second.requeued == [woo_id] and [p.woo_id for p in second.pushed] == [woo_id]
        assert _posts(bc)[-1] == 201
    assert record.d365_number == bc.sales_orders()[0]["number"]


def test_pushes_run_concurrently_within_max_concurrency(
    bc: BusinessCentralEmulator, sqlite_store: StateStore
) -> None:
    settings = make_settings(
        bc,
        dynamics={"max_concurrency": 3},
        orders={"customer_mode": "fixed", "customer_number": "WEB"},
    )
    bc.add_customer("Webshop", number="WEB")
    clock = Clock()
    raws = [simple_order(8100 + i, [(WIDGET, 1)]) for i in range(12)]
    _ready(settings, sqlite_store, raws, clock)
    bc.latency = 0.05
    bc.reset_requests()
    result = _push(settings, sqlite_store, clock)
    assert len(result.pushed) == 12
    assert bc.max_in_flight_seen == 3
    assert len(_posts(bc)) == 12


def test_two_concurrent_pushes_never_send_the_same_order(
    bc: BusinessCentralEmulator, sqlite_store: StateStore
) -> None:
    settings = make_settings(bc, orders={"customer_mode": "fixed", "customer_number": "WEB"})
    bc.add_customer("Webshop", number="WEB")
    clock = Clock()
    _ready(
        settings, sqlite_store, [simple_order(8200 + i, [(WIDGET, 1)]) for i in range(10)], clock
    )
    bc.latency = 0.02
    results: list[PushResult] = []
    threads = [
        threading.Thread(target=lambda: results.append(_push(settings, sqlite_store, clock)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert sum(len(r.pushed) for r in results) == 10
    assert len(_by_external(bc)) == 10 and set(_by_external(bc).values()) == {1}


def test_a_total_that_differs_beyond_the_tolerance_is_a_warning(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: StateStore
) -> None:
    clock = Clock()
    food = product_by_sku("STROOP-8")
    # 9 % VAT on shipping in the shop; the shipping account in Dynamics carries 21 %.
    raw = simple_order(8005, [(food, 4)], shipping=Decimal("4.54"), shipping_tax_rate=Decimal("9"))
    [woo_id] = _ready(bc_settings, sqlite_store, [raw], clock)
    result = _push(bc_settings, sqlite_store, clock)
    assert state_of(sqlite_store, woo_id) is OrderState.PUSHED
    assert woo_id in result.total_mismatches
    warnings = [e.message for e in sqlite_store.events(woo_id) if e.level == "warning"]
    assert any("differs from the shop total" in w for w in warnings)


def test_write_back_adds_a_note_and_meta_and_is_retried_after_a_failure(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: StateStore
) -> None:
    clock = Clock()
    [woo_id] = _ready(bc_settings, sqlite_store, [simple_order(8006, [(WIDGET, 1)])], clock)
    shop = RecordingShop(down=True)
    first = _push(bc_settings, sqlite_store, clock, shop_writer=shop)
    assert state_of(sqlite_store, woo_id) is OrderState.PUSHED
    assert woo_id in first.write_back_failed
    assert sqlite_store.write_back_pending_ids() == [woo_id]
    shop.down = False
    second = _push(bc_settings, sqlite_store, clock, shop_writer=shop)
    number = bc.sales_orders()[0]["number"]
    assert second.written_back == [woo_id]
    assert shop.notes == [(woo_id, f"Created in Dynamics 365 as sales order {number}")]
    assert shop.meta == [(woo_id, SALES_ORDER_META_KEY, number)]
    assert sqlite_store.write_back_pending_ids() == []


def test_dry_run_returns_the_exact_payloads_and_changes_nothing(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: StateStore
) -> None:
    clock = Clock()
    ids = _ready(
        bc_settings,
        sqlite_store,
        [simple_order(8007, [(WIDGET, 1)]), simple_order(8008, [(WIDGET, 3)])],
        clock,
    )
    events_before = {woo_id: len(sqlite_store.events(woo_id)) for woo_id in ids}
    result = _push(bc_settings, sqlite_store, clock, dry_run=True)
    assert [d.external_number for d in result.documents] == ["WC-8007", "WC-8008"]
    payloads = json.loads(json.dumps(result.payloads()))
    assert payloads[1]["salesOrderLines"][0] == {
        "lineType": "Item",
        "lineObjectNumber": "WIDGET-001",
        "description": "Blue Widget",
        "quantity": 3,
        "unitPrice": 19.99,
    }
    assert all(d.placeholder_customer for d in result.documents)
    assert _posts(bc) == [] and bc.customers() == [] and bc.sales_orders() == []
    for woo_id in ids:
        assert state_of(sqlite_store, woo_id) is OrderState.READY
        assert len(sqlite_store.events(woo_id)) == events_before[woo_id]


def test_dry_run_also_shows_new_orders_that_would_pass_validation(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: StateStore
) -> None:
    fine = put_order(sqlite_store, simple_order(8010, [(WIDGET, 1)]))
    unmapped = put_order(sqlite_store, simple_order(8011, [(unmapped_product("NEW-1"), 1)]))
    result = _push(bc_settings, sqlite_store, Clock(), dry_run=True)
    assert [d.woo_id for d in result.documents] == [fine]
    assert "SKU NEW-1 is not mapped" in result.held[unmapped]
    assert state_of(sqlite_store, fine) is OrderState.NEW
    assert state_of(sqlite_store, unmapped) is OrderState.NEW


def test_an_unreachable_dynamics_at_the_start_touches_no_order(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: StateStore
) -> None:
    clock = Clock()
    ids = _ready(bc_settings, sqlite_store, [simple_order(8300, [(WIDGET, 1)])], clock)
    bc.stop()
    with pytest.raises(DynamicsUnreachable):
        _push(bc_settings, sqlite_store, clock)
    record = sqlite_store.get_order(ids[0])
    assert record is not None and record.state is OrderState.READY and record.attempts == 0


def test_an_outage_during_the_run_stops_claiming_and_loses_nothing(
    bc: BusinessCentralEmulator, sqlite_store: StateStore
) -> None:
    settings = make_settings(
        bc,
        dynamics={"max_concurrency": 2},
        orders={"customer_mode": "fixed", "customer_number": "WEB", "max_attempts": 1},
    )
    bc.add_customer("Webshop", number="WEB")
    clock = Clock()
    ids = _ready(
        settings, sqlite_store, [simple_order(8310 + i, [(WIDGET, 1)]) for i in range(8)], clock
    )
    target = make_target(settings, sqlite_store)
    target.connect()
    bc.stop()
    result = push(make_context(settings, sqlite_store, clock), target)
    assert result.unreachable and result.exit_code is ExitCode.UNREACHABLE
    assert result.failed == {}  # an outage never fails an order, whatever max_attempts says
    assert all(state_of(sqlite_store, woo_id) is OrderState.READY for woo_id in ids)
    attempts = [sqlite_store.get_order(woo_id).attempts for woo_id in ids]  # type: ignore[union-attr]
    # Only the orders of the busy workers were claimed (in flight or waiting for a request slot,
    # WORKERS_PER_SLOT per slot); no more once the outage was seen.
    assert sum(attempts) <= 2 * WORKERS_PER_SLOT < len(ids)


def test_refused_credentials_stop_the_run_and_put_the_order_back(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: StateStore
) -> None:
    clock = Clock()
    [woo_id] = _ready(bc_settings, sqlite_store, [simple_order(8009, [(WIDGET, 1)])], clock)
    wrong = make_settings(bc, dynamics={"client_secret": "not-the-secret"})
    with pytest.raises(DynamicsAuthenticationError, match=r"dynamics\.client_secret"):
        _push(wrong, sqlite_store, clock)
    assert state_of(sqlite_store, woo_id) is OrderState.READY


def test_only_the_named_orders_are_pushed_and_limit_is_honoured(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: StateStore
) -> None:
    clock = Clock()
    ids = _ready(
        bc_settings, sqlite_store, [simple_order(8400 + i, [(WIDGET, 1)]) for i in range(3)], clock
    )
    assert [
        p.woo_id for p in _push(bc_settings, sqlite_store, clock, order_ids=[ids[1]]).pushed
    ] == [ids[1]]
    assert len(_push(bc_settings, sqlite_store, clock, limit=1).pushed) == 1
    assert state_of(sqlite_store, ids[0]) is not state_of(sqlite_store, ids[2])


@dataclass
class _Owner:
    """A push running in a thread, asleep in the backoff after a 429 on its create."""

    woo_id: int
    ctx: RunContext
    thread: threading.Thread
    results: list[PushResult]


def _owner_in_a_429_backoff(bc: BusinessCentralEmulator, store: StateStore, woo_id: int) -> _Owner:
    settings = make_settings(bc, orders={"customer_mode": "fixed", "customer_number": "WEB"})
    bc.add_customer("Webshop", number="WEB")
    clock = Clock()
    [woo_id] = _ready(settings, store, [simple_order(woo_id, [(WIDGET, 1)])], clock)
    bc.fail_next(
        1, status=429, code="TooManyRequests", retry_after=1, method="POST",
        path_contains="salesOrders",
    )  # fmt: skip
    ctx = make_context(settings, store, clock)
    results: list[PushResult] = []
    thread = threading.Thread(
        target=lambda: results.append(push(ctx, make_target(settings, store)))
    )
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and 429 not in _posts(bc):
        time.sleep(0.01)
    return _Owner(woo_id, ctx, thread, results)


def test_a_pusher_whose_claim_was_taken_over_during_its_backoff_sends_nothing(
    bc: BusinessCentralEmulator, sqlite_store: StateStore
) -> None:
    owner = _owner_in_a_429_backoff(bc, sqlite_store, 8500)
    now = owner.ctx.clock()
    # Another process (whose lease is fine) takes the order over while the owner sleeps.
    assert sqlite_store.claim_in_doubt(
        owner.woo_id, "other-host:1", now, now + timedelta(days=1), token="other"
    )
    owner.thread.join(timeout=30)
    assert _posts(bc) == [429], "the owner sent nothing once its claim was gone"
    record = sqlite_store.get_order(owner.woo_id)
    assert record is not None and record.state is OrderState.PUSHING
    assert record.claim_token == "other" and record.last_sent_at is None
    assert owner.results and owner.results[0].pushed == []
    events = sqlite_store.events(owner.woo_id)
    assert any("another process holds" in e.message for e in events)


def test_a_pusher_that_lost_its_lease_in_a_backoff_sends_nothing_and_releases_the_order(
    bc: BusinessCentralEmulator, sqlite_store: StateStore
) -> None:
    owner = _owner_in_a_429_backoff(bc, sqlite_store, 8501)
    owner.ctx.lease_lost.set()  # the run lock's heartbeat could not renew the lease
    owner.thread.join(timeout=30)
    assert _posts(bc) == [429], "nothing is sent once the lease is lost"
    record = sqlite_store.get_order(owner.woo_id)
    assert record is not None and record.state is OrderState.READY, "released, not left pushing"
    assert record.attempts == 0 and record.claim_token is None


def test_nothing_is_created_when_dynamics_cannot_say_what_exists_and_the_run_says_why(
    bc: BusinessCentralEmulator, sqlite_store: StateStore
) -> None:
    settings = make_settings(bc, orders={"customer_mode": "fixed", "customer_number": "WEB"})
    bc.add_customer("Webshop", number="WEB")
    clock = Clock()
    ids = _ready(
        settings, sqlite_store, [simple_order(8600 + i, [(WIDGET, 1)]) for i in range(3)], clock
    )
    bc.fail_next(
        1, status=400, code="BadRequest_InvalidFilter", message="bad filter", method="GET",
        path_contains="salesOrders",
    )  # fmt: skip
    with pytest.raises(DynamicsError) as refused:
        _push(settings, sqlite_store, clock)
    assert "bad filter" in str(refused.value) and not refused.value.retryable
    assert _posts(bc) == [] and bc.sales_orders() == []
    for woo_id in ids:
        record = sqlite_store.get_order(woo_id)
        assert record is not None and record.state is OrderState.READY and record.attempts == 0
