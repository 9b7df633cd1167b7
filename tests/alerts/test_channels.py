"""The channels against a real SMTP server and a real HTTP endpoint on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.alerts.conftest import FakeClock, HttpSink, SmtpServer, StartSmtp, alerts_settings
from woo2d365.alerts import (
    AlertDeliveryError,
    AlertMessage,
    EmailChannel,
    WebhookChannel,
    channels_from_settings,
    send_test_alert,
)
from woo2d365.alerts.message import Entry, Section
from woo2d365.sandbox.tls import SandboxCA
from woo2d365.settings import AlertsSettings, EmailAlertSettings, WebhookAlertSettings

MESSAGE = AlertMessage(
    "woo2d365: 1 order held",
    (
        Section(
            "Held orders:",
            (Entry('order 7 is held: line 1 "Blåbær & <Co>": SKU BB-1 is not mapped'),),
        ),
        Section("Fix:", (Entry("SKU BB-1 holds 1 order", ("woo2d365 map-sku add BB-1 ITEM",)),)),
    ),
    "woo2d365 on test",
)


@pytest.fixture(scope="module")
def ca() -> Iterator[SandboxCA]:
    authority = SandboxCA()
    yield authority
    authority.cleanup()


def _clock() -> datetime:
    return datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


# -- e-mail --------------------------------------------------------------------------------------


def test_email_without_starttls_delivers_utf8_plain_text_to_every_recipient(
    smtp: SmtpServer,
) -> None:
    settings = smtp.settings(recipients=["ops@example.test", "lead@example.test"])

    EmailChannel(settings, timeout=5, clock=_clock).send(MESSAGE)

    [received] = smtp.mails
    assert received.rcpt_tos == ["ops@example.test", "lead@example.test"]
    assert received.mail_from == "woo2d365@example.test"
    assert not received.tls and not received.authenticated
    mail = received.message
    assert mail["Subject"] == "woo2d365: 1 order held"
    assert mail["From"] == "woo2d365@example.test"
    assert mail["To"] == "ops@example.test, lead@example.test"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Date"] == "Mon, 02 Mar 2026 08:00:00 +0000"
    assert mail.get_content_type() == "text/plain" and mail.get_content_charset() == "utf-8"
    body = mail.get_content()
    assert 'line 1 "Blåbær & <Co>": SKU BB-1 is not mapped' in body
    assert "      woo2d365 map-sku add BB-1 ITEM" in body


def test_email_logs_in_when_a_username_is_set(start_smtp: StartSmtp) -> None:
    server = start_smtp(password="s3cret-pass")
    settings = server.settings(username="alerts@example.test", password="s3cret-pass", sender="")

    EmailChannel(settings, timeout=5).send(MESSAGE)

    assert server.logins == [("alerts@example.test", "s3cret-pass")]
    [received] = server.mails
    assert received.authenticated
    assert received.mail_from == "alerts@example.test"  # no sender: the login address


def test_a_refused_login_is_a_clear_error_without_the_password(start_smtp: StartSmtp) -> None:
    server = start_smtp(password="right-password")
    settings = server.settings(username="alerts", password="wrong-password")

    with pytest.raises(AlertDeliveryError) as caught:
        EmailChannel(settings, timeout=5).send(MESSAGE)

    assert "refused the login as 'alerts'" in str(caught.value)
    assert "535" in str(caught.value)
    assert "wrong-password" not in str(caught.value)
    assert server.mails == []


def test_starttls_is_used_and_verified_against_the_trusted_ca(
    start_smtp: StartSmtp, ca: SandboxCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_smtp(
        password="s3cret-pass", tls_context=ca.server_context(), require_starttls=True
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca_path))
    settings = server.settings(starttls=True, username="alerts", password="s3cret-pass")

    EmailChannel(settings, timeout=5).send(MESSAGE)

    [received] = server.mails
    assert received.tls and received.authenticated
    assert server.logins == [("alerts", "s3cret-pass")]


def test_starttls_to_an_untrusted_certificate_is_refused(
    start_smtp: StartSmtp, ca: SandboxCA
) -> None:
    server = start_smtp(tls_context=ca.server_context(), require_starttls=True)

    with pytest.raises(AlertDeliveryError, match="certificate is not trusted"):
        EmailChannel(server.settings(starttls=True), timeout=5).send(MESSAGE)

    assert server.mails == []


def test_starttls_required_but_not_offered_is_an_error(smtp: SmtpServer) -> None:
    with pytest.raises(AlertDeliveryError, match="does not offer STARTTLS"):
        EmailChannel(smtp.settings(starttls=True), timeout=5).send(MESSAGE)
    assert smtp.mails == []


def test_no_smtp_server_listening_is_a_delivery_error(closed_port_url: str) -> None:
    port = int(closed_port_url.split(":")[2].split("/")[0])
    settings = EmailAlertSettings(
        smtp_host="127.0.0.1", smtp_port=port, starttls=False, recipients=["ops@example.test"]
    )
    with pytest.raises(AlertDeliveryError, match=f"cannot connect to SMTP server 127.0.0.1:{port}"):
        EmailChannel(settings, timeout=2).send(MESSAGE)


# -- webhook -------------------------------------------------------------------------------------


def test_webhook_posts_one_text_field_with_the_title_on_the_first_line(sink: HttpSink) -> None:
    WebhookChannel(sink.settings(), timeout=5).send(MESSAGE)

    [body] = sink.bodies
    assert list(body) == ["text"]
    lines = body["text"].splitlines()
    assert lines[0] == "woo2d365: 1 order held"
    # Slack's control characters are escaped; commands are code spans.
    assert "Blåbær &amp; &lt;Co&gt;" in body["text"]
    assert "`woo2d365 map-sku add BB-1 ITEM`" in body["text"]


@pytest.mark.parametrize(
    ("status", "reply", "expected"),
    [
        (500, b"boom at /services/T000/B000/SECRET-HOOK-TOKEN", "HTTP 500: boom at ***"),
        (404, b"no_service", "HTTP 404: no_service"),
        (302, b"", "HTTP 302"),
        (
            200,
            b"Webhook message delivery failed with error: Microsoft Teams endpoint returned "
            b"HTTP error 429",
            "Webhook message delivery failed with error: Microsoft Teams endpoint returned "
            "HTTP error 429",
        ),
    ],
)
def test_a_webhook_answer_outside_success_is_an_error_without_the_url(
    sink: HttpSink, status: int, reply: bytes, expected: str
) -> None:
    sink.status, sink.reply = status, reply

    with pytest.raises(AlertDeliveryError) as caught:
        WebhookChannel(sink.settings(), timeout=5).send(MESSAGE)

    assert str(caught.value) == expected


def test_a_webhook_that_does_not_answer_times_out(sink: HttpSink) -> None:
    sink.delay = 1.5

    with pytest.raises(AlertDeliveryError, match=r"no answer within 0\.3 s"):
        WebhookChannel(sink.settings(), timeout=0.3).send(MESSAGE)


def test_a_webhook_over_https_trusts_the_ca_that_ssl_cert_file_names(
    sink: HttpSink, ca: SandboxCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The contract's standard variables hold for every HTTPS connection, alerts included."""
    sink.server.socket = ca.server_context().wrap_socket(sink.server.socket, server_side=True)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca_path))
    url = sink.url.replace("http://", "https://")

    WebhookChannel(WebhookAlertSettings(url=url), timeout=5).send(MESSAGE)  # type: ignore[arg-type]

    assert [body["text"].splitlines()[0] for body in sink.bodies] == ["woo2d365: 1 order held"]


def test_webhook_errors_never_name_the_url(closed_port_url: str) -> None:
    channel = WebhookChannel(WebhookAlertSettings(url=closed_port_url), timeout=2)  # type: ignore[arg-type]

    with pytest.raises(AlertDeliveryError) as caught:
        channel.send(MESSAGE)

    assert str(caught.value) == "cannot connect to the webhook host"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


# -- configuration and test alerts ---------------------------------------------------------------


def test_a_channel_is_enabled_only_when_configured() -> None:
    assert channels_from_settings(AlertsSettings()) == []
    host_only = AlertsSettings(email=EmailAlertSettings(smtp_host="mail.example.test"))
    assert channels_from_settings(host_only) == []
    both = AlertsSettings(
        email=EmailAlertSettings(smtp_host="mail.example.test", recipients=["ops@example.test"]),
        webhook=WebhookAlertSettings(url="https://hooks.example.test/x"),  # type: ignore[arg-type]
    )
    assert [c.name for c in channels_from_settings(both)] == ["email", "webhook"]


def test_a_test_alert_reports_each_channel(
    smtp: SmtpServer, closed_port_url: str, clock: FakeClock
) -> None:
    settings = alerts_settings(smtp)
    settings.webhook = WebhookAlertSettings(url=closed_port_url)  # type: ignore[arg-type]

    results = send_test_alert(settings, clock=clock)

    assert results == [("email", None), ("webhook", "cannot connect to the webhook host")]
    [received] = smtp.mails
    assert received.message["Subject"] == "woo2d365: test alert"
    assert "alerts about held and failed orders" in received.message.get_content()


def test_a_test_alert_without_channels_sends_nothing(clock: FakeClock) -> None:
    assert send_test_alert(AlertsSettings(), clock=clock) == []
