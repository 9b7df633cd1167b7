"""Configuration and errors: one readable line and the contract's exit code, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import RunCli
from tests.fixtures.cli import unexpected_tracebacks
from woo2d365.errors import Woo2D365Error
from woo2d365.settings import load_settings


def test_without_any_config_the_embedded_sqlite_store_is_used(
    run_cli: RunCli, tmp_path: Path
) -> None:
    result = run_cli("status", "--json", config=None)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["counts"]["new"] == 0
    assert Path("woo2d365.db").exists(), "the default store is ./woo2d365.db"


def test_an_invalid_value_names_the_key_and_the_file(run_cli: RunCli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[woocommerce]\npage_size = 500\n", encoding="utf-8")
    result = run_cli("status", config=bad)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "woo2d365: error: woocommerce.page_size: "
        "Input should be less than or equal to 100 (bad.toml)"
    )


def test_an_unknown_key_is_reported(run_cli: RunCli, tmp_path: Path) -> None:
    bad = tmp_path / "typo.toml"
    bad.write_text("[dynamics]\nclient_secrte = 'x'\n", encoding="utf-8")
    result = run_cli("status", config=bad)
    assert result.exit_code == 2
    assert "dynamics.client_secrte is not a known setting (typo.toml)" in result.stderr


def test_broken_toml_and_a_missing_file_are_one_line(run_cli: RunCli, tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[state\nurl=", encoding="utf-8")
    for config in (broken, tmp_path / "missing.toml"):
        result = run_cli("status", config=config)
        assert result.exit_code == 2
        assert len(result.stderr.strip().splitlines()) == 1
        verbose = run_cli("-v", "status", config=config)  # -v would show a bug's traceback
        assert verbose.exit_code == 2, verbose.stderr
        assert not unexpected_tracebacks(verbose.stderr), verbose.stderr


def test_environment_overrides_the_file(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[orders]\ndocument_prefix = "FILE-"\n', encoding="utf-8")
    monkeypatch.setenv("WOO2D365_ORDERS__DOCUMENT_PREFIX", "ENV-")
    assert load_settings(config).settings.orders.document_prefix == "ENV-"
    monkeypatch.setenv("WOO2D365_ORDERS__MAX_ATTEMPTS", "zero")
    result = run_cli("status", config=config)
    assert result.exit_code == 2
    assert (
        "orders.max_attempts" in result.stderr and "WOO2D365_ORDERS__MAX_ATTEMPTS" in result.stderr
    )


@pytest.mark.parametrize(
    ("value", "statuses"),
    [
        ('["processing", "on-hold"]', ["processing", "on-hold"]),
        ("processing,on-hold", ["processing", "on-hold"]),
        ("Processing, on-hold ", ["processing", "on-hold"]),
        ("[processing]", ["processing"]),
        ("processing", ["processing"]),
    ],
)
def test_a_list_setting_is_read_from_the_environment_as_json_or_comma_separated(
    run_cli: RunCli, monkeypatch: pytest.MonkeyPatch, value: str, statuses: list[str]
) -> None:
    monkeypatch.setenv("WOO2D365_WOOCOMMERCE__STATUSES", value)
    assert load_settings(None).settings.woocommerce.statuses == statuses
    assert run_cli("status", config=None).exit_code == 0


def test_a_table_setting_that_is_not_json_in_the_environment_is_one_line_and_exit_2(
    run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WOO2D365_ORDERS__TAX_CODES", "21=HOOG")
    result = run_cli("status", config=None)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "woo2d365: error: WOO2D365_ORDERS__TAX_CODES (environment) is not a table: give it as "
        'JSON, e.g. WOO2D365_ORDERS__TAX_CODES=\'{"21": "HOOG"}\', or one key per variable, '
        "e.g. WOO2D365_ORDERS__TAX_CODES__21=HOOG"
    ]
    monkeypatch.setenv("WOO2D365_ORDERS__TAX_CODES", '{"21": "HOOG"}')
    assert load_settings(None).settings.orders.tax_codes == {"21": "HOOG"}


def test_config_is_found_through_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "via-env.toml"
    config.write_text('[orders]\ndocument_prefix = "ENVFILE-"\n', encoding="utf-8")
    monkeypatch.setenv("WOO2D365_CONFIG", str(config))
    loaded = load_settings(None)
    assert loaded.settings.orders.document_prefix == "ENVFILE-"
    assert loaded.source == "via-env.toml"


def test_a_required_setting_names_key_and_file(tmp_path: Path) -> None:
    from woo2d365.errors import ConfigError

    config = tmp_path / "woo2d365.toml"
    config.write_text('[dynamics]\ntenant_id = "t"\n', encoding="utf-8")
    loaded = load_settings(config)
    with pytest.raises(ConfigError, match=r"^dynamics.client_id is required \(woo2d365.toml\)$"):
        loaded.require("dynamics.tenant_id", "dynamics.client_id")


def test_a_tenant_with_another_rate_limit_sets_its_own_pace(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[dynamics]\nrequests_per_5_minutes = 12000\n", encoding="utf-8")
    assert load_settings(config).settings.dynamics.requests_per_5_minutes == 12000
    config.write_text("[dynamics]\nrequests_per_5_minutes = 0\n", encoding="utf-8")
    with pytest.raises(Woo2D365Error, match="requests_per_5_minutes"):
        load_settings(config)


def test_secrets_are_secret_strings(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[dynamics]\nclient_secret = "very-secret-value"\n', encoding="utf-8")
    settings = load_settings(config).settings
    assert "very-secret-value" not in repr(settings)
    assert settings.dynamics.client_secret.get_secret_value() == "very-secret-value"


def test_loading_a_config_readable_by_others_warns_only_when_it_holds_a_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "c.toml"
    cases = (
        ('[woocommerce]\nconsumer_secret = "cs_x"\n', 0o644, True),
        ('[state]\nurl = "mysql://u:pw@db/woo"\n', 0o644, True),
        ('[woocommerce]\nconsumer_secret = "cs_x"\n', 0o600, False),
        (
            '[woocommerce]\nconsumer_secret = "  "\n[state]\nurl = "mysql://u@db/woo"\n',
            0o644,
            False,
        ),
    )
    for text, mode, warned in cases:
        config.write_text(text, encoding="utf-8")
        config.chmod(mode)
        caplog.clear()
        with caplog.at_level("WARNING", logger="woo2d365"):
            load_settings(config)
        assert ("holds secrets" in caplog.text) is warned, (text, oct(mode))


def test_an_unknown_flag_is_one_line_and_exit_2(run_cli: RunCli) -> None:
    result = run_cli("status", "--bogus")
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--bogus" in result.stderr


def test_an_unreachable_state_store_exits_3_without_the_password(
    run_cli: RunCli, tmp_path: Path
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[state]\nurl = "mysql://app:hunter2-secret@127.0.0.1:1/woo"\n', encoding="utf-8"
    )
    result = run_cli("status", config=config)
    assert result.exit_code == 3
    assert "hunter2-secret" not in result.stderr + result.stdout
    assert "cannot be reached" in result.stderr


def _commands() -> list[list[str]]:
    import typer.main

    from woo2d365.cli import app

    root = typer.main.get_command(app)
    paths: list[list[str]] = []
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        subs = getattr(command, "commands", None)
        paths += [[name, sub] for sub in subs] if subs else [[name]]
    return paths


def test_every_command_has_help_with_examples_one_per_line(run_cli: RunCli) -> None:
    commands = _commands()
    assert ["shipments"] in commands and ["map-sku", "add"] in commands
    for command in commands:
        result = run_cli(*command, "--help", config=None)
        assert result.exit_code == 0
        assert "Example: woo2d365" in result.stdout, command
        for line in result.stdout.splitlines():
            assert line.count("Example:") <= 1, f"{command}: examples run together: {line}"
            if "Example:" in line:
                assert line.strip().startswith("Example:"), f"{command}: {line}"


def test_the_readme_names_every_command_and_option() -> None:
    import typer.main

    from woo2d365.cli import app

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    root = typer.main.get_command(app)
    missing = []
    for path in _commands():
        if " ".join(path) not in readme:
            missing.append(" ".join(path))
        command = root
        for part in path:
            command = command.commands[part]  # type: ignore[attr-defined]
        for param in command.params:
            for option in getattr(param, "opts", []):
                if option.startswith("--") and option != "--help" and option not in readme:
                    missing.append(f"{' '.join(path)} {option}")
    for param in root.params:
        for option in param.opts:
            known = option in ("--help", "--version") or option in readme
            if option.startswith("--") and not known:
                missing.append(option)
    assert not missing, f"README does not mention: {missing}"
