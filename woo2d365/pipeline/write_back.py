"""Write-back: the Dynamics sales order goes back onto the shop order, as a note and a meta entry.

It runs beside the pushes in its own pool of ``woocommerce.max_concurrency`` threads, so a
Dynamics request slot never waits for the shop. Each order gets its private note at once (one
request); its meta entry is collected and set for up to 100 orders with one ``POST
/orders/batch``. An order counts as written back once both are done; until then the store keeps it
``write_back_pending`` and the next run tries again, adding the note only if the order does not
carry it yet. After a failed request (the shop is probably away) the rest waits for the next run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from woo2d365.errors import RemoteError
from woo2d365.pipeline.context import RunContext
from woo2d365.pipeline.kept import KeptDict, KeptList

STEP = "write-back"
METAS_PER_REQUEST = 100  # WooCommerce's batch limit
WAITING_NOTES = 500  # notes submitted and not written yet, at most


class ShopWriter(Protocol):
    """Where push records the Dynamics document on the shop order."""

    def write_back_note(self, woo_id: int, sales_order_number: str, *, again: bool) -> None:
        """Add the private note once; ``again`` when an earlier attempt may have added it."""
        ...

    def set_sales_order_numbers(self, numbers: Mapping[int, str]) -> dict[int, str]:
        """Record the numbers in the orders' meta; return the orders refused, with the message."""
        ...


class WriteBacks:
    """The write-backs of one push run; :meth:`add` from any thread, then :meth:`close` once.

    At most :data:`WAITING_NOTES` notes wait for a shop worker: :meth:`add` waits beyond, so a
    shop slower than Dynamics holds the push back instead of a queue growing with the backlog.
    """

    def __init__(
        self,
        ctx: RunContext,
        writer: ShopWriter,
        *,
        workers: int,
        on_fatal: Callable[[BaseException], None],
    ) -> None:
        self.ctx = ctx
        self.writer = writer
        self.written_back: KeptList[int] = KeptList()
        self.failed: KeptDict[int, str] = KeptDict()
        self._on_fatal = on_fatal
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, workers), thread_name_prefix="write-back"
        )
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when nothing is in the pool
        self._in_pool = 0  # notes and batches submitted, not finished
        self._room = threading.BoundedSemaphore(WAITING_NOTES)
        self._metas: dict[int, tuple[str, bool]] = {}  # noted, meta not yet set: (number, again)
        self._stopped = threading.Event()

    @property
    def stopped(self) -> bool:
        """True once a request failed: nothing more is tried in this run."""
        return self._stopped.is_set()

    def add(self, woo_id: int, sales_order_number: str, *, again: bool = False) -> None:
        """Write back one order (``again``: an earlier run may have done part of it)."""
        if self.stopped:
            return
        self._room.acquire()
        self._submit(self._note, woo_id, sales_order_number, again, room=True)

    def close(self) -> None:
        """Wait for the notes, set the remaining meta entries, wait for those; free the pool."""
        try:
            self._wait_idle()
            with self._lock:
                rest, self._metas = self._metas, {}
            if rest and not self.stopped:
                self._submit(self._set_metas, rest, room=False)
            self._wait_idle()
        finally:
            self._pool.shutdown(wait=True)

    def _submit(self, work: Callable[..., None], *args: object, room: bool) -> None:
        with self._lock:
            self._in_pool += 1
        self._pool.submit(self._guarded, room, work, *args)

    def _wait_idle(self) -> None:
        with self._idle:
            self._idle.wait_for(lambda: not self._in_pool)

    # -- in the pool ---------------------------------------------------------------------------

    def _guarded(self, room: bool, work: Callable[..., None], *args: object) -> None:
        try:
            if not self.stopped:
                work(*args)
        except Exception as exc:  # a store error: the run stops and raises it at its end
            self._stopped.set()
            self._on_fatal(exc)
        finally:
            if room:
                self._room.release()
            with self._idle:
                self._in_pool -= 1
                if not self._in_pool:
                    self._idle.notify_all()

    def _note(self, woo_id: int, sales_order_number: str, again: bool) -> None:
        try:
            self.writer.write_back_note(woo_id, sales_order_number, again=again)
        except (RemoteError, OSError) as exc:
            self._fail({woo_id: str(exc)}, stop=True)
            return
        full: dict[int, tuple[str, bool]] | None = None
        with self._lock:
            self._metas[woo_id] = (sales_order_number, again)
            if len(self._metas) >= METAS_PER_REQUEST:
                full, self._metas = self._metas, {}
        if full:
            self._submit(self._set_metas, full, room=False)

    def _set_metas(self, values: dict[int, tuple[str, bool]]) -> None:
        numbers = {woo_id: number for woo_id, (number, _) in values.items()}
        try:
            refused = self.writer.set_sales_order_numbers(numbers)
        except (RemoteError, OSError) as exc:
            self._fail(dict.fromkeys(values, str(exc)), stop=True)
            return
        for woo_id, (_, again) in values.items():
            if woo_id not in refused:
                self.ctx.store.set_write_back_done(woo_id)
                if again:  # the success that ends an earlier failure
                    self.ctx.event(STEP, "write-back to the shop done", woo_id=woo_id)
        with self._lock:
            self.written_back.extend(woo_id for woo_id in values if woo_id not in refused)
        if refused:
            self._fail(refused, stop=False)

    def _fail(self, problems: dict[int, str], *, stop: bool) -> None:
        if stop:
            self._stopped.set()
        with self._lock:
            self.failed.update(problems)
        for woo_id, problem in problems.items():
            self.ctx.event(
                STEP,
                f"write-back to the shop failed ({problem}); tried again next run",
                level="warning",
                woo_id=woo_id,
            )
