"""Benchmark: ``woo2d365 refunds`` for N refunds of pushed orders against both emulators.

The real CLI runs in a subprocess against the shop and Business Central emulators over HTTPS,
every request answered ``--latency`` seconds after the server took it. First a ``sync`` pushes the
orders (not timed), then every pushed order gets one amount-only refund in the shop, then one
``refunds`` run is timed: wall time, requests per system and kind, and a check that there is
exactly one credit memo per refund whose total is the refund amount. Usage:

    .venv/bin/python bench/refunds_benchmark.py [--orders 200] [--latency 0.02]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.cli import with_config  # noqa: E402
from woo2d365.sandbox.world import REFUND_ACCOUNT, Sandbox  # noqa: E402


def _run(sandbox: Sandbox, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOO2D365_")}
    env.update(sandbox.environment())
    env.pop("CURL_CA_BUNDLE", None)
    argv = [sys.executable, "-m", "woo2d365", "--config", str(sandbox.config_path), *args]
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    return time.perf_counter() - started, done


def _kind(method: str, path: str) -> str:
    tail = path.rsplit("/", 1)[-1]
    name = tail.split("(", 1)[0]
    if "Microsoft.NAV" in tail:
        name = tail
    return f"{method} {name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.02)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = Sandbox(
            Path(tmp), orders=args.orders, unmapped_orders=0, pushable_only=True, seed=7
        )
        sandbox.start()
        try:
            with_config(sandbox, refunds={"enabled": True, "account": REFUND_ACCOUNT})
            _, pushed = _run(sandbox, "sync")
            before = {m["externalDocumentNumber"] for m in sandbox.bc.credit_memos()}
            refunds = 0
            for order_id in sandbox.taken_order_ids():
                try:
                    sandbox.shop.add_refund(order_id, amount="1.00", reason="bench")
                    refunds += 1
                except ValueError:
                    continue
            sandbox.shop.latency = sandbox.bc.latency = args.latency
            sandbox.shop.reset_requests()
            sandbox.bc.reset_requests()
            seconds, done = _run(sandbox, "refunds")
            memos = [
                m for m in sandbox.bc.credit_memos() if m["externalDocumentNumber"] not in before
            ]
            bc = Counter(_kind(r.method, r.path) for r in sandbox.bc.requests)
            shop = Counter(_kind(r.method, r.path) for r in sandbox.shop.requests)
        finally:
            sandbox.stop()
    keys = Counter(m["externalDocumentNumber"] for m in memos)
    print(f"sync exit {pushed.returncode}; refunds exit {done.returncode}: {done.stdout.strip()}")
    print(
        f"refunds: {refunds}, credit memos: {len(memos)}, duplicates: "
        f"{sum(1 for n in keys.values() if n > 1)}, totals ok: "
        f"{all(Decimal(str(m['totalAmountIncludingTax'])) == Decimal('1.00') for m in memos)}"
    )
    print(
        f"wall time {seconds:.1f} s at {args.latency * 1000:.0f} ms per request "
        f"({seconds / max(refunds, 1) * 1000:.0f} ms per refund)"
    )
    print(
        f"Dynamics requests: {sum(bc.values())} ({sum(bc.values()) / max(refunds, 1):.2f} per "
        f"refund): {dict(bc.most_common())}"
    )
    print(f"shop requests: {sum(shop.values())}: {dict(shop.most_common())}")


if __name__ == "__main__":
    main()
