"""Benchmark: ``woo2d365 stock`` for 10,000 mapped SKUs against both emulators, 50 ms a request.

The shop has 9,000 simple products and 100 variable products of 10 variations each (every SKU a
Dynamics item number: direct matches), Business Central 10,000 stock-kept items. The real CLI runs
in a subprocess (start-up included), every API request answered ``--latency`` seconds after the
server took it. Four runs on one state store:

1. the first run: every product and variation listed and written (nothing managed stock yet);
2. nothing changed: nothing written (it lists again what the first run wrote: those saves moved
   ``date_modified`` after the cursor);
3. an hour later, ``--changed`` items changed in Dynamics (a tenth of them on variations, spread
   over 10 parents) and 20 products sold in the shop: only those are written;
4. nothing changed: nothing listed but one empty page, nothing written.

Targets (the issue's): Dynamics reads ≤ ceil(SKUs / page size) + 1 (the items and the company);
shop writes ≤ ceil(changed products / 100) + variation parents with a change. Usage:

    .venv/bin/python bench/stock_benchmark.py [--skus 10000] [--latency 0.05] [--changed 200]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.push_benchmark import Run, answer_in_one_write, run_cli  # noqa: E402
from woo2d365.sandbox.world import Sandbox, toml_value  # noqa: E402

BC_PAGE_SIZE = 20_000  # Business Central online's server page size
VARIABLE_PARENTS = 100
VARIATIONS_EACH = 10


def shop_kinds(sandbox: Sandbox) -> Counter[str]:
    """Shop requests by method and route shape."""
    kinds: Counter[str] = Counter()
    for request in sandbox.shop.requests:
        path = request.path.replace("/wp-json/wc/v3", "")
        parts = ["{id}" if part.isdigit() else part for part in path.split("/")]
        kinds[f"{request.method} {'/'.join(parts)}"] += 1
    return kinds


def bc_kinds(sandbox: Sandbox) -> Counter[str]:
    """Business Central API requests by method and entity set."""
    kinds: Counter[str] = Counter()
    for request in sandbox.bc.requests:
        entity = request.path.rstrip("/").rsplit("/", 1)[-1].split("(")[0]
        kinds[f"{request.method} {entity}"] += 1
    return kinds


def seed(sandbox: Sandbox, skus: int) -> list[str]:
    """Items and products for ``skus`` SKUs; returns the variation SKUs."""
    catalogue = sandbox.shop.catalogue
    variations = VARIABLE_PARENTS * VARIATIONS_EACH
    for index in range(skus - variations):
        sku = f"S{index:06d}"
        sandbox.bc.add_item(sku, f"Item {index}")
        sandbox.bc.set_inventory(sku, 10 + index % 50)
        catalogue.add_product(sku, f"Product {index}", product_id=100_000 + index)
    variation_skus = []
    for parent in range(VARIABLE_PARENTS):
        parent_id = 300_000 + parent * 100
        catalogue.add_product("", f"Variable {parent}", product_id=parent_id, type="variable")
        for offset in range(VARIATIONS_EACH):
            sku = f"V{parent:03d}-{offset:02d}"
            sandbox.bc.add_item(sku, f"Variation item {sku}")
            sandbox.bc.set_inventory(sku, 5 + offset)
            catalogue.add_variation(parent_id, sku, variation_id=parent_id + 1 + offset)
            variation_skus.append(sku)
    return variation_skus


def measured(sandbox: Sandbox, label: str, *args: str) -> tuple[Run, Counter[str], Counter[str]]:
    sandbox.shop.reset_requests()
    sandbox.bc.reset_requests()
    run = run_cli(sandbox, "stock", *args)
    if run.exit_code != 0:
        raise SystemExit(f"{label}: exit {run.exit_code}\n{run.stdout}\n{run.stderr[-2000:]}")
    return run, shop_kinds(sandbox), bc_kinds(sandbox)


def report(label: str, run: Run, shop: Counter[str], bc: Counter[str], skus: int) -> None:
    writes = sum(n for kind, n in shop.items() if kind.startswith("POST"))
    reads = sum(n for kind, n in shop.items() if kind.startswith("GET"))
    print(f"\n== {label}: {run.seconds:.1f} s wall, peak RSS {run.max_rss_mb:.0f} MB")
    print(f"   {run.stdout.strip().splitlines()[-1]}")
    print(f"   shop: {reads} reads, {writes} writes ({writes / skus:.4f} writes per SKU)")
    for kind, count in sorted(shop.items()):
        print(f"     {count:6d}  {kind}")
    print(f"   Dynamics: {sum(bc.values())} requests")
    for kind, count in sorted(bc.items()):
        print(f"     {count:6d}  {kind}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--changed", type=int, default=200)
    args = parser.parse_args()
    answer_in_one_write()
    with tempfile.TemporaryDirectory(prefix="woo2d365-stock-bench-") as directory:
        sandbox = Sandbox(Path(directory), orders=0, unmapped_orders=0)
        sandbox.start()
        try:
            variation_skus = seed(sandbox, args.skus)
            text = sandbox.config_text() + f"\n[stock]\nenabled = {toml_value(True)}\n"
            sandbox.config_path.write_text(text, encoding="utf-8")
            sandbox.shop.latency = sandbox.bc.latency = args.latency
            dynamics_limit = math.ceil(args.skus / BC_PAGE_SIZE) + 1

            first = measured(sandbox, "first run")
            report("1. first run (everything written)", *first, args.skus)
            products = args.skus - len(variation_skus)
            minimum = math.ceil(products / 100) + VARIABLE_PARENTS
            print(f"   minimum writes {minimum}; Dynamics limit {dynamics_limit}")

            second = measured(sandbox, "second run")
            report("2. nothing changed", *second, args.skus)

            # An hour later: some inventory changed in Dynamics, some products sold in the shop.
            later = datetime.now(UTC) + timedelta(hours=1)
            sandbox.shop.clock = lambda: later
            changed_variations = variation_skus[: args.changed // 10]
            parents = {sku.split("-")[0] for sku in changed_variations}
            changed_products = args.changed - len(changed_variations)
            products = args.skus - len(variation_skus)
            for index in range(changed_products):
                sandbox.bc.adjust_inventory(f"S{index * 7 % products:06d}", -1)
            for sku in changed_variations:
                sandbox.bc.adjust_inventory(sku, 3)
            for index in range(20):
                sandbox.shop.catalogue.sell(100_000 + (products // 2 + index) % products, 1)
            third = measured(sandbox, "third run")
            report(f"3. {args.changed} changed in Dynamics, 20 sold in the shop", *third, args.skus)
            written_products = changed_products + 20
            limit = math.ceil(written_products / 100) + len(parents)
            writes = sum(n for kind, n in third[1].items() if kind.startswith("POST"))
            print(
                f"   writes {writes}, limit ceil({written_products}/100) + {len(parents)} = {limit}"
            )

            fourth = measured(sandbox, "fourth run")
            report("4. nothing changed (steady state)", *fourth, args.skus)

            dynamics = max(sum(run[2].values()) for run in (first, second, third, fourth))
            print(
                f"\nDynamics requests per run at most {dynamics} (limit {dynamics_limit}): "
                f"{'met' if dynamics <= dynamics_limit else 'MISSED'}"
            )
            print(
                f"Third run's shop writes {writes} (limit {limit}): "
                f"{'met' if writes <= limit else 'MISSED'}"
            )
        finally:
            sandbox.stop()


if __name__ == "__main__":
    main()
