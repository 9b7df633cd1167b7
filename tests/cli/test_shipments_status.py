"""``status`` and ``status --check`` about shipments (both store backends)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.cli.conftest import RunCli
from woo2d365.store import open_store
from woo2d365.store.base import Fulfilment, InvoiceRecord, PulledOrder, ShipmentReport


def _seed(state_url: str) -> None:
    """Three orders pushed four days ago (one shipped and invoiced, one partly shipped)."""
    now = datetime.now(UTC)
    store = open_store(state_url)
    try:
        for woo_id in (1, 2, 3):
            store.save_pulled_order(
                PulledOrder(woo_id, str(woo_id), "processing", now, "EUR", "10.00", {"id": woo_id})
            )
            store.mark_pushed(
                woo_id,
                d365_id=f"id-{woo_id}",
                d365_number=f"SO{woo_id}",
                external_number=f"WC-{woo_id}",
                now=now - timedelta(days=4),
            )
        run = store.start_run("sync", now - timedelta(minutes=1))
        store.finish_run(run, "ok", {}, now)
        store.observe_shipments(
            [ShipmentReport("s-1", 1, "102001", "2026-11-02", {10000: "1"}, "DHL", "JV1")]
        )
        store.save_fulfilment(Fulfilment(1, "shipped", "done", "completed"))
        store.save_fulfilment(Fulfilment(2, "partly"))
        store.observe_invoices(
            [InvoiceRecord("i-1", 1, "103001", "Paid", "EUR", "12.10", "10.00", "0", "2026-11-02")]
        )
    finally:
        store.close()


def _config(tmp_path: Path, state_url: str, days: int) -> Path:
    path = tmp_path / "shipments.toml"
    path.write_text(
        f'[state]\nurl = "{state_url}"\n[shipments]\nenabled = true\n'
        f"warn_unshipped_after_days = {days}\n",
        encoding="utf-8",
    )
    return path


def test_status_counts_shipped_partly_shipped_and_invoiced_orders(
    run_cli: RunCli, state_url: str
) -> None:
    _seed(state_url)
    data = json.loads(run_cli("status", "--json").stdout)
    assert data["fulfilment"] == {"shipped": 1, "partly_shipped": 1, "invoiced": 1}
    detail = json.loads(run_cli("status", "1", "--json").stdout)
    assert detail["shipments"] == [
        {"number": "102001", "posted_at": "2026-11-02T00:00:00+00:00", "tracking": "JV1"}
    ]
    assert detail["invoices"] == [{"number": "103001", "status": "Paid"}]
    assert "Pushed orders: 1 shipped, 1 partly shipped, 1 invoiced" in run_cli("status").stdout
    text = run_cli("status", "1").stdout
    assert "Shipment 102001" in text and "tracking JV1" in text and "Invoice 103001: Paid" in text


def test_check_warns_about_orders_not_shipped_in_time_only_when_asked(
    run_cli: RunCli, state_url: str, tmp_path: Path
) -> None:
    _seed(state_url)
    assert run_cli("status", "--check").exit_code == 0, "off by default"
    late = run_cli("status", "--check", config=_config(tmp_path, state_url, 3))
    assert late.exit_code == 1, late.stdout
    assert (
        "1 pushed order not shipped within 3 days" in late.stdout
        and "woo2d365 status 3" in late.stdout
    )
    assert run_cli("status", "--check", config=_config(tmp_path, state_url, 5)).exit_code == 0
