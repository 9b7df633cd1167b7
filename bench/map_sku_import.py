"""Benchmark: `woo2d365 map-sku import` of a 10,000-line CSV on SQLite and on MariaDB.

Runs the real CLI in a subprocess (start-up included), first into an empty map (all added),
then the same file again (all unchanged), then a file with every item changed (all updated).
Target: each under 5 s. Usage:

    .venv/bin/python bench/map_sku_import.py [--lines 10000] [--mysql mysql://root@127.0.0.1:3306/]
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pymysql


def write_csv(path: Path, lines: int, variant: str) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sku", "item_number", "note"])
        for i in range(lines):
            writer.writerow([f"SKU-{i:06d}", f"ITEM{variant}{i:06d}", f"bench line {i}"])


def run_import(config: Path, source: Path) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "woo2d365",
            "--config",
            str(config),
            "map-sku",
            "import",
            str(source),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"import failed ({result.returncode}): {result.stderr.strip()}")
    return elapsed, result.stdout.strip()


def bench(name: str, url: str, lines: int, workdir: Path) -> None:
    config = workdir / f"{name}.toml"
    config.write_text(f'[state]\nurl = "{url}"\n', encoding="utf-8")
    first, second = workdir / "a.csv", workdir / "b.csv"
    write_csv(first, lines, "A")
    write_csv(second, lines, "B")
    for label, source in (
        ("empty map", first),
        ("same file again", first),
        ("every item changed", second),
    ):
        elapsed, summary = run_import(config, source)
        verdict = "ok" if elapsed < 5 else "MISSED (target < 5 s)"
        print(f"{name:8} {label:20} {elapsed:6.2f} s  {summary}  [{verdict}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--mysql", default="mysql://root@127.0.0.1:3306/")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        bench("sqlite", f"sqlite:///{workdir / 'bench.db'}", args.lines, workdir)
        server = urlsplit(args.mysql)
        database = f"w2d_bench_{uuid.uuid4().hex[:8]}"
        admin = pymysql.connect(
            host=server.hostname,
            port=server.port or 3306,
            user=server.username or "root",
            password=server.password or "",
            autocommit=True,
        )
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
        try:
            bench("mariadb", f"{server.scheme}://{server.netloc}/{database}", args.lines, workdir)
        finally:
            with admin.cursor() as cur:
                cur.execute(f"DROP DATABASE `{database}`")
            admin.close()


if __name__ == "__main__":
    main()
