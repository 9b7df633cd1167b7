"""The runs room of the store: run records, the run lock (a lease) and the key/value table that
holds the cursors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class RunRecord:
    """One run of a command."""

    id: int
    command: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None  # ok | attention | unreachable | error | locked
    counts: dict[str, int] = field(default_factory=dict)


class KeyValues(Protocol):
    """The key/value table: cursors and small markers of each room."""

    def get_value(self, key: str) -> str | None:
        """A stored value (e.g. ``pull.cursor``)."""
        ...

    def set_value(self, key: str, value: str) -> None:
        """Store a value."""
        ...


class RunStore(KeyValues, Protocol):
    """Run records and leases, over the key/value table."""

    def start_run(self, command: str, now: datetime, worker: str = "") -> int:
        """Open a run record; return its id."""
        ...

    def finish_run(self, run_id: int, outcome: str, counts: dict[str, int], now: datetime) -> None:
        """Close a run record with its outcome and counts."""
        ...

    def last_run(self, command: str = "sync", *, outcome: str | None = None) -> RunRecord | None:
        """The latest run of ``command`` (optionally only with ``outcome``)."""
        ...

    def last_successful_run(self, command: str = "sync") -> RunRecord | None:
        """The latest run of ``command`` that reached both systems (outcome ok or attention)."""
        ...

    def acquire_lock(self, name: str, holder: str, now: datetime, ttl_seconds: float) -> bool:
        """Take the lease ``name`` if free or expired; True if ``holder`` now holds it."""
        ...

    def renew_lock(self, name: str, holder: str, now: datetime, ttl_seconds: float) -> bool:
        """Extend a held lease; False if it was lost."""
        ...

    def release_lock(self, name: str, holder: str) -> None:
        """Give a lease back."""
        ...

    def lock_holder(self, name: str) -> str | None:
        """Who holds the lease ``name`` (expired or not), or None."""
        ...
