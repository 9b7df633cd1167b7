"""The scratch copies a dry run works on: the store they are copied from is only read, and a
dry run never creates or migrates it (docs/architecture.md, "Dry run")."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.store.test_store import pulled
from woo2d365.model import OrderState
from woo2d365.store import SqlStore, open_dry_run_store, open_store
from woo2d365.store.base import CachedCustomer, CachedItem
from woo2d365.store.migrations import LATEST_VERSION
from woo2d365.store.scratch import KEYS, PAGE
from woo2d365.store.sql import ScratchStore

T0 = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)


def test_the_copy_holds_what_the_steps_read_and_changes_in_it_stay_there(store: SqlStore) -> None:
    orders = PAGE * 2 + 7  # more than one page of each paged table
    with store.batch():
        for woo_id in range(1, orders + 1):
            store.save_pulled_order(pulled(woo_id))
    store.mark_pushed(1, d365_id="g-1", d365_number="S-1", external_number="WC-1", now=T0)
    store.set_state(2, OrderState.HELD, reason="SKU X is not mapped")
    store.map_sku("X", "1000", note="", by="test", now=T0)
    store.upsert_items([CachedItem(f"{n}", f"id-{n}", "Item", False) for n in range(PAGE + 1)])
    store.put_customer(CachedCustomer("a@example.com", "C1", "id-c1"))
    store.set_value("pull.cursor", "2026-11-01T12:00:00Z")

    with store.scratch_copy() as scratch:
        assert scratch.count_in_state(OrderState.NEW) == orders - 2
        held = scratch.get_order(2, with_raw=True)
        assert held is not None and held.reason == "SKU X is not mapped"
        assert held.raw == pulled(2).raw
        done = scratch.get_order(1, with_raw=True)
        assert done is not None and done.state is OrderState.PUSHED
        assert done.d365_number == "S-1" and done.raw == pulled(1).raw
        assert scratch.sku_mappings()[0].item_number == "1000"
        assert scratch.item_count() == PAGE + 1
        assert scratch.get_customer("a@example.com") is not None
        assert scratch.get_value("pull.cursor") == "2026-11-01T12:00:00Z"
        scratch.set_state(3, OrderState.READY)
        scratch.set_value("pull.cursor", "later")

    record = store.get_order(3)
    assert record is not None and record.state is OrderState.NEW, "the store was only read"
    assert store.get_value("pull.cursor") == "2026-11-01T12:00:00Z"


def _tables(url: str) -> dict[str, list[tuple[Any, ...]]] | None:
    """Every row of every table of the store at ``url`` (its schema's own rows included), the
    columns of ``bc_items`` (migration 9 adds one); None for a SQLite file that is not there."""
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        return None
    store = open_store(url, migrate=False)
    try:
        with store._tx() as cur:
            found = {
                table
                for table in (*KEYS, "schema_migrations")
                if store.dialect.table_exists(cur, table)
            }
            rows: dict[str, list[tuple[Any, ...]]] = {}
            for table in sorted(found):
                cur.execute(f"SELECT * FROM {table} ORDER BY 1")  # noqa: S608 - our names
                rows[table] = [tuple(row) for row in cur.fetchall()]
            if "bc_items" in found:
                rows["bc_items columns"] = [tuple(sorted(store._column_names(cur, "bc_items")))]
            return rows
    finally:
        store.close()


def test_a_dry_run_over_a_store_not_there_yet_works_on_an_empty_one_and_creates_nothing(
    state_url: str,
) -> None:
    before = _tables(state_url)
    assert not before, "a SQLite file not there yet, a database without tables"

    dry = open_dry_run_store(state_url)
    try:
        assert dry.schema_version() == LATEST_VERSION
        assert dry.counts() == {state.value: 0 for state in OrderState}
        dry.save_pulled_order(pulled(1))  # the steps write into it as into the real one
    finally:
        dry.close()

    assert _tables(state_url) == before, "nothing created, no table, no migration"
    assert isinstance(dry, ScratchStore) and not Path(dry._folder.name).exists(), "deleted"


def test_a_dry_run_over_a_store_with_pending_migrations_works_on_a_migrated_copy(
    state_url: str,
) -> None:
    older = open_store(state_url, migrate=False)
    try:
        older.migrate(only=range(1, 9))  # a store of the version before migration 9
        with older.batch():
            for woo_id in range(1, PAGE + 4):  # more than one page
                older.save_pulled_order(pulled(woo_id))
        older.set_state(2, OrderState.HELD, reason="SKU X is not mapped")
        older.map_sku("X", "1000", note="", by="test", now=T0)
        older.put_customer(CachedCustomer("a@example.com", "C1", "id-c1"))
        older.set_value("pull.cursor", "2026-11-01T12:00:00Z")
        older.finish_run(older.start_run("sync", T0, worker="host:1"), "ok", {}, T0)
    finally:
        older.close()
    before = _tables(state_url)
    assert before is not None and "blocked_reason" not in before["bc_items columns"][0]

    dry = open_dry_run_store(state_url)
    try:
        assert dry.schema_version() == LATEST_VERSION
        assert dry.count_in_state(OrderState.NEW) == PAGE + 2
        held = dry.get_order(2, with_raw=True)
        assert held is not None and held.reason == "SKU X is not mapped"
        assert held.raw == pulled(2).raw
        assert dry.sku_mappings()[0].item_number == "1000"
        assert dry.get_customer("a@example.com") is not None
        assert dry.get_value("pull.cursor") == "2026-11-01T12:00:00Z"
        last = dry.last_run("sync")
        assert last is not None and last.outcome == "ok"
        dry.upsert_items([CachedItem("1000", "id-1000", "Item", False)])  # needs migration 9
    finally:
        dry.close()

    assert _tables(state_url) == before, "the store was only read, never migrated"


def test_a_dry_run_reads_a_store_whose_schema_is_current_in_place(state_url: str) -> None:
    open_store(state_url).close()
    dry = open_dry_run_store(state_url)
    try:
        assert not isinstance(dry, ScratchStore), "no copy of a store that needs no migration"
    finally:
        dry.close()
