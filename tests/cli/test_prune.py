"""``prune --older-than``: GDPR retention of events, personal data in shop JSON, cached e-mails."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import RunCli
from woo2d365.model import OrderState
from woo2d365.retention import PRUNED_MARK, scrub_order
from woo2d365.shop.mapping import content_fingerprint
from woo2d365.store import open_store
from woo2d365.store.base import CachedCustomer, PulledOrder

SAMPLE = Path(__file__).resolve().parents[1] / "shop" / "samples" / "order-hpos-wc9.9.5.json"
NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=200)
RECENT = NOW - timedelta(days=10)

PERSONAL = ("Erika", "Mustermann", "Muster GmbH", "Hauptstr. 1", "erika@example.com", "123456")


def _order(woo_id: int) -> dict[str, Any]:
    raw = json.loads(SAMPLE.read_text(encoding="utf-8"))
    raw.update(
        id=woo_id,
        number=str(woo_id),
        customer_note="Bitte bei Erika Mustermann klingeln",
        customer_ip_address="203.0.113.7",
        customer_user_agent="Mozilla/5.0 (Erika's laptop)",
    )
    raw["meta_data"].append({"id": 9, "key": "_billing_vat", "value": "DE123456789"})
    raw["meta_data"].append({"id": 10, "key": "_woo2d365_sales_order", "value": "SO-1"})
    return raw


def _seed(state_url: str) -> None:
    """Old pushed (1), old skipped (2), old held (3), recent pushed (4); events; customers."""
    clock = [OLD]
    store = open_store(state_url, clock=lambda: clock[0])
    for woo_id in (1, 2, 3, 4):
        clock[0] = OLD if woo_id != 4 else RECENT
        raw = _order(woo_id)
        store.save_pulled_order(
            PulledOrder(woo_id, str(woo_id), "processing", OLD, "EUR", raw["total"], raw)
        )
        store.add_event("pull", "created customer C1 for erika@example.com", woo_id=woo_id)
        if woo_id in (1, 4):
            store.mark_pushed(
                woo_id,
                d365_id="guid",
                d365_number=f"SO-{woo_id}",
                external_number="WC-1",
                now=clock[0],
            )
        elif woo_id == 2:
            store.set_state(woo_id, OrderState.SKIPPED, reason="cancelled in the shop")
        else:
            store.set_state(woo_id, OrderState.HELD, reason="SKU X is not mapped")
    clock[0] = OLD
    store.put_customer(CachedCustomer("erika@example.com", "C1", "id-1"))
    clock[0] = RECENT
    store.put_customer(CachedCustomer("max@example.com", "C2", "id-2"))
    store.add_event("sync", "a recent run event")
    store.close()


def test_prune_removes_personal_data_of_old_final_orders_and_keeps_the_rest(
    run_cli: RunCli, state_url: str
) -> None:
    _seed(state_url)
    result = run_cli("prune", "--older-than", "180d")
    assert result.exit_code == 0, result.stderr
    assert "removed 3 events, the personal data of 2 pushed or skipped orders and 1 cached" in (
        result.stdout
    )
    store = open_store(state_url)
    try:
        for woo_id in (1, 2):
            record = store.get_order(woo_id, with_raw=True)
            assert record is not None and record.raw is not None
            text = json.dumps(record.raw)
            for value in (*PERSONAL, "203.0.113.7", "Mozilla", "klingeln", "DE123456789"):
                assert value not in text, (woo_id, value)
            raw = record.raw
            assert raw["id"] == woo_id and raw["number"] == str(woo_id)
            assert raw["total"] == "58.38" and raw["status"] == "completed"
            assert raw["billing"]["country"] == "DE" and raw["billing"]["email"] == ""
            line = raw["line_items"][0]
            assert (line["sku"], line["quantity"], line["total"]) == ("WIDGET-001", 2, "39.98")
            assert {"id": 10, "key": "_woo2d365_sales_order", "value": "SO-1"} in raw["meta_data"]
            assert raw[PRUNED_MARK]["fingerprint"] == content_fingerprint(_order(woo_id))
        pushed = store.get_order(1)
        assert pushed is not None and pushed.state is OrderState.PUSHED
        assert pushed.d365_number == "SO-1" and pushed.total == "58.38"
        for woo_id in (3, 4):  # held (not done) and recent: untouched
            kept = store.get_order(woo_id, with_raw=True)
            assert kept is not None and kept.raw == _order(woo_id)
        assert store.events(1) == [] and [e.message for e in store.events(4)] == [
            "created customer C1 for erika@example.com"
        ]
        assert store.get_customer("erika@example.com") is None
        assert store.get_customer("max@example.com") is not None
    finally:
        store.close()
    again = run_cli("prune", "--older-than", "180d")
    assert "removed 0 events, the personal data of 0 pushed" in again.stdout


def test_prune_dry_run_counts_and_changes_nothing(run_cli: RunCli, state_url: str) -> None:
    _seed(state_url)
    result = run_cli("prune", "--older-than", "26w", "--dry-run")
    assert result.exit_code == 0
    assert "would remove 3 events, the personal data of 2 pushed or skipped orders and 1" in (
        result.stdout
    )
    store = open_store(state_url)
    try:
        record = store.get_order(1, with_raw=True)
        assert record is not None and record.raw == _order(1)
        assert len(store.events(1)) == 1 and store.get_customer("erika@example.com") is not None
    finally:
        store.close()


def test_prune_refuses_an_age_below_a_day(run_cli: RunCli) -> None:
    result = run_cli("prune", "--older-than", "180m")
    assert result.exit_code == 2 and "less than a day" in result.stderr


def test_an_order_changed_after_pruning_is_pruned_again_once_it_is_old(state_url: str) -> None:
    from woo2d365.retention import prune

    _seed(state_url)
    store = open_store(state_url)
    try:
        assert prune(store, timedelta(days=180), now=NOW).orders == 2
        raw = _order(1)  # the shop sent order 1 again: the store has its personal data again
        store.save_pulled_order(PulledOrder(1, "1", "completed", NOW, "EUR", "58.38", raw))
        assert prune(store, timedelta(days=180), now=NOW).orders == 0, "too recent"
        later = NOW + timedelta(days=181)
        assert prune(store, timedelta(days=180), now=later).orders == 2  # orders 1 and 4
        record = store.get_order(1, with_raw=True)
        assert record is not None and record.raw is not None
        assert "erika@example.com" not in json.dumps(record.raw)
    finally:
        store.close()


def test_scrubbing_is_idempotent_and_keeps_the_original_fingerprint() -> None:
    raw = _order(7)
    once = scrub_order(raw, NOW)
    twice = scrub_order(once, NOW)
    assert once == twice
    assert once[PRUNED_MARK]["fingerprint"] == content_fingerprint(raw)
    assert raw["billing"]["email"] == "erika@example.com", "the input is not changed"


@pytest.mark.parametrize("field", ["billing", "shipping"])
def test_addresses_keep_only_country_and_state(field: str) -> None:
    scrubbed = scrub_order(_order(7), NOW)[field]
    assert {k: v for k, v in scrubbed.items() if v} == {"state": "DE-BE", "country": "DE"}


def test_a_pruned_copy_has_the_fingerprint_of_its_original_and_a_real_change_shows() -> None:
    from datetime import UTC, datetime

    from woo2d365.retention import scrub_order
    from woo2d365.sandbox.shop_data import CATALOGUE, build_order
    from woo2d365.shop.mapping import content_fingerprint

    original = build_order(
        77, items=[(CATALOGUE[0], 1)], created_gmt=datetime(2026, 1, 1, tzinfo=UTC)
    )
    pruned = scrub_order(original, datetime(2026, 9, 1, tzinfo=UTC))
    assert original["billing"]["email"] not in str(pruned), "personal data is gone"
    assert content_fingerprint(pruned) == content_fingerprint(original), (
        "re-pulling an unchanged order after prune is not a change after push"
    )
    changed = dict(original, customer_note="please deliver on Monday")
    assert content_fingerprint(changed) != content_fingerprint(pruned)
