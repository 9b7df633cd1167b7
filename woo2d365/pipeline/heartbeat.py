"""Heartbeats: a live process renews its run lease and its claims, from a thread of its own.

Each heartbeat uses a store connection of its own (:meth:`StateStore.reopen`), so it never waits
behind a transaction of the run's own connection, and keeps beating while the run sleeps in a
backoff (docs/architecture.md, "Exactly once").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from woo2d365.errors import Woo2D365Error
from woo2d365.store.base import StateStore

log = logging.getLogger("woo2d365")


class Heartbeat:
    """Calls ``beat(store)`` every ``interval`` seconds until closed; ``lost`` is set when a beat
    returns False or fails and ``fatal`` is true (a lease), else the next beat tries again."""

    def __init__(
        self,
        name: str,
        store: StateStore,
        interval: float,
        beat: Callable[[StateStore], bool],
        *,
        fatal: bool,
    ) -> None:
        self.lost = threading.Event()
        self._beat = beat
        self._fatal = fatal
        self._interval = interval
        self._store = store.reopen()
        self._own_store = self._store is not store
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                ok = self._beat(self._store)
            except Woo2D365Error as exc:
                log.warning("%s: renewal failed: %s", self._thread.name, exc)
                ok = False
            if not ok and self._fatal:
                self.lost.set()
                return

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self._own_store:
            self._store.close()


class ClaimKeeper:
    """The claims this process is working on, renewed every third of ``dynamics.timeout_seconds``.

    A claim that is only waiting (in doubt, not found yet) is not kept: it must age out.
    """

    def __init__(
        self, store: StateStore, clock: Callable[[], datetime], timeout_seconds: float
    ) -> None:
        self._clock = clock
        self._claims: dict[str, int] = {}  # token → woo_id
        self._lock = threading.Lock()
        self._heartbeat = Heartbeat(
            "claims", store, max(0.05, timeout_seconds / 3), self._renew, fatal=False
        )

    def add(self, woo_id: int, token: str) -> None:
        """Keep this claim alive."""
        with self._lock:
            self._claims[token] = woo_id

    def discard(self, token: str) -> None:
        """Stop keeping this claim (settled, released or left in doubt)."""
        with self._lock:
            self._claims.pop(token, None)

    def _renew(self, store: StateStore) -> bool:
        with self._lock:
            claims = [(woo_id, token) for token, woo_id in self._claims.items()]
        if claims:
            held = store.renew_claims(claims, self._clock())
            with self._lock:
                for _woo_id, token in claims:
                    if token not in held:
                        self._claims.pop(token, None)
        return True

    def __enter__(self) -> ClaimKeeper:
        self._heartbeat.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._heartbeat.__exit__(*exc)
