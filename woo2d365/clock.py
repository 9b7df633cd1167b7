"""The one clock of the program: aware UTC now. Everything that needs the time takes a
:data:`Clock` (tests pass their own); nothing else calls ``datetime.now``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real clock: aware UTC now."""
    return datetime.now(UTC)
