"""Monitoring: ``status --check`` (each verdict built in the store) and the Prometheus textfile."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.cli.conftest import RunCli
from tests.fixtures.cli import prometheus_values
from woo2d365.cli import app
from woo2d365.errors import LockHeld, StoreUnavailable, UsageError
from woo2d365.model import OrderState
from woo2d365.monitoring import (
    MetricsSnapshot,
    SyncMetrics,
    metrics_text,
    parse_duration,
    render_metrics,
    write_metrics_file,
)
from woo2d365.store import SqlStore, open_store
from woo2d365.store.base import PulledOrder


def _seed(
    state_url: str,
    *,
    sync_age: timedelta | None = timedelta(minutes=2),
    outcome: str = "ok",
    held: int = 0,
    failed: int = 0,
    unreachable_shop: int = 0,
) -> None:
    """A store whose last sync ended ``sync_age`` ago with ``outcome``."""
    now = datetime.now(UTC)
    store = open_store(state_url)
    for i in range(held + failed + 1):
        woo_id = 100 + i
        store.save_pulled_order(
            PulledOrder(woo_id, str(woo_id), "processing", now, "EUR", "10.00", {"id": woo_id})
        )
        state = OrderState.HELD if i < held else OrderState.FAILED if i < held + failed else None
        if state is not None:
            store.set_state(woo_id, state, reason="test")
    if sync_age is not None:
        run = store.start_run("sync", now - sync_age - timedelta(seconds=5))
        store.finish_run(run, outcome, {}, now - sync_age)
    if unreachable_shop:
        store.set_value("alerts.unreachable.shop.count", str(unreachable_shop))
    store.close()


def _check(run_cli: RunCli, *args: str) -> tuple[int, str]:
    result = run_cli("status", "--check", *args)
    lines = result.stdout.splitlines()
    assert len(lines) == 1, f"exactly one line on stdout: {result.stdout!r} {result.stderr!r}"
    return result.exit_code, lines[0]


def test_check_is_ok_after_a_recent_successful_sync_with_nothing_waiting(
    run_cli: RunCli, state_url: str
) -> None:
    _seed(state_url)
    code, line = _check(run_cli)
    assert code == 0
    assert line.startswith("WOO2D365 OK - ")
    assert "| held=0;;;0 failed=0;;;0" in line and "last_success_age=" in line


def test_check_warns_about_held_and_failed_orders(run_cli: RunCli, state_url: str) -> None:
    _seed(state_url, outcome="attention", held=2, failed=1)
    code, line = _check(run_cli)
    assert code == 1
    assert line.startswith("WOO2D365 WARNING - ") and "2 held, 1 failed" in line
    assert "held=2;;;0 failed=1;;;0" in line


def test_check_warns_when_the_last_success_is_older_than_three_intervals(
    run_cli: RunCli, state_url: str
) -> None:
    _seed(state_url, sync_age=timedelta(minutes=20))  # 3 × 5 min = 15 min
    code, line = _check(run_cli)
    assert code == 1 and "last successful sync 20 min ago" in line
    assert _check(run_cli, "--max-age", "30m")[0] == 0, "--max-age overrides the warning age"


def test_check_is_critical_when_the_last_success_is_older_than_the_limit(
    run_cli: RunCli, state_url: str
) -> None:
    _seed(state_url, sync_age=timedelta(hours=2))
    code, line = _check(run_cli)
    assert code == 2 and line.startswith("WOO2D365 CRITICAL - ")
    assert _check(run_cli, "--critical-age", "1d")[0] == 1, "--critical-age overrides the limit"
    assert _check(run_cli, "--critical-age", "1d", "--max-age", "3h")[0] == 0


def test_check_is_critical_when_a_system_was_unreachable_in_the_latest_run(
    run_cli: RunCli, state_url: str
) -> None:
    _seed(state_url, unreachable_shop=1)
    code, line = _check(run_cli)
    assert code == 2 and "WooCommerce unreachable in the last run" in line


def test_check_is_critical_when_the_last_sync_could_not_reach_a_system(
    run_cli: RunCli, state_url: str
) -> None:
    _seed(state_url, outcome="unreachable")
    code, line = _check(run_cli)
    assert code == 2 and "could not reach a system" in line


def test_check_warns_before_the_first_sync(run_cli: RunCli) -> None:
    code, line = _check(run_cli)
    assert code == 1 and "no sync has run yet" in line


@pytest.mark.parametrize(
    "url",
    ["mysql://root@127.0.0.1:1/woo2d365", "sqlite:///{tmp}"],
    ids=["mysql-refused", "sqlite-directory"],
)
def test_check_is_unknown_when_the_store_cannot_be_read(tmp_path: Path, url: str) -> None:
    config = tmp_path / "woo2d365.toml"
    config.write_text(f'[state]\nurl = "{url.format(tmp=tmp_path)}"\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["--config", str(config), "status", "--check"])
    assert result.exit_code == 3
    assert result.stdout.startswith("WOO2D365 UNKNOWN - state store")
    assert len(result.stdout.splitlines()) == 1


def test_check_is_unknown_for_a_config_error_or_bad_options(
    tmp_path: Path, run_cli: RunCli
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[state\n", encoding="utf-8")
    result = run_cli("status", "--check", config=broken)
    assert result.exit_code == 3 and "not valid TOML" in result.stdout
    code, line = _check(run_cli, "--max-age", "soon")
    assert code == 3 and "--max-age 'soon' is not a duration" in line
    code, line = _check(run_cli, "--json")
    assert code == 3 and "--json" in line
    assert run_cli("status", "--max-age", "15m").exit_code == 2, "--max-age goes with --check"


def test_durations_read_the_usual_units() -> None:
    assert parse_duration("15m") == timedelta(minutes=15)
    assert parse_duration("2h") == timedelta(hours=2)
    assert parse_duration("180d") == timedelta(days=180)
    assert parse_duration(" 1h30m ") == timedelta(minutes=90)
    assert parse_duration("2w") == timedelta(weeks=2)
    for bad in ("15", "m", "1x", "0m", "-5m", "1.5h", ""):
        with pytest.raises(UsageError):
            parse_duration(bad)


# -- Prometheus textfile -------------------------------------------------------------------------

FINISHED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _snapshot(**changes: object) -> MetricsSnapshot:
    values: dict = {
        "outcome": "attention",
        "finished_at": FINISHED,
        "duration_seconds": 12.5,
        "counts": {"new": 0, "ready": 1, "held": 2, "pushing": 0, "pushed": 40, "failed": 0},
        "last_success_at": FINISHED - timedelta(minutes=5),
        "api": {"shop": (27, 1), "dynamics": (30, None)},
        "unreachable_runs": {"shop": 0, "dynamics": 0},
        "run_orders": {"pushed": 3},
    }
    values.update(changes)
    return MetricsSnapshot(**values)


def test_metrics_are_prometheus_text_with_help_and_type() -> None:
    text = metrics_text(render_metrics(_snapshot()))
    values = prometheus_values(text)
    assert text.endswith("\n")
    assert values['woo2d365_orders{state="held"}'] == 2
    assert values['woo2d365_orders{state="skipped"}'] == 0, "every state, zero included"
    assert values["woo2d365_run_duration_seconds"] == 12.5
    assert values["woo2d365_last_run_timestamp_seconds"] == FINISHED.timestamp()
    success = (FINISHED - timedelta(minutes=5)).timestamp()
    assert values["woo2d365_last_success_timestamp_seconds"] == success
    assert values['woo2d365_run_outcome{outcome="ok"}'] == 0
    assert values['woo2d365_run_outcome{outcome="attention"}'] == 1
    assert values['woo2d365_api_requests{system="shop"}'] == 27
    assert values['woo2d365_api_errors{system="shop"}'] == 1
    assert 'woo2d365_api_errors{system="dynamics"}' not in values
    names = {name.split("{")[0] for name in values}
    for name in names:
        assert f"# HELP {name} " in text and f"# TYPE {name} gauge" in text


def test_metrics_without_a_readable_store_still_tell_the_outcome() -> None:
    text = metrics_text(
        render_metrics(_snapshot(outcome="unreachable", counts=None, last_success_at=None))
    )
    assert "woo2d365_orders" not in text
    assert "woo2d365_last_success_timestamp_seconds" not in text
    assert prometheus_values(text)['woo2d365_run_outcome{outcome="unreachable"}'] == 1


def test_metrics_file_is_replaced_atomically_and_readable_by_the_collector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "woo2d365.prom"
    first, second = render_metrics(_snapshot()), render_metrics(_snapshot(duration_seconds=3))
    write_metrics_file(target, first)
    write_metrics_file(target, second)
    assert target.read_text(encoding="utf-8") == metrics_text(second)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["woo2d365.prom"], "no temporary file left"

    def broken_rename(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "rename", broken_rename)
    with pytest.raises(OSError):
        write_metrics_file(target, first)
    assert target.read_text(encoding="utf-8") == metrics_text(second), "the old file stays whole"
    assert [p.name for p in tmp_path.iterdir()] == ["woo2d365.prom"]


def test_metrics_are_written_when_the_store_fails_but_not_for_a_locked_run(
    tmp_path: Path,
) -> None:
    target = tmp_path / "m.prom"
    with pytest.raises(StoreUnavailable), SyncMetrics(target):
        raise StoreUnavailable("state store cannot be reached")
    assert 'woo2d365_run_outcome{outcome="unreachable"} 1' in target.read_text(encoding="utf-8")
    target.unlink()
    with pytest.raises(LockHeld), SyncMetrics(target):
        raise LockHeld("another sync holds the run lock")
    assert not target.exists(), "a locked run did nothing; the lock holder writes the file"


# -- counts per state at scale ----------------------------------------------------------------


def test_order_counts_match_a_full_count_as_time_goes_by(store: SqlStore) -> None:
    from woo2d365.monitoring import PUSHED_COUNT_KEY, order_counts

    now = datetime.now(UTC)
    clock = [now - timedelta(days=30)]
    store.clock = lambda: clock[0]

    def push(woo_id: int, at: datetime) -> None:
        clock[0] = at
        store.save_pulled_order(
            PulledOrder(woo_id, str(woo_id), "processing", at, "EUR", "1.00", {"id": woo_id})
        )
        store.mark_pushed(woo_id, d365_id="g", d365_number="S", external_number="WC", now=at)

    for i in range(10):
        push(i, now - timedelta(days=30 - i))  # long ago
    push(20, now - timedelta(minutes=10))  # within the margin
    store.save_pulled_order(PulledOrder(30, "30", "processing", now, "EUR", "1.00", {"id": 30}))
    assert order_counts(store, now) == store.counts()
    assert store.counts()["pushed"] == 11 and store.counts()["new"] == 1
    kept = json.loads(store.get_value(PUSHED_COUNT_KEY) or "{}")
    assert kept["count"] == 10, "the count up to an hour ago is kept"

    clock[0] = now + timedelta(minutes=5)  # an old pushed order changes in the shop
    store.save_pulled_order(PulledOrder(3, "3", "completed", now, "EUR", "1.00", {"id": 3}))
    for i in range(40, 45):
        push(i, now + timedelta(hours=2, minutes=i))
    later = now + timedelta(hours=4)
    assert order_counts(store, later) == store.counts()
    assert json.loads(store.get_value(PUSHED_COUNT_KEY) or "{}")["count"] == 16, "moved on"

    # Should an order ever leave "pushed" (by hand), the weekly recount puts it right.
    store.set_state(1, OrderState.FAILED, reason="moved by hand")
    assert order_counts(store, later)["pushed"] == store.counts()["pushed"] + 1
    assert order_counts(store, later + timedelta(days=8)) == store.counts()
