"""Alerts that reach a person: one digest per run, de-duplicated, with recovery messages.

The sync run calls :meth:`AlertCenter.process_run` once at its end; ``woo2d365 doctor
--test-alerts`` calls :func:`send_test_alert`. Channels are e-mail (SMTP) and a JSON webhook
(Slack, Teams), configured in ``[alerts]``; a channel that fails is logged and never fails the run.
"""

from __future__ import annotations

from woo2d365.alerts.channels import (
    AlertDeliveryError,
    Channel,
    EmailChannel,
    WebhookChannel,
    channels_from_settings,
)
from woo2d365.alerts.conditions import UNREACHABLE_RUNS, Condition, unreachable_runs
from woo2d365.alerts.digest import AlertCenter, DigestOutcome, send_test_alert
from woo2d365.alerts.message import AlertMessage

__all__ = [
    "UNREACHABLE_RUNS",
    "AlertCenter",
    "AlertDeliveryError",
    "AlertMessage",
    "Channel",
    "Condition",
    "DigestOutcome",
    "EmailChannel",
    "WebhookChannel",
    "channels_from_settings",
    "send_test_alert",
    "unreachable_runs",
]
