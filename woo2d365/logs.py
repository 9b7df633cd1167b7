"""Logging to stderr: human text by default, one JSON object per line with ``--log-format json``.

Every record can carry ``step`` and ``woo_id``; secrets registered with :func:`register_secret`
are replaced by ``***`` in every line, whatever code produced it.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


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


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [record.levelname.lower()]
        step = getattr(record, "step", None)
        woo_id = getattr(record, "woo_id", None)
        if step:
            parts.append(str(step))
        if woo_id is not None:
            parts.append(f"order {woo_id}")
        line = f"{': '.join(parts)}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "step": getattr(record, "step", None),
            "woo_id": getattr(record, "woo_id", None),
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(data, ensure_ascii=False, default=str))


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
