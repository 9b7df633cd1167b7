"""The fault matrix: the real CLI in a subprocess while the systems around it fail.

Dynamics down, throttled or answering 503, a connection dropped after Business Central committed,
the shop timing out in the middle of paging, the state store going away or filling the disk, a
broken config, a wrong client secret. Each run ends with the contract's exit code and one
readable line, never a traceback; nothing is lost and nothing is sent twice, and the next run
finishes the job. Backoff waits are shortened (``tests.fixtures.fast_cli``) except where the test
is about the wait itself.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.conftest import MysqlServer
from tests.fixtures.cli import (
    ROOT,
    assert_nothing_twice,
    cli_env,
    finish,
    run_cli,
    running_sandbox,
    sales_orders_by_external_number,
    start_cli,
    status_json,
    unexpected_tracebacks,
    with_config,
)
from tests.fixtures.tcp_proxy import TcpProxy
from woo2d365.model import OrderState
from woo2d365.pipeline.pull import CURSOR_KEY
from woo2d365.sandbox.shop_data import DEFAULT_BILLING, build_order, product_by_sku
from woo2d365.sandbox.world import Sandbox
from woo2d365.store import open_store

IN_DOUBT_AFTER_1_S = {"WOO2D365_DYNAMICS__TIMEOUT_SECONDS": "1"}
DELETED_PRODUCT_ORDER = 1005  # realistic order 6: a deleted product's line, always held


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """Eight realistic orders: six taken (one held for its deleted product), two not taken."""
    with running_sandbox(tmp_path / "sandbox", orders=8, unmapped_orders=0, seed=11) as world:
        yield world


def _states(sandbox: Sandbox, env: dict[str, str | None] | None = None) -> dict[int, str]:
    return {o["woo_id"]: o["state"] for o in status_json(sandbox, env=env)["orders"]}


def _assert_all_through(sandbox: Sandbox, env: dict[str, str | None] | None = None) -> None:
    """Every taken order is in Dynamics exactly once (the deleted product's order is held)."""
    states = _states(sandbox, env)
    expected = {
        i: ("held" if i == DELETED_PRODUCT_ORDER else "pushed") for i in sandbox.taken_order_ids()
    }
    assert {i: states.get(i) for i in expected} == expected
    assert_nothing_twice(sandbox)
    numbers = set(sales_orders_by_external_number(sandbox))
    assert numbers == {f"WC-{i}" for i, s in expected.items() if s == "pushed"}


def _no_traceback(*texts: str) -> None:
    """No bug: no internal error, and (the run having ``-v``) no traceback but woo2d365's own."""
    for text in texts:
        assert "internal error" not in text and not unexpected_tracebacks(text), text


def _restart_dynamics(sandbox: Sandbox) -> None:
    """Bring the Business Central emulator back (on a new port) and point the config at it."""
    sandbox.bc.start()
    sandbox.config_path.write_text(sandbox.config_text(), encoding="utf-8")
    sandbox.config_path.chmod(0o600)


# -- Dynamics --------------------------------------------------------------------------------


def test_dynamics_down_for_a_whole_run_exits_3_loses_nothing_and_the_next_run_pushes_all(
    sandbox: Sandbox,
) -> None:
    sandbox.bc.stop()
    down = run_cli(sandbox, "-v", "sync")  # -v: a bug would show its traceback
    assert down.exit_code == 3, down.stdout + down.stderr
    assert "Dynamics 365 could not be reached" in down.stdout
    _no_traceback(down.stdout, down.stderr)
    counts = status_json(sandbox)["counts"]
    assert counts["new"] == len(sandbox.taken_order_ids())  # pulled, kept, waiting
    assert counts["pushing"] == counts["pushed"] == counts["failed"] == 0

    _restart_dynamics(sandbox)
    back = run_cli(sandbox, "sync")
    assert back.exit_code == 1, back.stdout + back.stderr  # the deleted product's order is held
    _assert_all_through(sandbox)


def test_a_429_storm_is_waited_out_and_every_order_is_sent_exactly_once(
    sandbox: Sandbox,
) -> None:
    sandbox.bc.rate_limit = 4  # requests per second for the app: a storm of 429 + Retry-After
    sandbox.bc.rate_window_seconds = 1.0
    for _ in range(3):  # a request throttled more often than max_tries waits for the next run
        result = run_cli(sandbox, "-v", "sync", timeout=90)
        _no_traceback(result.stdout, result.stderr)
        assert result.exit_code in (0, 1, 3), result.stdout + result.stderr
        states = _states(sandbox)
        if all(states.get(i) in ("pushed", "held") for i in sandbox.taken_order_ids()):
            break
    assert any(r.status == 429 for r in sandbox.bc.requests), "the storm never happened"
    assert "failed" not in _states(sandbox).values()  # throttling never fails an order
    _assert_all_through(sandbox)


def test_503_with_retry_after_is_honoured_before_the_create_is_sent_again(
    sandbox: Sandbox,
) -> None:
    assert run_cli(sandbox, "pull").exit_code == 0
    assert run_cli(sandbox, "validate").exit_code == 1
    sandbox.bc.reset_requests()
    sandbox.bc.fail_next(
        2, status=503, code="Internal_ServiceUnavailable", retry_after=1, method="POST",
        path_contains="salesOrders",
    )  # fmt: skip
    # The unmodified CLI (no shortened waits), one order, so its tries can be told apart.
    result = run_cli(sandbox, "push", "--order", "1000", fast=False)
    assert result.exit_code == 0, result.stdout + result.stderr
    posts = [r for r in sandbox.bc.requests if r.method == "POST" and "salesOrders" in r.path]
    assert [r.status for r in posts] == [503, 503, 201]
    assert posts[1].at - posts[0].at >= 1.0 and posts[2].at - posts[1].at >= 1.0
    assert run_cli(sandbox, "push").exit_code == 0
    _assert_all_through(sandbox)


def test_a_connection_dropped_after_commit_leaves_exactly_one_sales_order(
    sandbox: Sandbox,
) -> None:
    sandbox.bc.drop_after_commit_next(1)
    first = run_cli(sandbox, "-v", "sync", env=IN_DOUBT_AFTER_1_S)
    _no_traceback(first.stdout, first.stderr)
    in_doubt = [i for i, state in _states(sandbox).items() if state == "pushing"]
    assert len(in_doubt) == 1, first.stdout + first.stderr
    assert len(sales_orders_by_external_number(sandbox)[f"WC-{in_doubt[0]}"]) == 1  # committed

    time.sleep(1.2)  # the claim is older than dynamics.timeout_seconds: in doubt
    second = run_cli(sandbox, "sync", env=IN_DOUBT_AFTER_1_S)
    assert second.exit_code == 0, second.stdout + second.stderr  # held by the first run
    _assert_all_through(sandbox)
    third = run_cli(sandbox, "sync", env=IN_DOUBT_AFTER_1_S)
    assert third.exit_code == 0, third.stdout + third.stderr
    _assert_all_through(sandbox)


def test_a_wrong_client_secret_exits_2_with_one_line_naming_the_setting_and_no_retry_storm(
    sandbox: Sandbox,
) -> None:
    wrong = {"WOO2D365_DYNAMICS__CLIENT_SECRET": "wrong-or-expired-secret-value"}
    for command_args in (("sync",), ("push",)):
        sandbox.bc.reset_requests()
        result = run_cli(sandbox, *command_args, env=wrong)
        assert result.exit_code == 2, result.stdout + result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "dynamics.client_secret" in lines[0], result.stderr
        assert sandbox.bc.token_requests <= 2, "no retry storm against the identity provider"
        assert "wrong-or-expired-secret-value" not in result.stdout + result.stderr
        verbose = run_cli(sandbox, "-v", *command_args, env=wrong)  # with the traceback
        assert verbose.exit_code == 2, verbose.stdout + verbose.stderr
        assert "wrong-or-expired-secret-value" not in verbose.stdout + verbose.stderr
        _no_traceback(verbose.stdout, verbose.stderr)
    assert sandbox.bc.sales_orders() == []


# -- the shop --------------------------------------------------------------------------------


def test_the_shop_timing_out_mid_paging_exits_3_keeps_the_cursor_and_the_next_run_completes(
    sandbox: Sandbox,
) -> None:
    with_config(sandbox, woocommerce={"page_size": 3, "timeout_seconds": 0.5, "write_back": False})
    assert run_cli(sandbox, "pull").exit_code == 0
    store = open_store(f"sqlite:///{sandbox.state_path}")
    try:
        cursor = store.get_value(CURSOR_KEY)
        assert cursor
        now = datetime.now(UTC)
        new_ids = list(range(2001, 2008))  # 7 new orders: the window now spans 3+ pages
        sandbox.shop.add_orders(
            build_order(
                woo_id,
                items=[(product_by_sku("WIDGET-001"), 1)],
                created_gmt=now - timedelta(minutes=30 - woo_id % 10),
                shipping=Decimal("4.09"),
                billing={**DEFAULT_BILLING, "email": f"page{woo_id}@example.nl"},
            )
            for woo_id in new_ids
        )

        def slow_after_the_first_page(page: int) -> None:
            sandbox.shop.latency = 1.5 if page >= 2 else 0.0  # > timeout_seconds

        sandbox.shop.on_list_page = slow_after_the_first_page
        timed_out = run_cli(sandbox, "-v", "sync")
        assert timed_out.exit_code == 3, timed_out.stdout + timed_out.stderr
        assert "WooCommerce could not be reached" in timed_out.stdout
        _no_traceback(timed_out.stdout, timed_out.stderr)
        assert store.get_value(CURSOR_KEY) == cursor, "the cursor moved past unread pages"

        sandbox.shop.on_list_page = None
        sandbox.shop.latency = 0.0
        done = run_cli(sandbox, "sync")
        assert done.exit_code == 0, done.stdout + done.stderr  # held in the timed-out run
        assert (store.get_value(CURSOR_KEY) or "") > cursor
        for woo_id in new_ids:
            record = store.get_order(woo_id)
            assert record is not None and record.state is OrderState.PUSHED, woo_id
    finally:
        store.close()
    assert_nothing_twice(sandbox)


# -- the state store -------------------------------------------------------------------------


@pytest.mark.mysql
def test_the_state_store_going_away_mid_run_exits_3_and_the_next_run_resolves_every_order(
    sandbox: Sandbox, mysql_server: MysqlServer
) -> None:
    direct = mysql_server.new_database_url()
    parts = urlsplit(direct)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 3306))
    netloc = parts.netloc.rsplit("@", 1)[0] + f"@127.0.0.1:{proxy.port}"
    with_config(sandbox, state={"url": urlunsplit((parts.scheme, netloc, parts.path, "", ""))})
    sandbox.bc.latency = 0.15  # orders are in flight when the store goes away
    try:
        process = start_cli(sandbox, "-v", "sync", env=IN_DOUBT_AFTER_1_S)
        deadline = time.monotonic() + 30
        while not sandbox.bc.sales_orders() and time.monotonic() < deadline:
            time.sleep(0.005)
        proxy.cut()  # mid-push: one sales order created, others claimed or in flight
        gone = finish(process)
    finally:
        proxy.cut()
    assert gone.exit_code == 3, gone.stdout + gone.stderr
    _no_traceback(gone.stdout, gone.stderr)
    errors = [line for line in gone.stderr.splitlines() if line.startswith("woo2d365: error:")]
    assert len(errors) == 1 and errors[0].startswith("woo2d365: error: state store"), errors
    assert sandbox.bc.sales_orders(), "the store went away before any order was sent"

    back = {**IN_DOUBT_AFTER_1_S, "WOO2D365_STATE__URL": direct}
    states = _states(sandbox, back)
    assert set(states.values()) <= {"new", "ready", "held", "pushing", "pushed"}
    time.sleep(1.2)  # claims older than dynamics.timeout_seconds are in doubt now
    sandbox.bc.latency = 0.0
    again = run_cli(sandbox, "sync", env=back)
    assert again.exit_code == 0, again.stdout + again.stderr  # validated before the push
    _assert_all_through(sandbox, back)


def test_a_full_disk_under_sqlite_exits_3_with_one_line_and_loses_nothing(
    sandbox: Sandbox,
) -> None:
    assert run_cli(sandbox, "pull").exit_code == 0
    # The run may not grow any file past 120 kB: the state store's writes fail mid-run as on a
    # full disk (EFBIG instead of ENOSPC; SQLite reports it as a disk I/O error).
    small_disk = (
        "import resource, runpy, sys; "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (120_000, 120_000)); "
        "sys.argv[0] = 'woo2d365'; "
        "runpy.run_module('tests.fixtures.fast_cli', run_name='__main__')"
    )
    full = subprocess.run(
        [sys.executable, "-c", small_disk, "--config", str(sandbox.config_path), "-v", "sync"],
        capture_output=True,
        text=True,
        env=cli_env(sandbox),
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert full.returncode == 3, full.stdout + full.stderr
    errors = [line for line in full.stderr.splitlines() if line.startswith("woo2d365: error:")]
    assert len(errors) == 1 and "state store" in errors[0], full.stderr
    _no_traceback(full.stdout, full.stderr)

    # Where the disk filled decides whether that run held the deleted product's order already.
    held_before = _states(sandbox).get(DELETED_PRODUCT_ORDER) == "held"
    again = run_cli(sandbox, "sync")  # space is back
    assert again.exit_code == (0 if held_before else 1), again.stdout + again.stderr
    _assert_all_through(sandbox)


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[woocommerce\nurl = 'https://shop.example.com'\n",
        "[dynamics]\nverify_ssl = false\n",
        "[woocommerce]\npage_size = 'many'\n",
        "[state]\nurl = 'postgres://db.example.com/woo2d365'\n",
        "[orders]\ncustomer_mode = 'per-phone'\n",
    ],
    ids=["broken-toml", "unknown-key", "wrong-type", "unknown-store", "bad-choice"],
)
def test_a_malformed_config_exits_2_with_one_line(tmp_path: Path, text: str) -> None:
    config = tmp_path / "woo2d365.toml"
    config.write_text(text, encoding="utf-8")
    result = run_cli(None, "sync", config=config)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("woo2d365: error:"), result.stderr
    assert "woo2d365.toml" in lines[0], lines[0]  # names the file (and the key)
