"""``pull`` with the real client against the shop emulator, into a real state store."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.shop.conftest import ShopFactory, Waits, running_shops, woo_client
from woo2d365.errors import ShopUnreachable
from woo2d365.model import OrderState
from woo2d365.pipeline.context import RunContext
from woo2d365.pipeline.pull import CURSOR_KEY, PullResult, pull, read_cursor
from woo2d365.sandbox.shop import ApiError, ShopEmulator
from woo2d365.sandbox.shop_data import CATALOGUE, build_order, realistic_orders
from woo2d365.sandbox.tls import SandboxCA
from woo2d365.settings import Settings
from woo2d365.shop.client import WooClient
from woo2d365.store import SqlStore, open_store

T0 = datetime(2026, 3, 2, 8, 0, 0, tzinfo=UTC)


@dataclass
class Clock:
    """The shop's clock: starts late enough for every order, moves only when told."""

    now: datetime = T0 + timedelta(days=60)
    ticks: list[datetime] = field(default_factory=list)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 1) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture(scope="module")
def module_ca() -> Iterator[SandboxCA]:
    ca = SandboxCA()
    yield ca
    ca.cleanup()


@pytest.fixture
def make_shop(module_ca: SandboxCA, monkeypatch: pytest.MonkeyPatch) -> Iterator[ShopFactory]:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(module_ca.ca_path))
    with running_shops(module_ca) as make:
        yield make


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def shop(make_shop: ShopFactory, clock: Clock) -> ShopEmulator:
    return make_shop(clock=clock)


@pytest.fixture
def sqlite_store(tmp_path: Any) -> Iterator[SqlStore]:
    opened = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield opened
    opened.close()


@dataclass
class Puller:
    """One shop, one store and the client between them."""

    shop: ShopEmulator
    store: SqlStore
    client: WooClient
    ctx: RunContext

    def __call__(self, **kwargs: Any) -> PullResult:
        return pull(self.ctx, self.client, **kwargs)

    def state(self, woo_id: int) -> OrderState | None:
        record = self.store.get_order(woo_id)
        return None if record is None else record.state

    def messages(self, woo_id: int) -> list[tuple[str, str]]:
        return [(e.level, e.message) for e in self.store.events(woo_id)]

    def list_queries(self) -> list[dict[str, list[str]]]:
        return [r.query for r in self.shop.requests if r.path.endswith("/orders")]


def make_puller(shop: ShopEmulator, store: SqlStore, **overrides: Any) -> Puller:
    client = woo_client(shop, Waits(), **overrides)
    ctx = RunContext(settings=Settings(woocommerce=client.settings), store=store)
    return Puller(shop, store, client, ctx)


@pytest.fixture
def puller(shop: ShopEmulator, sqlite_store: SqlStore) -> Puller:
    return make_puller(shop, sqlite_store)


def order(
    order_id: int,
    *,
    status: str = "processing",
    created: datetime | None = None,
    site_tz: str = "Europe/Berlin",
) -> dict[str, Any]:
    """A realistic order created ``order_id`` minutes after T0 (modified = created)."""
    created = created or T0 + timedelta(minutes=order_id)
    return build_order(
        order_id,
        items=[(CATALOGUE[order_id % len(CATALOGUE)], 1 + order_id % 3)],
        created_gmt=created,
        status=status,
        modified_gmt=created,
        site_tz=site_tz,
    )


def _without_links(raw: dict[str, Any]) -> dict[str, Any]:
    """The order without ``_links`` (the emulator writes its own URL into them when serving)."""
    return {key: value for key, value in raw.items() if key != "_links"}


def gmt(raw: dict[str, Any], key: str = "date_modified_gmt") -> datetime:
    return datetime.fromisoformat(raw[key]).replace(tzinfo=UTC)


# -- the first run, the cursor, the window ----------------------------------------------------


def test_first_pull_stores_orders_in_taken_statuses_and_sets_the_cursor(puller: Puller) -> None:
    orders = realistic_orders(40, start_gmt=T0, first_id=100)
    puller.shop.add_orders(orders)
    result = puller()
    taken = {o["id"] for o in orders if o["status"] in ("processing", "completed")}
    assert {o.woo_id for o in puller.store.list_orders()} == taken
    assert len(taken) < 40  # the mixture has pending, on-hold and cancelled orders too
    assert (result.fetched, result.new, result.not_taken) == (40, len(taken), 40 - len(taken))
    assert all(puller.state(i) is OrderState.NEW for i in taken)
    # The cursor is the newest modification the shop showed, whatever the order's status.
    assert read_cursor(puller.ctx) == max(gmt(o) for o in orders)
    assert result.requests == result.pages == 1
    assert "modified_after" not in puller.list_queries()[0]
    first = next(iter(sorted(taken)))
    assert puller.messages(first)[0][1].startswith("pulled from the shop (")


def test_start_date_bounds_the_first_run_by_creation_date(
    shop: ShopEmulator, sqlite_store: SqlStore
) -> None:
    start = T0 + timedelta(minutes=10)
    before = order(5)  # created before start_date but modified after it: still never taken
    before["date_modified_gmt"] = (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    shop.add_orders([before, order(10), order(11)])
    puller = make_puller(shop, sqlite_store, start_date=start)
    result = puller()
    assert {o.woo_id for o in sqlite_store.list_orders()} == {10, 11}
    assert result.not_taken == 1
    assert puller.list_queries()[0]["modified_after"] == ["2026-03-02T08:09:59"]


def test_the_next_pull_reads_only_the_overlap_window_and_changes_nothing(puller: Puller) -> None:
    puller.shop.add_orders(order(i) for i in range(1, 31))
    puller()
    cursor = read_cursor(puller.ctx)
    assert cursor == T0 + timedelta(minutes=30)
    puller.shop.reset_requests()
    result = puller()
    assert puller.list_queries()[0]["modified_after"] == ["2026-03-02T08:20:00"]  # cursor − 10 min
    assert (result.fetched, result.new, result.updated, result.unchanged) == (10, 0, 0, 10)
    assert result.requests == 1
    assert read_cursor(puller.ctx) == cursor


def test_an_empty_window_moves_the_cursor_to_the_shops_clock_not_ours(
    puller: Puller, clock: Clock
) -> None:
    clock.now = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)  # far from the local clock
    result = puller()
    assert result.fetched == 0
    assert read_cursor(puller.ctx) == clock.now
    assert puller.store.get_value(CURSOR_KEY) == "2031-05-06T07:08:09+00:00"


def test_a_modification_time_in_the_future_does_not_carry_the_cursor_past_the_shops_clock(
    puller: Puller, clock: Clock
) -> None:
    bogus = order(1)
    bogus["date_modified_gmt"] = "2099-01-01T00:00:00"
    puller.shop.add_orders([bogus, order(2)])
    assert puller().new == 2
    assert read_cursor(puller.ctx) == clock.now


@pytest.mark.parametrize("timezone", ["America/New_York", "Europe/Berlin", "Asia/Kolkata"])
def test_timezone_trap_an_order_modified_just_before_the_cursor_is_found(
    make_shop: ShopFactory, sqlite_store: SqlStore, clock: Clock, timezone: str
) -> None:
    shop = make_shop(clock=clock, timezone=timezone)
    puller = make_puller(shop, sqlite_store, overlap_minutes=1)
    shop.add_order(order(1, site_tz=timezone))
    puller()
    cursor = read_cursor(puller.ctx)
    assert cursor == T0 + timedelta(minutes=1)
    # An order whose save committed late: modified 30 s before the cursor, unseen so far.
    shop.add_order(order(2, created=cursor - timedelta(seconds=30), site_tz=timezone))
    result = puller()
    assert result.new == 1 and puller.state(2) is OrderState.NEW
    # Outside the overlap it is (correctly) not in the window: the window is really 1 minute.
    shop.add_order(order(3, created=cursor - timedelta(seconds=61), site_tz=timezone))
    assert puller().new == 0


def test_since_rereads_a_window_without_moving_the_cursor_backwards(puller: Puller) -> None:
    puller.shop.add_orders(order(i) for i in range(1, 21))
    puller()
    cursor = read_cursor(puller.ctx)
    result = puller(since=T0)
    assert (result.fetched, result.unchanged) == (20, 20)
    assert read_cursor(puller.ctx) == cursor
    assert puller.list_queries()[-1]["modified_after"] == ["2026-03-02T08:00:00"]


def test_since_after_the_cursor_does_not_move_the_cursor_past_unread_orders(
    puller: Puller, clock: Clock
) -> None:
    puller.shop.add_order(order(1))
    puller()
    cursor = read_cursor(puller.ctx)
    puller.shop.add_order(order(50))  # modified after the cursor, before the --since window
    puller.shop.add_order(order(90))
    result = puller(since=T0 + timedelta(minutes=60))
    assert result.new == 1  # order 90 only
    assert read_cursor(puller.ctx) == cursor  # order 50 still lies ahead of the cursor
    assert puller().new == 1  # and the next regular pull takes it


def test_pull_by_order_id_fetches_single_orders_and_leaves_the_cursor(puller: Puller) -> None:
    puller.shop.add_orders([order(7), order(8, status="pending")])
    result = puller(order_ids=[7, 8, 999, 7])
    assert (result.new, result.not_taken, result.missing, result.requests) == (1, 1, 1, 3)
    assert puller.store.get_value(CURSOR_KEY) is None
    assert puller.messages(8) == [
        ("warning", "not taken: its status pending is not in woocommerce.statuses")
    ]


def test_the_cursor_stays_when_paging_fails_midway_and_the_next_run_completes(
    shop: ShopEmulator, sqlite_store: SqlStore
) -> None:
    shop.add_orders(order(i) for i in range(1, 251))

    def fail_page_3(page: int) -> None:  # both tries for page 3 fail; pages may come at once
        if page == 3:
            raise ApiError(503, "sandbox_unavailable", "Service Unavailable")

    shop.on_list_page = fail_page_3
    puller = make_puller(shop, sqlite_store, max_tries=2)
    with pytest.raises(ShopUnreachable):
        puller()
    assert sqlite_store.get_value(CURSOR_KEY) is None
    assert len(sqlite_store.list_orders()) == 200  # pages 1 and 2 are kept
    shop.on_list_page = None
    result = puller()
    assert (result.new, result.unchanged) == (50, 200)
    assert read_cursor(puller.ctx) == T0 + timedelta(minutes=250)


# -- changes after pull -------------------------------------------------------------------------


def test_a_pending_order_is_taken_once_it_is_paid(puller: Puller, clock: Clock) -> None:
    puller.shop.add_order(order(1, status="pending"))
    assert puller().not_taken == 1 and puller.state(1) is None
    clock.advance()
    puller.shop.set_status(1, "processing")
    assert puller().new == 1 and puller.state(1) is OrderState.NEW


def test_a_changed_order_not_yet_pushed_is_validated_again(puller: Puller, clock: Clock) -> None:
    puller.shop.add_order(order(1))
    puller()
    puller.store.set_state(1, OrderState.HELD, reason="SKU X unmapped")
    clock.advance()
    puller.shop.modify_order(1, customer_note="Please ring twice")
    result = puller()
    assert result.updated == 1 and puller.state(1) is OrderState.NEW
    record = puller.store.get_order(1, with_raw=True)
    assert record is not None and record.raw is not None
    assert record.raw["customer_note"] == "Please ring twice" and record.reason is None


def test_a_change_in_the_same_second_as_the_stored_version_is_not_missed(
    puller: Puller, clock: Clock
) -> None:
    puller.shop.add_order(order(1))
    clock.advance()
    puller.shop.modify_order(1)  # the stored version is modified "now"
    puller()
    puller.store.set_state(1, OrderState.HELD, reason="SKU X unmapped")
    puller.shop.modify_order(1, customer_note="Please ring twice")  # the same second again
    result = puller()
    assert result.updated == 1 and puller.state(1) is OrderState.NEW
    record = puller.store.get_order(1, with_raw=True)
    assert record is not None and record.raw is not None
    assert record.raw["customer_note"] == "Please ring twice"


def test_a_pages_orders_are_written_in_id_order_as_every_write_to_orders(
    puller: Puller, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pull lists by id (orderby=id), not by modification time: here the newest id changed first.
    for woo_id in (1, 2, 3):
        puller.shop.add_order(order(woo_id, created=T0 + timedelta(minutes=10 - woo_id)))
    written: list[int] = []
    save = puller.store.save_pulled_order

    def recording(pulled: Any) -> Any:
        written.append(pulled.woo_id)
        return save(pulled)

    monkeypatch.setattr(puller.store, "save_pulled_order", recording)
    assert puller().new == 3
    assert written == [1, 2, 3], "InnoDB deadlocks when two connections lock in opposite orders"


def test_an_order_only_touched_in_the_shop_stays_as_it_is(puller: Puller, clock: Clock) -> None:
    puller.shop.add_order(order(1))
    puller()
    puller.store.set_state(1, OrderState.READY)
    clock.advance()
    puller.shop.modify_order(1)  # saved without a change (HPOS bumps date_modified on opening)
    result = puller()
    assert (result.unchanged, result.updated) == (1, 0)
    assert puller.state(1) is OrderState.READY
    assert len(puller.messages(1)) == 1  # only "pulled from the shop"
    record = puller.store.get_order(1)
    assert record is not None and record.shop_modified_at == clock.now  # the new version is kept


@pytest.mark.parametrize("state", [OrderState.NEW, OrderState.READY, OrderState.HELD])
def test_an_order_cancelled_before_it_was_pushed_is_skipped(
    puller: Puller, clock: Clock, state: OrderState
) -> None:
    puller.shop.add_order(order(1))
    puller()
    puller.store.set_state(1, state)
    clock.advance()
    puller.shop.set_status(1, "cancelled")
    result = puller()
    record = puller.store.get_order(1)
    assert record is not None and record.state is OrderState.SKIPPED
    assert record.reason == "cancelled in the shop before it was pushed"
    assert result.skipped == 1
    assert puller().skipped == 0  # read again in the overlap: nothing new


def test_an_on_hold_order_waits_as_new_and_is_taken_when_processing(
    puller: Puller, clock: Clock
) -> None:
    puller.shop.add_order(order(1))
    puller()
    clock.advance()
    puller.shop.set_status(1, "on-hold")
    puller()
    assert puller.state(1) is OrderState.NEW, "not terminal: it may still be paid"
    record = puller.store.get_order(1)
    assert record is not None and "on-hold is not taken" in (record.reason or "")
    clock.advance()
    puller.shop.set_status(1, "processing")
    puller()
    assert puller.state(1) is OrderState.NEW
    assert puller.messages(1)[-1][1].startswith("changed in the shop")


def test_a_skipped_order_stays_skipped_when_it_changes_again(puller: Puller, clock: Clock) -> None:
    puller.shop.add_order(order(1))
    puller()
    clock.advance()
    puller.shop.set_status(1, "cancelled")
    puller()
    assert puller.state(1) is OrderState.SKIPPED
    clock.advance()
    puller.shop.set_status(1, "processing")
    puller()
    assert puller.state(1) is OrderState.SKIPPED, "skipped is final (contract)"
    assert "it stays skipped" in puller.messages(1)[-1][1]


def _push(puller: Puller, woo_id: int) -> None:
    """What push does: record the Dynamics document, then write back to the shop."""
    puller.store.mark_pushed(
        woo_id, d365_id="guid-1", d365_number="SO-1001", external_number=f"WC-{woo_id}", now=T0
    )
    puller.client.write_back_note(woo_id, "SO-1001", again=False)
    assert puller.client.set_sales_order_numbers({woo_id: "SO-1001"}) == {}


def test_our_own_write_back_under_hpos_causes_nothing(puller: Puller, clock: Clock) -> None:
    puller.shop.add_order(order(1))
    puller()
    before = puller.shop.get_order(1)["date_modified_gmt"]
    clock.advance(5)
    _push(puller, 1)
    assert puller.shop.get_order(1)["date_modified_gmt"] != before  # HPOS bumped it
    result = puller()
    assert (result.changed_after_push, result.unchanged) == (0, 1)
    assert all(level == "info" for level, _ in puller.messages(1))
    assert puller.state(1) is OrderState.PUSHED


def test_a_real_change_after_push_is_a_warning_once_and_never_a_second_push(
    puller: Puller, clock: Clock
) -> None:
    puller.shop.add_order(order(1))
    puller()
    clock.advance()
    _push(puller, 1)
    clock.advance()
    puller.shop.set_status(1, "refunded")
    result = puller()
    assert result.changed_after_push == 1
    warnings = [m for level, m in puller.messages(1) if level == "warning"]
    assert len(warnings) == 1
    assert warnings[0].startswith("changed in the shop after it was pushed as SO-1001 (status ")
    assert "processing → refunded" in warnings[0]
    assert puller.state(1) is OrderState.PUSHED
    assert puller().changed_after_push == 0  # the overlap re-read does not warn again


def test_an_order_whose_data_cannot_be_read_is_stored_with_a_warning(puller: Puller) -> None:
    broken = order(1)
    broken["line_items"][0]["total"] = "12,50"
    puller.shop.add_order(broken)
    result = puller()
    assert (result.new, result.unreadable) == (1, 1)
    level, message = puller.messages(1)[0]
    assert level == "warning"
    assert message == (
        "pulled, but its data cannot be read: order 1: line item 1: total is not an amount: '12,50'"
    )


# -- drift ----------------------------------------------------------------------------------------


def test_drift_orders_added_and_modified_while_paging_are_all_stored_once_in_their_latest_version(
    make_shop: ShopFactory, store: SqlStore, clock: Clock
) -> None:
    shop = make_shop(clock=clock)
    base = realistic_orders(1000, start_gmt=T0, first_id=1)
    clock.now = max(gmt(o) for o in base) + timedelta(minutes=5)
    shop.add_orders(base)
    taken = {"processing", "completed"}
    injected: list[int] = []

    changing = threading.Lock()  # pages are served at once: one change burst at a time
    churned: set[int] = set()

    def churn(page: int) -> None:
        """While pull pages: 10 new and 10 modified orders before each of pages 2 to 6 (once
        each: a page asked again after a slow answer changes nothing more)."""
        with changing:
            if 2 <= page <= 6 and page not in churned:
                churned.add(page)
                _churn(page)

    def _churn(page: int) -> None:
        for n in range(10):
            clock.advance()
            new_id = 2000 + len(injected)
            injected.append(new_id)
            shop.add_order(order(new_id, created=clock.now))
            # Modify orders on pages already read, on this one and on pages still ahead; some
            # leave the taken statuses, which would shift the pages of a status-filtered query.
            victim = 1 + (page * 97 + n * 131) % 1000
            if n % 3 == 0:
                shop.set_status(victim, "cancelled")
            elif shop.get_order(victim)["status"] in taken:
                shop.modify_order(victim, customer_note=f"changed while paging {page}/{n}")
            else:
                shop.set_status(victim, "processing")

    shop.on_list_page = churn
    puller = make_puller(shop, store)
    first = puller()
    shop.on_list_page = None
    clock.advance(60)
    second = puller()

    assert len(injected) == 50
    expected = {i: o for i, o in shop.orders.items() if o["status"] in taken}
    stored = {r.woo_id: r for r in store.list_orders(with_raw=True)}
    assert expected.keys() <= stored.keys()
    for woo_id in stored.keys() - expected.keys():  # cancelled after it was stored
        assert stored[woo_id].state is OrderState.SKIPPED, woo_id
    for woo_id, raw in expected.items():
        record = stored[woo_id]
        assert record.shop_modified_at == gmt(raw), woo_id
        assert record.raw is not None
        assert _without_links(record.raw) == _without_links(raw), woo_id
    assert first.pages >= 11 and second.requests <= 2
    # Each order was announced once ("pulled from the shop"), never stored twice.
    pulled_events = sum(
        1 for i in expected for e in store.events(i) if e.message.startswith("pulled from the shop")
    )
    assert pulled_events == len(expected)
