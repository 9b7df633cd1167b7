"""Held and failed refunds are alerted once, with the retry command, and recover."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.alerts.conftest import FakeClock, SmtpServer, add_order, alerts_settings
from woo2d365.alerts import AlertCenter
from woo2d365.model import OrderState
from woo2d365.store.base import StateStore


def test_a_held_refund_is_alerted_once_with_its_retry_command_and_then_recovers(
    store: StateStore, smtp: SmtpServer, clock: FakeClock
) -> None:
    add_order(store, 1234, OrderState.PUSHED)
    created = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    assert store.save_refund(1240, 1234, "5.00", created, {"id": 1240})
    store.set_refund_state(1240, OrderState.HELD, reason="refund line 1 needs refunds.account")
    center = AlertCenter(store, alerts_settings(smtp), clock=clock)

    first = center.process_run(None, shop_reachable=True, dynamics_reachable=True)
    assert first.alerts == ("refund:1234:1240",)
    mail = smtp.mails[0].message
    assert mail["Subject"] == "woo2d365: 1 refund(s) held or failed"
    body = mail.get_content()
    assert "refund 1240 of order 1234 is held: refund line 1 needs refunds.account" in body
    assert "woo2d365 retry --refund 1240" in body
    clock.advance(minutes=5)
    assert center.process_run(None, shop_reachable=True, dynamics_reachable=True).subject is None

    store.set_refund_state(1240, OrderState.READY)
    clock.advance(minutes=5)
    recovered = center.process_run(None, shop_reachable=True, dynamics_reachable=True)
    assert recovered.recoveries == ("refund:1234:1240",)
    assert "refund 1240 of order 1234 is no longer held or failed" in (
        smtp.mails[-1].message.get_content()
    )
