"""Which shop orders are taken is one rule, the same for pull, validate, push and a dry run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.e2e.conftest import run_woo2d365
from tests.fixtures.cli import running_sandbox, with_config


def test_statuses_written_in_capitals_are_taken_as_the_shop_slugs(tmp_path: Path) -> None:
    with running_sandbox(tmp_path / "sandbox", orders=12, unmapped_orders=0, seed=5) as sandbox:
        with_config(sandbox, woocommerce={"statuses": [" Processing", "COMPLETED"]})
        result = run_woo2d365(sandbox, "sync")
        assert result.exit_code == 1, result.stdout + result.stderr  # a deleted product: held
        taken = sandbox.taken_order_ids()
        pushed = {doc["externalDocumentNumber"] for doc in sandbox.bc.sales_orders()}
        status = json.loads(run_woo2d365(sandbox, "status", "--json").stdout)
        states = {order["woo_id"]: order["state"] for order in status["orders"]}
        assert taken and pushed
        assert {f"WC-{sandbox.shop.orders[i]['number']}" for i in taken
                if states.get(i) == "pushed"} == pushed  # fmt: skip
        assert all(states.get(i) in ("pushed", "held") for i in taken), states


def test_a_first_dry_run_lists_no_order_created_before_the_start_date(tmp_path: Path) -> None:
    with running_sandbox(tmp_path / "sandbox", orders=10, unmapped_orders=0, seed=6) as sandbox:
        start = datetime.now(UTC) - timedelta(minutes=5)  # every order was created before
        for woo_id in list(sandbox.shop.orders):
            sandbox.shop.modify_order(woo_id, customer_note="edited today")  # modified after it
        with_config(sandbox, woocommerce={"start_date": start.isoformat()})
        preview = run_woo2d365(sandbox, "sync", "--dry-run")
        assert preview.exit_code == 0, preview.stdout + preview.stderr
        assert "would create" not in preview.stdout, preview.stdout
        assert "0 sales orders would be created" in preview.stdout
        real = run_woo2d365(sandbox, "sync")
        assert real.exit_code == 0, real.stdout + real.stderr
        assert sandbox.bc.sales_orders() == [], "the real sync takes none of them either"
