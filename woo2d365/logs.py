"""Logging to stderr: human text by default, one JSON object per line with ``--log-format json``.

Every line names the step and the order when they are known: from the record's own ``step`` and
``woo_id`` extras, else from the context (:func:`set_step`, :func:`order_context`), else from the
logger (``woo2d365.alerts`` → ``alerts``). Secrets registered with :func:`register_secret` become
``***`` and personal data is masked (:func:`mask_personal_data`) in every line, whatever code
produced it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]

_secrets: set[str] = set()
_secrets_lock = threading.Lock()

# The step of the running command. Process-wide rather than a context variable on purpose: the
# steps of one run follow each other, and their worker threads (push) do not inherit contexts.
_current_step: str | None = None
_current_order: ContextVar[int | None] = ContextVar("woo2d365_order", default=None)
_LOGGER_STEPS = {"woo2d365.alerts": "alerts"}

_EMAIL = re.compile(r"([\w.+-])[\w.+-]*@([\w-]+(?:\.[\w-]+)+)")
# International (+…, 00…) and national (0…) numbers with the usual separators, and the North
# American (555) 123-4567 form. Not preceded or followed by what would make it part of an id,
# a version, a time, a GUID or an amount; candidates are then checked by their digit count.
_PHONE = re.compile(
    r"(?<![\w.:/+-])"
    r"(?:(?:\+|\(\+?|\(?0)\d[\d ().\-/]{5,}\d|\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4})"
    r"(?![\w:/-])"
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DECIMAL = re.compile(r"\d+\.\d{1,2}")


def register_secret(value: str | None) -> None:
    """Never let ``value`` reach a log line (ignored when short enough to match by accident)."""
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def mask_email(text: str) -> str:
    """E-mail addresses shortened to their first character and domain: ``e***@example.com``."""
    return _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)


def _mask_phone_match(match: re.Match[str]) -> str:
    candidate = match.group(0)
    digits = sum(c.isdigit() for c in candidate)
    if not 8 <= digits <= 15 or _DATE.search(candidate) or _DECIMAL.fullmatch(candidate):
        return candidate
    seen = 0
    masked = []
    for char in candidate:
        if char.isdigit():
            seen += 1
            masked.append(char if seen > digits - 2 else "*")
        else:
            masked.append(char)
    return "".join(masked)


def mask_contact(value: str) -> str:
    """One e-mail-like identifier masked even when it is not a valid address: ``p***``."""
    masked = mask_email(value)
    if masked != value:
        return masked
    return value[:1] + "***" if value else value


def mask_phone(text: str) -> str:
    """Phone numbers with every digit but the last two masked: ``+** ** *** **67``."""
    return _PHONE.sub(_mask_phone_match, text)


def mask_personal_data(text: str) -> str:
    """``text`` with e-mail addresses and phone numbers masked (see :func:`mask_email`)."""
    return mask_phone(mask_email(text))


def clean(text: str) -> str:
    """What may be shown or logged: personal data masked, secrets redacted."""
    return redact(mask_personal_data(text))


# -- step and order context ---------------------------------------------------------------------


def set_step(step: str | None) -> None:
    """Name the step now running (``pull``, ``validate``, ``push``…); None when none is."""
    global _current_step
    _current_step = step


def current_step() -> str | None:
    """The step set by :func:`set_step`."""
    return _current_step


@contextmanager
def step_context(step: str) -> Iterator[None]:
    """Log lines inside the block name ``step`` (unless they name their own)."""
    before = _current_step
    set_step(step)
    try:
        yield
    finally:
        set_step(before)


@contextmanager
def order_context(woo_id: int | None) -> Iterator[None]:
    """Log lines of this thread inside the block name the order ``woo_id``."""
    token = _current_order.set(woo_id)
    try:
        yield
    finally:
        _current_order.reset(token)


def tracking_steps(callback: Callable[[str], Any] | None) -> Callable[[str], Any]:
    """An ``on_step`` callback that also names the step in log lines, then calls ``callback``."""

    def on_step(step: str) -> Any:
        set_step(step)
        return callback(step) if callback is not None else None

    return on_step


_dry_run = False  # process-wide, as the step: a dry run's steps log from several threads


@contextmanager
def dry_run_context() -> Iterator[None]:
    """Log lines inside the block say they come from a dry run (nothing they tell was written)."""
    global _dry_run
    before, _dry_run = _dry_run, True
    try:
        yield
    finally:
        _dry_run = before


def _step_of(record: logging.LogRecord) -> str | None:
    step = getattr(record, "step", None)
    if step:
        return str(step)
    return _LOGGER_STEPS.get(record.name) or _current_step


def _woo_id_of(record: logging.LogRecord) -> int | None:
    woo_id = getattr(record, "woo_id", None)
    return woo_id if woo_id is not None else _current_order.get()


# -- formatters ---------------------------------------------------------------------------------


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [record.levelname.lower()]
        step = _step_of(record)
        woo_id = _woo_id_of(record)
        if step:
            parts.append(f"{step} (dry run)" if _dry_run else step)
        if woo_id is not None:
            parts.append(f"order {woo_id}")
        line = f"{': '.join(parts)}: {mask_personal_data(record.getMessage())}"
        if record.exc_info:
            line += "\n" + mask_personal_data(self.formatException(record.exc_info))
        return redact(line)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "step": _step_of(record),
            "woo_id": _woo_id_of(record),
            "message": clean(record.getMessage()),
        }
        if _dry_run:
            data["dry_run"] = True
        if record.exc_info:
            data["exception"] = clean(self.formatException(record.exc_info))
        # Fields are cleaned before encoding: JSON escapes a secret that holds a quote or a
        # backslash, and the escaped form would not be found in the encoded line.
        return json.dumps(data, ensure_ascii=False, default=str)


def configure_logging(
    *, verbose: bool = False, quiet: bool = False, log_format: LogFormat = "text"
) -> None:
    """Send the tool's log records to stderr in the chosen format."""
    logger = logging.getLogger("woo2d365")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if log_format == "json" else _TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING)
    logger.propagate = False
