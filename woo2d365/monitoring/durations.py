"""Durations as operators type them (``15m``, ``2h``) and as people read them (``3.5 h``)."""

from __future__ import annotations

import re
from datetime import timedelta

from woo2d365.errors import UsageError

_DURATION_PART = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str, *, option: str = "duration") -> timedelta:
    """``15m``, ``2h``, ``1d``, ``180d``, ``1h30m`` → :class:`timedelta` (more than zero).

    Units: s, m, h, d, w. :class:`UsageError` naming ``option`` otherwise.
    """
    text = value.strip().lower()
    parts = _DURATION_PART.findall(text)
    if not parts or _DURATION_PART.sub("", text).strip():
        raise UsageError(
            f"{option} {value!r} is not a duration; use a number and a unit s, m, h, d or w "
            "(15m, 2h, 1d, 180d)"
        )
    seconds = sum(int(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    if seconds <= 0:
        raise UsageError(f"{option} {value!r} must be longer than zero")
    return timedelta(seconds=seconds)


def describe_age(age: timedelta) -> str:
    """A short human age: ``45 s``, ``12 min``, ``3.5 h``, ``2.0 d``."""
    seconds = max(0.0, age.total_seconds())
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
