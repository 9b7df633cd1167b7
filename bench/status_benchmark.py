"""Benchmark: `woo2d365 status` and `status --check` with a million orders in MariaDB.

Fills a throwaway database with ORDERS orders (multi-row INSERTs of 5,000; small raw JSON;
states as in a shop that has run for two years: nearly all pushed, some skipped, a few held,
failed, new and ready) and two years of sync runs (every 5 minutes), then times the real CLI in a
subprocess, start-up included:

    status                      target < 1 s
    status --check              target < 1 s
    status --json --limit 50    target < 1 s
    status --json               every order, by contract: measured, no target

Usage:

    .venv/bin/python bench/status_benchmark.py [--orders 1000000] [--repeat 5]
        [--mysql mysql://root@127.0.0.1:3306/] [--keep | --reuse DATABASE] [--skip-full-json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pymysql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from woo2d365.store import open_store  # noqa: E402
from woo2d365.store.sql import to_db_time  # noqa: E402

BATCH = 5000
TARGET_SECONDS = 1.0
# Share of orders per state in a shop that has synced for two years.
STATES = (
    ("pushed", 0.955),
    ("skipped", 0.035),
    ("held", 0.003),
    ("failed", 0.001),
    ("new", 0.003),
    ("ready", 0.003),
)


def admin(url: str, database: str | None = None) -> pymysql.connections.Connection:
    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        database=database,
        autocommit=True,
        connect_timeout=5,
    )


def fill(conn: pymysql.connections.Connection, orders: int, now: datetime) -> None:
    rng = random.Random(7)
    names = [name for name, _ in STATES]
    weights = [share for _, share in STATES]
    start = now - timedelta(days=730)
    step = (now - start) / orders
    columns = (
        "woo_id, number, state, shop_status, shop_modified_at, reason, attempts, d365_id, "
        "d365_number, external_number, currency, total, created_at, updated_at, pushed_at, "
        "write_back_pending, raw_json"
    )
    placeholders = "(" + ", ".join(["%s"] * 17) + ")"
    with conn.cursor() as cur:
        for first in range(0, orders, BATCH):
            rows = []
            for woo_id in range(first + 1, min(first + BATCH, orders) + 1):
                state = rng.choices(names, weights)[0]
                created = start + step * woo_id
                # The waiting ones are recent; the others were last touched soon after creation.
                updated = (
                    now - timedelta(minutes=rng.randint(1, 600))
                    if state in ("held", "failed", "new", "ready")
                    else created + timedelta(minutes=rng.randint(1, 30))
                )
                pushed = state == "pushed"
                rows.append(
                    (
                        woo_id,
                        str(woo_id),
                        state,
                        "completed" if state != "skipped" else "cancelled",
                        to_db_time(created),
                        "SKU X-1 is not mapped" if state == "held" else None,
                        1 if pushed else 0,
                        str(uuid.UUID(int=woo_id)) if pushed else None,
                        f"S-ORD{woo_id:07d}" if pushed else None,
                        f"WC-{woo_id}",
                        "EUR",
                        f"{rng.randint(500, 50000) / 100:.2f}",
                        to_db_time(created),
                        to_db_time(updated),
                        to_db_time(updated) if pushed else None,
                        0,
                        json.dumps({"id": woo_id, "number": str(woo_id), "status": "completed"}),
                    )
                )
            values = ", ".join([placeholders] * len(rows))
            # Constant column names; every value is a bound parameter.
            statement = f"INSERT INTO orders ({columns}) VALUES {values}"  # noqa: S608
            cur.execute(statement, [value for row in rows for value in row])
            if (first // BATCH) % 40 == 0:
                print(f"  {first + len(rows):>9,} orders", flush=True)
        runs = []
        moment = start
        while moment < now - timedelta(minutes=5):
            runs.append(
                ("sync", "bench:1", to_db_time(moment), to_db_time(moment + timedelta(seconds=20)))
            )
            moment += timedelta(minutes=5)
        runs[-1] = (*runs[-1][:3], to_db_time(now - timedelta(minutes=3)))
        for first in range(0, len(runs), BATCH):
            chunk = runs[first : first + BATCH]
            cur.execute(
                "INSERT INTO runs (command, worker, started_at, finished_at, outcome, counts_json) "
                "VALUES " + ", ".join(["(%s, %s, %s, %s, 'ok', '{}')"] * len(chunk)),
                [value for run in chunk for value in run],
            )
        print(f"  {len(runs):,} sync runs", flush=True)
        cur.execute("ANALYZE TABLE orders, runs")
        cur.fetchall()


def timed(
    config: Path, args: list[str], repeat: int, env: dict[str, str]
) -> tuple[list[float], int, int]:
    """Wall-clock seconds of each run, the exit code and the size of stdout."""
    times: list[float] = []
    code = 0
    size = 0
    for _ in range(repeat):
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "woo2d365", "--config", str(config), *args],
            capture_output=True,
            check=False,
            cwd=ROOT,
            env=env,
        )
        times.append(time.perf_counter() - started)
        code, size = result.returncode, len(result.stdout)
        if code not in (0, 1):
            print(result.stderr.decode(errors="replace"), file=sys.stderr)
    return times, code, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--mysql", default="mysql://root@127.0.0.1:3306/")
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    parser.add_argument(
        "--skip-full-json", action="store_true", help="Leave out `status --json` (all orders)."
    )
    parser.add_argument(
        "--reuse", metavar="DATABASE", help="Time against a database kept by an earlier --keep."
    )
    options = parser.parse_args()

    database = options.reuse or f"w2d_bench_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(options.mysql)
    url = urlunsplit((parts.scheme, parts.netloc, f"/{database}", "", ""))
    failed = False
    if not options.reuse:
        with admin(options.mysql) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    try:
        if not options.reuse:
            open_store(url).close()  # the schema, as the tool creates it
            print(f"filling {database} with {options.orders:,} orders …", flush=True)
            started = time.perf_counter()
            with admin(options.mysql, database) as conn:
                fill(conn, options.orders, datetime.now(UTC))
            print(f"filled in {time.perf_counter() - started:.1f} s\n")
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "woo2d365.toml"
            config.write_text(f'[state]\nurl = "{url}"\n', encoding="utf-8")
            # As installed (pip compiles to bytecode), even where PYTHONDONTWRITEBYTECODE is set:
            # the bytecode goes to a cache of its own, never into the source tree.
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
            timed(config, ["--version"], 1, env)  # writes the bytecode cache
            first, _, _ = timed(config, ["status"], 1, env)
            print(f"first status (cold caches, counts pushed orders once): {first[0]:.3f} s")
            print(f"{'command':<32} {'median':>8} {'best':>8} {'worst':>8}  exit  stdout")
            commands = [
                (["--version"], False),
                (["status"], True),
                (["status", "--check"], True),
                (["status", "--json", "--limit", "50"], True),
            ]
            if not options.skip_full_json:
                commands.append((["status", "--json"], False))
            for args, target in commands:
                repeat = 1 if args == ["status", "--json"] else options.repeat  # a minute each
                times, code, size = timed(config, args, repeat, env)
                median = statistics.median(times)
                verdict = ""
                if target:
                    ok = median < TARGET_SECONDS
                    failed |= not ok
                    verdict = "  OK" if ok else f"  MISSES the {TARGET_SECONDS:.0f} s target"
                print(
                    f"woo2d365 {' '.join(args):<23} {median:>7.3f}s {min(times):>7.3f}s "
                    f"{max(times):>7.3f}s  {code:>4}  {size:>9,} B{verdict}"
                )
    finally:
        if options.keep or options.reuse:
            print(f"\nkept: {url}")
        else:
            with admin(options.mysql) as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
