"""What cron mails and a terminal shows: each thing once, the orders that need a person named."""

from __future__ import annotations

import re
from pathlib import Path

from tests.e2e.conftest import run_woo2d365
from tests.fixtures.cli import running_sandbox
from woo2d365.store import open_store


def test_a_warning_shared_by_many_orders_is_logged_once_with_a_count_and_kept_per_order(
    tmp_path: Path,
) -> None:
    with running_sandbox(tmp_path / "sandbox", orders=40, seed=3) as sandbox:
        result = run_woo2d365(sandbox, "sync")
        assert result.exit_code == 1, result.stderr
        store = open_store(f"sqlite:///{sandbox.state_path}")
        try:
            warned = [
                order.woo_id
                for order in store.list_orders()
                if any("parent's SKU SHIRT" in e.message for e in store.events(order.woo_id))
            ]
        finally:
            store.close()
        assert len(warned) >= 2, "the sandbox has several orders of the SKU-less variation"
        lines = [line for line in result.stderr.splitlines() if "parent's SKU SHIRT" in line]
        assert len(lines) == 2, lines
        assert re.search(rf"the same for {len(warned) - 1} more orders? \(\d+", lines[1]), lines[1]

        # the cron summary names the held orders and why, not just how many
        out = result.stdout.splitlines()
        held = int(re.search(r"(\d+) held;", out[0]).group(1))  # type: ignore[union-attr]
        assert out[1] == f"held: {held} orders (woo2d365 status --state held)"
        named = [line for line in out[2:] if line.startswith("  order ")]
        assert len(named) == min(held, 5) and all(": " in line for line in named)
        assert "is not mapped (map-sku add" in result.stdout


def test_push_by_id_says_why_an_order_is_left_out_and_retry_now_says_what_it_did(
    tmp_path: Path,
) -> None:
    with running_sandbox(tmp_path / "sandbox", orders=8, seed=3) as sandbox:
        assert run_woo2d365(sandbox, "sync").exit_code == 1
        store = open_store(f"sqlite:///{sandbox.state_path}")
        try:
            held = next(o for o in store.list_orders() if o.state.value == "held")
            pushed = next(o for o in store.list_orders() if o.state.value == "pushed")
        finally:
            store.close()

        dry = run_woo2d365(sandbox, "push", "--dry-run", "--order", str(held.woo_id))
        assert dry.exit_code == 1 and dry.stdout.strip() == "[]"
        assert f"order {held.woo_id}: not pushed: held: {held.reason}" in dry.stderr
        again = run_woo2d365(sandbox, "push", "--order", str(pushed.woo_id))
        assert again.exit_code == 0, again.stderr
        assert f"already in Dynamics as {pushed.d365_number}" in again.stderr
        unknown = run_woo2d365(sandbox, "push", "--dry-run", "--order", "999999")
        assert unknown.exit_code == 1 and "not in the state store" in unknown.stderr

        retried = run_woo2d365(sandbox, "retry", str(held.woo_id), "--now")
        assert retried.exit_code == 1
        assert "retry: 1 reset, 0 not retried; validated: 0 ready, 1 still held" in retried.stdout
        assert f"  order {held.woo_id}: {held.reason}" in retried.stdout
