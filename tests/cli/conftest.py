"""Helpers to run the CLI in-process through Typer's runner, with a config file per test."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from woo2d365.cli import app


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


RunCli = Callable[..., CliResult]


@pytest.fixture
def config_file(tmp_path: Path, state_url: str) -> Path:
    """A minimal config whose state store is the test's fresh store (both backends)."""
    path = tmp_path / "woo2d365.toml"
    path.write_text(f'[state]\nurl = "{state_url}"\n', encoding="utf-8")
    return path


@pytest.fixture
def run_cli(config_file: Path) -> RunCli:
    """Run ``woo2d365 --config <file> ARGS``; returns exit code, stdout and stderr apart."""

    def run(
        *args: str, config: Path | None = config_file, env: dict[str, str] | None = None
    ) -> CliResult:
        runner = CliRunner()
        argv = (["--config", str(config)] if config is not None else []) + list(args)
        result = runner.invoke(app, argv, env=env, catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return run
