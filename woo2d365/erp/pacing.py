"""The pace of requests to Dynamics: at most so many starts in any sliding window.

Used by :class:`~woo2d365.erp.odata_client.ODataClient`, shared by every thread of a client
(``dynamics.requests_per_5_minutes``; ``docs/architecture.md``, "Exactly once", step 3).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_SECONDS = 300.0


class SlidingWindowLimiter:
    """At most ``limit`` starts in any ``window_seconds``; callers wait for a free slot.

    A start is held for the window plus ``margin_seconds`` (default 2 % of the window): the server
    counts a request when it arrives, a little after we start it, and a request that arrived late
    must have left the server's window before the next one is counted in.

    Starts are counted in :data:`SLOTS` slots of the window, each held until its last start has
    left it (a little longer than each start needs): memory stays the same whatever the limit
    and however many requests a long run makes.
    """

    SLOTS = 1000

    def __init__(
        self,
        limit: int,
        window_seconds: float = WINDOW_SECONDS,
        *,
        margin_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        margin = window_seconds * 0.02 if margin_seconds is None else margin_seconds
        self.window_seconds = window_seconds + margin
        self._slot_seconds = self.window_seconds / self.SLOTS
        self._clock = clock
        self._sleep = sleep
        self._slots: deque[_Slot] = deque()  # oldest first
        self._started = 0  # starts in the window: the sum of the slots' counts
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait until a request may start; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._slots and self._slots[0].last <= now - self.window_seconds:
                    self._started -= self._slots.popleft().count
                if self._started < self.limit:
                    self._count_start(now)
                    return waited
                delay = self._slots[0].last + self.window_seconds - now
            delay = max(delay, 0.001)
            self._sleep(delay)
            waited += delay

    def _count_start(self, now: float) -> None:
        newest = self._slots[-1] if self._slots else None
        if newest is None or now - newest.first >= self._slot_seconds:
            self._slots.append(_Slot(first=now, last=now))
        else:
            newest.last = max(newest.last, now)
            newest.count += 1
        self._started += 1


@dataclass
class _Slot:
    """Starts close together: when the first and the last were, and how many."""

    first: float
    last: float
    count: int = 1
