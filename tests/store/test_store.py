"""The state store's behaviour, the same specification on SQLite and on MariaDB."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta

import pytest

from woo2d365.model import OrderState
from woo2d365.store import SqlStore, open_store
from woo2d365.store.base import CachedCustomer, CachedItem, PulledOrder
from woo2d365.store.migrations import LATEST_VERSION

T0 = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)


def pulled(woo_id: int, *, modified: datetime = T0, status: str = "processing") -> PulledOrder:
    return PulledOrder(
        woo_id=woo_id,
        number=str(woo_id),
        shop_status=status,
        shop_modified_at=modified,
        currency="EUR",
        total="58.38",
        raw={"id": woo_id, "status": status, "billing": {"first_name": "Zoë 🚀"}},
    )


def test_migrations_bring_an_empty_database_to_the_latest_version(state_url: str) -> None:
    store = open_store(state_url, migrate=False)
    assert store.schema_version() == 0
    assert store.migrate() == LATEST_VERSION
    assert store.migrate() == LATEST_VERSION  # idempotent: a second run changes nothing
    assert store.counts() == {s.value: 0 for s in OrderState}
    store.close()


def test_a_pulled_order_starts_new_and_keeps_its_raw_json(store: SqlStore) -> None:
    assert store.save_pulled_order(pulled(14)) is None
    record = store.get_order(14, with_raw=True)
    assert record is not None
    assert record.state is OrderState.NEW
    assert record.raw == {"id": 14, "status": "processing", "billing": {"first_name": "Zoë 🚀"}}
    assert record.shop_modified_at == T0
    assert store.seen(14, T0)
    assert not store.seen(14, T0 + timedelta(seconds=1))


def test_saving_a_known_order_returns_the_previous_record_and_keeps_its_state(
    store: SqlStore,
) -> None:
    store.save_pulled_order(pulled(14))
    store.set_state(14, OrderState.HELD, reason="SKU X is not mapped")
    before = store.save_pulled_order(pulled(14, modified=T0 + timedelta(minutes=5)))
    assert before is not None and before.state is OrderState.HELD
    after = store.get_order(14)
    assert after is not None
    assert after.state is OrderState.HELD
    assert after.shop_modified_at == T0 + timedelta(minutes=5)


def test_state_transitions_respect_the_expected_source_state(store: SqlStore) -> None:
    store.save_pulled_order(pulled(1))
    assert store.set_state(1, OrderState.READY, expect=[OrderState.NEW])
    assert not store.set_state(1, OrderState.HELD, expect=[OrderState.NEW])
    assert store.claim(1, "worker-a", T0, token="t-a", key="WC-1")
    assert not store.claim(1, "worker-b", T0, token="t-b", key="WC-1"), (
        "an order is claimed by one worker only"
    )
    record = store.get_order(1)
    assert record is not None
    assert (record.state, record.claimed_by, record.attempts) == (OrderState.PUSHING, "worker-a", 1)
    store.mark_pushed(
        1, d365_id="guid-1", d365_number="S-ORD101001", external_number="WC-1", now=T0
    )
    record = store.get_order(1)
    assert record is not None
    assert record.state is OrderState.PUSHED
    assert (record.d365_number, record.claimed_by, record.write_back_pending) == (
        "S-ORD101001",
        None,
        True,
    )
    assert store.write_back_pending_ids() == [1]
    store.set_write_back_done(1)
    assert store.write_back_pending_ids() == []


def test_retry_resets_attempts(store: SqlStore) -> None:
    store.save_pulled_order(pulled(2))
    store.set_state(2, OrderState.READY)
    store.claim(2, "w", T0, token="t", key="WC-2")
    store.set_state(2, OrderState.FAILED, reason="Dynamics refused it")
    assert store.set_state(2, OrderState.READY, expect=[OrderState.FAILED], reset_attempts=True)
    record = store.get_order(2)
    assert record is not None and record.attempts == 0 and record.reason is None


def test_in_doubt_orders_are_those_claimed_before_the_timeout(store: SqlStore) -> None:
    for woo_id in (1, 2):
        store.save_pulled_order(pulled(woo_id))
        store.set_state(woo_id, OrderState.READY)
    store.claim(1, "crashed", T0, token="t1", key="WC-1")
    store.claim(2, "alive", T0 + timedelta(minutes=10), token="t2", key="WC-2")
    cutoff = T0 + timedelta(minutes=5)
    assert store.in_doubt_ids(cutoff) == [1]
    assert store.claim_in_doubt(1, "rescuer", T0 + timedelta(minutes=11), cutoff, token="r1")
    assert not store.claim_in_doubt(1, "other", T0 + timedelta(minutes=11), cutoff, token="o"), (
        "a rescued claim is fresh again"
    )
    assert not store.claim_in_doubt(2, "rescuer", T0 + timedelta(minutes=11), cutoff, token="r2")


def test_settling_writes_hold_only_for_the_claim_that_holds_the_order(store: SqlStore) -> None:
    store.save_pulled_order(pulled(3))
    store.set_state(3, OrderState.READY)
    assert store.claim(3, "owner", T0, token="old", key="WC-3")
    cutoff = T0 + timedelta(minutes=5)
    assert store.claim_in_doubt(3, "rescuer", T0 + timedelta(minutes=6), cutoff, token="new")
    # The first owner wakes up: it can neither renew, nor send, nor settle.
    assert not store.confirm_claim(
        3, "old", T0 + timedelta(minutes=7), sent_at=T0 + timedelta(minutes=7)
    )
    assert store.renew_claims([(3, "old"), (3, "new")], T0 + timedelta(minutes=7)) == {"new"}
    assert not store.set_state(3, OrderState.READY, expect=[OrderState.PUSHING], token="old")
    assert not store.mark_pushed(
        3, d365_id="g", d365_number="S1", external_number="WC-3", now=T0, token="old"
    )
    record = store.get_order(3)
    assert record is not None
    assert (record.state, record.claim_token, record.last_sent_at) == (
        OrderState.PUSHING,
        "new",
        None,
    )
    renewed, sent = T0 + timedelta(minutes=8), T0 + timedelta(minutes=8, seconds=1)
    assert store.confirm_claim(3, "new", renewed, sent_at=sent)  # a send to leave by ``sent``
    record = store.get_order(3)
    assert record is not None and record.last_sent_at == sent and record.claimed_at == renewed
    assert store.mark_pushed(
        3, d365_id="g", d365_number="S1", external_number="WC-3", now=sent, token="new"
    )


def test_the_key_fixed_at_the_first_claim_is_kept(store: SqlStore) -> None:
    store.save_pulled_order(pulled(4))
    store.set_state(4, OrderState.READY)
    assert store.claim(4, "w", T0, token="a", key="WC-4")
    assert store.set_state(4, OrderState.READY, expect=[OrderState.PUSHING], token="a")
    assert store.claim(4, "w", T0, token="b", key="SHOP-4"), "the prefix changed meanwhile"
    record = store.get_order(4)
    assert record is not None and record.external_number == "WC-4"


def test_counts_listing_and_oldest_waiting(store: SqlStore) -> None:
    clock = [T0]
    store.clock = lambda: clock[0]
    for woo_id in range(1, 6):
        clock[0] = T0 + timedelta(minutes=woo_id)
        store.save_pulled_order(pulled(woo_id))
    clock[0] = T0 + timedelta(minutes=10)
    store.set_state(1, OrderState.HELD, reason="unmapped")
    store.set_state(5, OrderState.SKIPPED, reason="cancelled")
    counts = store.counts()
    assert counts["new"] == 3 and counts["held"] == 1 and counts["skipped"] == 1
    assert [r.woo_id for r in store.list_orders()] == [5, 1, 4, 3, 2]
    assert [r.woo_id for r in store.list_orders(states=[OrderState.NEW], limit=2)] == [4, 3]
    oldest = store.oldest_waiting()
    assert oldest is not None and oldest.woo_id == 2
    assert store.order_ids_in_state(OrderState.NEW) == [2, 3, 4]


def test_events_are_kept_per_order_and_per_run_in_order(store: SqlStore) -> None:
    run_id = store.start_run("sync", T0, worker="host:1")
    store.add_event("pull", "pulled", woo_id=7, run_id=run_id)
    store.add_event("validate", "held: SKU X not mapped", level="warning", woo_id=7, run_id=run_id)
    store.add_event("push", "other order", woo_id=8, run_id=run_id)
    assert [e.step for e in store.events(7)] == ["pull", "validate"]
    assert store.events(7)[1].level == "warning"
    assert len(store.run_events(run_id)) == 3
    store.finish_run(run_id, "ok", {"pulled": 2}, T0 + timedelta(seconds=3))
    last = store.last_run("sync")
    assert last is not None and last.outcome == "ok" and last.counts == {"pulled": 2}
    assert store.last_run("sync", outcome="attention") is None


def test_sku_map_upserts_report_added_updated_unchanged(store: SqlStore) -> None:
    assert store.map_sku("WIDGET-001", "1000", "", "alice", T0) == "added"
    assert store.map_sku("WIDGET-001", "1000", "", "bob", T0) == "unchanged"
    assert store.map_sku("WIDGET-001", "1001", "moved", "bob", T0) == "updated"
    mapping = store.sku_mapping("WIDGET-001")
    assert mapping is not None
    assert (mapping.item_number, mapping.note, mapping.updated_by) == ("1001", "moved", "bob")
    outcomes = store.map_skus(
        [("A", "1", ""), ("B", "2", ""), ("WIDGET-001", "1001", "moved"), ("A", "9", "")],
        "carol",
        T0,
    )
    assert outcomes == ["added", "added", "unchanged", "updated"]
    assert [m.sku for m in store.sku_mappings()] == ["A", "B", "WIDGET-001"]
    assert store.sku_mapping("A").item_number == "9"  # type: ignore[union-attr]
    assert store.unmap_sku("A") and not store.unmap_sku("A")


def test_sku_keys_are_exact_on_both_backends(store: SqlStore) -> None:
    store.map_sku("shirt-m", "1", "", "a", T0)
    assert store.map_sku("SHIRT-M", "2", "", "a", T0) == "added"
    assert store.map_sku("Ünïcode-✓", "3", "", "a", T0) == "added"
    assert store.sku_mapping("Ünïcode-✓") is not None


def test_unmapped_skus_come_from_held_orders_only(store: SqlStore) -> None:
    for woo_id in (1, 2, 3):
        store.save_pulled_order(pulled(woo_id))
    store.set_state(1, OrderState.HELD, reason="x")
    store.set_state(2, OrderState.HELD, reason="x")
    store.set_held_skus(1, ["X", "Y"])
    store.set_held_skus(2, ["X"])
    store.set_held_skus(3, ["Z"])  # order 3 is not held
    assert store.unmapped_skus() == [("X", 2), ("Y", 1)]
    store.map_sku("Y", "1000", "", "a", T0)
    assert store.unmapped_skus() == [("X", 2)]


def test_values_are_stored_and_replaced(store: SqlStore) -> None:
    assert store.get_value("pull.cursor") is None
    store.set_value("pull.cursor", "2026-11-01T12:00:00+00:00")
    store.set_value("pull.cursor", "2026-11-01T13:00:00+00:00")
    assert store.get_value("pull.cursor") == "2026-11-01T13:00:00+00:00"


def test_the_run_lock_refuses_a_second_holder_until_the_lease_expires(store: SqlStore) -> None:
    assert store.acquire_lock("sync", "a", T0, ttl_seconds=60)
    assert not store.acquire_lock("sync", "b", T0 + timedelta(seconds=30), ttl_seconds=60)
    assert store.acquire_lock("sync", "a", T0 + timedelta(seconds=30), ttl_seconds=60), (
        "the holder may re-acquire"
    )
    assert store.renew_lock("sync", "a", T0 + timedelta(seconds=50), ttl_seconds=60)
    assert not store.acquire_lock("sync", "b", T0 + timedelta(seconds=100), ttl_seconds=60)
    assert store.acquire_lock("sync", "b", T0 + timedelta(seconds=111), ttl_seconds=60), (
        "an expired lease is taken over"
    )
    assert not store.renew_lock("sync", "a", T0 + timedelta(seconds=112), ttl_seconds=60)
    store.release_lock("sync", "a")  # not the holder: no effect
    assert not store.acquire_lock("sync", "c", T0 + timedelta(seconds=113), ttl_seconds=60)
    store.release_lock("sync", "b")
    assert store.acquire_lock("sync", "c", T0 + timedelta(seconds=114), ttl_seconds=60)


def test_item_and_customer_caches(store: SqlStore) -> None:
    store.upsert_items(
        [
            CachedItem("1000", "g1", "Widget", False, "2026-01-01T00:00:00Z"),
            CachedItem("1001", "g2", "Blocked", True),
        ]
    )
    store.upsert_items([CachedItem("1000", "g1", "Widget v2", False)])
    found = store.items_by_number(["1000", "1001", "nope"])
    assert set(found) == {"1000", "1001"}
    assert found["1000"].display_name == "Widget v2" and found["1001"].blocked
    store.replace_items([CachedItem("2000", "g3", "Only", False)])
    assert store.item_count() == 1
    store.put_customer(CachedCustomer("Erika@Example.com", "C00010", "cg1"))
    assert store.get_customer("erika@example.COM") == CachedCustomer(
        "erika@example.com", "C00010", "cg1"
    )


def _claim_worker(url: str, worker: str, ids: list[int], results: multiprocessing.Queue) -> None:
    store = open_store(url, migrate=False)
    won = [
        woo_id
        for woo_id in ids
        if store.claim(woo_id, worker, datetime.now(UTC), token=f"{worker}-{woo_id}", key=None)
    ]
    store.close()
    results.put(won)


def _migrate_worker(url: str, results: multiprocessing.Queue) -> None:
    store = open_store(url)
    results.put(store.schema_version())
    store.close()


def test_concurrent_processes_never_claim_the_same_order(state_url: str) -> None:
    store = open_store(state_url)
    ids = list(range(1, 61))
    for woo_id in ids:
        store.save_pulled_order(pulled(woo_id))
        store.set_state(woo_id, OrderState.READY)
    store.close()
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = ctx.Queue()
    procs = [
        ctx.Process(target=_claim_worker, args=(state_url, f"w{i}", ids, results)) for i in range(4)
    ]
    for p in procs:
        p.start()
    won = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    claimed = [woo_id for batch in won for woo_id in batch]
    assert sorted(claimed) == ids, "every order claimed exactly once across processes"


def test_concurrent_first_migrations_all_succeed(state_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_migrate_worker, args=(state_url, results)) for _ in range(3)]
    for p in procs:
        p.start()
    versions = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert versions == [LATEST_VERSION] * 3


def test_an_unreachable_mysql_server_is_reported_without_the_password() -> None:
    from woo2d365.errors import StoreUnavailable

    with pytest.raises(StoreUnavailable) as caught:
        open_store("mysql://app:s3cr3t-pw@127.0.0.1:1/woo2d365")
    assert "s3cr3t-pw" not in str(caught.value)
    assert "127.0.0.1:1" in str(caught.value)


def test_alert_conditions_are_remembered_updated_and_forgotten(store: SqlStore) -> None:
    from woo2d365.store.base import AlertRecord

    held = AlertRecord("held:7", "held", "SKU X", True, T0, None)
    down = AlertRecord("unreachable:shop", "unreachable", "shop down", True, T0, T0)
    store.save_alert_records([held, down], [])
    sent = AlertRecord("held:7", "held", "SKU X and Y", True, T0, T0 + timedelta(minutes=5))
    store.save_alert_records([sent], ["unreachable:shop"])
    assert store.alert_records() == [sent]


def test_the_lock_holder_is_known_until_the_lease_is_released(store: SqlStore) -> None:
    assert store.lock_holder("sync") is None
    store.acquire_lock("sync", "host:42", T0, ttl_seconds=60)
    assert store.lock_holder("sync") == "host:42"
    store.release_lock("sync", "host:42")
    assert store.lock_holder("sync") is None


def test_a_batch_commits_its_writes_together_or_not_at_all(state_url: str) -> None:
    writer, reader = open_store(state_url), open_store(state_url)
    try:
        with writer.batch():
            writer.save_pulled_order(pulled(1))
            writer.add_event("pull", "pulled", woo_id=1)
            with writer.batch():  # nested: part of the same transaction
                writer.save_pulled_order(pulled(2))
        assert reader.get_order(1) is not None and reader.get_order(2) is not None
        assert [e.message for e in reader.events(1)] == ["pulled"]

        with pytest.raises(RuntimeError), writer.batch():
            writer.save_pulled_order(pulled(3))
            writer.set_state(1, OrderState.HELD, reason="x")
            raise RuntimeError("the block fails")
        assert reader.get_order(3) is None  # rolled back, all of it
        assert reader.get_order(1).state is OrderState.NEW  # type: ignore[union-attr]
    finally:
        writer.close()
        reader.close()


def test_an_order_keeps_the_moment_it_entered_its_state_apart_from_its_updates(
    state_url: str,
) -> None:
    clock = [T0]
    store = open_store(state_url, clock=lambda: clock[0])
    try:
        store.save_pulled_order(pulled(7))
        assert _since(store, 7) == T0, "new since it was pulled"
        clock[0] = T0 + timedelta(minutes=5)
        store.set_state(7, OrderState.HELD, reason="SKU X is not mapped")
        clock[0] = T0 + timedelta(minutes=50)
        store.set_state(7, OrderState.HELD, reason="SKU X is still not mapped")
        store.save_pulled_order(pulled(7))
        record = store.get_order(7)
        assert record is not None and record.updated_at == T0 + timedelta(minutes=50)
        assert record.since == T0 + timedelta(minutes=5), "held again is not held anew"

        clock[0] = T0 + timedelta(hours=1)
        store.set_state(7, OrderState.READY)
        assert store.claim(7, "w:1", clock[0], token="t", key="WC-7")
        assert _since(store, 7) == T0 + timedelta(hours=1)
        clock[0] = T0 + timedelta(hours=2)
        assert store.confirm_claim(7, "t", clock[0])
        assert _since(store, 7) == T0 + timedelta(hours=1), "a renewed claim is not a new state"
        assert store.mark_pushed(
            7, d365_id="g", d365_number="SO-7", external_number="WC-7", now=clock[0], token="t"
        )
        assert _since(store, 7) == T0 + timedelta(hours=2)
        assert store.orders_waiting_since([OrderState.PUSHED], T0 + timedelta(hours=3)) != []
        assert store.orders_waiting_since([OrderState.PUSHED], T0 + timedelta(hours=1)) == []
    finally:
        store.close()


def _since(store: SqlStore, woo_id: int) -> datetime | None:
    record = store.get_order(woo_id)
    assert record is not None
    return record.since


def test_a_migration_missing_below_the_highest_applied_one_is_applied(state_url: str) -> None:
    store = open_store(state_url)
    with store._tx() as cur:  # a store made while version 7 was not written yet
        store._exec(cur, "DELETE FROM schema_migrations WHERE version = 7")
        store._exec(cur, "DROP TABLE refunds")
    store.close()
    store = open_store(state_url)
    try:
        assert 7 in store.applied_versions()
        assert store.refund_counts() is not None, "the refunds table exists again"
    finally:
        store.close()


def test_a_page_of_orders_in_a_state_is_read_from_an_index_in_id_order(store: SqlStore) -> None:
    """Validate and push read the backlog a page at a time; a page must not sort every order in
    the state (a backlog's pages would cost time growing with the backlog)."""
    with store.batch():
        for woo_id in range(1, 3001):
            store.save_pulled_order(pulled(woo_id))
    query = "SELECT woo_id FROM orders WHERE state IN ('new') AND woo_id > 5 ORDER BY woo_id"
    with store._tx() as cur:
        if store.dialect.name == "sqlite":
            cur.execute(f"EXPLAIN QUERY PLAN {query} LIMIT 200")
            plan = " ".join(str(row[-1]) for row in cur.fetchall())
            assert "ix_orders_state_woo" in plan and "TEMP B-TREE" not in plan, plan
        else:
            cur.execute("ANALYZE TABLE orders")  # the statistics a store in use has
            cur.fetchall()
            cur.execute(f"EXPLAIN {query} LIMIT 200")
            columns = [c[0] for c in cur.description]
            (row,) = cur.fetchall()
            plan = dict(zip(columns, row, strict=True))
            assert "filesort" not in str(plan["Extra"]).lower(), repr(plan)
    ids = store.order_ids_after([OrderState.NEW], 5, 200)
    assert ids == list(range(6, 206))
