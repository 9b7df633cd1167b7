"""Exactly once through the real CLI, where Dynamics is slow, throttles, or the store is new.

* A create that Business Central holds 4 s before it commits, the process SIGKILLed meanwhile and
  ``sync`` started again at once: the order is found once its create commits, and one whose
  create never left is sent again once ``dynamics.request_limit_seconds`` has passed.
* An owner frozen (SIGSTOP) while it sleeps in a 429 backoff: a second ``sync`` takes over once
  the lease and the claims have expired; the owner, resumed, sends nothing and ends in error.
* A brand-new state store (SQLite or MariaDB) in front of a Dynamics that has every order: every
  order is adopted with its number, none created, with one lookup per 50 orders.
"""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT
from tests.e2e.test_kill import _new_orders, _resolvable
from woo2d365.model import OrderState
from woo2d365.sandbox.world import Sandbox
from woo2d365.store import SqlStore, open_store

TIMEOUT_SECONDS = 2  # dynamics.timeout_seconds: a claim not renewed this long is in doubt
# dynamics.request_limit_seconds, shortened for the test: longer than any create can spend in the
# emulator (queued behind 5 others, then COMMIT_DELAY), as Dynamics' own limit is for it.
REQUEST_LIMIT_SECONDS = 20
COMMIT_DELAY = 4.0  # Business Central works on every create this long before it commits


def _env(sandbox: Sandbox, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOO2D365_")}
    env.update(sandbox.environment())
    env.pop("CURL_CA_BUNDLE", None)
    env["WOO2D365_DYNAMICS__TIMEOUT_SECONDS"] = str(TIMEOUT_SECONDS)
    env["WOO2D365_DYNAMICS__REQUEST_LIMIT_SECONDS"] = str(REQUEST_LIMIT_SECONDS)
    env.update(extra)
    return env


def _start(sandbox: Sandbox, log: Path, *args: str, **extra: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "woo2d365", "--config", str(sandbox.config_path), *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=_env(sandbox, **extra),
            cwd=ROOT,
        )


def _sent_and_pushing(store: SqlStore) -> bool:
    return any(r.last_sent_at is not None for r in store.list_orders(states=[OrderState.PUSHING]))


def _duplicates(sandbox: Sandbox) -> list[str]:
    counts = Counter(doc["externalDocumentNumber"] for doc in sandbox.bc.sales_orders())
    return [number for number, count in counts.items() if count > 1]


def _check_every_order_once(sandbox: Sandbox, store: SqlStore, context: str) -> None:
    items = {item["number"] for item in sandbox.bc.items()}
    wanted = {
        woo_id: f"WC-{order['number']}".upper()
        for woo_id, order in sandbox.shop.orders.items()
        if _resolvable(order, items)
    }
    documents = sandbox.bc.sales_orders()
    by_number = {doc["externalDocumentNumber"]: doc for doc in documents}
    assert _duplicates(sandbox) == [], context
    missing = {
        woo_id: (record.state, record.reason, [e.message for e in store.events(woo_id)][-3:])
        for woo_id, number in wanted.items()
        if number not in by_number and (record := store.get_order(woo_id)) is not None
    }
    assert set(by_number) == set(wanted.values()), (context, missing)
    for woo_id, external_number in wanted.items():
        record = store.get_order(woo_id)
        assert record is not None and record.state is OrderState.PUSHED, (woo_id, context)
        assert record.d365_number == by_number[external_number]["number"], (woo_id, context)


def test_syncs_killed_while_dynamics_holds_their_creates_leave_every_order_once(
    tmp_path: Path,
) -> None:
    seed = int(os.environ.get("EXACTLY_ONCE_SEED") or time.time_ns() % 1_000_000)
    rng = random.Random(seed)
    sandbox = Sandbox(tmp_path / "sandbox", orders=8, seed=5, unmapped_orders=0, latency=0.01)
    sandbox.start()
    sandbox.bc.commit_delay = COMMIT_DELAY
    try:
        store = open_store(f"sqlite:///{sandbox.state_path}")
        killed_in_flight = 0
        next_id = 7000
        for round_no in range(20):
            sandbox.shop.add_orders(_new_orders(rng, next_id, 2, sandbox.shop.url))
            next_id += 2
            process = _start(sandbox, tmp_path / f"round-{round_no}.log", "sync")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and process.poll() is None:
                if _sent_and_pushing(store):
                    break
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, COMMIT_DELAY))  # a random moment inside Dynamics
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)
                killed_in_flight += _sent_and_pushing(store)
            else:
                log = (tmp_path / f"round-{round_no}.log").read_text()
                assert process.returncode in (0, 1), log
            assert _duplicates(sandbox) == [], f"seed {seed}, round {round_no}"
        context = f"seed {seed}: {killed_in_flight} runs killed with creates in Dynamics"
        assert killed_in_flight >= 5, context

        # Every few seconds, as cron would, until nothing is left in doubt.
        # The margin covers slow runs on a loaded machine; a settled store ends the loop at once.
        deadline = time.monotonic() + REQUEST_LIMIT_SECONDS + COMMIT_DELAY + 90
        while time.monotonic() < deadline:
            final = subprocess.run(
                [sys.executable, "-m", "woo2d365", "--config", str(sandbox.config_path), "sync"],
                capture_output=True,
                env=_env(sandbox),
                cwd=ROOT,
                timeout=120,
                check=False,
            )
            assert final.returncode in (0, 1), final.stderr.decode()[-2000:]
            counts = store.counts()
            if not counts.get("pushing", 0) and not counts.get("ready", 0):
                break  # ready: e.g. waiting for a customer create to pass the request limit
            time.sleep(2)
        _check_every_order_once(sandbox, store, context)
        found = sum(
            event.message.startswith("in doubt: found")
            for record in store.list_orders(states=[OrderState.PUSHED])
            for event in store.events(record.woo_id)
        )
        assert found >= 1, context + ": no create was found after its run was killed"
        print(context, f"; {found} found by lookup")
        store.close()
    finally:
        sandbox.stop()


def test_a_frozen_owner_in_a_429_backoff_is_taken_over_and_sends_nothing_when_resumed(
    tmp_path: Path,
) -> None:
    # Two orders: while the owner sleeps only its heartbeats use the store, so SIGSTOP does not
    # freeze it inside a SQLite write (which would block every other process, by design).
    sandbox = Sandbox(
        tmp_path / "sandbox", orders=2, seed=9, unmapped_orders=0, latency=0.01, pushable_only=True
    )
    sandbox.start()
    lease = {"WOO2D365_STATE__LEASE_SECONDS": "3"}
    try:
        store = open_store(f"sqlite:///{sandbox.state_path}")
        sandbox.bc.fail_next(
            1, status=429, code="TooManyRequests", retry_after=8, method="POST",
            path_contains="salesOrders",
        )  # fmt: skip
        owner = _start(sandbox, tmp_path / "owner.log", "sync", **lease)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(r.status == 429 for r in sandbox.bc.requests):
            time.sleep(0.01)
        time.sleep(0.5)  # the 429 is handled (the send time put back); the owner sleeps
        assert owner.poll() is None, (tmp_path / "owner.log").read_text()
        owner.send_signal(signal.SIGSTOP)  # asleep in its backoff, now frozen as well
        try:
            time.sleep(3.5)  # the lease (3 s) and the claims (2 s) are no longer renewed
            second = _start(sandbox, tmp_path / "second.log", "sync", **lease)
            assert second.wait(timeout=60) == 0, (tmp_path / "second.log").read_text()
        finally:
            owner.send_signal(signal.SIGCONT)
        code = owner.wait(timeout=60)
        log = (tmp_path / "owner.log").read_text()
        assert code == 3, f"the owner lost its lease and must say so (exit 3): {code}\n{log}"
        _check_every_order_once(sandbox, store, log)
        posts = [r for r in sandbox.bc.requests if r.method == "POST" and "salesOrders" in r.path]
        assert len([r for r in posts if r.status == 201]) == len(sandbox.bc.sales_orders())
        last = store.last_run("sync")
        assert last is not None
        runs = [r for r in (store.last_run("sync", outcome="error"),) if r is not None]
        assert runs, "the resumed owner's run is recorded as an error"
        store.close()
    finally:
        sandbox.stop()


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_a_new_state_store_adopts_what_dynamics_has_and_creates_nothing(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    sandbox = Sandbox(tmp_path / "sandbox", orders=100, seed=4, unmapped_orders=0)
    sandbox.start()
    try:
        first = _start(sandbox, tmp_path / "first.log", "sync")
        # A deleted product's order is held (exit 1) by the first sync of each store.
        assert first.wait(timeout=300) == 1, (tmp_path / "first.log").read_text()
        before = {d["externalDocumentNumber"]: d["number"] for d in sandbox.bc.sales_orders()}
        assert len(before) >= 80

        if backend == "mysql":
            url = request.getfixturevalue("mysql_server").new_database_url()
        else:
            url = f"sqlite:///{tmp_path / 'new.db'}"
        sandbox.bc.reset_requests()
        again = _start(sandbox, tmp_path / "again.log", "sync", WOO2D365_STATE__URL=url)
        assert again.wait(timeout=300) == 1, (tmp_path / "again.log").read_text()

        assert not [r for r in sandbox.bc.requests if r.method == "POST"], "nothing created"
        after = {d["externalDocumentNumber"]: d["number"] for d in sandbox.bc.sales_orders()}
        assert after == before
        lookups = [
            r for r in sandbox.bc.requests if r.method == "GET" and r.path.endswith("/salesOrders")
        ]
        # One lookup per 50 keys, not one per order.
        assert len(lookups) == math.ceil(len(before) / 50), [r.query[:80] for r in lookups]
        store = open_store(url)
        in_dynamics = [
            woo_id
            for woo_id, order in sandbox.shop.orders.items()
            if f"WC-{order['number']}" in before
        ]
        assert len(in_dynamics) == len(before)
        for woo_id in in_dynamics:
            record = store.get_order(woo_id)
            assert record is not None and record.state is OrderState.PUSHED, woo_id
            assert record.d365_number == before[record.external_number or ""], woo_id
            assert any("adopted" in e.message for e in store.events(woo_id)), woo_id
        store.close()
    finally:
        sandbox.stop()
