"""push: ready orders become sales orders in Dynamics, each exactly once (docs/architecture.md).

1. Orders left ``pushing`` whose claim is *in doubt* (not renewed for ``dynamics.timeout_seconds``,
   or its process of this host has ended) are looked up by their stored key. Found → ``pushed``;
   not found → ``ready`` again only once their last send is older than
   ``dynamics.request_limit_seconds`` (Dynamics may still be working on it until then); before
   that they stay ``pushing`` and an event says when they are looked at again.
2. Write-backs that failed before are tried again, beside the pushes (``write_back.py``).
3. The customers of the ready orders that the store does not know are looked up in batches.
4. Ready orders are claimed a chunk at a time (``ready`` → ``pushing`` under a token unique to the
   claim, the idempotency key fixed in the store). Before anything is created the chunk's keys
   are looked up in Dynamics in one request: what exists is *adopted* (recorded ``pushed``), never
   created again — so a new, restored or moved state store is safe. So is an order whose sales
   order Dynamics deleted once it was invoiced: the keys with a posted invoice or shipment are
   read once per run (``in_dynamics.py``) and such an order is adopted by what was posted. A
   shop order whose meta names a document Dynamics does not show is held rather than created
   twice.
5. Each remaining order is sent with ONE create request, fenced: before every send (and every
   re-send after a backoff) the claim is confirmed and renewed, and the send time recorded
   (``pipeline/fence.py``: before the request slot, checked again inside it); a process that
   lost its claim sends nothing. Every settling write is conditional on the token.

   * created → ``pushed`` with id and number; Dynamics' total is compared with the shop's;
   * refused → ``failed`` with Dynamics' message; the order's data is unusable → ``held``;
   * not processed (throttled, unreachable) → ``ready`` again, ``failed`` after
     ``orders.max_attempts``;
   * no answer (timeout, dropped connection) → stays ``pushing`` for step 1 of a later run.

   A heartbeat thread renews the claims being worked on, backoff sleeps included. When Dynamics
   cannot be reached, or the run lost its lease, no further orders are claimed.

``dry_run=True`` reads Dynamics (customer, in-doubt and step 4's lookups) but creates nothing and
writes nothing to the state store; it returns the exact request bodies of the ``ready`` orders and
of the ``new`` ones that would pass validation (so ``sync --dry-run`` shows them too), leaving out
those step 4 would adopt or hold.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from woo2d365.erp.base import CreatedDocument, DocumentTrace, ErpTarget, ItemLookup
from woo2d365.errors import (
    DynamicsAuthenticationError,
    DynamicsError,
    DynamicsUnreachable,
    ExitCode,
    OrderDataError,
    OrderEffect,
    Woo2D365Error,
    outcome_of,
)
from woo2d365.model import Order, OrderState
from woo2d365.pipeline.context import RunContext
from woo2d365.pipeline.fence import ClaimFence
from woo2d365.pipeline.handover import Handover, handed_over_ids
from woo2d365.pipeline.heartbeat import ClaimKeeper
from woo2d365.pipeline.in_dynamics import DynamicsLookup, oldest_created, order_key
from woo2d365.pipeline.kept import KeptDict, KeptList
from woo2d365.pipeline.resolve import DELETED_DOCUMENT_KEY
from woo2d365.pipeline.validate import (
    LineLookup,
    look_up_lines,
    problems_of,
    refresh_item_mirror,
)
from woo2d365.pipeline.write_back import ShopWriter, WriteBacks
from woo2d365.shop.mapping import email_of, order_from_shop
from woo2d365.store.base import OrderRecord

STEP = "push"
WORKERS_PER_SLOT = 2  # worker threads per Dynamics request slot
CHUNK = 50  # orders claimed and looked up in Dynamics together (one lookup request)
WINDOW = 500  # orders read from the store at a time, their customers looked up together

__all__ = ["PushResult", "ShopWriter", "push"]


@dataclass(frozen=True)
class PushedOrder:
    """An order that is in Dynamics now."""

    woo_id: int
    external_number: str
    d365_number: str
    d365_id: str
    posted: str = ""  # adopted by what was posted from it ("posted invoice 103001"), if so


@dataclass(frozen=True)
class DryRunDocument:
    """What a real push would send for one order."""

    woo_id: int
    external_number: str
    payload: dict[str, Any]
    warnings: tuple[str, ...] = ()
    placeholder_customer: bool = False
    new_customer: dict[str, Any] | None = None
    lines: int = 0  # of the shop order
    total: str = ""
    currency: str = ""


@dataclass
class PushResult:
    """What one push run did (or, in a dry run, would do)."""

    dry_run: bool = False
    # The first entries of each kind, and the count of all as len() (pipeline/kept.py).
    pushed: KeptList[PushedOrder] = field(default_factory=KeptList)
    resolved: KeptList[PushedOrder] = field(default_factory=KeptList)  # in doubt, found
    adopted: KeptList[PushedOrder] = field(default_factory=KeptList)  # found before a create
    requeued: KeptList[int] = field(default_factory=KeptList)  # in doubt, not found: ready
    failed: KeptDict[int, str] = field(default_factory=KeptDict)
    held: KeptDict[int, str] = field(default_factory=KeptDict)
    retry_later: KeptDict[int, str] = field(default_factory=KeptDict)  # not processed: ready
    not_processed: KeptList[int] = field(default_factory=KeptList)  # of those: Dynamics refused
    in_doubt: KeptDict[int, str] = field(default_factory=KeptDict)  # no answer: still pushing
    total_mismatches: KeptDict[int, str] = field(default_factory=KeptDict)
    written_back: KeptList[int] = field(default_factory=KeptList)
    write_back_failed: KeptDict[int, str] = field(default_factory=KeptDict)
    documents: list[DryRunDocument] = field(default_factory=list)  # dry run only: every one
    warnings: list[str] = field(default_factory=list)
    unreachable: str | None = None
    lease_lost: bool = False  # the run lock's lease was lost while it ran (exit 3)
    left_out: dict[int, str] = field(default_factory=dict)  # asked for by id, not pushable: why

    @property
    def in_dynamics(self) -> int:
        """Orders this run recorded ``pushed``: created, found in doubt, or adopted."""
        return len(self.pushed) + len(self.resolved) + len(self.adopted)

    @property
    def needs_attention(self) -> bool:
        """True when an order of this run was held or failed, or an order asked for by id is
        held, failed or unknown."""
        return bool(self.failed or self.held or self.left_out_attention)

    @property
    def left_out_attention(self) -> dict[int, str]:
        """Orders asked for by id that a person must look at (held, failed, not in the store)."""
        fine = ("already in Dynamics", "skipped")
        return {i: why for i, why in self.left_out.items() if not why.startswith(fine)}

    @property
    def dynamics_away(self) -> bool:
        """True when Dynamics could not be reached, or did not process orders of this run (a
        5xx or 429 past the retry policy): exit 3, nothing lost, run again later. A create left
        in doubt (sent, no answer) is not counted: the run did what it could, and the next run
        settles it by a lookup; ``errors.OUTCOMES`` gives its exit code only where the error
        ends a command."""
        return bool(self.unreachable or self.not_processed)

    @property
    def exit_code(self) -> ExitCode:
        """The contract's exit code for this outcome."""
        if self.dynamics_away or self.lease_lost:
            return ExitCode.UNREACHABLE
        return ExitCode.ATTENTION if self.needs_attention else ExitCode.OK

    def payloads(self) -> list[dict[str, Any]]:
        """The request bodies of a dry run, in order (what ``push --dry-run`` prints)."""
        return [document.payload for document in self.documents]


class _Run:
    """State shared by the worker threads of one push."""

    def __init__(self, ctx: RunContext, erp: ErpTarget, shop_writer: ShopWriter | None) -> None:
        self.ctx = ctx
        self.erp = erp
        self.writer = shop_writer if ctx.settings.woocommerce.write_back else None
        self.result = PushResult()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.fatal: BaseException | None = None
        self.tolerance = Decimal(str(ctx.settings.orders.total_tolerance))
        self.items: ItemLookup | None = None  # a dry run's unsaved item mirror
        self.write_backs: WriteBacks | None = None
        self.claims: ClaimKeeper | None = None
        self.lookup = DynamicsLookup(erp, ctx.settings.orders.document_prefix)

    def new_token(self) -> str:
        """A token unique to one claim."""
        return uuid.uuid4().hex

    @property
    def stopping(self) -> bool:
        """True once nothing more may be claimed: a fatal error, an outage, or a lost lease."""
        return self.stop.is_set() or self.ctx.lease_lost.is_set()

    def record(self, bucket: KeptDict[int, str], woo_id: int, text: str) -> None:
        with self.lock:
            bucket[woo_id] = text

    def halt(self, exc: BaseException) -> None:
        with self.lock:
            if isinstance(exc, DynamicsUnreachable) and self.result.unreachable is None:
                self.result.unreachable = str(exc)
            elif self.fatal is None and not isinstance(exc, DynamicsUnreachable):
                self.fatal = exc
        self.stop.set()


def push(
    ctx: RunContext,
    erp: ErpTarget,
    *,
    shop_writer: ShopWriter | None = None,
    order_ids: list[int] | None = None,
    dry_run: bool = False,
    limit: int | None = None,
    after: Handover | None = None,
) -> PushResult:
    """Push ready orders (all, or those of ``order_ids``; at most ``limit``) exactly once.

    In ``sync``, ``after`` is validate's hand-over: orders are pushed as they are decided, and
    the push waits for more until validate has finished (with ``order_ids``, ``limit`` or
    ``dry_run`` it waits for validate to finish first).

    Raises :class:`~woo2d365.errors.DynamicsUnreachable` or
    :class:`~woo2d365.errors.DynamicsAuthenticationError` before touching any order when Dynamics
    cannot be reached or refuses the credentials at the start. Later, an authentication error
    (and any store error) is raised once the orders in flight are settled, while an outage in the
    middle of the run is reported in :attr:`PushResult.unreachable` (exit code 3).
    """
    run = _Run(ctx, erp, shop_writer)
    run.result.dry_run = dry_run
    erp.connect()  # an outage or refused credentials stop here, before any order is claimed
    if dry_run and after is None:
        # Nothing may be written, so the item mirror is refreshed into a view for this run (in
        # sync --dry-run, validate has refreshed the scratch store's mirror already).
        refresh = refresh_item_mirror(ctx, erp, run.result.warnings, dry_run=True)
        run.items = refresh.items if refresh else None
    _resolve_in_doubt(run, dry_run=dry_run)
    if not dry_run and run.writer is not None and not run.stop.is_set():
        run.write_backs = WriteBacks(
            ctx, run.writer, workers=ctx.settings.woocommerce.max_concurrency, on_fatal=run.halt
        )
    try:
        if run.write_backs is not None:
            _retry_write_backs(run, run.write_backs)
        _push_all(run, order_ids, limit, after)
    finally:
        if run.write_backs is not None:
            run.write_backs.close()
            run.result.written_back = run.write_backs.written_back
            run.result.write_back_failed = run.write_backs.failed
    if run.fatal is not None:
        raise run.fatal
    return run.result


def _push_all(
    run: _Run, order_ids: list[int] | None, limit: int | None, after: Handover | None = None
) -> None:
    """Claim and send the candidate orders, or (dry run) build their payloads."""
    ctx, dry_run = run.ctx, run.result.dry_run
    if after is not None and order_ids is None and limit is None and not dry_run:
        # While validate still decides: every ready order, as validate hands it over.
        windows = handed_over_ids(
            ctx.store, [OrderState.READY], WINDOW, after, stop=lambda: run.stopping
        )
        _push_windows(run, windows, None)
        return
    if after is not None:
        after.wait_finished()
    if order_ids is None and limit is None and not dry_run:
        # The whole queue: read from the store a window at a time, never all ids at once.
        total = ctx.store.count_in_state(OrderState.READY)
        if total and not run.stopping:
            _push_windows(run, _ready_windows(ctx), total)
        return
    # A dry run also shows orders validate has not seen yet (sync --dry-run writes no states).
    states = [OrderState.READY, OrderState.NEW] if dry_run else [OrderState.READY]
    ids = _candidate_ids(ctx, states, order_ids, limit)
    if order_ids is not None and limit is None:
        run.result.left_out = left_out(ctx, [i for i in order_ids if i not in set(ids)])
    if not ids or run.stopping:
        return
    if not dry_run:
        windows = (ids[start : start + WINDOW] for start in range(0, len(ids), WINDOW))
        _push_windows(run, windows, len(ids))
        return
    _dry_run_all(run, ids)


def _dry_run_all(run: _Run, ids: list[int]) -> None:
    """Build the payloads of those of ``ids`` a real push would create."""
    ids = _not_in_dynamics(run, ids)
    if not ids or run.stopping:
        return
    _prefetch_customers(run, ids, dry_run=True)
    if run.stopping:
        return
    workers = max(1, min(run.ctx.settings.dynamics.max_concurrency * WORKERS_PER_SLOT, len(ids)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="push") as pool:
        for future in [pool.submit(_guarded, run, _dry_run_one, i) for i in ids]:
            future.result()
    position = {woo_id: index for index, woo_id in enumerate(ids)}
    run.result.documents.sort(key=lambda document: position[document.woo_id])


def _ready_windows(ctx: RunContext) -> Iterator[list[int]]:
    """The ``ready`` orders, ascending by id, :data:`WINDOW` at a time, read as the push goes.

    Each page starts after the last id of the one before, so an order given back (``ready``
    again) in this run is not taken twice.
    """
    last: int | None = None
    while page := ctx.store.order_ids_after([OrderState.READY], last, WINDOW):
        yield page
        last = page[-1]


def _push_windows(run: _Run, windows: Iterable[list[int]], total: int | None) -> None:
    """Push the orders of each window: their customers looked up together, then claimed a
    chunk at a time into a bounded queue that the workers take from (``total``: None while
    validate still hands orders over)."""
    ctx = run.ctx
    workers = ctx.settings.dynamics.max_concurrency * WORKERS_PER_SLOT
    workers = max(1, min(workers, total if total is not None else workers))
    # Claimed work waits in a bounded queue: at most two chunks ahead of the workers.
    room = threading.BoundedSemaphore(2 * CHUNK)
    keeper = ClaimKeeper(ctx.store, ctx.clock, ctx.settings.dynamics.timeout_seconds)
    run.claims = keeper
    progress = _Progress(ctx, total)
    with (
        keeper,
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="push") as pool,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="customers") as lookups,
    ):

        def submit(claim: _Claim) -> None:
            room.acquire()

            def work() -> None:
                try:
                    if run.stopping:
                        _release(run, claim)  # claimed, never sent: ready again at once
                        return
                    _push_one(run, claim)
                except Exception as exc:  # stops the run; push() raises it at its end
                    run.halt(exc)
                finally:
                    room.release()
                    progress.add(1)

            pool.submit(work)

        for window in windows:
            if run.stopping:
                break
            # The window's customers are looked up while its first chunk is claimed and looked
            # up; its orders reach the workers only once that lookup is done.
            customers = lookups.submit(_guarded, run, _prefetch_window, window)
            for start in range(0, len(window), CHUNK):
                if run.stopping:
                    break
                chunk = window[start : start + CHUNK]
                to_create = _claim_chunk(run, chunk)
                progress.add(len(chunk) - len(to_create))  # adopted, or not claimed
                customers.result()  # never raises: _guarded halts the run instead
                for claim in to_create:
                    submit(claim)
    run.claims = None


def _prefetch_window(run: _Run, window: list[int]) -> None:
    _prefetch_customers(run, window, dry_run=False)


class _Progress:
    """Orders handled so far, told to the run context's progress callback (thread-safe)."""

    def __init__(self, ctx: RunContext, total: int | None) -> None:
        self._ctx, self._total, self._done = ctx, total, 0
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        with self._lock:
            self._done += count
            done = self._done
        self._ctx.report_progress(STEP, done, self._total)


@dataclass(frozen=True)
class _Claim:
    """An order this run claimed: its token, the record read after the claim (the key fixed),
    and the shop order mapped once (None when its data cannot be read)."""

    woo_id: int
    token: str
    record: OrderRecord
    order: Order | None
    lookup: LineLookup | None = None  # what the lines of the claim's chunk resolve to

    @property
    def key(self) -> str:
        """The idempotency key stored at claim time."""
        return self.record.external_number or ""


def _mapped(record: OrderRecord) -> Order | None:
    try:
        return order_from_shop(record.raw or {})
    except OrderDataError:
        return None


def _claim_chunk(run: _Run, ids: list[int]) -> list[_Claim]:
    """Claim these orders, adopt those Dynamics already has, return the rest to be created."""
    claimed = _claim_ready(run, ids)
    keys = [claim.key for claim in claimed if claim.key]
    try:
        traces = run.lookup.traces(keys, oldest_created(claim.order for claim in claimed))
    except DynamicsError as exc:  # the run stops: unreachable (exit 3) or refused (exit 2)
        run.ctx.log.warning("existing documents not looked up (%s)", exc, extra={"step": STEP})
        run.halt(exc)
        for claim in claimed:  # nothing may be created without the lookup: back to ready
            _release(run, claim)
        return []
    return [claim for claim in claimed if _to_create(run, claim, traces.get(claim.key))]


def _not_in_dynamics(run: _Run, ids: list[int]) -> list[int]:
    """Dry run: those of ``ids`` a real push would create. The others are decided as
    :func:`_claim_chunk` decides them, a chunk at a time: adopted, or held."""
    store, result, to_create = run.ctx.store, run.result, []
    for start in range(0, len(ids), CHUNK):
        records = store.list_orders(woo_ids=ids[start : start + CHUNK], with_raw=True)
        orders = {record.woo_id: _mapped(record) for record in records}
        keys = {r.woo_id: order_key(run.erp, r, orders[r.woo_id]) for r in records}
        try:
            traces = run.lookup.traces(
                [k for k in keys.values() if k], oldest_created(orders.values())
            )
        except DynamicsError as exc:
            run.halt(exc)
            return []
        for woo_id in sorted(keys):
            key = keys[woo_id] or ""
            verdict = _verdict(run, woo_id, orders[woo_id], key, traces.get(key))
            if verdict.held is not None:
                run.record(result.held, woo_id, verdict.held)
            elif verdict.document is not None:
                result.adopted.append(_adopted(woo_id, verdict))
            else:
                to_create.append(woo_id)
    position = {woo_id: index for index, woo_id in enumerate(ids)}
    return sorted(to_create, key=position.__getitem__)


def _claim_ready(run: _Run, ids: list[int]) -> list[_Claim]:
    """Claim those of ``ids`` still ready; the claims this run holds, read back."""
    ctx, store = run.ctx, run.ctx.store
    records = store.list_orders(states=[OrderState.READY], woo_ids=ids, with_raw=True)
    orders = {record.woo_id: _mapped(record) for record in records}
    tokens: dict[int, str] = {}
    # One transaction for the chunk (committed before its lookup and any send), in id order as
    # every write to orders; the orders are mapped before it, outside the store's lock.
    with store.batch():
        for record in sorted(records, key=lambda r: r.woo_id):
            key = order_key(run.erp, record, orders[record.woo_id])
            token = run.new_token()
            if store.claim(record.woo_id, ctx.worker, ctx.clock(), token=token, key=key):
                tokens[record.woo_id] = token
    if run.claims is not None:
        for woo_id, token in tokens.items():
            run.claims.add(woo_id, token)
    claimed = [
        r for r in store.list_orders(woo_ids=sorted(tokens)) if r.claim_token == tokens[r.woo_id]
    ]
    mapped = [order for r in claimed if (order := orders[r.woo_id]) is not None]
    # Read after the claim, as each order's own check before its create reads it (_load).
    lookup = look_up_lines(mapped, store, ctx.settings.orders, items=run.items) if mapped else None
    return [_Claim(r.woo_id, tokens[r.woo_id], r, orders[r.woo_id], lookup) for r in claimed]


@dataclass(frozen=True)
class _Verdict:
    """What step 4 does with an order before any create: adopt ``document`` (what Dynamics
    has: ``trace``), hold it (``held``: why), or neither: create it."""

    document: CreatedDocument | None = None
    trace: DocumentTrace = field(default_factory=DocumentTrace)
    held: str | None = None


def _verdict(
    run: _Run, woo_id: int, order: Order | None, key: str, trace: DocumentTrace | None
) -> _Verdict:
    """The one rule of step 4, for the real run and the dry run alike."""
    found = trace.sales_order if trace is not None else None
    document = trace.document(key) if trace is not None else None
    recorded = order.recorded_document if order else ""
    if found is not None and found.others:
        return _Verdict(held=_several(run, found))
    if trace is not None and document is not None:
        return _Verdict(document, trace)
    if recorded and recorded != _deleted_document(run, woo_id):
        return _Verdict(
            held=f"the shop order says it is in Dynamics as sales order {recorded}, but Dynamics "
            f"has no sales order {key} and nothing posted from it: not created again (if it "
            f"was deleted: `woo2d365 retry {woo_id} --force`; to close it: `woo2d365 resolve "
            f"{woo_id} --skip --reason TEXT`)"
        )
    return _Verdict()


def _to_create(run: _Run, claim: _Claim, trace: DocumentTrace | None) -> bool:
    """Settle a claim by what the lookup found (adopted, or held); True when it is to be created."""
    verdict = _verdict(run, claim.woo_id, claim.order, claim.key, trace)
    if verdict.held is not None:
        _settle(run, claim, OrderState.HELD, verdict.held, bucket=run.result.held)
    elif verdict.document is not None:
        _adopt(run, claim, verdict)
    else:
        return True
    return False


def _several(run: _Run, found: CreatedDocument) -> str:
    """The reason of an order whose key more than one document carries."""
    numbers = ", ".join((found.number, *found.others))
    return (
        f"{len(found.others) + 1} sales orders in {run.erp.display_name} carry "
        f"{found.external_number} ({numbers}): keep one, then `woo2d365 resolve ID --document "
        "NUMBER`"
    )


def _deleted_document(run: _Run, woo_id: int) -> str:
    """The document of this order known deleted in Dynamics (``retry --force``), or ``""``."""
    return run.ctx.store.get_value(DELETED_DOCUMENT_KEY.format(woo_id=woo_id)) or ""


def _adopted(woo_id: int, verdict: _Verdict) -> PushedOrder:
    found = verdict.document
    assert found is not None
    posted = "" if verdict.trace.sales_order is not None else str(verdict.trace)
    return PushedOrder(woo_id, found.external_number, found.number, found.id, posted)


def _adopt(run: _Run, claim: _Claim, verdict: _Verdict) -> None:
    """Record an order Dynamics already has as ``pushed``; write back only what the shop lacks."""
    ctx, found, adopted = run.ctx, verdict.document, _adopted(claim.woo_id, verdict)
    assert found is not None
    recorded = claim.order.recorded_document if claim.order else ""
    if not _mark_pushed(run, claim, found, write_back=recorded != found.number):
        return
    with run.lock:
        run.result.adopted.append(adopted)
    ctx.event(
        STEP,
        f"already in {run.erp.display_name} as {already_as(adopted)} ({found.external_number}): "
        "adopted, not created again",
        woo_id=claim.woo_id,
    )
    if run.write_backs is not None and recorded != found.number:
        run.write_backs.add(claim.woo_id, found.number, again=True)


def already_as(adopted: PushedOrder) -> str:
    """What an adopted order is in Dynamics, in words: its sales order, or what was posted from
    it once Dynamics deleted the sales order."""
    if not adopted.posted:
        return f"sales order {adopted.d365_number}"
    if adopted.posted.endswith(f" {adopted.d365_number}"):
        return f"{adopted.posted} (its sales order was deleted once invoiced)"
    return f"{adopted.posted} of sales order {adopted.d365_number} (deleted once invoiced)"


def _mark_pushed(
    run: _Run, claim: _Claim, document: CreatedDocument, *, write_back: bool = True
) -> bool:
    """``pushed`` under the claim's token; False (and a warning event) when the claim was lost."""
    ctx = run.ctx
    if run.claims is not None:
        run.claims.discard(claim.token)
    recorded = ctx.store.mark_pushed(
        claim.woo_id,
        d365_id=document.id,
        d365_number=document.number,
        external_number=document.external_number,
        now=ctx.clock(),
        token=claim.token,
        write_back=write_back,
    )
    if not recorded:
        ctx.event(
            STEP,
            f"{document.external_number} is sales order {document.number}, but another process "
            "holds this order now: left to it",
            level="warning",
            woo_id=claim.woo_id,
        )
    return recorded


def left_out(ctx: RunContext, woo_ids: list[int]) -> dict[int, str]:
    """Why each of these orders (asked for by id) is not pushed now, in the operator's words."""
    records = {r.woo_id: r for r in ctx.store.list_orders(woo_ids=woo_ids)} if woo_ids else {}
    reasons: dict[int, str] = {}
    for woo_id in woo_ids:
        record = records.get(woo_id)
        if record is None:
            reasons[woo_id] = "not in the state store (woo2d365 pull --order ID first)"
        elif record.state is OrderState.PUSHED:
            reasons[woo_id] = f"already in Dynamics as {record.d365_number}"
        elif record.state is OrderState.HELD:
            reasons[woo_id] = f"held: {record.reason} (fix it, then woo2d365 retry {woo_id})"
        elif record.state is OrderState.FAILED:
            reasons[woo_id] = f"failed: {record.reason} (woo2d365 retry {woo_id})"
        elif record.state is OrderState.SKIPPED:
            reasons[woo_id] = f"skipped: {record.reason or 'not to be sent'}"
        elif record.state is OrderState.NEW:
            reasons[woo_id] = "not validated yet (woo2d365 validate --order ID)"
        else:
            reasons[woo_id] = f"{record.state.value}: being sent by another run, or in doubt"
    return reasons


def _candidate_ids(
    ctx: RunContext, states: list[OrderState], order_ids: list[int] | None, limit: int | None
) -> list[int]:
    """Ids of orders in ``states`` (of ``order_ids`` when given), oldest update first."""
    if order_ids is None and states == [OrderState.READY]:
        return ctx.store.order_ids_in_state(OrderState.READY, limit=limit)
    records = ctx.store.list_orders(
        states=states, woo_ids=None if order_ids is None else list(order_ids)
    )
    ids = [r.woo_id for r in sorted(records, key=lambda r: (r.updated_at, r.woo_id))]
    return ids[:limit] if limit is not None else ids


def _prefetch_customers(run: _Run, ids: list[int], *, dry_run: bool) -> None:
    """Let the ERP look up the customers of these orders in batches.

    Saves a lookup request per new customer; the orders' own lookups remain the fallback.
    """
    addresses: list[str] = []
    for start in range(0, len(ids), WINDOW):
        for record in run.ctx.store.list_orders(woo_ids=ids[start : start + WINDOW], with_raw=True):
            if email := email_of(record.raw or {}):
                addresses.append(email)
    try:
        run.erp.prefetch_customers(addresses, dry_run=dry_run)
    except (DynamicsAuthenticationError, DynamicsUnreachable) as exc:
        run.halt(exc)


def _guarded(run: _Run, work: Callable[[_Run, Any], None], item: Any) -> None:
    """Run one piece of work (an order's, a window's customer lookup); anything unexpected
    stops the run and is raised at its end."""
    if run.stop.is_set():
        return
    try:
        work(run, item)
    except Exception as exc:  # stops the run; push() raises it once the other workers finish
        run.halt(exc)


# -- step 1: in doubt --------------------------------------------------------------------------


def process_has_ended(worker: str) -> bool:
    """True when ``worker`` (``host:pid``) is a process of this host that no longer runs.

    A claim of another host, of this process, or of a process that may be alive (an existing
    pid, perhaps reused) is never judged ended: its claim then expires by age alone.
    """
    host, _, pid_text = worker.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: it exists, under another user
        return False
    return False


def in_doubt_orders(ctx: RunContext, now: datetime) -> list[tuple[int, datetime, bool]]:
    """``(woo_id, claimed before, expired)`` of the ``pushing`` orders that are in doubt now.

    In doubt is a claim older than ``dynamics.timeout_seconds`` (``expired``), or one whose
    process has ended (same host, pid gone), at once. ``claimed before`` is what a take-over
    must see to win, so a claim renewed meanwhile by a live process is never taken.
    """
    older_than = now - timedelta(seconds=ctx.settings.dynamics.timeout_seconds)
    found = {woo_id: (older_than, True) for woo_id in ctx.store.in_doubt_ids(older_than)}
    for record in ctx.store.list_orders(states=[OrderState.PUSHING]):
        if record.woo_id in found or record.claimed_at is None or not record.claimed_by:
            continue
        if process_has_ended(record.claimed_by):
            found[record.woo_id] = (record.claimed_at + timedelta(microseconds=1), False)
    return [(woo_id, before, expired) for woo_id, (before, expired) in sorted(found.items())]


def _resolve_in_doubt(run: _Run, *, dry_run: bool) -> None:
    """Settle every order in doubt by looking it up (step 1).

    An expired claim is taken over (a new token) before the lookup. The claim of an ended process
    that has not expired is looked up without taking it over, and taken over only to settle it.
    Found → ``pushed``. Not found → ``ready`` once the last send is older than
    ``dynamics.request_limit_seconds``, else left ``pushing``: Dynamics finishes or cancels a
    request within that time, and a create sent just before the process died may still commit.
    """
    ctx = run.ctx
    now = ctx.clock()
    for woo_id, claimed_before, expired in in_doubt_orders(ctx, now):
        if run.stopping:
            return
        token = run.new_token()
        if (
            expired
            and not dry_run
            and not ctx.store.claim_in_doubt(woo_id, ctx.worker, now, claimed_before, token=token)
        ):
            continue  # another process took it over

        def take_over(
            woo_id: int = woo_id, before: datetime = claimed_before, token: str = token
        ) -> bool:
            # A dry run writes nothing: it only reports what a real run would do.
            return dry_run or ctx.store.claim_in_doubt(woo_id, ctx.worker, now, before, token=token)

        try:
            _settle_in_doubt(
                run, woo_id, token, now, dry_run=dry_run, take_over=None if expired else take_over
            )
        except (DynamicsAuthenticationError, DynamicsUnreachable) as exc:
            run.halt(exc)
        except DynamicsError as exc:
            run.record(run.result.in_doubt, woo_id, f"lookup failed: {exc}")
            if dry_run:
                continue
            ctx.event(
                STEP,
                f"in doubt, lookup failed ({exc}); tried again next run",
                level="warning",
                woo_id=woo_id,
            )


@dataclass
class _Doubt:
    """An order in doubt being settled: ``take_over`` (a claim not taken yet) is called only
    when the order is to be settled; a dry run settles nothing."""

    run: _Run
    claim: _Claim
    now: datetime
    dry_run: bool
    take_over: Callable[[], bool] | None

    def taken(self) -> bool:
        """True when this run holds the order (taking it over now if needed)."""
        return self.take_over is None or self.take_over()

    def hold(self, reason: str) -> None:
        if not self.dry_run and self.taken():
            _settle(self.run, self.claim, OrderState.HELD, reason, bucket=None)
        self.run.record(self.run.result.held, self.claim.woo_id, reason)


def _settle_in_doubt(
    run: _Run,
    woo_id: int,
    token: str,
    now: datetime,
    *,
    dry_run: bool,
    take_over: Callable[[], bool] | None = None,
) -> None:
    """Look the order up by its stored key: adopted when found, held when several carry it,
    ready again once no create can still be in flight."""
    record = run.ctx.store.get_order(woo_id, with_raw=True)
    if record is None:
        return
    doubt = _Doubt(run, _Claim(woo_id, token, record, None), now, dry_run, take_over)
    order: Order | None = None
    external_number = record.external_number
    try:
        order = order_from_shop(record.raw or {})
        external_number = external_number or run.erp.external_number(order)
    except OrderDataError as exc:
        if not external_number:
            doubt.hold(exc.message)  # cannot have been sent without a key: nothing to look up
            return
    assert external_number
    found = run.erp.find(external_number)
    if found is not None and found.others:
        doubt.hold(_several(run, found))
    elif found is not None:
        _adopt_in_doubt(doubt, order, external_number, found)
    else:
        _requeue_in_doubt(doubt, external_number)


def _adopt_in_doubt(
    doubt: _Doubt, order: Order | None, external_number: str, found: CreatedDocument
) -> None:
    """The create did land: record the order as pushed; its write-back is pending in the store,
    done by step 2."""
    run, woo_id = doubt.run, doubt.claim.woo_id
    if not doubt.taken():
        return  # another process took it over meanwhile
    with run.lock:
        run.result.resolved.append(PushedOrder(woo_id, external_number, found.number, found.id))
    if doubt.dry_run or not _mark_pushed(run, doubt.claim, found):
        return
    run.ctx.event(
        STEP,
        f"in doubt: found in {run.erp.display_name} as sales order "
        f"{found.number} ({external_number}); recorded as pushed",
        woo_id=woo_id,
    )
    if order is not None:
        _compare_totals(run, order, found)


def _requeue_in_doubt(doubt: _Doubt, external_number: str) -> None:
    """Not found: pushing until the request limit has passed since the last send (a create may
    still be processed), then ready to be sent again."""
    run, woo_id, ctx = doubt.run, doubt.claim.woo_id, doubt.run.ctx
    limit = timedelta(seconds=ctx.settings.dynamics.request_limit_seconds)
    sent = doubt.claim.record.last_sent_at
    if sent is not None and sent + limit > doubt.now:
        again = sent + limit
        message = (
            f"in doubt: {external_number} not found in {run.erp.display_name} yet; its last "
            f"create may have been sent as late as {_iso(sent)} and may still be processed, so "
            "it stays pushing and is looked up again, and sent again if still not found, from "
            f"{_iso(again)} "
            "(dynamics.request_limit_seconds)"
        )
        run.record(run.result.in_doubt, woo_id, message)
        if not doubt.dry_run:
            ctx.event(STEP, message, level="warning", woo_id=woo_id)
        return
    if not doubt.taken():
        return
    with run.lock:
        run.result.requeued.append(woo_id)
    if doubt.dry_run:
        return
    settled = ctx.store.set_state(
        woo_id,
        OrderState.READY,
        reason=f"{external_number} was not found in {run.erp.display_name}",
        expect=[OrderState.PUSHING],
        token=doubt.claim.token,
    )
    if settled:
        ctx.event(
            STEP,
            f"in doubt: {external_number} not found in {run.erp.display_name}"
            + (f", last sent at {_iso(sent)}" if sent else ", never sent")
            + "; ready to be sent again",
            woo_id=woo_id,
        )


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


# -- step 2: write-back ------------------------------------------------------------------------


def _retry_write_backs(run: _Run, write_backs: WriteBacks) -> None:
    """Hand the orders whose write-back is unfinished to the write-back pool once more."""
    store = run.ctx.store
    for woo_id in store.write_back_pending_ids():
        record = store.get_order(woo_id)
        if record is None or record.state is not OrderState.PUSHED or not record.d365_number:
            continue
        write_backs.add(woo_id, record.d365_number, again=True)


# -- step 3: push ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Loaded:
    """An order read back from the store: mapped and resolved, or why it cannot be pushed."""

    order: Order | None
    item_numbers: tuple[str | None, ...] = ()
    problem: str | None = None
    state: OrderState = OrderState.HELD  # where an order with a problem goes


def _load(
    run: _Run,
    record: OrderRecord,
    order: Order | None = None,
    lookup: LineLookup | None = None,
) -> _Loaded:
    if order is None:
        try:
            order = order_from_shop(record.raw or {})
        except OrderDataError as exc:
            return _Loaded(None, problem=f"the shop order cannot be read: {exc.message}")
    if not run.ctx.settings.woocommerce.takes(order.status):
        # Not ours to push (yet): back to new, where validate leaves it alone.
        return _Loaded(
            order, problem=f"shop status {order.status!r} is not taken", state=OrderState.NEW
        )
    resolution = problems_of(run.ctx, run.erp, order, items=run.items, lookup=lookup)
    if resolution.problems:
        return _Loaded(order, problem="; ".join(resolution.problems))
    return _Loaded(order, resolution.item_numbers)


def _fence(run: _Run, claim: _Claim) -> ClaimFence:
    """The fence around one order's create: the claim is confirmed before every send."""
    store, woo_id, token = run.ctx.store, claim.woo_id, claim.token
    return ClaimFence(
        run.ctx,
        confirm=lambda now, until: store.confirm_claim(woo_id, token, now, sent_at=until),
        restore=lambda previous: store.set_last_sent(woo_id, token, previous),
        previous=claim.record.last_sent_at,
        taken="another process holds this order now",
    )


def _push_one(run: _Run, claim: _Claim) -> None:
    ctx = run.ctx
    woo_id = claim.woo_id
    stage = "customer: "  # what a refusal is about, for the order's reason
    try:
        loaded = _load(run, claim.record, claim.order, claim.lookup)
        if loaded.problem is not None or loaded.order is None:
            held = loaded.state is OrderState.HELD
            reason = loaded.problem or "the shop order cannot be read"
            _settle(run, claim, loaded.state, reason, bucket=run.result.held if held else None)
            return
        order = loaded.order
        document = run.erp.prepare(order, loaded.item_numbers, key=claim.key or None)
        for note in document.notes:
            ctx.event(STEP, note, woo_id=woo_id)
        for warning in document.warnings:
            # "line 2 "Shirt": <what>": the same <what> on many orders is logged once a run.
            what = warning.split(": ", 1)[-1]
            ctx.event(STEP, warning, level="warning", woo_id=woo_id, once=what)
        stage = ""
        created = run.erp.create(document, _fence(run, claim))
    except Woo2D365Error as exc:
        _on_error(run, claim, exc, stage)
        return
    finally:
        if run.claims is not None:
            run.claims.discard(claim.token)  # settled, released, or left in doubt to age out
    with ctx.store.batch():  # the pushed state and its event in one commit
        if not _mark_pushed(run, claim, created):
            return
        ctx.event(
            STEP,
            f"created in {run.erp.display_name} as sales order {created.number} "
            f"({document.external_number})",
            woo_id=woo_id,
        )
    with run.lock:
        run.result.pushed.append(
            PushedOrder(woo_id, document.external_number, created.number, created.id)
        )
    _compare_totals(run, order, created)
    if run.write_backs is not None:
        run.write_backs.add(woo_id, created.number)


def _on_error(run: _Run, claim: _Claim, exc: Woo2D365Error, stage: str) -> None:
    """Settle a claimed order by what the error means for it (``errors.OUTCOMES``)."""
    ctx, woo_id = run.ctx, claim.woo_id
    effect = outcome_of(exc).order_effect
    if effect is OrderEffect.HELD:
        _settle(run, claim, OrderState.HELD, exc.message, bucket=run.result.held)
    elif effect is OrderEffect.FAILED:
        _settle(run, claim, OrderState.FAILED, f"{stage}{exc}", bucket=run.result.failed)
    elif effect is OrderEffect.RETRY:
        _not_processed(run, claim, exc)
    elif effect is OrderEffect.WAIT:
        _release(run, claim)
        run.record(run.result.retry_later, woo_id, str(exc))
        ctx.event(STEP, f"waits: {exc}", level="warning", woo_id=woo_id)
    elif effect is OrderEffect.IN_DOUBT:
        run.record(run.result.in_doubt, woo_id, str(exc))
        ctx.event(
            STEP,
            f"no answer from {run.erp.display_name} ({exc}); stays pushing and is "
            "looked up before anything is sent again",
            level="warning",
            woo_id=woo_id,
        )
    elif effect is OrderEffect.LOST:
        if ctx.lease_lost.is_set():
            _release(run, claim)  # still ours, nothing sent: ready again (no-op if taken over)
        ctx.event(STEP, f"not sent: {exc}", level="warning", woo_id=woo_id)
    elif effect is OrderEffect.STOP:
        _release(run, claim)
        ctx.event(STEP, f"not sent ({exc}); tried again next run", level="warning", woo_id=woo_id)
        raise exc  # the run stops claiming (an outage) or ends (refused credentials)
    else:
        raise exc


def _settle(
    run: _Run,
    claim: _Claim,
    state: OrderState,
    reason: str,
    *,
    bucket: KeptDict[int, str] | None,
) -> None:
    """Move a claimed order on, under its token; a claim lost meanwhile changes nothing."""
    settled = run.ctx.store.set_state(
        claim.woo_id, state, reason=reason, expect=[OrderState.PUSHING], token=claim.token
    )
    if not settled:
        run.ctx.event(
            STEP,
            f"not recorded as {state.value} ({reason}): another process holds this order now",
            level="warning",
            woo_id=claim.woo_id,
        )
        return
    if bucket is not None:
        run.record(bucket, claim.woo_id, reason)
    level = "error" if state is OrderState.FAILED else "warning"
    run.ctx.event(STEP, f"{state.value}: {reason}", level=level, woo_id=claim.woo_id)


def _release(run: _Run, claim: _Claim) -> None:
    """Give an unsent order back (``ready``), its attempt not counted against it."""
    if run.claims is not None:
        run.claims.discard(claim.token)
    run.ctx.store.set_state(
        claim.woo_id,
        OrderState.READY,
        reason=claim.record.reason,
        expect=[OrderState.PUSHING],
        token=claim.token,
        uncount_attempt=True,
    )


def _not_processed(run: _Run, claim: _Claim, exc: Woo2D365Error) -> None:
    """Dynamics did not take the order: ``ready`` again, or ``failed`` after max_attempts."""
    woo_id, attempts = claim.woo_id, claim.record.attempts
    limit = run.ctx.settings.orders.max_attempts
    if attempts >= limit:
        _settle(
            run,
            claim,
            OrderState.FAILED,
            f"gave up after {attempts} attempts: {exc}",
            bucket=run.result.failed,
        )
    elif run.ctx.store.set_state(
        woo_id,
        OrderState.READY,
        reason=f"attempt {attempts} of {limit} failed: {exc}",
        expect=[OrderState.PUSHING],
        token=claim.token,
    ):
        run.record(run.result.retry_later, woo_id, str(exc))
        with run.lock:
            run.result.not_processed.append(woo_id)
        run.ctx.event(
            STEP, f"not sent ({exc}); tried again next run", level="warning", woo_id=woo_id
        )


def _compare_totals(run: _Run, order: Order, created: CreatedDocument) -> None:
    if created.total_including_tax is None:
        return
    difference = created.total_including_tax - order.total
    if abs(difference) <= run.tolerance:
        return
    message = (
        f"{run.erp.display_name} total {created.total_including_tax} differs from the shop total "
        f"{order.total} by {difference:+} (orders.total_tolerance = {run.tolerance}); "
        f"check sales order {created.number}"
    )
    run.record(run.result.total_mismatches, order.woo_id, message)
    run.ctx.event(STEP, message, level="warning", woo_id=order.woo_id)


# -- dry run -----------------------------------------------------------------------------------


def _dry_run_one(run: _Run, woo_id: int) -> None:
    record = run.ctx.store.get_order(woo_id, with_raw=True)
    if record is None:
        return
    loaded = _load(run, record)
    if loaded.problem is not None or loaded.order is None:
        if loaded.state is OrderState.HELD:
            run.record(run.result.held, woo_id, loaded.problem or "the shop order cannot be read")
        return
    try:
        document = run.erp.prepare(loaded.order, loaded.item_numbers, dry_run=True)
    except OrderDataError as exc:
        run.record(run.result.held, woo_id, exc.message)
        return
    with run.lock:
        run.result.documents.append(
            DryRunDocument(
                woo_id=woo_id,
                external_number=document.external_number,
                payload=document.payload,
                warnings=document.warnings,
                placeholder_customer=document.placeholder_customer,
                new_customer=document.new_customer,
                lines=len(loaded.order.lines),
                total=str(loaded.order.total),
                currency=loaded.order.currency,
            )
        )
