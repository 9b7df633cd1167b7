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


def _seed_people(state_url: str, now: datetime) -> None:
    """Orders in every state a person meets, entered at known times (UTC)."""
    clock = [now - timedelta(hours=30)]
    store = open_store(state_url, clock=lambda: clock[0])
    for woo_id in range(201, 226):
        raw = {"id": woo_id, "billing": {"email": f"buyer{woo_id % 3}@example.test"}}
        store.save_pulled_order(
            PulledOrder(woo_id, f"A-{woo_id}", "processing", T0, "EUR", "10.00", raw)
        )
    for woo_id in range(201, 221):
        clock[0] += timedelta(minutes=1)
        store.set_state(woo_id, OrderState.PUSHED)
    clock[0] = now - timedelta(hours=26)
    store.set_state(
        221,
        OrderState.HELD,
        reason='line 1 "Mok": SKU MUG-DELFTS-BLAUW-EXTRA-LONG-NAME is not mapped (map-sku add …)',
    )
    clock[0] = now - timedelta(hours=2)
    store.set_state(
        222, OrderState.FAILED, reason="Dynamics refused it: Internal_InvalidTableRelation"
    )
    store.close()


def test_status_puts_what_needs_you_first_in_80_columns(run_cli: RunCli, state_url: str) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    _seed_people(state_url, now)
    result = run_cli("status", "--utc", "--limit", "4")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    assert lines[0] == "Orders: 1 held, 1 failed, 0 pushing, 0 ready, 3 new, 20 pushed, 0 skipped"
    text = " ".join(line.strip() for line in lines)
    assert (
        "Needs you: 1 held (longest: order 221, 26.0 h); 1 failed (longest: order 222, 2.0 h)"
        in text
    )
    table = lines[lines.index(next(line for line in lines if line.startswith("id "))) :]
    held_since = (now - timedelta(hours=26)).strftime("%Y-%m-%d %H:%M")
    assert table[0].split() == ["id", "number", "state", "since", "D365", "reason"]
    assert table[1].startswith(f"221  A-221   held    {held_since}")
    assert table[1].endswith("…") and len(table[1]) == 80, "a long reason is cut at 80 columns"
    assert table[2].startswith("222  A-222   failed")
    assert [row.split()[0] for row in table[3:5]] == ["220", "219"], "then the latest updated"
    assert "+00:00" not in result.stdout and "." not in held_since, "minutes, no microseconds"


def test_status_narrows_by_number_email_and_since(run_cli: RunCli, state_url: str) -> None:
    now = datetime.now(UTC)
    _seed_people(state_url, now)

    def ids(*args: str) -> list[int]:
        result = run_cli("status", "--json", *args)
        assert result.exit_code == 0, result.stderr
        return [o["woo_id"] for o in json.loads(result.stdout)["orders"]]

    assert ids("--number", "A-207") == [207]
    assert sorted(ids("--email", "BUYER1@example.test")) == [
        w for w in range(201, 226) if w % 3 == 1
    ]
    since = (now - timedelta(hours=3)).isoformat()
    assert ids("--since", since) == [222]
    bad = run_cli("status", "--since", "yesterday")
    assert bad.exit_code == 2 and "--since 'yesterday'" in bad.stderr
    assert "No order matches." in run_cli("status", "--number", "nope").stdout


def test_check_warns_when_an_order_waits_longer_than_max_wait(
    run_cli: RunCli, state_url: str
) -> None:
    now = datetime.now(UTC)
    clock = [now - timedelta(hours=30)]
    store = open_store(state_url, clock=lambda: clock[0])
    store.save_pulled_order(PulledOrder(301, "301", "processing", T0, "EUR", "1.00", {}))
    store.set_state(301, OrderState.READY)
    run = store.start_run("sync", now, worker="h:1")
    store.finish_run(run, "ok", {}, now)
    store.close()

    warned = run_cli("status", "--check")
    assert warned.exit_code == 1, warned.stdout
    assert "order 301 ready for 30.0 h (over 24.0 h)" in warned.stdout
    assert "woo2d365 status 301" in warned.stdout
    assert run_cli("status", "--check", "--max-wait", "2d").exit_code == 0
