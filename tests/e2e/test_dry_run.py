"""``sync --dry-run`` runs the real steps over a scratch copy of the store: it says what the next
``sync`` does, and writes nowhere, not even a store not there yet or one whose migrations are
pending (docs/architecture.md, "Dry run")."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import CliResult
from tests.e2e.conftest import run_woo2d365
from tests.fixtures.cli import running_sandbox, with_config
from woo2d365.sandbox.world import REFUND_ACCOUNT, UNMAPPED, Sandbox
from woo2d365.store import open_store

TABLES = (
    "schema_migrations", "orders", "events", "runs", "sku_map", "held_skus", "kv", "locks",
    "bc_items", "bc_customers", "alerts", "shipment_reports", "invoice_records", "fulfilments",
    "refunds", "stock_targets", "stock_written",
)  # fmt: skip


def _contents(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the store at ``url``."""
    store = open_store(url, migrate=False)
    try:
        with store._tx() as cur:
            rows = {}
            for table in TABLES:
                cur.execute(f"SELECT * FROM {table} ORDER BY 1")  # noqa: S608 - our names
                rows[table] = [tuple(row) for row in cur.fetchall()]
            return rows
    finally:
        store.close()


def _created(url: str) -> list[str]:
    """What exists of the store at ``url``: its SQLite files, or the tables of its database."""
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        return sorted(str(p) for p in path.parent.glob(f"{path.name}*"))
    store = open_store(url, migrate=False)
    try:
        with store._tx() as cur:
            cur.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
            )
            return sorted(str(row[0]) for row in cur.fetchall())
    finally:
        store.close()


def _store_url(sandbox: Sandbox, backend: str, request: pytest.FixtureRequest) -> str:
    """The sandbox's SQLite file, or a new, empty MariaDB database."""
    if backend == "sqlite":
        return f"sqlite:///{sandbox.state_path}"
    return str(request.getfixturevalue("mysql_server").new_database_url())


def _named(dry: CliResult) -> tuple[set[str], set[int]]:
    """The sales orders a dry run would create and the orders it would hold."""
    would_create = set(re.findall(r"would create sales order (\S+) ", dry.stdout))
    would_hold = {int(i) for i in re.findall(r"order (\d+): would be held: ", dry.stdout)}
    return would_create, would_hold


def _external_numbers(sandbox: Sandbox) -> set[str]:
    return {o["externalDocumentNumber"] for o in sandbox.bc.sales_orders()}


def _held(sandbox: Sandbox) -> set[int]:
    status = json.loads(run_woo2d365(sandbox, "status", "--json").stdout)
    return {o["woo_id"] for o in status["orders"] if o["state"] == "held"}


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_a_dry_run_says_what_the_next_sync_does_and_writes_nowhere(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    with running_sandbox(tmp_path / "sandbox", orders=40, seed=11) as sandbox:
        url = f"sqlite:///{sandbox.state_path}"
        if backend == "mysql":
            url = request.getfixturevalue("mysql_server").new_database_url()
            with_config(sandbox, state={"url": url})
        later = sandbox.taken_order_ids()[:4]  # not the orders of unmapped SKUs (the last ids)
        for woo_id in later:
            sandbox.shop.set_status(woo_id, "on-hold")  # not taken by the first sync
        first = run_woo2d365(sandbox, "sync")
        assert first.exit_code == 1, first.stdout + first.stderr  # unmapped SKUs held
        held_before = _held(sandbox)
        for woo_id in later:
            sandbox.shop.set_status(woo_id, "processing")  # taken by the next sync
        released = UNMAPPED[0]
        mapped = run_woo2d365(sandbox, "map-sku", "add", released.product.sku, released.item_number)
        assert mapped.exit_code == 0, mapped.stderr
        stored = _contents(url)
        known = _external_numbers(sandbox)
        sandbox.shop.reset_requests()
        sandbox.bc.reset_requests()

        dry = run_woo2d365(sandbox, "sync", "--dry-run")

        assert dry.exit_code == 0, dry.stdout + dry.stderr  # held again, but none newly
        assert [r for r in sandbox.shop.requests if r.method != "GET"] == []
        assert [r for r in sandbox.bc.requests if r.method != "GET"] == []
        assert _contents(url) == stored, "the state store is only read"
        logged = [line for line in dry.stderr.splitlines() if line.startswith("warning: ")]
        assert all(" (dry run): " in line for line in logged), dry.stderr
        assert "changed in the shop after it was pushed" not in dry.stderr, "our write-back"
        would_create = set(re.findall(r"would create sales order (\S+) ", dry.stdout))
        would_hold = {int(i) for i in re.findall(r"order (\d+): would be held: ", dry.stdout)}
        summary = dry.stdout.strip().splitlines()[-1]
        assert summary == (
            f"dry run: {len(would_create)} sales orders would be created, "
            f"{len(would_hold)} orders held; nothing was written"
        )

        real = run_woo2d365(sandbox, "sync")

        assert real.exit_code == dry.exit_code, real.stdout + real.stderr
        created = _external_numbers(sandbox) - known
        assert created == would_create, "the dry run named exactly what the sync created"
        for woo_id in later:  # taken now: created, or held (the sandbox has bad orders too)
            number = f"WC-{sandbox.shop.orders[woo_id]['number']}"
            assert number in created or woo_id in would_hold, woo_id
        released_ids = held_before - would_hold
        assert released_ids, "the new mapping releases held orders"
        assert {f"WC-{sandbox.shop.orders[i]['number']}" for i in released_ids} <= created
        assert _held(sandbox) == would_hold
        assert would_hold < held_before


def test_with_the_shop_away_a_dry_run_still_shows_the_stored_orders_and_exits_3(
    tmp_path: Path,
) -> None:
    with running_sandbox(tmp_path / "sandbox", orders=10, seed=12, unmapped_orders=0) as sandbox:
        assert run_woo2d365(sandbox, "pull").exit_code == 0
        pulled = sandbox.taken_order_ids()
        sandbox.shop.stop()

        dry = run_woo2d365(sandbox, "sync", "--dry-run")

        assert dry.exit_code == 3, dry.stdout + dry.stderr  # as the real sync: a system away
        assert "error: pull (dry run): WooCommerce could not be reached" in dry.stderr
        named = {int(i) for i in re.findall(r"\(order (\d+), \d+ lines", dry.stdout)}
        named |= {int(i) for i in re.findall(r"order (\d+): would be held: ", dry.stdout)}
        assert named == set(pulled), "every stored order is still shown"
        assert "would create sales order WC-" in dry.stdout
        assert sandbox.bc.sales_orders() == []


def test_a_dry_run_with_a_limit_names_as_many_orders_as_the_sync_would_push(
    tmp_path: Path,
) -> None:
    with running_sandbox(tmp_path / "sandbox", orders=12, seed=13, unmapped_orders=0) as sandbox:
        dry = run_woo2d365(sandbox, "sync", "--dry-run", "--limit", "3")
        real = run_woo2d365(sandbox, "sync", "--limit", "3")

        would_create = set(re.findall(r"would create sales order (\S+) ", dry.stdout))
        assert len(would_create) == 3, dry.stdout
        assert _external_numbers(sandbox) == would_create, real.stdout + real.stderr
        assert real.exit_code == dry.exit_code


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_a_dry_run_on_a_fresh_machine_creates_no_store_and_names_what_the_first_sync_creates(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    with running_sandbox(tmp_path / "sandbox", orders=12, seed=14) as sandbox:
        url = _store_url(sandbox, backend, request)
        on = {"enabled": True}
        refunds = {**on, "account": REFUND_ACCOUNT}
        with_config(sandbox, state={"url": url}, shipments=on, refunds=refunds, stock=on)
        for command in ("push", "shipments", "refunds", "stock"):
            other = run_woo2d365(sandbox, command, "--dry-run")
            assert other.exit_code == 0, other.stdout + other.stderr
            assert _created(url) == [], f"{command} --dry-run created the store"
        with_config(sandbox, state={"url": url})  # the follow-up steps off: the sync compared

        dry = run_woo2d365(sandbox, "sync", "--dry-run")

        assert _created(url) == [], "no file, no table, no migration"
        assert [r for r in sandbox.bc.requests if r.method != "GET"] == []
        assert [r for r in sandbox.shop.requests if r.method != "GET"] == []
        would_create, would_hold = _named(dry)
        assert would_create and would_hold, dry.stdout  # the sandbox has unmapped SKUs

        real = run_woo2d365(sandbox, "sync")

        assert real.exit_code == dry.exit_code == 1, real.stdout + real.stderr
        assert _external_numbers(sandbox) == would_create, "the orders the first sync created"
        assert _held(sandbox) == would_hold


def _before_migration_9(url: str) -> None:
    """Turn the store at ``url`` into one of the version before migrations 9 and 10 (an upgrade
    of the tool whose migrations have not run yet)."""
    store = open_store(url, migrate=False)
    try:
        on_orders = " ON orders" if store.dialect.name == "mysql" else ""
        with store._tx() as cur:
            cur.execute("DELETE FROM schema_migrations WHERE version IN (9, 10)")
            cur.execute(f"DROP INDEX ix_orders_state_woo{on_orders}")
            cur.execute("ALTER TABLE bc_items DROP COLUMN blocked_reason")
    finally:
        store.close()


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_a_dry_run_never_migrates_a_store_whose_migrations_are_pending(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    with running_sandbox(tmp_path / "sandbox", orders=12, seed=15) as sandbox:
        url = _store_url(sandbox, backend, request)
        with_config(sandbox, state={"url": url})
        later = sandbox.taken_order_ids()[:3]
        for woo_id in later:
            sandbox.shop.set_status(woo_id, "on-hold")  # not taken by the first sync
        assert run_woo2d365(sandbox, "sync").exit_code == 1  # unmapped SKUs held
        for woo_id in later:
            sandbox.shop.set_status(woo_id, "processing")  # taken by the next sync
        known = _external_numbers(sandbox)
        _before_migration_9(url)
        stored = _contents(url)

        dry = run_woo2d365(sandbox, "sync", "--dry-run")

        assert _contents(url) == stored, "the store was only read: no migration, no row"
        would_create, would_hold = _named(dry)
        assert would_create, dry.stdout + dry.stderr

        real = run_woo2d365(sandbox, "sync")

        assert real.exit_code == dry.exit_code, real.stdout + real.stderr
        assert _external_numbers(sandbox) - known == would_create
        assert _held(sandbox) == would_hold
