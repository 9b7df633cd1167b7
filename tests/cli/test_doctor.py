"""``doctor``: every check against the sandbox, and a fix hint (never a secret) for each failure."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.cli.conftest import CliResult
from woo2d365.cli import app
from woo2d365.sandbox.world import Sandbox

WIDE = {"COLUMNS": "1000"}  # one table row per line, so a hint is not folded mid-word


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """Both emulators (doctor only reads, so one sandbox serves every test here)."""
    world = Sandbox(tmp_path_factory.mktemp("sandbox"), orders=5, seed=3)
    world.start()
    yield world
    world.stop()


def _doctor(sandbox: Sandbox, *args: str, env: dict[str, str] | None = None) -> CliResult:
    environment = {**sandbox.environment(), **WIDE, **(env or {})}
    result = CliRunner().invoke(
        app, ["--config", str(sandbox.config_path), "doctor", *args], env=environment
    )
    return CliResult(result.exit_code, result.stdout, result.stderr)


def _row(output: str, check: str) -> str:
    rows = [line for line in output.splitlines() if line.strip().startswith(check + " ")]
    assert rows, f"no row {check!r} in:\n{output}"
    return rows[0]


def _secrets(sandbox: Sandbox) -> list[str]:
    return [sandbox.shop.consumer_key, sandbox.shop.consumer_secret, sandbox.bc.client_secret]


def test_doctor_passes_against_the_sandbox(sandbox: Sandbox) -> None:
    result = _doctor(sandbox)
    assert result.exit_code == 0, result.stdout + result.stderr
    for check in (
        "config",
        "state store",
        "WooCommerce: reachable",
        "WooCommerce: API key",
        "WooCommerce: write permission",
        "Dynamics: token",
        "Dynamics: company",
        "Dynamics: read items",
        "Dynamics: read sales orders",
    ):
        assert "│ ok " in _row(result.stdout, check), check
    assert "HPOS" in _row(result.stdout, "WooCommerce: order storage")
    assert "not checked" in _row(result.stdout, "Dynamics: permission to create")
    assert "│ warn " in _row(result.stdout, "alerts"), "no alert channel in the sandbox"
    assert "0 failed" in result.stdout
    for secret in _secrets(sandbox):
        assert secret not in result.stdout + result.stderr


def test_a_wrong_client_secret_fails_the_token_check_with_a_hint(sandbox: Sandbox) -> None:
    wrong = "wrong-client-secret-Q8v2"
    result = _doctor(sandbox, env={"WOO2D365_DYNAMICS__CLIENT_SECRET": wrong})
    assert result.exit_code == 1
    row = _row(result.stdout, "Dynamics: token")
    assert "│ fail " in row and "invalid_client" in row
    assert "check dynamics.client_secret (wrong or expired" in row
    assert "│ ok " in _row(result.stdout, "WooCommerce: API key"), "the other checks still run"
    for secret in [*_secrets(sandbox), wrong]:
        assert secret not in result.stdout + result.stderr


def test_a_wrong_consumer_secret_fails_the_api_key_check_with_a_hint(sandbox: Sandbox) -> None:
    wrong = "cs_wrong0000000000000000000000000000000"
    result = _doctor(sandbox, env={"WOO2D365_WOOCOMMERCE__CONSUMER_SECRET": wrong})
    assert result.exit_code == 1
    row = _row(result.stdout, "WooCommerce: API key")
    assert "│ fail " in row and "401" in row
    assert "check woocommerce.consumer_key and woocommerce.consumer_secret" in row
    assert "│ ok " in _row(result.stdout, "WooCommerce: reachable")
    assert "│ ok " in _row(result.stdout, "Dynamics: token")
    for secret in [*_secrets(sandbox), wrong]:
        assert secret not in result.stdout + result.stderr


def test_a_config_readable_by_others_holding_secrets_is_a_warning(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = tmp_path / "woo2d365.toml"
    config.write_text(sandbox.config_text(), encoding="utf-8")
    config.chmod(0o644)
    result = CliRunner().invoke(
        app, ["--config", str(config), "doctor"], env={**sandbox.environment(), **WIDE}
    )
    assert result.exit_code == 0, "a warning is not a failure"
    row = _row(result.stdout, "config: permissions")
    assert "│ warn " in row and "woocommerce.consumer_secret" in row
    assert f"chmod 600 {config}" in row


def test_unreachable_systems_and_store_fail_with_hints(tmp_path: Path) -> None:
    config = tmp_path / "woo2d365.toml"
    config.write_text(
        "[woocommerce]\n"
        'url = "https://127.0.0.1:1"\nconsumer_key = "ck_x"\nconsumer_secret = "cs_x"\n'
        "timeout_seconds = 2\n"
        "[dynamics]\n"
        'tenant_id = "t"\nclient_id = "c"\nclient_secret = "s3cret-value"\ncompany = "X"\n'
        'authority_host = "https://127.0.0.1:1"\napi_url = "https://127.0.0.1:1"\n'
        "timeout_seconds = 2\n"
        '[state]\nurl = "mysql://root:pw-9f2@127.0.0.1:1/w"\n',
        encoding="utf-8",
    )
    config.chmod(0o600)
    result = CliRunner().invoke(app, ["--config", str(config), "doctor"], env=WIDE)
    assert result.exit_code == 3, "the state store cannot be reached: 3, as for status"
    assert "check state.url" in _row(result.stdout, "state store")
    assert "check woocommerce.url" in _row(result.stdout, "WooCommerce: reachable")
    assert "│ fail " in _row(result.stdout, "Dynamics: token")
    assert "s3cret-value" not in result.stdout and "pw-9f2" not in result.stdout


def test_a_config_that_cannot_be_loaded_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "woo2d365.toml"
    config.write_text("[woocommerce]\nsurname = 1\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["--config", str(config), "doctor"], env=WIDE)
    assert result.exit_code == 2
    assert "woocommerce.surname is not a known setting" in _row(result.stdout, "config")


class _Sink(BaseHTTPRequestHandler):
    received: list[dict] = []  # noqa: RUF012 - one sink per test module, reset by the test

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        type(self).received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        return


def test_test_alerts_sends_one_alert_per_channel(sandbox: Sandbox) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Sink.received = []
    url = f"http://127.0.0.1:{server.server_address[1]}/hook/T0KEN-abc123"
    try:
        result = _doctor(sandbox, "--test-alerts", env={"WOO2D365_ALERTS__WEBHOOK__URL": url})
        quiet = _doctor(sandbox, env={"WOO2D365_ALERTS__WEBHOOK__URL": url})
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 0, result.stdout
    assert "test alert sent" in _row(result.stdout, "alerts: webhook")
    assert len(_Sink.received) == 1, "without --test-alerts nothing is sent"
    assert "test alert" in json.dumps(_Sink.received[0])
    assert "--test-alerts" in _row(quiet.stdout, "alerts")
    assert "T0KEN-abc123" not in result.stdout + quiet.stdout, "the webhook URL is a secret"


def test_accounts_and_the_fixed_customer_orders_refer_to_are_checked(sandbox: Sandbox) -> None:
    passing = _doctor(sandbox)
    assert "│ ok " in _row(passing.stdout, "Dynamics: orders.shipping_account")
    result = _doctor(
        sandbox,
        env={
            "WOO2D365_ORDERS__SHIPPING_ACCOUNT": "9999",
            "WOO2D365_ORDERS__CUSTOMER_MODE": "fixed",
            "WOO2D365_ORDERS__CUSTOMER_NUMBER": "NOBODY",
        },
    )
    assert result.exit_code == 1, result.stdout
    shipping = _row(result.stdout, "Dynamics: orders.shipping_account")
    assert "│ fail " in shipping and "9999 does not exist" in shipping
    assert "│ fail " in _row(result.stdout, "Dynamics: orders.customer_number")


def test_tax_codes_and_countries_orders_need_are_checked(sandbox: Sandbox) -> None:
    codes = {"WOO2D365_ORDERS__TAX_CODES": '{"21": "VAT21", "9": "VAT9"}'}
    passing = _doctor(sandbox, env=codes)
    assert "│ ok " in _row(passing.stdout, "Dynamics: orders.tax_codes"), passing.stdout
    assert "VAT21, VAT9 exist" in _row(passing.stdout, "Dynamics: orders.tax_codes")
    countries = _row(passing.stdout, "Dynamics: countries/regions")
    assert "│ ok " in countries and "known" in countries

    wrong = _doctor(sandbox, env={"WOO2D365_ORDERS__TAX_CODES": '{"21": "VAT21", "6": "LAAG"}'})
    assert wrong.exit_code == 1, wrong.stdout
    row = _row(wrong.stdout, "Dynamics: orders.tax_codes")
    assert "│ fail " in row and "LAAG not found" in row and "VAT21" not in row.split("│")[3]
    assert "correct orders.tax_codes" in row
