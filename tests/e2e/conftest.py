"""A running sandbox (shop + Business Central emulators) per test, and the CLI against it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import CliResult
from woo2d365.sandbox.world import Sandbox

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """Both emulators with 20 orders (3 of them with SKUs that need map-sku)."""
    world = Sandbox(tmp_path / "sandbox", orders=20, seed=3)
    world.start()
    for name, value in world.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    yield world
    world.stop()


def run_woo2d365(sandbox: Sandbox, *args: str, timeout: float = 120) -> CliResult:
    """The real command in a subprocess, as cron would run it (stdout is not a TTY)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOO2D365_")}
    env.update(sandbox.environment())
    env.pop("CURL_CA_BUNDLE", None)
    result = subprocess.run(
        [sys.executable, "-m", "woo2d365", "--config", str(sandbox.config_path), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
        check=False,
    )
    return CliResult(result.returncode, result.stdout, result.stderr)


# The alert tests' real SMTP server and webhook sink, for the end-to-end alert tests here.
from tests.alerts.conftest import sink, smtp, start_smtp  # noqa: E402, F401
