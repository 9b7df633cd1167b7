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
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Protocol

from woo2d365.errors import RemoteError
from woo2d365.pipeline.context import RunContext

STEP = "write-back"
METAS_PER_REQUEST = 100  # WooCommerce's batch limit


class ShopWriter(Protocol):
    """Where push records the Dynamics document on the shop order."""

    def write_back_note(self, woo_id: int, sales_order_number: str, *, again: bool) -> None:
        """Add the private note once; ``again`` when an earlier attempt may have added it."""
        ...

    def set_sales_order_numbers(self, numbers: Mapping[int, str]) -> dict[int, str]:
        """Record the numbers in the orders' meta; return the orders refused, with the message."""
        ...


class WriteBacks:
    """The write-backs of one push run; :meth:`add` from any thread, then :meth:`close` once."""

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
        self.written_back: list[int] = []
        self.failed: dict[int, str] = {}
        self._on_fatal = on_fatal
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, workers), thread_name_prefix="write-back"
        )
        self._lock = threading.Lock()
        self._notes: list[Future[None]] = []
        self._batches: list[Future[None]] = []
        self._metas: dict[int, str] = {}  # noted, meta not yet set
        self._stopped = threading.Event()
        self._again: set[int] = set()  # orders whose earlier write-back did not finish

    @property
    def stopped(self) -> bool:
        """True once a request failed: nothing more is tried in this run."""
        return self._stopped.is_set()

    def add(self, woo_id: int, sales_order_number: str, *, again: bool = False) -> None:
        """Write back one order (``again``: an earlier run may have done part of it)."""
        if self.stopped:
            return
        future = self._pool.submit(self._guarded, self._note, woo_id, sales_order_number, again)
        with self._lock:
            self._notes.append(future)

    def close(self) -> None:
        """Wait for the notes, set the remaining meta entries, wait for those; free the pool."""
        try:
            wait(list(self._notes))
            with self._lock:
                rest, self._metas = self._metas, {}
            if rest and not self.stopped:
                self._submit_batch(rest)
            wait(list(self._batches))
        finally:
            self._pool.shutdown(wait=True)

    # -- in the pool ---------------------------------------------------------------------------

    def _guarded(self, work: Callable[..., None], *args: object) -> None:
        if self.stopped:
            return
        try:
            work(*args)
        except Exception as exc:  # a store error: the run stops and raises it at its end
            self._stopped.set()
            self._on_fatal(exc)

    def _note(self, woo_id: int, sales_order_number: str, again: bool) -> None:
        try:
            self.writer.write_back_note(woo_id, sales_order_number, again=again)
        except (RemoteError, OSError) as exc:
            self._fail({woo_id: str(exc)}, stop=True)
            return
        full: dict[int, str] | None = None
        with self._lock:
            if again:
                self._again.add(woo_id)
            self._metas[woo_id] = sales_order_number
            if len(self._metas) >= METAS_PER_REQUEST:
                full, self._metas = self._metas, {}
        if full:
            self._submit_batch(full)

    def _submit_batch(self, values: dict[int, str]) -> None:
        future = self._pool.submit(self._guarded, self._set_metas, values)
        with self._lock:
            self._batches.append(future)

    def _set_metas(self, values: dict[int, str]) -> None:
        try:
            refused = self.writer.set_sales_order_numbers(values)
        except (RemoteError, OSError) as exc:
            self._fail(dict.fromkeys(values, str(exc)), stop=True)
            return
        for woo_id in values:
            if woo_id not in refused:
                self.ctx.store.set_write_back_done(woo_id)
                if woo_id in self._again:  # the success that ends an earlier failure
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
