"""The follow-up steps (shipments, refunds, stock) share their switch, lock and run record."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e.conftest import run_woo2d365
from tests.fixtures.cli import running_sandbox, with_config
from woo2d365.store import open_store

STEPS = ("shipments", "refunds", "stock")


def test_a_step_switched_off_does_nothing_and_says_so(tmp_path: Path) -> None:
    with running_sandbox(tmp_path / "sandbox", orders=5, seed=2) as sandbox:
        for step in STEPS:
            result = run_woo2d365(sandbox, step)
            assert result.exit_code == 0, result.stderr
            assert f"[{step}] enabled = false" in result.stdout
        store = open_store(f"sqlite:///{sandbox.state_path}")
        try:
            assert all(store.last_run(step) is None for step in STEPS), "no run was recorded"
        finally:
            store.close()


@pytest.mark.parametrize("enabled", [True, False], ids=["on", "off"])
@pytest.mark.parametrize("step", STEPS)
def test_a_step_exits_4_and_records_nothing_while_another_run_holds_the_lock(
    tmp_path: Path, step: str, enabled: bool
) -> None:
    """The contract: each of these commands exits 4 while another run holds the lock, a step
    switched off included."""
    with running_sandbox(tmp_path / "sandbox", orders=5, seed=2) as sandbox:
        with_config(sandbox, **{step: {"enabled": enabled}})
        store = open_store(f"sqlite:///{sandbox.state_path}")
        try:
            assert store.acquire_lock("sync", "elsewhere:1", datetime.now(UTC), ttl_seconds=300)
            result = run_woo2d365(sandbox, step)
            assert result.exit_code == 4, result.stdout + result.stderr
            assert "run lock" in result.stderr and step in result.stderr
            assert store.last_run(step) is None
            store.release_lock("sync", "elsewhere:1")
            done = run_woo2d365(sandbox, step)
            assert done.exit_code == 0, done.stdout + done.stderr
            recorded = store.last_run(step) is not None
            assert recorded is enabled, "a run is recorded when the step ran"
        finally:
            store.close()


def test_sync_runs_the_enabled_steps_after_the_push_and_counts_them(tmp_path: Path) -> None:
    with running_sandbox(
        tmp_path / "sandbox", orders=5, unmapped_orders=0, seed=2, pushable_only=True
    ) as sandbox:
        with_config(sandbox, shipments={"enabled": True}, stock={"enabled": True})
        assert run_woo2d365(sandbox, "sync").exit_code == 0
        store = open_store(f"sqlite:///{sandbox.state_path}")
        try:
            run = store.last_run("sync")
            assert run is not None
            counts = run.counts
            assert "shipments_attention" in counts and "stock_attention" in counts
            assert "refunds_attention" not in counts, "refunds is off"
        finally:
            store.close()


@pytest.mark.parametrize("step", ["shipments", "refunds", "stock"])
def test_a_step_not_built_for_finance_and_operations_says_so_in_one_line(
    tmp_path: Path, step: str
) -> None:
    from woo2d365.sandbox.world import FINANCE_OPERATIONS

    with running_sandbox(tmp_path / "sandbox", orders=5, seed=2, erp=FINANCE_OPERATIONS) as sandbox:
        with_config(sandbox, **{step: {"enabled": True}})
        result = run_woo2d365(sandbox, step)
        assert result.exit_code == 2, result.stdout + result.stderr
        lines = result.stderr.strip().splitlines()
        assert lines[-1].endswith(f"set [{step}] enabled = false"), lines
        assert 'dynamics.product = "finance-operations"' in lines[-1]
