"""Two ``push`` processes and one ``sync`` racing on one MariaDB store never send an order twice.

They take the run lock, so one works and the others exit 4; the race includes orders left in
doubt by a dropped connection (all three try to settle them),
ready orders (all three try to claim them) and orders the sync pulls while the pushes run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import MysqlServer
from tests.fixtures.cli import (
    assert_nothing_twice,
    finish,
    run_cli,
    running_sandbox,
    sales_orders_by_external_number,
    start_cli,
    status_json,
    unexpected_tracebacks,
    with_config,
)
from woo2d365.sandbox.shop_data import DEFAULT_BILLING, build_order, product_by_sku
from woo2d365.sandbox.world import Sandbox

pytestmark = pytest.mark.mysql
IN_DOUBT_AFTER_1_S = {"WOO2D365_DYNAMICS__TIMEOUT_SECONDS": "1"}


@pytest.fixture
def shared_store_sandbox(tmp_path: Path, mysql_server: MysqlServer) -> Iterator[Sandbox]:
    """A sandbox of 24 orders whose state store is a fresh MariaDB database."""
    with running_sandbox(tmp_path / "sandbox", orders=24, unmapped_orders=0, seed=9) as sandbox:
        with_config(sandbox, state={"url": mysql_server.new_database_url()})
        yield sandbox


def test_two_pushes_and_a_sync_at_once_never_send_an_order_twice(
    shared_store_sandbox: Sandbox,
) -> None:
    sandbox = shared_store_sandbox
    sandbox.bc.drop_after_commit_next(2)  # two orders in doubt: committed, never answered
    first = run_cli(sandbox, "sync", "--limit", "6", env=IN_DOUBT_AFTER_1_S)
    assert first.exit_code == 1, first.stdout + first.stderr  # a deleted product: held
    states = [o["state"] for o in status_json(sandbox)["orders"]]
    assert states.count("pushing") == 2 and states.count("ready") > 5, states

    created = datetime.now(UTC) - timedelta(minutes=20)
    sandbox.shop.add_orders(  # new in the shop: only the sync's pull sees them
        build_order(
            woo_id,
            items=[(product_by_sku("WIDGET-001"), 1), (product_by_sku("STROOP-8"), 3)],
            created_gmt=created + timedelta(seconds=woo_id % 100),
            shipping=Decimal("4.09"),
            billing={**DEFAULT_BILLING, "email": f"race{woo_id % 3}@example.nl"},
        )
        for woo_id in range(3001, 3011)
    )
    time.sleep(1.1)  # the two claims are in doubt now, for all three processes
    sandbox.bc.latency = 0.03  # requests overlap
    racers = [
        start_cli(sandbox, "-v", "push", env=IN_DOUBT_AFTER_1_S),  # -v: tracebacks shown
        start_cli(sandbox, "-v", "push", env=IN_DOUBT_AFTER_1_S),
        start_cli(sandbox, "-v", "sync", env=IN_DOUBT_AFTER_1_S),
    ]
    results = [finish(process, timeout=90) for process in racers]
    for result in results:
        # One pusher per store: whoever holds the run lock works, the others change nothing.
        assert result.exit_code in (0, 1, 4), result.stdout + result.stderr
        assert not unexpected_tracebacks(result.stderr), result.stderr  # LockHeld is ours
    assert [r.exit_code for r in results].count(4) <= 2
    assert_nothing_twice(sandbox)

    sandbox.bc.latency = 0.0
    last = run_cli(sandbox, "sync", env=IN_DOUBT_AFTER_1_S)  # whatever the race left over
    assert last.exit_code == 0, last.stdout + last.stderr
    assert_nothing_twice(sandbox)
    state_of = {o["woo_id"]: o["state"] for o in status_json(sandbox)["orders"]}
    taken = sandbox.taken_order_ids()
    assert {state_of.get(i) for i in taken} <= {"pushed", "held"}, state_of
    pushed = {f"WC-{i}" for i in taken if state_of[i] == "pushed"}
    assert set(sales_orders_by_external_number(sandbox)) == pushed
    assert {f"WC-{i}" for i in range(3001, 3011)} <= pushed
