"""``woo2d365 demo``: the newcomer's first command ends with every order in Business Central."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from woo2d365.sandbox.demo import run_demo

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_puts_every_taken_order_in_business_central_once_with_reconciled_totals(
    tmp_path: Path,
) -> None:
    outcome = run_demo(Console(file=io.StringIO(), width=120), directory=tmp_path / "demo")
    assert outcome.taken >= 35, "about 50 shop orders, most of them in taken statuses"
    assert outcome.in_dynamics == outcome.taken
    assert outcome.duplicates == 0
    assert outcome.within_tolerance == outcome.in_dynamics, outcome.problems
    assert outcome.ok


def test_the_demo_command_exits_0_within_30_seconds_and_cleans_up(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "woo2d365", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert elapsed < 30
    assert list(tmp_path.iterdir()) == [], "nothing left behind in the working directory"
