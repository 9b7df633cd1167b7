"""Benchmark: ``woo2d365 shipments`` over 2,000 pushed orders with 2,000 new shipments.

The real CLI runs in a subprocess against both emulators over HTTPS. The orders are pushed first
(``sync`` with ``[shipments]`` off), then every sales order is shipped in Business Central (one
posted shipment each; half of them also invoiced), then one ``shipments`` run is measured.

Targets (the issue's): Dynamics reads ≤ ceil(documents / page size) per feed (shipments,
tracking, invoices) plus the company look-up, never one per order; shop writes = one note per
shipment, one note per invoice, one status write per order completed, the invoice meta in
batches of 100. A second run with nothing new costs the reads only. Usage:

    .venv/bin/python bench/shipments_benchmark.py [--orders 2000] [--page-size 100]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from woo2d365.sandbox.businesscentral import TRACKING_API  # noqa: E402
from woo2d365.sandbox.world import Sandbox, toml_value  # noqa: E402


def _config(sandbox: Sandbox, *, enabled: bool) -> None:
    data = sandbox.settings_dict()
    data["shipments"] = {"enabled": enabled, "tracking_api": TRACKING_API}
    lines = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
    sandbox.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _run(sandbox: Sandbox, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOO2D365_")}
    env.update(sandbox.environment())
    env.pop("CURL_CA_BUNDLE", None)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "woo2d365", "--config", str(sandbox.config_path), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
        timeout=3600,
    )
    return time.monotonic() - started, done


def _bc_kinds(sandbox: Sandbox) -> Counter[str]:
    kinds: Counter[str] = Counter()
    for request in sandbox.bc.requests:
        name = request.path.rsplit("/", 1)[-1].split("(")[0]
        kinds[f"{request.method} {name}"] += 1
    return kinds


def _shop_kind(path: str) -> str:
    if path.endswith("/notes"):
        return "order notes"
    if path.endswith("/batch"):
        return "orders/batch"
    return "order"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--page-size", type=int, default=100, help="Business Central's page size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = Sandbox(
            Path(tmp) / "sandbox", orders=args.orders, unmapped_orders=0, pushable_only=True
        )
        sandbox.start()
        try:
            _config(sandbox, enabled=False)
            seconds, pushed = _run(sandbox, "sync")
            print(f"push of the orders: exit {pushed.returncode}, {seconds:.1f} s")
            orders = sandbox.bc.sales_orders()
            for index, order in enumerate(orders):
                if index % 2:
                    sandbox.bc.ship_and_invoice(order["number"])
                else:
                    sandbox.bc.ship(order["number"])
            invoices = len(sandbox.bc.invoices())
            shipments = len(sandbox.bc.shipments())
            processing = sum(1 for o in sandbox.shop.orders.values() if o["status"] == "processing")
            sandbox.bc.max_page_size = args.page_size
            sandbox.bc.reset_requests()
            sandbox.shop.requests.clear()
            _config(sandbox, enabled=True)
            seconds, run = _run(sandbox, "shipments")
            kinds = _bc_kinds(sandbox)
            shop = Counter(f"{r.method} {_shop_kind(r.path)}" for r in sandbox.shop.requests)
            reads = sum(
                v for k, v in kinds.items() if k.startswith("GET ") and "companies" not in k
            )
            floor = sum(
                math.ceil(n / args.page_size) if n else 1 for n in (shipments, shipments, invoices)
            )
            print(f"shipments run: exit {run.returncode}, {seconds:.1f} s; {run.stdout.strip()}")
            print(
                f"  posted in Dynamics: {shipments} shipments, {invoices} invoices; "
                f"{processing} shop orders were processing"
            )
            print(f"  Dynamics requests: {dict(sorted(kinds.items()))}")
            print(
                f"  Dynamics document reads: {reads} (ceil per feed at page size "
                f"{args.page_size}: {floor})"
            )
            notes = shop.get("POST order notes", 0)
            writes = sum(v for k, v in shop.items() if not k.startswith("GET"))
            print(f"  shop requests: {dict(sorted(shop.items()))}")
            print(
                f"  shop writes per shipment: {writes / max(1, shipments):.2f} "
                f"({notes} notes for {shipments} shipments + {invoices} invoices)"
            )
            sandbox.bc.reset_requests()
            sandbox.shop.requests.clear()
            seconds, again = _run(sandbox, "shipments")
            print(
                f"second run: exit {again.returncode}, {seconds:.1f} s; Dynamics requests "
                f"{sum(_bc_kinds(sandbox).values())}, shop requests {len(sandbox.shop.requests)}"
            )
            if run.returncode != 0:
                print(run.stderr[-2000:])
        finally:
            sandbox.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
