"""The hand-over between two steps that run at once in ``sync`` (docs/architecture.md, "Memory").

A producer (pull, then validate) tells "done up to id N" and finally "finished"; its consumer
(validate, then push) reads its work from the store a page at a time, ascending by id, never past
N, and waits for more until the producer has finished. Nothing but ids and flags passes here: the
orders themselves stay in the store, so memory does not grow with the backlog.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from woo2d365.model import OrderState
from woo2d365.store.base import StateStore

WAIT_SECONDS = 0.5  # a waiting consumer looks at its stop condition this often
ORDERS_PER_COMMIT = 25
"""Orders pull and validate write per transaction: push's fence, which takes the store's lock
right before each send, waits for at most one such transaction."""


class Handover:
    """ "Done up to id N", "an id below N came late", "started" and "finished", between threads."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._upto: int | None = None
        self._late: int | None = None
        self._started = False
        self._finished = False
        self._cancelled = False

    def start(self) -> None:
        """The producer is past its set-up: its consumer may begin."""
        with self._changed:
            self._started = True
            self._changed.notify_all()

    def advance(self, upto: int) -> None:
        """Everything up to id ``upto`` is done (only ever moves forward)."""
        with self._changed:
            if self._upto is None or upto > self._upto:
                self._upto = upto
                self._changed.notify_all()

    def late(self, woo_id: int) -> None:
        """Work at or after ``woo_id`` was done after a higher id was handed over."""
        with self._changed:
            if self._late is None or woo_id < self._late:
                self._late = woo_id

    def finish(self) -> None:
        """The producer has ended (done, failed or cancelled): nothing more will come."""
        with self._changed:
            self._started = self._finished = True
            self._changed.notify_all()

    def cancel(self) -> None:
        """The run is ending early (a crash, Ctrl-C): the producer stops at its next page."""
        with self._changed:
            self._cancelled = True
            self._changed.notify_all()

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._cancelled

    @property
    def finished(self) -> bool:
        """True once the producer has ended."""
        return self._finished

    def wait_started(self) -> None:
        """Block until the producer started or ended."""
        with self._changed:
            self._changed.wait_for(lambda: self._started)

    def wait_finished(self) -> None:
        """Block until the producer ended."""
        with self._changed:
            self._changed.wait_for(lambda: self._finished)

    def snapshot(self) -> tuple[int | None, bool]:
        """``(done up to, finished)`` as of now."""
        with self._changed:
            return self._upto, self._finished

    def late_from(self) -> int | None:
        """The lowest id handed over late, or None."""
        with self._changed:
            return self._late

    def wait_beyond(self, upto: int | None, timeout: float) -> None:
        """Block until the producer is past ``upto``, has ended, or ``timeout`` passed."""
        with self._changed:
            self._changed.wait_for(
                lambda: (
                    self._finished
                    or self._cancelled
                    or (self._upto is not None and (upto is None or self._upto > upto))
                ),
                timeout,
            )


def handed_over_ids(
    store: StateStore,
    states: list[OrderState],
    size: int,
    handover: Handover,
    *,
    late_states: list[OrderState] | None = None,
    covered: Callable[[int], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[list[int]]:
    """Ids of orders in ``states``, ascending, ``size`` at a time, never past what ``handover``
    says is done; waits for more until it has finished, then reads to the end.

    ``covered(n)`` is told, before each wait, that every id up to ``n`` was yielded. When the
    producer handed ids over late (below what it had said was done), ids from there up to the
    last one yielded are read once more, in ``late_states`` (default ``states``). ``stop`` ends
    the reading at the next page.
    """
    last: int | None = None
    while not stop() and not handover.cancelled:
        upto, finished = handover.snapshot()
        page = store.order_ids_after(states, last, size)
        if not finished:
            page = [woo_id for woo_id in page if upto is not None and woo_id <= upto]
        if page:
            yield page
            last = page[-1]
            continue
        if finished:
            break
        if upto is not None and covered is not None:
            covered(upto)
        handover.wait_beyond(upto, WAIT_SECONDS)
    late = handover.late_from()
    if late is None or last is None or late > last:
        return
    after = late - 1
    while not stop() and not handover.cancelled:
        page = [i for i in store.order_ids_after(late_states or states, after, size) if i <= last]
        if not page:
            return
        yield page
        after = page[-1]
