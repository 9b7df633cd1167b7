"""Alert channels: e-mail over SMTP and a JSON webhook (Slack, Teams or any endpoint).

A channel's :meth:`~Channel.send` either delivers the message or raises
:class:`AlertDeliveryError` with a text that is safe to log: it never contains the webhook URL
(a secret: whoever has it can post) or the SMTP password.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Protocol
from urllib.parse import urlsplit

import requests

from woo2d365.alerts.message import AlertMessage
from woo2d365.clock import utc_now
from woo2d365.http import TrustingSession
from woo2d365.logs import redact, register_secret
from woo2d365.settings import AlertsSettings, EmailAlertSettings, WebhookAlertSettings

SMTP_TIMEOUT_SECONDS = 30.0
WEBHOOK_TIMEOUT_SECONDS = 10.0
IMPLICIT_TLS_PORT = 465  # SMTPS: TLS from the first byte, no STARTTLS
_BODY_SNIPPET = 200


class AlertDeliveryError(Exception):
    """A channel could not deliver; the text is safe to log and show."""


class Channel(Protocol):
    """Somewhere an alert reaches a person."""

    name: str

    def send(self, message: AlertMessage) -> None:
        """Deliver ``message`` or raise :class:`AlertDeliveryError`."""
        ...


def email_enabled(settings: EmailAlertSettings) -> bool:
    """True when ``[alerts.email]`` names an SMTP host and at least one recipient."""
    return bool(settings.smtp_host.strip()) and any(r.strip() for r in settings.recipients)


def webhook_enabled(settings: WebhookAlertSettings) -> bool:
    """True when ``[alerts.webhook]`` has a URL."""
    return bool(settings.url.get_secret_value().strip())


def channels_from_settings(settings: AlertsSettings) -> list[Channel]:
    """The configured channels (none when ``[alerts]`` configures none)."""
    channels: list[Channel] = []
    if email_enabled(settings.email):
        channels.append(EmailChannel(settings.email))
    if webhook_enabled(settings.webhook):
        channels.append(WebhookChannel(settings.webhook))
    return channels


class EmailChannel:
    """Sends a plain-text UTF-8 e-mail over SMTP.

    STARTTLS (verified against the system's trust store, which honours ``SSL_CERT_FILE``) when
    ``starttls`` is on; implicit TLS on port 465; ``AUTH`` when ``username`` is set.
    """

    name = "email"

    def __init__(
        self,
        settings: EmailAlertSettings,
        *,
        timeout: float = SMTP_TIMEOUT_SECONDS,
        ssl_context_factory: Callable[[], ssl.SSLContext] = ssl.create_default_context,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.timeout = timeout
        self._ssl_context_factory = ssl_context_factory
        self._clock = clock or utc_now
        register_secret(settings.password.get_secret_value())

    @property
    def sender(self) -> str:
        """``sender``, else the login name when it is an address, else woo2d365@host."""
        if self.settings.sender.strip():
            return self.settings.sender.strip()
        if "@" in self.settings.username:
            return self.settings.username.strip()
        return f"woo2d365@{socket.gethostname()}"

    def build(self, message: AlertMessage) -> EmailMessage:
        """The e-mail for ``message``."""
        mail = EmailMessage()
        sender = self.sender
        mail["Subject"] = message.subject
        mail["From"] = sender
        mail["To"] = ", ".join(r.strip() for r in self.settings.recipients if r.strip())
        mail["Date"] = format_datetime(self._clock().astimezone(UTC))
        mail["Message-ID"] = make_msgid("woo2d365", domain=sender.rpartition("@")[2] or None)
        # RFC 3834: no out-of-office replies to a machine.
        mail["Auto-Submitted"] = "auto-generated"
        mail.set_content(message.plain_text(), subtype="plain", charset="utf-8")
        return mail

    def send(self, message: AlertMessage) -> None:
        """Deliver ``message`` to every recipient (some refused is still delivered)."""
        mail = self.build(message)
        try:
            self._deliver(mail)
        except smtplib.SMTPException as exc:
            raise AlertDeliveryError(self._smtp_problem(exc)) from None
        except OSError as exc:
            raise AlertDeliveryError(self._connection_problem(exc)) from None

    def _smtp_problem(self, exc: smtplib.SMTPException) -> str:
        """What the SMTP server refused, in words safe to log."""
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return (
                f"the SMTP server refused the login as {self.settings.username!r}: "
                f"{_smtp_reply(exc.smtp_code, exc.smtp_error)}"
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            return (
                "the SMTP server does not offer STARTTLS or AUTH as configured "
                "(alerts.email.starttls / username)"
            )
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            return f"the SMTP server refused all {len(exc.recipients)} recipients"
        if isinstance(exc, smtplib.SMTPResponseException):
            return f"the SMTP server answered {_smtp_reply(exc.smtp_code, exc.smtp_error)}"
        return f"SMTP error: {redact(str(exc))}"

    def _connection_problem(self, exc: OSError) -> str:
        """Why the SMTP server could not be reached, or TLS with it failed."""
        if isinstance(exc, ssl.SSLCertVerificationError):
            return (
                f"the SMTP server's certificate is not trusted ({exc.verify_message}); "
                "set SSL_CERT_FILE to a bundle with its CA"
            )
        if isinstance(exc, ssl.SSLError):
            return f"TLS with the SMTP server failed: {exc.reason}"
        if isinstance(exc, TimeoutError):
            return f"no answer from {self._where()} within {self.timeout:g} s"
        return f"cannot connect to {self._where()}: {exc.strerror or type(exc).__name__}"

    def _where(self) -> str:
        return f"SMTP server {self.settings.smtp_host}:{self.settings.smtp_port}"

    def _deliver(self, mail: EmailMessage) -> None:
        s = self.settings
        smtp: smtplib.SMTP
        if s.smtp_port == IMPLICIT_TLS_PORT:
            smtp = smtplib.SMTP_SSL(
                s.smtp_host, s.smtp_port, timeout=self.timeout, context=self._ssl_context_factory()
            )
        else:
            smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=self.timeout)
        with smtp:
            smtp.ehlo()
            if s.starttls and s.smtp_port != IMPLICIT_TLS_PORT:
                smtp.starttls(context=self._ssl_context_factory())
                smtp.ehlo()
            if s.username:
                smtp.login(s.username, s.password.get_secret_value())
            smtp.send_message(mail)


class WebhookChannel:
    """POSTs ``{"text": "..."}``: what Slack and Teams incoming webhooks both accept.

    TLS is verified (``REQUESTS_CA_BUNDLE`` honoured), redirects are not followed (a POST that
    is redirected turns into a GET and is lost), and a reply outside 2xx is an error.
    """

    name = "webhook"

    def __init__(
        self,
        settings: WebhookAlertSettings,
        *,
        session: requests.Session | None = None,
        timeout: float = WEBHOOK_TIMEOUT_SECONDS,
    ) -> None:
        self._url = settings.url.get_secret_value().strip()
        self._session = session or TrustingSession()  # REQUESTS_CA_BUNDLE / SSL_CERT_FILE
        self.timeout = timeout
        register_secret(self._url)
        path = urlsplit(self._url).path
        if len(path) >= 8:  # the token part of Slack/Teams URLs; short paths would over-match
            register_secret(path)

    def payload(self, message: AlertMessage) -> dict[str, str]:
        """The JSON body for ``message``."""
        return {"text": message.chat_text()}

    def send(self, message: AlertMessage) -> None:
        """Deliver ``message``; :class:`AlertDeliveryError` without the URL on failure."""
        try:
            response = self._session.post(
                self._url,
                json=self.payload(message),
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.Timeout:
            raise AlertDeliveryError(f"no answer within {self.timeout:g} s") from None
        except requests.exceptions.SSLError:
            raise AlertDeliveryError(
                "TLS verification of the webhook host failed "
                "(set REQUESTS_CA_BUNDLE to a bundle with its CA)"
            ) from None
        except requests.ConnectionError:
            raise AlertDeliveryError("cannot connect to the webhook host") from None
        except requests.RequestException as exc:
            # The exception text carries the URL: name the kind of failure only.
            raise AlertDeliveryError(f"request failed ({type(exc).__name__})") from None
        body = self._snippet(response)
        if not 200 <= response.status_code < 300:
            raise AlertDeliveryError(f"HTTP {response.status_code}" + (f": {body}" if body else ""))
        # Teams connectors report some failures (e.g. throttling) with status 200 and this text.
        if body.startswith("Webhook message delivery failed"):
            raise AlertDeliveryError(body)

    def _snippet(self, response: requests.Response) -> str:
        text = " ".join(response.text.split())[:_BODY_SNIPPET]
        return redact(text.replace(self._url, "***"))


def _smtp_reply(code: int, error: bytes | str) -> str:
    text = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
    return redact(f"{code} {' '.join(text.split())}")
