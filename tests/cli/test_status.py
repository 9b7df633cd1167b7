"""``status``: what operators and scripts read about the orders."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.cli.conftest import RunCli
from woo2d365.model import OrderState
from woo2d365.store import open_store
from woo2d365.store.base import PulledOrder

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _seed(state_url: str) -> None:
    clock = [T0]
    store = open_store(state_url, clock=lambda: clock[0])
    for i, woo_id in enumerate((101, 102, 103)):
        clock[0] = T0 + timedelta(minutes=i)
        store.save_pulled_order(
            PulledOrder(woo_id, f"N{woo_id}", "processing", T0, "EUR", "10.00", {"id": woo_id})
        )
    clock[0] = T0 + timedelta(minutes=5)
    store.set_state(102, OrderState.HELD, reason='line 1 "Widget": SKU W-9 is not mapped')
    store.add_event("validate", "held: SKU W-9 is not mapped", level="warning", woo_id=102)
    run = store.start_run("sync", T0, worker="h:1")
    store.finish_run(run, "attention", {"pulled": 3, "held": 1}, T0 + timedelta(seconds=2))
    store.close()


def test_status_json_has_counts_last_sync_and_orders_newest_first(
    run_cli: RunCli, state_url: str
) -> None:
    _seed(state_url)
    result = run_cli("status", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["counts"] == {
        "new": 2,
        "ready": 0,
        "held": 1,
        "pushing": 0,
        "pushed": 0,
        "failed": 0,
        "skipped": 0,
    }
    assert data["last_sync"]["outcome"] == "attention"
    assert data["last_sync"]["started_at"] == "2026-11-01T12:00:00+00:00"
    assert [o["woo_id"] for o in data["orders"]] == [102, 103, 101]
    held = data["orders"][0]
    assert held["state"] == "held" and "W-9" in held["reason"] and held["number"] == "N102"
    assert held["d365_number"] is None and held["attempts"] == 0


def test_status_filters_by_state_and_limits(run_cli: RunCli, state_url: str) -> None:
    _seed(state_url)
    held = json.loads(run_cli("status", "--json", "--state", "held").stdout)
    assert [o["woo_id"] for o in held["orders"]] == [102]
    limited = json.loads(run_cli("status", "--json", "--limit", "1").stdout)
    assert [o["woo_id"] for o in limited["orders"]] == [102]


def test_status_of_one_order_lists_its_events(run_cli: RunCli, state_url: str) -> None:
    _seed(state_url)
    data = json.loads(run_cli("status", "102", "--json").stdout)
    assert data["woo_id"] == 102 and data["state"] == "held"
    assert data["events"][0]["step"] == "validate"
    assert set(data["events"][0]) == {"at", "step", "level", "message"}
    assert {"d365_id", "d365_number", "attempts", "reason", "number"} <= set(data)


def test_status_table_shows_counts_and_reasons(run_cli: RunCli, state_url: str) -> None:
    _seed(state_url)
    result = run_cli("status")
    assert result.exit_code == 0
    assert "held" in result.stdout and "W-9" in result.stdout
    assert "Last sync" in result.stdout and "attention" in result.stdout
    assert "Oldest waiting: order 101" in result.stdout
