"""Benchmark: one ``woo2d365 sync`` of a large backlog: peak memory, and wall time at the real pace.

The real CLI runs in a subprocess against both emulators (``push_benchmark`` has the helpers):

* memory runs: ``--orders`` shop orders each (default 10,000 and 50,000), 10 ms per request, the
  pace lifted in the Business Central emulator and in ``dynamics.requests_per_5_minutes``; the
  figure is the process's peak RSS, and whether the largest run stays within 10 % of the smallest
  (memory that does not grow with the backlog) and within 120 MB;
* a pace run (``--pace-orders``, default 0 = skipped): Business Central's real limit of 6,000
  requests per 5 minutes kept by both the emulator (429 beyond it) and the tool; its wall time
  against the floor requests ÷ 20 per second, and the 429s it got (should be none).

Usage:

    .venv/bin/python bench/backlog_benchmark.py [--orders 10000 50000] [--pace-orders 8000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import push_benchmark as pb  # noqa: E402

LIFTED = "1000000"
PER_SECOND = 6000 / 300


def memory_run(orders: int, latency: float) -> pb.Run:
    """One sync of ``orders`` shop orders with the pace lifted; exactly once checked."""
    with tempfile.TemporaryDirectory(prefix="woo2d365-backlog-") as tmp:
        sandbox = pb.make_sandbox(Path(tmp) / "sandbox", orders, latency)
        try:
            sandbox.bc.rate_limit = 10**9
            run = pb.run_cli(
                sandbox,
                "sync",
                env_extra={"WOO2D365_DYNAMICS__REQUESTS_PER_5_MINUTES": LIFTED},
                timeout=7200,
            )
            duplicates = [
                number
                for number, count in Counter(
                    o["externalDocumentNumber"] for o in sandbox.bc.sales_orders()
                ).items()
                if count > 1
            ]
        finally:
            sandbox.stop()
    if run.exit_code not in (0, 1) or duplicates:
        raise SystemExit(f"sync of {orders}: exit {run.exit_code}, duplicates {duplicates[:5]}")
    return run


def pace_run(orders: int, latency: float) -> None:
    """One sync at Business Central's real pace: wall time against requests ÷ 20 per second."""
    with tempfile.TemporaryDirectory(prefix="woo2d365-pace-") as tmp:
        sandbox = pb.make_sandbox(Path(tmp) / "sandbox", orders, latency)
        try:
            run = pb.run_cli(sandbox, "sync", timeout=7200)
            kinds = pb.request_kinds(sandbox)
            throttled = sum(1 for r in sandbox.bc.requests if r.status == 429)
        finally:
            sandbox.stop()
    requests = sum(kinds.values())
    floor = requests / PER_SECOND
    print(f"pace run: {orders} shop orders, exit {run.exit_code}")
    print(f"  Dynamics requests {requests}, of them answered 429: {throttled}")
    print(f"  floor (requests / 20 per s) {floor:.1f} s; wall {run.seconds:.1f} s")
    print(f"  wall / floor {run.seconds / floor:.3f}; peak RSS {run.max_rss_mb:.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[10000, 50000])
    parser.add_argument("--latency", type=float, default=0.01)
    parser.add_argument("--pace-orders", type=int, default=0)
    options = parser.parse_args()
    peaks: dict[int, float] = {}
    for orders in options.orders:
        run = memory_run(orders, options.latency)
        peaks[orders] = run.max_rss_mb
        print(
            f"memory run: {orders} shop orders, exit {run.exit_code}, wall {run.seconds:.1f} s, "
            f"peak RSS {run.max_rss_mb:.1f} MB ({pb.verdict(run.max_rss_mb, 120)} <= 120 MB)",
            flush=True,
        )
    if len(peaks) > 1:
        low, high = peaks[min(peaks)], peaks[max(peaks)]
        growth = high / low - 1
        print(
            f"largest vs smallest backlog: {growth:+.1%} ({pb.verdict(growth, 0.10)} within 10 %)"
        )
    if options.pace_orders:
        pace_run(options.pace_orders, options.latency)


if __name__ == "__main__":
    main()
