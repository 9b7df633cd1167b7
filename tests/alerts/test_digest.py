"""The per-run digest through the real store (SQLite and MariaDB) and real receivers."""

from __future__ import annotations

from tests.alerts.conftest import (
    AlertLog,
    FakeClock,
    HttpSink,
    SmtpServer,
    add_order,
    alerts_settings,
)
from woo2d365.alerts import AlertCenter, DigestOutcome, channels_from_settings
from woo2d365.alerts.channels import Channel, WebhookChannel
from woo2d365.model import OrderState
from woo2d365.settings import AlertsSettings, WebhookAlertSettings
from woo2d365.store import open_store
from woo2d365.store.base import StateStore

HELD_REASON = 'line 2 "Blue Widget": SKU WIDGET-9 is not mapped (map-sku add WIDGET-9 ITEM)'


def _hold_widget_order(store: StateStore, woo_id: int = 1234) -> None:
    add_order(store, woo_id, OrderState.HELD, reason=HELD_REASON, held_skus=["WIDGET-9"])


def _run(center: AlertCenter, store: StateStore, **reachable: bool | None) -> DigestOutcome:
    run_id = store.start_run("sync", center.clock())
    return center.process_run(
        run_id,
        shop_reachable=reachable.get("shop", True),
        dynamics_reachable=reachable.get("dynamics", True),
    )


def test_held_order_produces_one_digest_with_the_map_sku_command_on_both_channels(
    store: StateStore, smtp: SmtpServer, sink: HttpSink, clock: FakeClock
) -> None:
    _hold_widget_order(store)
    center = AlertCenter(store, alerts_settings(smtp, sink), clock=clock)

    outcome = center.process_run(
        store.start_run("sync", clock()), shop_reachable=True, dynamics_reachable=True
    )

    assert outcome.sent and outcome.alerts == ("held:1234",)
    assert set(outcome.delivered) == {"email", "webhook"}
    assert len(smtp.mails) == 1 and len(sink.bodies) == 1
    mail = smtp.mails[0].message
    assert mail["Subject"] == "woo2d365: 1 order held"
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content_charset() == "utf-8"
    body = mail.get_content()
    assert "order 1234 is held: " + HELD_REASON in body
    assert "woo2d365 map-sku add WIDGET-9 ITEM" in body
    assert "SKU WIDGET-9 holds 1 order" in body
    text = sink.texts[0]
    assert text.splitlines()[0] == "woo2d365: 1 order held"
    assert "`woo2d365 map-sku add WIDGET-9 ITEM`" in text
    assert "jane@example.test" not in body + text


def test_same_condition_in_the_next_run_sends_nothing(
    store: StateStore, smtp: SmtpServer, sink: HttpSink, clock: FakeClock
) -> None:
    _hold_widget_order(store)
    center = AlertCenter(store, alerts_settings(smtp, sink), clock=clock)
    _run(center, store)
    clock.advance(minutes=15)

    outcome = center.process_run(
        store.start_run("sync", clock()), shop_reachable=True, dynamics_reachable=True
    )

    assert outcome.subject is None and not outcome.sent
    assert outcome.active == ("held:1234",)
    assert len(smtp.mails) == 1 and len(sink.bodies) == 1


def test_a_condition_is_sent_again_after_repeat_after_minutes(
    store: StateStore, smtp: SmtpServer, clock: FakeClock
) -> None:
    _hold_widget_order(store)
    center = AlertCenter(store, alerts_settings(smtp, repeat=60), clock=clock)
    _run(center, store)
    clock.advance(minutes=59)
    _run(center, store)
    assert len(smtp.mails) == 1

    clock.advance(minutes=1)
    outcome = center.process_run(None, shop_reachable=None, dynamics_reachable=None)

    assert outcome.reminders == ("held:1234",) and outcome.alerts == ()
    assert len(smtp.mails) == 2
    assert "still open since 2026-03-02 08:00 UTC" in smtp.mails[1].message.get_content()
    clock.advance(minutes=30)
    assert _run(center, store).subject is None
    assert len(smtp.mails) == 2


def test_a_recovery_message_is_sent_once_when_the_order_is_no_longer_held(
    store: StateStore, smtp: SmtpServer, sink: HttpSink, clock: FakeClock
) -> None:
    _hold_widget_order(store)
    center = AlertCenter(store, alerts_settings(smtp, sink), clock=clock)
    _run(center, store)
    store.map_sku("WIDGET-9", "1896-S", "", "test", clock())
    store.set_state(1234, OrderState.READY)
    store.set_held_skus(1234, [])
    clock.advance(minutes=5)

    outcome = center.process_run(None, shop_reachable=True, dynamics_reachable=True)

    assert outcome.recoveries == ("held:1234",) and outcome.active == ()
    assert len(smtp.mails) == 2 and len(sink.bodies) == 2
    assert smtp.mails[1].message["Subject"] == "woo2d365: 1 resolved"
    assert "order 1234 is no longer held (now ready)" in smtp.mails[1].message.get_content()
    assert "order 1234 is no longer held (now ready)" in sink.texts[1]
    assert store.alert_records() == []

    clock.advance(minutes=500)
    assert center.process_run(None, shop_reachable=True, dynamics_reachable=True).subject is None
    assert len(smtp.mails) == 2


def test_shop_unreachable_alerts_on_the_third_run_in_a_row_and_recovers(
    store: StateStore, smtp: SmtpServer, clock: FakeClock
) -> None:
    center = AlertCenter(store, alerts_settings(smtp), clock=clock)
    for _ in range(2):
        assert _run(center, store, shop=False).subject is None
        clock.advance(minutes=10)
    assert smtp.mails == []

    third = center.process_run(None, shop_reachable=False, dynamics_reachable=True)
    assert third.alerts == ("unreachable:shop",)
    assert third.subject == "woo2d365: WooCommerce unreachable"
    assert "WooCommerce could not be reached in 3 or more runs in a row since 2026-03-02 08:00" in (
        smtp.mails[0].message.get_content()
    )
    clock.advance(minutes=10)
    # Still down, and a run that did not try the shop, change nothing.
    assert center.process_run(None, shop_reachable=False, dynamics_reachable=True).subject is None
    assert center.process_run(None, shop_reachable=None, dynamics_reachable=True).subject is None

    fourth = center.process_run(None, shop_reachable=True, dynamics_reachable=True)
    assert fourth.recoveries == ("unreachable:shop",)
    assert fourth.subject == "woo2d365: WooCommerce reachable again"
    assert "WooCommerce is reachable again" in smtp.mails[1].message.get_content()
    assert len(smtp.mails) == 2


def test_a_reachable_run_between_failures_resets_the_count(
    store: StateStore, smtp: SmtpServer, clock: FakeClock
) -> None:
    center = AlertCenter(store, alerts_settings(smtp), clock=clock)
    for reachable in (False, False, True, False, False):
        center.process_run(None, shop_reachable=True, dynamics_reachable=reachable)
    assert smtp.mails == []
    outcome = center.process_run(None, shop_reachable=True, dynamics_reachable=False)
    assert outcome.alerts == ("unreachable:dynamics",)
    assert outcome.subject == "woo2d365: Dynamics unreachable"


def test_a_failing_webhook_is_logged_and_the_mail_still_goes_out(
    store: StateStore, smtp: SmtpServer, sink: HttpSink, clock: FakeClock, alert_log: AlertLog
) -> None:
    sink.status = 500
    sink.reply = b"internal error"
    _hold_widget_order(store)
    center = AlertCenter(store, alerts_settings(smtp, sink), clock=clock)

    outcome = _run(center, store)

    assert outcome.delivered == ("email",)
    assert outcome.failures == {"webhook": "HTTP 500: internal error"}
    assert len(smtp.mails) == 1
    warnings = alert_log.lines()
    assert any("alert channel webhook failed: HTTP 500" in line for line in warnings)
    assert not any("SECRET-HOOK-TOKEN" in line for line in warnings)
    # Delivered on one channel counts as sent: the working channel is not spammed next run.
    clock.advance(minutes=5)
    assert _run(center, store).subject is None
    assert len(smtp.mails) == 1


def test_nothing_listening_on_the_webhook_does_not_fail_the_run(
    store: StateStore, smtp: SmtpServer, closed_port_url: str, clock: FakeClock, alert_log: AlertLog
) -> None:
    add_order(store, 77, OrderState.FAILED, reason="Dynamics refused it: Item 1896-S is blocked.")
    webhook = WebhookChannel(WebhookAlertSettings(url=closed_port_url), timeout=2)  # type: ignore[arg-type]
    settings = alerts_settings(smtp)
    center = AlertCenter(store, settings, clock=clock, channels=[*_email_of(settings), webhook])

    outcome = _run(center, store)

    assert outcome.delivered == ("email",)
    assert outcome.failures == {"webhook": "cannot connect to the webhook host"}
    assert any("webhook" in line for line in alert_log.lines())
    assert not any("SECRET-HOOK-TOKEN" in line for line in alert_log.lines())
    assert len(smtp.mails) == 1


def test_a_digest_that_reaches_no_channel_is_sent_again_next_run(
    store: StateStore,
    smtp: SmtpServer,
    sink: HttpSink,
    closed_port_url: str,
    clock: FakeClock,
    alert_log: AlertLog,
) -> None:
    _hold_widget_order(store)
    sink.status = 503
    broken = alerts_settings(smtp, sink)
    broken.email.smtp_port = int(closed_port_url.split(":")[2].split("/")[0])
    run_id = store.start_run("sync", clock())
    store.add_event(
        "push",
        "Business Central total 44.00 differs from the shop total 42.00 by +2.00 "
        "(orders.total_tolerance = 0.01); check sales order SO-1001",
        level="warning",
        woo_id=1234,
        run_id=run_id,
    )

    first = AlertCenter(store, broken, clock=clock).process_run(
        run_id, shop_reachable=True, dynamics_reachable=True
    )

    assert not first.sent and set(first.failures) == {"email", "webhook"}
    assert "reached no channel" in " ".join(alert_log.lines())
    assert smtp.mails == []
    # The next run (whose own events say nothing) delivers both: the one-shot was kept pending.
    sink.status = 200
    clock.advance(minutes=5)
    second = _run(AlertCenter(store, alerts_settings(smtp, sink), clock=clock), store)
    assert set(second.alerts) == {"held:1234", "mismatch:1234"}
    assert len(smtp.mails) == 1 and len(sink.bodies) == 2
    assert "total 44.00 differs from the shop total 42.00" in sink.texts[1]
    assert "still open since" not in sink.texts[1]


def test_failed_order_alert_names_dynamics_message_and_the_retry_command_without_e_mail(
    store: StateStore, sink: HttpSink, clock: FakeClock
) -> None:
    add_order(
        store,
        88,
        OrderState.FAILED,
        number="A-88",
        reason="Dynamics refused it:\n  Customer with e-mail jane.doe@example.test is blocked.",
    )
    center = AlertCenter(store, alerts_settings(sink=sink), clock=clock)

    outcome = _run(center, store)

    text = sink.texts[0]
    assert outcome.subject == "woo2d365: 1 order failed"
    assert "order A-88 (id 88) failed: Dynamics refused it: Customer with e-mail [e-mail]" in text
    assert "`woo2d365 retry 88`" in text
    assert "jane.doe" not in text


def test_the_subject_counts_held_and_failed_orders(
    store: StateStore, smtp: SmtpServer, clock: FakeClock
) -> None:
    _hold_widget_order(store, 1)
    add_order(store, 2, OrderState.HELD, reason='line 1 "Gift": has no SKU', held_skus=[])
    add_order(store, 3, OrderState.FAILED, reason="Dynamics refused it: no posting group")
    add_order(store, 4, OrderState.PUSHED)
    center = AlertCenter(store, alerts_settings(smtp), clock=clock)

    outcome = _run(center, store)

    assert outcome.subject == "woo2d365: 2 orders held, 1 failed"
    body = smtp.mails[0].message.get_content()
    assert body.index("Held orders") < body.index("Failed orders")
    assert body.count("map-sku add WIDGET-9 ITEM") == 2  # in the reason and as the command


def test_a_changed_reason_is_sent_again_as_new(
    store: StateStore, smtp: SmtpServer, clock: FakeClock
) -> None:
    _hold_widget_order(store)
    center = AlertCenter(store, alerts_settings(smtp), clock=clock)
    _run(center, store)
    store.set_state(1234, OrderState.HELD, reason='line 2 "Blue Widget": item 1896-S is blocked')
    store.set_held_skus(1234, [])
    clock.advance(minutes=5)

    outcome = _run(center, store)

    assert outcome.alerts == ("held:1234",)
    assert "item 1896-S is blocked" in smtp.mails[1].message.get_content()
    assert "map-sku add" not in smtp.mails[1].message.get_content()


def test_changes_after_push_and_total_mismatches_are_sent_once_and_never_recover(
    store: StateStore, smtp: SmtpServer, clock: FakeClock
) -> None:
    add_order(store, 10, OrderState.PUSHED)
    add_order(store, 11, OrderState.PUSHED, number="W-11")
    run_id = store.start_run("sync", clock())
    store.add_event(
        "pull",
        "changed in the shop after it was pushed as SO-1001 (total 42.00 → 50.00); it is not "
        "pushed again: correct the Dynamics sales order by hand if needed",
        level="warning",
        woo_id=10,
        run_id=run_id,
    )
    store.add_event("pull", "changed in the shop (status); it is validated again", woo_id=12)
    center = AlertCenter(store, alerts_settings(smtp), clock=clock)

    first = center.process_run(
        run_id,
        shop_reachable=True,
        dynamics_reachable=True,
        total_mismatches={11: "Dynamics total 40.00 differs from the shop total 42.00"},
    )

    assert first.alerts[0].startswith("changed:10:") and first.alerts[1] == "mismatch:11"
    assert len(first.alerts) == 2
    assert first.subject == "woo2d365: 1 order changed after push, 1 with a total mismatch"
    body = smtp.mails[0].message.get_content()
    assert "order 10 changed in the shop after it was pushed as SO-1001" in body
    assert "order W-11 (id 11): Dynamics total 40.00 differs" in body
    # The same run processed again and later runs: nothing more, and no recovery.
    clock.advance(minutes=1)
    assert center.process_run(run_id, shop_reachable=True, dynamics_reachable=True).subject is None
    clock.advance(minutes=600)
    later = _run(center, store)
    assert later.subject is None and later.recoveries == ()
    assert len(smtp.mails) == 1


def test_nothing_is_sent_when_nothing_needs_attention(
    store: StateStore, smtp: SmtpServer, sink: HttpSink, clock: FakeClock
) -> None:
    add_order(store, 5, OrderState.PUSHED)
    add_order(store, 6, OrderState.READY)
    center = AlertCenter(store, alerts_settings(smtp, sink), clock=clock)

    outcome = _run(center, store)

    assert outcome.subject is None and outcome.delivered == ()
    assert smtp.mails == [] and sink.bodies == []


def test_without_channels_nothing_is_remembered_so_a_later_channel_gets_everything(
    store: StateStore, smtp: SmtpServer, clock: FakeClock
) -> None:
    _hold_widget_order(store)
    silent = AlertCenter(store, alerts_settings(), clock=clock)
    assert silent.channels == []
    assert _run(silent, store).subject is None
    assert store.alert_records() == []

    outcome = _run(AlertCenter(store, alerts_settings(smtp), clock=clock), store)

    assert outcome.alerts == ("held:1234",)
    assert len(smtp.mails) == 1


def _email_of(settings: AlertsSettings) -> list[Channel]:
    return [c for c in channels_from_settings(settings) if c.name == "email"]


def test_an_order_stuck_longer_than_max_wait_hours_is_alerted_once_and_recovers(
    state_url: str, smtp: SmtpServer, clock: FakeClock
) -> None:
    store = open_store(state_url, clock=clock)
    try:
        add_order(store, 501, OrderState.READY)
        settings = alerts_settings(smtp).model_copy(update={"max_wait_hours": 24})
        center = AlertCenter(store, settings, clock=clock)
        clock.advance(minutes=23 * 60)
        assert _run(center, store).alerts == (), "23 hours: not yet"
        clock.advance(minutes=2 * 60)
        outcome = _run(center, store)
        assert outcome.alerts == ("waiting:501",)
        body = smtp.mails[-1].message.get_content()
        assert "order 501 has been ready for 25 h (since 2026-03-02 08:00 UTC)" in body
        clock.advance(minutes=30)
        assert _run(center, store).alerts == (), "the same condition is not sent again"

        clock.advance(minutes=1)
        store.set_state(501, OrderState.READY, reason="validated again")
        again = _run(center, store)
        assert "waiting:501" in again.active and not again.recoveries, "staying ready: same age"
        store.set_state(501, OrderState.PUSHED)
        recovered = _run(center, store)
        assert recovered.recoveries == ("waiting:501",)
    finally:
        store.close()
