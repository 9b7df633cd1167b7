"""Log lines: the step and the order on every line, personal data masked, secrets redacted."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from woo2d365.logs import (
    LogFormat,
    configure_logging,
    mask_email,
    mask_personal_data,
    mask_phone,
    order_context,
    register_secret,
    step_context,
    tracking_steps,
)


@contextmanager
def logging_to_stderr(log_format: LogFormat = "text") -> Iterator[None]:
    """The tool's logging on the (captured) stderr of this moment, reset afterwards."""
    configure_logging(verbose=True, log_format=log_format)
    try:
        yield
    finally:
        configure_logging()


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            "created customer C1 for sanne.devries@example.nl",
            "created customer C1 for s***@example.nl",
        ),
        ("to J.Mueller+shop@mail.example.de.", "to J***@mail.example.de."),
        ("+31 30 123 4567", "+** ** *** **67"),
        ("phone 06-12345678, fax", "phone **-******78, fax"),
        ("+49 211 555 0123", "+** *** *** **23"),
        ("(555) 123-4567", "(***) ***-**67"),
        ("0031612345678", "***********78"),
    ],
)
def test_personal_data_is_masked(text: str, masked: str) -> None:
    assert mask_personal_data(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-01T12:00:00+00:00",
        "at 2026-11-01 12:00:00.123456",
        "created as sales order S-ORD101001 (WC-1001)",
        "total 56.69 differs from 56.85 by -0.16",
        "orders 1217, 1218, 1219 and 1767225600",
        "company 4a1b2c3d-0000-1111-2222-333344445555 at 127.0.0.1:54321",
        "customer C00010, item 1996-S, account 8400",
        "api/v2.0/00000000-0000-0000-0000-000000000000/production",
    ],
)
def test_ids_times_and_amounts_are_not_taken_for_phone_numbers(text: str) -> None:
    assert mask_phone(text) == text
    assert mask_email(text) == text


def test_text_lines_name_level_step_and_order(capsys: pytest.CaptureFixture[str]) -> None:
    with logging_to_stderr():
        log = logging.getLogger("woo2d365")
        log.warning("held: SKU X", extra={"step": "validate", "woo_id": 12})
        with step_context("push"), order_context(34):
            logging.getLogger("woo2d365.dynamics").info("created customer C1 for a.b@example.com")
        logging.getLogger("woo2d365.alerts").debug("no alert channel configured")
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "warning: validate: order 12: held: SKU X",
        "info: push: order 34: created customer C1 for a***@example.com",
        "debug: alerts: no alert channel configured",
    ]


def test_json_lines_carry_step_and_order_and_hide_secrets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = 'cs_"quoted\\secret'
    register_secret(secret)
    with logging_to_stderr("json"):
        on_step = tracking_steps(None)
        with step_context("sync"):
            on_step("pull")
            with order_context(1001):
                logging.getLogger("woo2d365").info("key %s for +31 6 12345678", secret)
        logging.getLogger("woo2d365").info("after the run")
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["step"] == "pull" and first["woo_id"] == 1001 and first["level"] == "info"
    assert first["message"] == "key *** for +** * ******78"
    assert second["step"] is None and second["woo_id"] is None, "the context ends with the block"


def test_exception_text_is_cleaned_too(capsys: pytest.CaptureFixture[str]) -> None:
    with logging_to_stderr():
        try:
            raise ValueError("customer jan@example.com refused")
        except ValueError:
            logging.getLogger("woo2d365").exception("push failed")
    err = capsys.readouterr().err
    assert "jan@example.com" not in err and "j***@example.com" in err
