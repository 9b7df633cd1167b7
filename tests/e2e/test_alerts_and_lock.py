"""Alerts that reach a person, and the run lock, end to end through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter

from tests.alerts.conftest import HttpSink, SmtpServer
from tests.e2e.conftest import ROOT, run_woo2d365
from woo2d365.sandbox.world import UNMAPPED, Sandbox


def _with_alerts(sandbox: Sandbox, smtp: SmtpServer, sink: HttpSink) -> None:
    text = sandbox.config_path.read_text(encoding="utf-8")
    text += (
        "\n[alerts]\nrepeat_after_minutes = 240\n"
        f'[alerts.email]\nsmtp_host = "127.0.0.1"\nsmtp_port = {smtp.port}\nstarttls = false\n'
        'sender = "woo2d365@example.test"\nrecipients = ["ops@example.test"]\n'
        f'[alerts.webhook]\nurl = "{sink.url}"\n'
    )
    sandbox.config_path.write_text(text, encoding="utf-8")


def test_a_held_order_alerts_once_and_its_fix_sends_a_recovery(
    sandbox: Sandbox, smtp: SmtpServer, sink: HttpSink
) -> None:
    _with_alerts(sandbox, smtp, sink)
    first = run_woo2d365(sandbox, "sync")
    assert first.exit_code == 1, first.stderr
    assert len(smtp.mails) == 1 and len(sink.bodies) == 1, "one digest per run, per channel"
    mail = smtp.mails[0].message.get_content()
    for unmapped in UNMAPPED:
        assert f"woo2d365 map-sku add {unmapped.product.sku} ITEM" in mail
        assert f"woo2d365 map-sku add {unmapped.product.sku} ITEM" in sink.texts[0]

    again = run_woo2d365(sandbox, "sync")
    assert again.exit_code == 0, again.stderr  # held before: no news
    assert len(smtp.mails) == 1 and len(sink.bodies) == 1, "the same condition is not repeated"

    for unmapped in UNMAPPED:
        assert (
            run_woo2d365(
                sandbox, "map-sku", "add", unmapped.product.sku, unmapped.item_number
            ).exit_code
            == 0
        )
    fixed = run_woo2d365(sandbox, "sync")
    assert fixed.exit_code == 0, fixed.stderr
    assert len(smtp.mails) == 2 and len(sink.bodies) == 2, "one recovery digest"
    recovery = smtp.mails[1].message.get_content()
    assert "no longer held" in recovery
    assert sandbox.shop.consumer_secret not in mail + recovery
    assert sandbox.bc.client_secret not in mail + recovery


def test_three_syncs_started_at_once_one_works_the_others_exit_4(sandbox: Sandbox) -> None:
    # A run long enough that all three overlap even when starting Python takes seconds
    # (a loaded machine): the one holding the lock outlives the others' start.
    sandbox.shop.latency = 0.25
    sandbox.bc.latency = 0.25
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOO2D365_")}
    env.update(sandbox.environment())
    env.pop("CURL_CA_BUNDLE", None)
    command = [sys.executable, "-m", "woo2d365", "--config", str(sandbox.config_path), "sync"]
    procs = [
        subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    started = time.monotonic()
    codes = []
    for proc in procs:
        proc.communicate(timeout=120)
        codes.append(proc.returncode)
    assert sorted(codes) == [1, 4, 4], codes  # the one that works holds the unmapped orders
    assert time.monotonic() - started < 120
    numbers = Counter(o["externalDocumentNumber"] for o in sandbox.bc.sales_orders())
    assert numbers and set(numbers.values()) == {1}, "no order duplicated"
    status = json.loads(run_woo2d365(sandbox, "status", "--json").stdout)
    assert status["last_sync"]["outcome"] in ("ok", "attention")
