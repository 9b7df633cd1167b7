"""What every pipeline step receives: settings, store, clock and the current run."""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, field

from woo2d365.clock import Clock, utc_now
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

    def event(
        self, step: str, message: str, *, level: str = "info", woo_id: int | None = None
    ) -> None:
        """Record an event for this run (and order) and log it."""
        self.store.add_event(step, message, level=level, woo_id=woo_id, run_id=self.run_id)
        log_level = {"info": logging.INFO, "warning": logging.WARNING}.get(level, logging.ERROR)
        self.log.log(log_level, message, extra={"step": step, "woo_id": woo_id})
