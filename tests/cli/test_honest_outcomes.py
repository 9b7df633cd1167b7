"""Honest outcomes (issue 12, parts 5 and 6), through the CLI with real stores and the emulators.

* A bug (an unexpected exception) ends any command with exit 70 and one line on stderr, the
  traceback only with ``-v``; its run is recorded ``error``, which never counts as a successful
  sync, and ``status --check`` is CRITICAL naming it; the metrics file says ``error``.
* A state store that cannot be read (not a database, corrupt, a missing directory) is no bug:
  one line naming ``state.url`` and the cause, exit 3, for every command; ``doctor`` fails the
  check with a hint.
* ``push`` and ``retry --now`` take the run lock of ``sync``: while another run holds it they exit
  4 at once and change nothing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.cli.conftest import CliResult, RunCli
from tests.fixtures.cli import (
    finish,
    prometheus_values,
    start_cli,
    unexpected_tracebacks,
    with_config,
)
from woo2d365 import runs
from woo2d365.cli import app
from woo2d365.pipeline import sync as sync_step
from woo2d365.sandbox.world import Sandbox
from woo2d365.store import SqlStore, open_store
from woo2d365.store.base import PulledOrder

INTERNAL = 70
BUG = "injected bug in a step"
BUG_LINE = f"woo2d365: internal error: RuntimeError: {BUG}; run with -v for the traceback"
OTHER_HOLDER = "another-host:4711"  # a holder of the run lock that is not this process


def _invoke(config: Path, *args: str, env: dict[str, str] | None = None) -> CliResult:
    """``woo2d365 --config CONFIG ARGS`` in this process (so a test can inject a bug)."""
    result = CliRunner().invoke(
        app, ["--config", str(config), *args], env=env, catch_exceptions=False
    )
    return CliResult(result.exit_code, result.stdout, result.stderr)


def _boom(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError(BUG)


@pytest.fixture
def world(
    tmp_path: Path, state_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Sandbox, str]]:
    """Both emulators (8 orders, some held for unmapped SKUs), the state store on each backend."""
    sandbox = Sandbox(tmp_path / "sandbox", orders=8, seed=3)
    sandbox.start()
    with_config(sandbox, state={"url": state_url})
    for name, value in sandbox.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    yield sandbox, state_url
    sandbox.stop()


def _status(config: Path) -> dict[str, Any]:
    result = _invoke(config, "status", "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def _stderr_lines(result: CliResult) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


# -- (d) a bug is exit 70, one line, and an `error` run ----------------------------------------


def test_a_bug_in_a_sync_step_exits_70_with_one_line_and_the_traceback_only_with_v(
    world: tuple[Sandbox, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox, _url = world
    monkeypatch.setattr("woo2d365.pipeline.sync.validate", _boom)
    metrics = tmp_path / "woo2d365.prom"

    quiet = _invoke(sandbox.config_path, "sync", "--metrics-file", str(metrics))
    assert quiet.exit_code == INTERNAL, quiet.stdout + quiet.stderr
    assert _stderr_lines(quiet) == [BUG_LINE]
    assert "Traceback" not in quiet.stdout + quiet.stderr
    text = metrics.read_text(encoding="utf-8")
    assert prometheus_values(text)['woo2d365_run_outcome{outcome="error"}'] == 1
    assert prometheus_values(text)['woo2d365_run_outcome{outcome="ok"}'] == 0
    # Needs sync() (woo2d365/pipeline/sync.py) to record the crashed run `error`, not `ok`:
    assert "woo2d365_last_success_timestamp_seconds" not in text, "no sync has succeeded"

    verbose = _invoke(sandbox.config_path, "-v", "sync")
    assert verbose.exit_code == INTERNAL
    assert BUG_LINE in verbose.stderr.splitlines()
    assert "Traceback (most recent call last)" in verbose.stderr
    assert f"RuntimeError: {BUG}" in verbose.stderr


# The run record of `sync` is written by sync() in woo2d365/pipeline/sync.py: it must record
# outcome `error` when an unexpected exception escapes a step (issue 12, part 6). This test (and
# the metrics assertion above) fail against a sync() that still records such a run `ok`.
def test_a_sync_ended_by_a_bug_is_recorded_error_and_status_check_is_critical_naming_it(
    world: tuple[Sandbox, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox, _url = world
    monkeypatch.setattr("woo2d365.pipeline.sync.push", _boom)
    assert _invoke(sandbox.config_path, "sync").exit_code == INTERNAL
    last = _status(sandbox.config_path)["last_sync"]
    assert last["outcome"] == "error", last
    assert last["finished_at"] is not None

    check = _invoke(sandbox.config_path, "status", "--check")
    assert check.exit_code == 2, check.stdout
    assert check.stdout.startswith("WOO2D365 CRITICAL - ")
    assert f"the last sync (run {last['id']} at " in check.stdout
    assert "ended with an internal error" in check.stdout
    assert len(check.stdout.splitlines()) == 1


def test_a_bug_in_a_recorded_step_records_error_and_exits_70(
    world: tuple[Sandbox, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox, url = world
    monkeypatch.setattr("woo2d365.runs.pull", _boom)
    result = _invoke(sandbox.config_path, "pull")
    assert result.exit_code == INTERNAL
    assert _stderr_lines(result) == [BUG_LINE]
    store = open_store(url)
    try:
        run = store.last_run("pull")
        assert run is not None and run.outcome == "error" and run.finished_at is not None
    finally:
        store.close()


def _seed_runs(url: str, outcomes: list[tuple[str, timedelta]]) -> list[int]:
    """Sync runs with these outcomes, ended that long ago, oldest first."""
    store = open_store(url)
    now = datetime.now(UTC)
    ids = []
    try:
        for outcome, ago in outcomes:
            run_id = store.start_run("sync", now - ago - timedelta(seconds=3))
            store.finish_run(run_id, outcome, {}, now - ago)
            ids.append(run_id)
    finally:
        store.close()
    return ids


def test_a_last_sync_in_error_is_critical_and_never_the_last_successful_one(
    run_cli: RunCli, state_url: str
) -> None:
    ok_run, error_run = _seed_runs(
        state_url, [("ok", timedelta(minutes=3)), ("error", timedelta(minutes=1))]
    )
    check = run_cli("status", "--check")
    assert check.exit_code == 2, check.stdout
    line = check.stdout.strip()
    assert line.startswith("WOO2D365 CRITICAL - the last sync (run ")
    assert f"(run {error_run} at " in line and "ended with an internal error" in line
    assert "last successful sync 3 min ago" in line, "the error run is not a success"
    store = open_store(state_url)
    try:
        success = store.last_successful_run("sync")
        assert success is not None and success.id == ok_run
    finally:
        store.close()
    status = json.loads(run_cli("status", "--json").stdout)
    assert status["last_sync"]["outcome"] == "error"

    _seed_runs(state_url, [("ok", timedelta(seconds=10))])
    assert run_cli("status", "--check").exit_code == 0, "a good sync after it clears it"


def test_only_errors_ever_after_is_critical_no_successful_sync(
    run_cli: RunCli, state_url: str
) -> None:
    _seed_runs(state_url, [("error", timedelta(minutes=2))])
    check = run_cli("status", "--check")
    assert check.exit_code == 2
    assert "ended with an internal error" in check.stdout
    assert "no sync has succeeded yet" in check.stdout


# -- (f) a state store that cannot be read is exit 3, not a bug --------------------------------


def _config(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "woo2d365.toml"
    config.write_text(f'[state]\nurl = "{url}"\n', encoding="utf-8")
    config.chmod(0o600)
    return config


COMMANDS = (
    ("status",),
    ("status", "--json"),
    ("sync",),
    ("pull",),
    ("push",),
    ("retry", "123"),
    ("map-sku", "list"),
    ("map-sku", "add", "SKU-1", "1000"),
    ("prune", "--older-than", "180d"),
)


def _assert_one_line_exit_3(config: Path, cause: str) -> None:
    for command in COMMANDS:
        result = _invoke(config, *command)
        where = f"{' '.join(command)}: {result.stderr!r}"
        assert result.exit_code == 3, where
        lines = _stderr_lines(result)
        assert len(lines) == 1, where
        assert lines[0].startswith("woo2d365: error: state store sqlite:///"), where
        assert "(state.url)" in lines[0] and cause in lines[0], where
        assert "internal error" not in result.stderr, where
        verbose = _invoke(config, "-v", *command)  # -v prints the traceback of what ended it
        assert verbose.exit_code == 3, verbose.stderr
        assert not unexpected_tracebacks(verbose.stderr), verbose.stderr


def test_a_file_that_is_not_a_database_exits_3_with_one_line_naming_state_url(
    tmp_path: Path,
) -> None:
    garbage = tmp_path / "woo2d365.db"
    garbage.write_bytes(os.urandom(16384))
    before = garbage.read_bytes()
    _assert_one_line_exit_3(_config(tmp_path, f"sqlite:///{garbage}"), "not a SQLite database")
    assert garbage.read_bytes() == before, "the file is left as it was"
    check = _invoke(_config(tmp_path, f"sqlite:///{garbage}"), "status", "--check")
    assert check.exit_code == 3 and check.stdout.startswith("WOO2D365 UNKNOWN - state store")


def test_a_corrupt_database_exits_3_with_one_line_naming_state_url(tmp_path: Path) -> None:
    path = tmp_path / "woo2d365.db"
    store = open_store(f"sqlite:///{path}")
    now = datetime.now(UTC)
    for woo_id in range(1, 200):
        raw = {"id": woo_id, "note": "x" * 400}
        store.save_pulled_order(
            PulledOrder(woo_id, str(woo_id), "processing", now, "EUR", "1.00", raw)
        )
    store.close()
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 8 * page
    data[page:] = bytes([0x5A]) * (len(data) - page)  # every page but the header page
    path.write_bytes(bytes(data))
    _assert_one_line_exit_3(_config(tmp_path, f"sqlite:///{path}"), "corrupt")


def test_a_store_in_a_missing_directory_exits_3_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "woo2d365.db"
    _assert_one_line_exit_3(
        _config(tmp_path, f"sqlite:///{missing}"), f"the directory {missing.parent} does not exist"
    )
    assert not missing.parent.exists(), "a typo in state.url never starts a new store elsewhere"


WIDE = {"COLUMNS": "1000"}


@pytest.mark.parametrize("case", ["garbage", "missing-directory"])
def test_doctor_fails_the_state_store_check_with_a_hint_instead_of_crashing(
    tmp_path: Path, case: str
) -> None:
    path = tmp_path / "woo2d365.db"
    if case == "garbage":
        path.write_bytes(os.urandom(8192))
        hint = "restore the file from a backup"
    else:
        path = tmp_path / "gone" / "woo2d365.db"
        hint = f"mkdir -p {path.parent}"
    result = _invoke(_config(tmp_path, f"sqlite:///{path}"), "-v", "doctor", env=WIDE)
    assert result.exit_code == 3, "as status: the state store cannot be read"
    assert not unexpected_tracebacks(result.stdout + result.stderr), result.stderr
    rows = [line for line in result.stdout.splitlines() if line.strip().startswith("state store ")]
    assert len(rows) == 1, result.stdout
    assert "│ fail " in rows[0] and "state.url" in rows[0] and hint in rows[0]


# -- (c) push and retry --now take the run lock ------------------------------------------------


def _store_snapshot(store: SqlStore, woo_id: int) -> tuple[Any, ...]:
    order = store.get_order(woo_id)
    assert order is not None
    return (
        store.counts(),
        order.state,
        order.attempts,
        order.reason,
        len(store.events(woo_id)),
        store.last_run("push"),
        store.last_run("retry"),
    )


def test_push_and_retry_now_exit_4_and_change_nothing_while_another_run_holds_the_lock(
    world: tuple[Sandbox, str],
) -> None:
    sandbox, url = world
    config = sandbox.config_path
    assert _invoke(config, "pull").exit_code == 0
    assert _invoke(config, "validate").exit_code == 1, "some orders are held"
    held = [o["woo_id"] for o in _status(config)["orders"] if o["state"] == "held"]
    ready = [o["woo_id"] for o in _status(config)["orders"] if o["state"] == "ready"]
    assert held and ready
    store = open_store(url)
    try:
        assert store.acquire_lock("sync", OTHER_HOLDER, datetime.now(UTC), ttl_seconds=300)
        before = _store_snapshot(store, held[0])
        for command in (("push",), ("retry", str(held[0]), "--now"), ("retry", "123", "--now")):
            result = _invoke(config, *command)
            assert result.exit_code == 4, f"{command}: {result.stdout}{result.stderr}"
            lines = _stderr_lines(result)
            assert len(lines) == 1 and "run lock" in lines[0] and OTHER_HOLDER in lines[0], lines
            assert _store_snapshot(store, held[0]) == before, f"{command} changed the store"
        assert sandbox.bc.sales_orders() == [], "nothing was sent to Dynamics"
        assert store.lock_holder("sync") == OTHER_HOLDER, "the holder keeps its lock"

        store.release_lock("sync", OTHER_HOLDER)
        pushed = _invoke(config, "push")
        assert pushed.exit_code == 0, pushed.stdout + pushed.stderr
        assert len(sandbox.bc.sales_orders()) == len(ready)
        assert store.lock_holder("sync") is None, "push releases the run lock"
        retried = _invoke(config, "retry", str(held[0]), "--now")
        assert retried.exit_code == 1, "still held: nothing was mapped"
        assert store.last_run("retry") is not None and store.lock_holder("sync") is None
    finally:
        store.close()


def test_a_sync_push_or_follow_up_that_loses_the_run_lock_is_recorded_as_an_error(
    world: tuple[Sandbox, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox, url = world
    config = sandbox.config_path
    with_config(sandbox, state={"url": url}, stock={"enabled": True})
    assert _invoke(config, "pull").exit_code == 0
    real_lock = runs.run_lock

    @contextmanager
    def losing_lock(ctx: Any, ttl: float | None = None) -> Iterator[Any]:
        with real_lock(ctx, ttl) as heartbeat:
            heartbeat.lost.set()  # as if the heartbeat could not renew the lease
            yield heartbeat

    monkeypatch.setattr(runs, "run_lock", losing_lock)
    monkeypatch.setattr(sync_step, "run_lock", losing_lock)
    store = open_store(url)
    try:
        for command, what in (("push", "push"), ("stock", "step"), ("sync", "sync")):
            result = _invoke(config, command)
            run = store.last_run(command)
            assert run is not None and run.outcome == "error", (command, run)
            events = [e.message for e in store.run_events(run.id, levels=["error"])]
            assert f"the run lock was lost while this {what} ran" in events, events
            assert "the run lock was lost" in result.stderr
            assert result.exit_code == 3, (command, "a run that lost the lock is never a success")
    finally:
        store.close()


def test_push_and_retry_now_exit_4_while_a_sync_runs(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path / "sandbox", orders=8, seed=3)
    sandbox.start()
    try:
        config = sandbox.config_path
        env = sandbox.environment()
        assert _invoke(config, "pull", env=env).exit_code == 0
        assert _invoke(config, "validate", env=env).exit_code == 1
        held = next(o["woo_id"] for o in _status_env(config, env)["orders"] if o["state"] == "held")
        sandbox.bc.latency = 0.4  # every Dynamics request is slow: the sync holds the lock
        running = start_cli(sandbox, "sync")
        store = open_store(f"sqlite:///{sandbox.state_path}")
        try:
            deadline = time.monotonic() + 20
            while store.lock_holder("sync") is None:
                assert running.poll() is None, "the sync ended before the lock was seen"
                assert time.monotonic() < deadline, "the sync never took the run lock"
                time.sleep(0.05)
            for command in (("push",), ("retry", str(held), "--now")):
                result = _invoke(config, *command, env=env)
                assert result.exit_code == 4, f"{command}: {result.stdout}{result.stderr}"
                assert "run lock" in result.stderr
            assert running.poll() is None, "the sync was still running meanwhile"
        finally:
            done = finish(running, timeout=120)
            store.close()
        assert done.exit_code == 0, done.stdout + done.stderr  # held before: no news
        store = open_store(f"sqlite:///{sandbox.state_path}")
        try:
            assert store.last_run("push") is None and store.last_run("retry") is None
        finally:
            store.close()
    finally:
        sandbox.stop()


def _status_env(config: Path, env: dict[str, str]) -> dict[str, Any]:
    result = _invoke(config, "status", "--json", env=env)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)
