"""What every pipeline step receives: settings, store, clock and the current run."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from woo2d365.clock import Clock, utc_now
from woo2d365.pipeline.kept import KeptList
from woo2d365.settings import Settings
from woo2d365.store.base import StateStore


def default_worker_name() -> str:
    """Identifies this process in claims and locks: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class RunContext:
    """The outside world as one step sees it; tests swap any part."""

    settings: Settings
    store: StateStore
    clock: Clock = utc_now
    run_id: int | None = None
    worker: str = field(default_factory=default_worker_name)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("woo2d365"))
    lease_lost: threading.Event = field(default_factory=threading.Event)
    """Set when the run lock's lease was lost: claim nothing more, send nothing more."""
    progress: Callable[[str, int, int | None], None] | None = None
    """Told ``(step, done, total)`` as a step goes (a terminal's progress bar); total may be
    unknown (None)."""
    _repeats: dict[tuple[str, str], _Repeat] = field(default_factory=dict, repr=False)
    _repeats_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def event(
        self,
        step: str,
        message: str,
        *,
        level: str = "info",
        woo_id: int | None = None,
        once: str | None = None,
    ) -> None:
        """Record an event for this run (and order) and log it.

        Events with the same ``once`` key are all recorded, but logged only the first time in
        a run; :meth:`log_repeats` then says once how many more orders had it.
        """
        self.store.add_event(step, message, level=level, woo_id=woo_id, run_id=self.run_id)
        if once is not None:
            with self._repeats_lock:
                seen = self._repeats.get((step, once))
                if seen is not None:
                    seen.count += 1
                    if woo_id is not None:
                        seen.woo_ids.append(woo_id)
                    return
                self._repeats[(step, once)] = _Repeat(once, _LEVELS.get(level, logging.ERROR))
        self.log.log(
            _LEVELS.get(level, logging.ERROR), message, extra={"step": step, "woo_id": woo_id}
        )

    def report_progress(self, step: str, done: int, total: int | None) -> None:
        """Tell the progress callback, if any, how far ``step`` has come."""
        if self.progress is not None:
            self.progress(step, done, total)

    def log_repeats(self) -> None:
        """One line per repeated event of this run: how many more orders had it, and which."""
        with self._repeats_lock:
            repeats, self._repeats = self._repeats, {}
        for (step, _), repeat in repeats.items():
            if not repeat.count:
                continue
            ids = repeat.woo_ids
            more = f" and {ids.left_out} more" if ids.left_out else ""
            named = ", ".join(str(i) for i in ids) + more
            count = repeat.count
            self.log.log(
                repeat.level,
                "the same for %d more order%s (%s): %s",
                count,
                "" if count == 1 else "s",
                named,
                repeat.text,
                extra={"step": step},
            )


_LEVELS = {"info": logging.INFO, "warning": logging.WARNING}


@dataclass
class _Repeat:
    text: str
    level: int
    count: int = 0  # more events than the first
    woo_ids: KeptList[int] = field(default_factory=lambda: KeptList(keep=5))  # named in the log
