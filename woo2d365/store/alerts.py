"""The alerts room of the store: each alert condition as last seen, for de-duplication and
recovery messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class AlertRecord:
    """An alert condition as last seen: for de-duplication and recovery messages."""

    key: str  # e.g. "held:1234", "unreachable:shop"
    kind: str  # held | failed | unreachable | changed | mismatch | ...
    message: str
    active: bool
    first_seen: datetime
    last_sent: datetime | None


class AlertStore(Protocol):
    """Remembered alert conditions."""

    def alert_records(self) -> list[AlertRecord]:
        """Every remembered alert condition."""
        ...

    def save_alert_records(self, upsert: list[AlertRecord], delete: list[str]) -> None:
        """Store changed alert conditions and forget others, in one transaction."""
        ...
