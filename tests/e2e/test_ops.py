"""Operations end to end: the real CLI against both emulators (logs, metrics, --check)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import CliResult
from tests.e2e.conftest import ROOT, run_woo2d365
from tests.fixtures.cli import prometheus_values
from woo2d365.sandbox.world import Sandbox


def _run_with(sandbox: Sandbox, env: dict[str, str], *args: str) -> CliResult:
    """Like :func:`run_woo2d365`, with extra environment variables."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WOO2D365_")}
    environment.update(sandbox.environment(), **env)
    result = subprocess.run(
        [sys.executable, "-m", "woo2d365", "--config", str(sandbox.config_path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        cwd=ROOT,
        check=False,
    )
    return CliResult(result.returncode, result.stdout, result.stderr)


def _personal_data(sandbox: Sandbox) -> set[str]:
    """E-mail addresses, phone numbers and streets of the sandbox's shop orders."""
    found: set[str] = set()
    for order in sandbox.shop.orders.values():
        for part in ("billing", "shipping"):
            address = order.get(part) or {}
            for key in ("email", "phone", "address_1", "address_2"):
                value = str(address.get(key) or "").strip()
                if len(value) >= 5:
                    found.add(value)
    return found


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_verbose_sync_logs_no_personal_data_and_no_secret(
    sandbox: Sandbox, log_format: str
) -> None:
    result = run_woo2d365(sandbox, "-v", "--log-format", log_format, "sync")
    assert result.exit_code == 1, result.stderr  # the sandbox has orders to hold
    err = result.stderr
    assert "created customer" in err and "***@example" in err, "masked, not left out"
    for value in _personal_data(sandbox):
        assert value not in err, f"personal data in the log: {value!r}"
    secrets = (sandbox.shop.consumer_key, sandbox.shop.consumer_secret, sandbox.bc.client_secret)
    for secret in secrets:
        assert secret not in err + result.stdout
    if log_format == "json":
        records = [json.loads(line) for line in err.splitlines()]
        assert records and all(r["step"] for r in records), "every line names its step"
        per_order = ("pulled from the shop", "held:", "created in Dynamics 365 as sales order")
        order_lines = [r for r in records if any(p in r["message"] for p in per_order)]
        assert len(order_lines) > 20 and all(r["woo_id"] for r in order_lines)


def test_sync_writes_prometheus_metrics_also_when_the_store_is_unreachable(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    (tmp_path / "metrics").mkdir()
    metrics = tmp_path / "metrics" / "woo2d365.prom"
    result = run_woo2d365(sandbox, "sync", "--metrics-file", str(metrics))
    assert result.exit_code == 1, result.stderr
    values = prometheus_values(metrics.read_text(encoding="utf-8"))
    status = json.loads(run_woo2d365(sandbox, "status", "--json").stdout)
    for state, count in status["counts"].items():
        assert values[f'woo2d365_orders{{state="{state}"}}'] == count
    assert values['woo2d365_run_outcome{outcome="attention"}'] == 1
    assert status["counts"]["held"] > 0
    assert 0 <= values['woo2d365_oldest_order_age_seconds{state="held"}'] < 120
    assert values['woo2d365_oldest_order_age_seconds{state="ready"}'] == 0, "none ready"
    assert values["woo2d365_write_backs_pending"] == 0, "every write-back was done"
    assert values['woo2d365_api_requests{system="shop"}'] > 0
    assert values['woo2d365_api_requests{system="dynamics"}'] > 0
    assert values['woo2d365_api_errors{system="dynamics"}'] == 0
    assert "woo2d365_last_success_timestamp_seconds" in values
    assert [p.name for p in metrics.parent.iterdir()] == ["woo2d365.prom"]

    check = run_woo2d365(sandbox, "status", "--check")
    assert check.exit_code == 1 and check.stdout.startswith("WOO2D365 WARNING - ")

    broken = _run_with(
        sandbox,
        {"WOO2D365_STATE__URL": "mysql://root@127.0.0.1:1/woo2d365"},
        "sync",
        "--metrics-file",
        str(metrics),
    )
    assert broken.exit_code == 3
    text = metrics.read_text(encoding="utf-8")
    assert prometheus_values(text)['woo2d365_run_outcome{outcome="unreachable"}'] == 1
    assert "woo2d365_orders{" not in text, "no store, no order counts"
