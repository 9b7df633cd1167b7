"""A change made in the shop after the push needs a person until ``ack`` says it was seen."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import run_woo2d365
from tests.fixtures.cli import prometheus_values, running_sandbox


def test_a_change_after_the_push_warns_until_it_is_acknowledged(tmp_path: Path) -> None:
    with running_sandbox(
        tmp_path / "sandbox", orders=6, unmapped_orders=0, seed=2, pushable_only=True
    ) as sandbox:
        assert run_woo2d365(sandbox, "sync").exit_code == 0
        assert run_woo2d365(sandbox, "status", "--check").exit_code == 0
        status = json.loads(run_woo2d365(sandbox, "status", "--json").stdout)
        woo_id = next(o["woo_id"] for o in status["orders"] if o["state"] == "pushed")
        sandbox.shop.modify_order(woo_id, customer_note="Please deliver after six")

        metrics = tmp_path / "woo2d365.prom"
        run_woo2d365(sandbox, "sync", "--metrics-file", str(metrics))
        status = json.loads(run_woo2d365(sandbox, "status", "--json").stdout)
        assert status["changed_after_push"] == [woo_id]
        people = " ".join(run_woo2d365(sandbox, "status").stdout.split())
        assert "1 changed in the shop after the push" in people
        assert f"order {woo_id} changed in the shop after it was pushed as" in people
        assert "(details changed)" in people, "says what changed"
        check = run_woo2d365(sandbox, "status", "--check")
        assert check.exit_code == 1, check.stdout
        assert "1 changed in the shop after the push" in check.stdout
        assert f"woo2d365 ack {woo_id}" in check.stdout
        assert prometheus_values(metrics.read_text())["woo2d365_changed_after_push"] == 1

        done = run_woo2d365(sandbox, "ack", str(woo_id))
        assert done.exit_code == 0, done.stderr
        detail = json.loads(run_woo2d365(sandbox, "status", str(woo_id), "--json").stdout)
        assert detail["changed_after_push_at"] is None
        assert "acknowledged by" in detail["events"][-1]["message"]
        assert (
            json.loads(run_woo2d365(sandbox, "status", "--json").stdout)["changed_after_push"] == []
        )
        assert run_woo2d365(sandbox, "status", "--check").exit_code == 0
        again = run_woo2d365(sandbox, "ack", str(woo_id))
        assert again.exit_code == 2 and "no change after its push" in again.stderr
