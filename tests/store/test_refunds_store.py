"""The refunds table: one row per shop refund, claimed and settled like an order (both backends)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from woo2d365.model import OrderState
from woo2d365.store.sql import SqlStore

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def _ready(store: SqlStore, refund_id: int = 16, woo_id: int = 14) -> None:
    raw = {"id": refund_id, "amount": "13.50", "reason": "Retour: café ☕"}
    assert store.save_refund(refund_id, woo_id, "13.50", T0, raw)
    assert store.set_refund_state(refund_id, OrderState.READY, expect=[OrderState.NEW])


def test_a_refund_is_recorded_once_and_keeps_its_raw_json(store: SqlStore) -> None:
    raw = {"id": 16, "amount": "13.50", "reason": "Retour: café ☕"}
    assert store.save_refund(16, 14, "13.50", T0, raw) is True
    assert store.save_refund(16, 14, "13.50", T0, {"changed": True}) is False, "seen before"
    record = store.get_refund(16, with_raw=True)
    assert record is not None
    assert (record.woo_id, record.state, record.amount) == (14, OrderState.NEW, "13.50")
    assert record.shop_created_at == T0
    assert record.raw == raw
    assert store.refund_counts()["new"] == 1
    assert [r.refund_id for r in store.list_refunds(woo_ids=[14])] == [16]
    assert store.list_refunds(states=[OrderState.PUSHED]) == []


def test_a_claim_fixes_the_key_counts_an_attempt_and_fences_every_settling_write(
    store: SqlStore,
) -> None:
    _ready(store)
    assert store.claim_refund(16, "host:1", T0, token="a", key="WC-14-R16")
    assert not store.claim_refund(16, "host:2", T0, token="b", key="OTHER"), "claimed once"
    record = store.get_refund(16)
    assert record is not None
    assert (record.state, record.attempts, record.external_number) == (
        OrderState.PUSHING,
        1,
        "WC-14-R16",
    )
    # A take-over before the claim is old enough fails; after, the old token is fenced off.
    assert not store.claim_refund_in_doubt(16, "host:2", T0, T0 - timedelta(seconds=1), token="b")
    assert store.claim_refund_in_doubt(16, "host:2", T0, T0 + timedelta(seconds=1), token="b")
    assert not store.confirm_refund_claim(16, "a", T0, sent_at=T0)
    assert not store.mark_refund_pushed(
        16, d365_id="x", d365_number="S-CR1", external_number="WC-14-R16", now=T0, token="a",
        post=False, note=True,
    )  # fmt: skip
    assert store.confirm_refund_claim(
        16, "b", T0 + timedelta(seconds=2), sent_at=T0 + timedelta(seconds=2)
    )
    record = store.get_refund(16)
    assert record is not None and record.last_sent_at == T0 + timedelta(seconds=2)
    assert store.in_doubt_refund_ids(T0 + timedelta(seconds=3)) == [16]
    assert store.mark_refund_pushed(
        16, d365_id="x", d365_number="S-CR1", external_number="WC-14-R16", now=T0, token="b",
        post=True, note=True,
    )  # fmt: skip
    record = store.get_refund(16)
    assert record is not None
    assert (record.state, record.d365_number, record.claim_token) == (
        OrderState.PUSHED,
        "S-CR1",
        None,
    )
    assert record.post_pending and record.note_pending
    assert store.set_refund_posted(16, "PS-CR1")
    assert not store.set_refund_posted(16, "PS-CR2"), "posted once"
    store.set_refund_note_done(16)
    record = store.get_refund(16)
    assert record is not None
    assert (record.d365_number, record.post_pending, record.note_pending) == (
        "PS-CR1",
        False,
        False,
    )
    assert store.refund_counts()["pushed"] == 1


def test_a_release_gives_the_attempt_back_and_keeps_the_key(store: SqlStore) -> None:
    _ready(store)
    assert store.claim_refund(16, "host:1", T0, token="a", key="WC-14-R16")
    assert store.set_refund_last_sent(16, "a", None)
    assert store.set_refund_state(
        16, OrderState.READY, expect=[OrderState.PUSHING], token="a", uncount_attempt=True
    )
    assert store.claim_refund(16, "host:1", T0, token="c", key="CHANGED-PREFIX")
    record = store.get_refund(16)
    assert record is not None
    assert (record.attempts, record.external_number) == (1, "WC-14-R16")
