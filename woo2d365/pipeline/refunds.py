"""``refunds``: each shop refund of a pushed order becomes one Dynamics sales credit memo, once.

docs/architecture.md, "Refunds". A run:

1. **Finds refunds** without a request per order: ``GET /refunds`` (WooCommerce 9.0 and later)
   created after the cursor (the newest ``date_created_gmt`` seen, the shop's own clock) less
   :data:`CURSOR_OVERLAP`; a shop without that endpoint (404) is asked per order instead, for the
   orders the pull saw change since the last orders asked (:data:`ORDERS_CURSOR_KEY`). Refunds
   of orders the store does not know are not ours. Each new refund is stored raw as ``new``.
2. **Waits for the order**: a ``new`` refund becomes ``ready`` once its order is ``pushed``; it
   is ``skipped`` with its order.
3. **In doubt** (``pushing``, claim older than ``dynamics.timeout_seconds`` or its process ended):
   looked up by ``externalDocumentNumber``; found → ``pushed``; not found → ``ready`` once its
   last send is older than ``dynamics.request_limit_seconds``.
4. **Creates**: each ``ready`` refund is claimed (the key fixed), looked up, and only when absent
   created by ONE deep-insert POST fenced by its claim (:class:`~woo2d365.erp.base.SendGuard`);
   the outcome table :data:`woo2d365.errors.OUTCOMES` settles it as for orders. A credit memo
   total that differs from the refund amount is recorded and needs attention.
5. **Posts** (``refunds.post``) the drafts not posted yet, each once: a credit memo whose number
   is no longer the one recorded at its create (posting renumbers it) is recorded as posted, not
   posted again; one waiting for an approval is posted by the first run after it is released.
6. **Notes** the credit memo on the shop order (a private note, once).

A refund deleted in the shop (gone from its order's ``refunds`` in the copy the pull saved) gets
no credit memo; one deleted after its credit memo was made is reported for a person to review.

``--dry-run`` reads both systems and prints the credit memos it would create; it writes nothing.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from woo2d365.erp.base import CreatedDocument, ErpTarget
from woo2d365.errors import (
    DynamicsError,
    OrderDataError,
    OrderEffect,
    ShopError,
    Woo2D365Error,
    outcome_of,
)
from woo2d365.model import Order, OrderState, Refund
from woo2d365.pipeline.context import RunContext
from woo2d365.pipeline.fence import ClaimFence
from woo2d365.pipeline.followup import FollowUpOptions, FollowUpResult
from woo2d365.pipeline.pull import read_cursor as read_pull_cursor
from woo2d365.pipeline.push import process_has_ended
from woo2d365.pipeline.validate import resolve_lines
from woo2d365.shop.client import WooClient
from woo2d365.shop.mapping import order_from_shop
from woo2d365.shop.refunds import id_or_zero, refund_from_shop
from woo2d365.store.base import OrderRecord
from woo2d365.store.refunds import RefundRecord

STEP = "refunds"
CURSOR_KEY = "refunds.cursor"
"""Store key: the newest refund ``date_created_gmt`` seen (ISO 8601, UTC)."""
ORDERS_CURSOR_KEY = "refunds.orders.cursor"
"""Store key, shops before WooCommerce 9.0: the newest order change whose refunds were read."""
DELETED_CHECKED_KEY = "refunds.deleted.checked"
"""Store key: when the saved orders were last compared with their refunds (deleted refunds)."""
CURSOR_OVERLAP = timedelta(minutes=10)  # refunds committed late with an older stamp are not missed
TOLERANCE = Decimal("0.005")  # "to the cent"
CHUNK = 50  # refunds claimed and looked up in Dynamics together (one lookup request)


def refund_note(refund_id: int, number: str, display_name: str) -> str:
    """The private note naming a refund's credit memo on the shop order."""
    return f"Refund {refund_id} is in {display_name} as sales credit memo {number}."


@dataclass
class _Run:
    ctx: RunContext
    shop: WooClient
    erp: ErpTarget
    options: FollowUpOptions
    result: FollowUpResult
    counts: dict[str, int] = field(default_factory=dict)
    found: list[tuple[Refund, dict[str, Any]]] = field(default_factory=list)  # dry run
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)  # an outage: send no more

    def count(self, name: str, by: int = 1) -> None:
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + by

    def attention(self, refund: RefundRecord | Refund, text: str) -> None:
        line = f"refund {refund.refund_id} of order {refund.woo_id}: {text}"
        with self.lock:
            self.result.attention.append(line)

    @property
    def stopping(self) -> bool:
        return self.stop.is_set() or self.ctx.lease_lost.is_set()


def _each(state: _Run, work: Callable[[_Run, Any], None], items: list[Any], workers: int) -> None:
    """``work`` for every item on up to ``workers`` threads; the first error is raised at the end
    (after the items in flight are settled) and stops the items not started yet."""
    if not items:
        return

    def guarded(item: Any) -> None:
        if state.stopping:
            return
        try:
            work(state, item)
        except BaseException:
            state.stop.set()
            raise

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items)))) as pool:
        futures = [pool.submit(guarded, item) for item in items]
    for future in futures:
        future.result()


def run(
    ctx: RunContext, shop: WooClient, erp: ErpTarget, options: FollowUpOptions
) -> FollowUpResult:
    """Find, create, post and note the credit memos of shop refunds (see the module)."""
    result = FollowUpResult(step=STEP, dry_run=options.dry_run)
    state = _Run(ctx, shop, erp, options, result)
    erp.connect()
    _discover(state)
    if options.dry_run:
        _dry_run(state)
    else:
        _notice_deleted(state)
        _promote(state)
        _resolve_in_doubt(state)
        _create_ready(state)
        if ctx.settings.refunds.post:
            _post_pending(state)
        _note_pending(state)
    order = ("found", "waiting", "created", "adopted", "posted", "noted", "held", "failed")
    result.counts = {name: state.counts.get(name, 0) for name in order}
    result.counts.update({k: v for k, v in state.counts.items() if k not in result.counts})
    return result


# -- 1. find ---------------------------------------------------------------------------------


@dataclass
class _Discovery:
    """What one run of :func:`_discover` has seen: the orders it read, the newest refund of a
    known order, and the oldest refund of an order pull may not have stored yet."""

    state: _Run
    stored: datetime | None  # the cursor as stored (an older version may have saved a later one)
    pulled_until: datetime | None
    newest: datetime | None = None
    hold: datetime | None = None
    known: dict[int, OrderRecord] = field(default_factory=dict)

    @property
    def cursor(self) -> datetime | None:
        """The stored cursor, never past pull's (the shop's clock)."""
        if self.stored is None or self.pulled_until is None:
            return self.stored
        return min(self.stored, self.pulled_until)

    def order_of(self, woo_id: int) -> OrderRecord | None:
        if woo_id not in self.known:
            record = self.state.ctx.store.get_order(woo_id)
            if record is None:
                return None
            self.known[woo_id] = record
        return self.known[woo_id]

    def take(self, raw: dict[str, Any], woo_id: int) -> None:
        """Store (or, in a dry run, list) one shop refund of an order of this tool."""
        ctx = self.state.ctx
        try:
            refund = refund_from_shop(raw, woo_id)
        except OrderDataError as exc:
            ctx.log.warning("refund %s of order %s not read: %s", raw.get("id"), woo_id, exc)
            return
        if self.order_of(woo_id) is None:
            # Not an order of this tool, or one pull has not stored yet (a refund moves its
            # order's date_modified, so once pull has passed this moment the order is known).
            if self.pulled_until is None or refund.created_at > self.pulled_until:
                held = self.hold
                self.hold = refund.created_at if held is None else min(held, refund.created_at)
            return
        if self.newest is None or refund.created_at > self.newest:
            self.newest = refund.created_at
        self._record(refund, raw, woo_id)

    def _record(self, refund: Refund, raw: dict[str, Any], woo_id: int) -> None:
        state, store = self.state, self.state.ctx.store
        if state.options.dry_run:
            if store.get_refund(refund.refund_id) is None:
                state.found.append((refund, raw))
                state.count("found")
            return
        if store.save_refund(refund.refund_id, woo_id, str(refund.amount), refund.created_at, raw):
            state.count("found")
            state.ctx.event(
                STEP,
                f"refund {refund.refund_id} of {refund.amount} found"
                + (f" ({refund.reason})" if refund.reason else ""),
                woo_id=woo_id,
            )

    def save_cursor(self) -> None:
        """Move the cursor to the newest refund seen, short of any refund held back, and never
        past pull's cursor (the shop's clock): a refund dated in the future (a wrong clock
        when it was made) would else hide every refund made after it until that date."""
        newest = self.newest
        if self.hold is not None and newest is not None and newest >= self.hold:
            newest = self.hold - timedelta(microseconds=1)  # read that refund again next run
        if newest is not None and self.pulled_until is not None:
            newest = min(newest, self.pulled_until)  # read again next run; stored only once
        if self.state.options.dry_run or newest is None:
            return
        if self.cursor is None or newest > self.cursor or self.stored != self.cursor:
            self.state.ctx.store.set_value(CURSOR_KEY, newest.isoformat())


def _discover(state: _Run) -> None:
    ctx = state.ctx
    cursor_text = ctx.store.get_value(CURSOR_KEY) or ""
    stored = datetime.fromisoformat(cursor_text) if cursor_text else None
    seen = _Discovery(state, stored, read_pull_cursor(ctx))
    seen.newest = cursor = seen.cursor
    if state.options.order_ids:
        for woo_id in state.options.order_ids:
            for raw in state.shop.list_order_refunds(woo_id):
                seen.take(raw, woo_id)
        return  # a narrowed run does not move the cursor
    after = cursor - CURSOR_OVERLAP if cursor is not None else None
    try:
        for page in state.shop.iter_refunds_created_after(after):
            for raw in page:
                seen.take(raw, id_or_zero(raw.get("parent_id")))
    except ShopError as exc:
        if exc.status != 404:
            raise
        _discover_per_order(state, seen)
    seen.save_cursor()


def _discover_per_order(state: _Run, seen: _Discovery) -> None:
    """A shop without ``GET /refunds``: the refunds of the orders pull saw change."""
    store = state.ctx.store
    state.ctx.log.info("the shop has no GET /refunds (WooCommerce before 9.0): asked per order")
    checked = store.get_value(ORDERS_CURSOR_KEY) or ""
    since = datetime.fromisoformat(checked) - CURSOR_OVERLAP if checked else None
    changed = _changed_orders(state, since)
    for record in changed:
        for raw in state.shop.list_order_refunds(record.woo_id):
            seen.take(raw, record.woo_id)
    if changed and not state.options.dry_run:
        newest_change = max(record.shop_modified_at for record in changed)
        store.set_value(ORDERS_CURSOR_KEY, newest_change.isoformat())


def _changed_orders(state: _Run, after: datetime | None) -> list[OrderRecord]:
    """Orders the pull saw change since ``after`` that may have refunds (older shops)."""
    records = state.ctx.store.list_orders(
        states=[s for s in OrderState if s is not OrderState.SKIPPED]
    )
    return [r for r in records if after is None or r.shop_modified_at > after]


def _notice_deleted(state: _Run) -> None:
    """Refunds deleted in the shop: gone from their order's ``refunds`` list in the copy the pull
    saved (a copy saved after the refund was found, so it would have listed it). Without a
    credit memo yet they are ``skipped``; with one, the credit memo is named for a person to
    review (once: the refund's reason says so)."""
    ctx, store = state.ctx, state.ctx.store
    checked = store.get_value(DELETED_CHECKED_KEY) or ""
    now = ctx.clock()
    if not checked:  # the first run: a refund deleted before it was ever seen is not listed
        store.set_value(DELETED_CHECKED_KEY, now.isoformat())
        return
    start = datetime.fromisoformat(checked) - CURSOR_OVERLAP
    for order_state in OrderState:
        after: tuple[datetime, int] | None = None
        while True:
            rows = store.order_raws_updated_between(order_state, start, now, after=after)
            for woo_id, updated_at, raw in rows:
                after = (updated_at, woo_id)
                _check_order_refunds(state, woo_id, updated_at, raw)
            if len(rows) < 500:
                break
    store.set_value(DELETED_CHECKED_KEY, now.isoformat())


def _check_order_refunds(state: _Run, woo_id: int, saved_at: datetime, raw: dict[str, Any]) -> None:
    ctx, store = state.ctx, state.ctx.store
    entries = raw.get("refunds")
    listed = {
        id_or_zero(entry.get("id"))
        for entry in (entries if isinstance(entries, list) else [])
        if isinstance(entry, Mapping)
    }
    for refund in store.list_refunds(woo_ids=[woo_id]):
        # Only a copy of the order saved after the refund was found could have listed it.
        if refund.refund_id in listed or saved_at <= refund.created_at:
            continue
        if refund.state is OrderState.PUSHED:
            if refund.reason:
                continue  # reported before
            reason = (
                f"deleted in the shop after credit memo {refund.d365_number} was created: "
                "review the credit memo by hand"
            )
            if store.set_refund_state(
                refund.refund_id, OrderState.PUSHED, reason=reason, expect=[OrderState.PUSHED]
            ):
                state.count("deleted_in_shop")
                state.attention(refund, reason)
                ctx.event(STEP, f"refund {refund.refund_id} {reason}", level="warning",
                          woo_id=woo_id)  # fmt: skip
        elif refund.state in (OrderState.NEW, OrderState.READY, OrderState.HELD,
                              OrderState.FAILED):  # fmt: skip
            reason = "deleted in the shop: no credit memo"
            if store.set_refund_state(
                refund.refund_id, OrderState.SKIPPED, reason=reason, expect=[refund.state]
            ):
                ctx.event(STEP, f"refund {refund.refund_id}: {reason}", woo_id=woo_id)


# -- 2. wait for the order --------------------------------------------------------------------


def _promote(state: _Run) -> None:
    store = state.ctx.store
    waiting = store.list_refunds(states=[OrderState.NEW], woo_ids=_narrowed(state))
    for refund in waiting:
        order = store.get_order(refund.woo_id)
        if order is None:
            continue
        if order.state is OrderState.PUSHED:
            store.set_refund_state(refund.refund_id, OrderState.READY, expect=[OrderState.NEW])
        elif order.state is OrderState.SKIPPED:
            reason = "its order was skipped: no credit memo"
            if store.set_refund_state(
                refund.refund_id, OrderState.SKIPPED, reason=reason, expect=[OrderState.NEW]
            ):
                state.ctx.event(STEP, f"refund {refund.refund_id}: {reason}", woo_id=refund.woo_id)
        else:
            state.count("waiting")


def _narrowed(state: _Run) -> list[int] | None:
    return list(state.options.order_ids) if state.options.order_ids else None


# -- 3. in doubt ------------------------------------------------------------------------------


def _resolve_in_doubt(state: _Run) -> None:
    ctx = state.ctx
    store = ctx.store
    now = ctx.clock()
    older_than = now - timedelta(seconds=ctx.settings.dynamics.timeout_seconds)
    doubtful = set(store.in_doubt_refund_ids(older_than))
    for pushing in store.list_refunds(states=[OrderState.PUSHING]):
        if pushing.claimed_by and pushing.claimed_at and process_has_ended(pushing.claimed_by):
            doubtful.add(pushing.refund_id)
    for refund_id in sorted(doubtful):
        current = store.get_refund(refund_id)
        if current is None or current.state is not OrderState.PUSHING:
            continue
        record = current
        token = uuid.uuid4().hex
        before = (record.claimed_at or now) + timedelta(microseconds=1)
        if not store.claim_refund_in_doubt(refund_id, ctx.worker, now, before, token=token):
            continue
        key = record.external_number or ""
        found = state.erp.find_credit_memo(key) if key else None
        if found is not None:
            if _mark_pushed(state, record, token, found):
                state.count("adopted")
                ctx.event(
                    STEP,
                    f"refund {refund_id} in doubt: found as credit memo {found.number} ({key})",
                    woo_id=record.woo_id,
                )
            continue
        limit = timedelta(seconds=ctx.settings.dynamics.request_limit_seconds)
        if record.last_sent_at is not None and record.last_sent_at + limit > now:
            state.count("in_doubt")
            ctx.event(
                STEP,
                f"refund {refund_id} in doubt: {key} not found yet; looked up again (and sent "
                f"again if still absent) from {(record.last_sent_at + limit).isoformat()}",
                level="warning",
                woo_id=record.woo_id,
            )
            continue
        _release(state, refund_id, token, f"{key} was not found in {state.erp.display_name}")


# -- 4. create --------------------------------------------------------------------------------


def _fence(state: _Run, record: RefundRecord, token: str) -> ClaimFence:
    """The fence around one credit memo create: the claim is confirmed before every send."""
    store, refund_id = state.ctx.store, record.refund_id
    return ClaimFence(
        state.ctx,
        confirm=lambda now, until: store.confirm_refund_claim(refund_id, token, now, sent_at=until),
        restore=lambda previous: store.set_refund_last_sent(refund_id, token, previous),
        previous=record.last_sent_at,
        taken="another process holds this refund now",
    )


def _create_ready(state: _Run) -> None:
    """Every ready refund: claimed and looked up :data:`CHUNK` at a time (one lookup request),
    then created on as many threads as Dynamics takes requests (``max_concurrency``)."""
    ctx = state.ctx
    ready = ctx.store.list_refunds(states=[OrderState.READY], woo_ids=_narrowed(state))
    for start in range(0, len(ready), CHUNK):
        if state.stopping:
            return
        claimed = _claim_chunk(state, ready[start : start + CHUNK])
        _each(state, _send_one, claimed, ctx.settings.dynamics.max_concurrency)


@dataclass(frozen=True)
class _Claimed:
    """A refund this run claimed, read and keyed, not found in Dynamics."""

    record: RefundRecord
    token: str
    key: str
    refund: Refund
    order: Order
    order_record: OrderRecord


def _loaded(state: _Run, record: RefundRecord) -> tuple[Refund, Order, OrderRecord]:
    """The refund, its order, and the order's record; :class:`OrderDataError` if unreadable."""
    full = state.ctx.store.get_refund(record.refund_id, with_raw=True)
    order_record = state.ctx.store.get_order(record.woo_id, with_raw=True)
    if full is None or order_record is None:
        raise OrderDataError("the refund or its order is no longer in the store")
    refund = refund_from_shop(full.raw or {}, record.woo_id)
    return refund, order_from_shop(order_record.raw or {}), order_record


def _item_numbers(state: _Run, order: Order) -> dict[int, str | None]:
    """The Dynamics item of each order line, resolved as the order's push resolved it."""
    resolution = resolve_lines(order, state.ctx.store, state.ctx.settings.orders)
    return {
        line.shop_line_id: number
        for line, number in zip(order.lines, resolution.item_numbers, strict=True)
    }


def _claim_chunk(state: _Run, records: list[RefundRecord]) -> list[_Claimed]:
    """Claim these refunds, adopt the credit memos Dynamics has already, return the rest."""
    claimed = [claim for record in records if (claim := _claim_one(state, record)) is not None]
    if not claimed:
        return []
    try:
        existing = state.erp.find_credit_memos([c.key for c in claimed])
    except DynamicsError:
        for claim in claimed:  # nothing may be created without the lookup: ready again
            record = claim.record
            _release(state, record.refund_id, claim.token, record.reason, uncount_attempt=True)
        raise
    to_send: list[_Claimed] = []
    for claim in claimed:
        found = existing.get(claim.key)
        if found is None:
            to_send.append(claim)
        elif _mark_pushed(state, claim.record, claim.token, found):
            state.count("adopted")
            state.ctx.event(
                STEP,
                f"refund {claim.record.refund_id} already in {state.erp.display_name} as credit "
                f"memo {found.number} ({claim.key}): adopted, not created again",
                woo_id=claim.record.woo_id,
            )
    return to_send


def _claim_one(state: _Run, record: RefundRecord) -> _Claimed | None:
    """Read, key and claim one ready refund; None when it is held, skipped or taken."""
    ctx, store = state.ctx, state.ctx.store
    try:
        refund, order, order_record = _loaded(state, record)
        key = record.external_number or state.erp.credit_memo_number(order, refund.refund_id)
    except OrderDataError as exc:
        _hold(state, record, None, exc.message)
        return None
    if refund.amount == 0:
        reason = "worth 0.00 in the shop: no credit memo"
        if store.set_refund_state(
            record.refund_id, OrderState.SKIPPED, reason=reason, expect=[OrderState.READY]
        ):
            ctx.event(STEP, f"refund {record.refund_id}: {reason}", woo_id=record.woo_id)
        return None
    token = uuid.uuid4().hex
    if not store.claim_refund(record.refund_id, ctx.worker, ctx.clock(), token=token, key=key):
        return None
    fixed = store.get_refund(record.refund_id) or record  # the key stored at first claim
    return _Claimed(fixed, token, fixed.external_number or key, refund, order, order_record)


def _send_one(state: _Run, claim: _Claimed) -> None:
    """Prepare and create one claimed refund's credit memo, then settle it."""
    ctx, erp = state.ctx, state.erp
    record, token, key, refund, order = (
        claim.record, claim.token, claim.key, claim.refund, claim.order,
    )  # fmt: skip
    order_record = claim.order_record
    try:
        document = erp.prepare_credit_memo(
            refund,
            order,
            _item_numbers(state, order),
            sales_order_id=order_record.d365_id,
            key=key,
        )
        for warning in document.warnings:
            ctx.event(STEP, warning, level="warning", woo_id=record.woo_id)
        created = erp.create_credit_memo(document, _fence(state, record, token))
    except Woo2D365Error as exc:
        _on_error(state, record, token, exc)
        return
    if not _mark_pushed(state, record, token, created):
        return
    state.count("created")
    ctx.event(
        STEP,
        f"refund {record.refund_id} created in {erp.display_name} as sales credit memo "
        f"{created.number} ({key})",
        woo_id=record.woo_id,
    )
    if created.total_including_tax is not None:
        difference = created.total_including_tax - refund.amount
        if abs(difference) > TOLERANCE:
            message = (
                f"credit memo {created.number} total {created.total_including_tax} differs from "
                f"the refund amount {refund.amount} by {difference:+}; check it"
            )
            state.count("total_mismatch")
            state.attention(record, message)
            ctx.event(STEP, f"refund {record.refund_id}: {message}", level="warning",
                      woo_id=record.woo_id)  # fmt: skip


def _mark_pushed(state: _Run, record: RefundRecord, token: str, found: CreatedDocument) -> bool:
    ctx = state.ctx
    settings = ctx.settings
    recorded = ctx.store.mark_refund_pushed(
        record.refund_id,
        d365_id=found.id,
        d365_number=found.number,
        external_number=found.external_number,
        now=ctx.clock(),
        token=token,
        # A memo found that is not surely a draft was posted (or released) by a person.
        post=settings.refunds.post and found.draft,
        note=settings.woocommerce.write_back,
    )
    if not recorded:
        ctx.event(
            STEP,
            f"refund {record.refund_id} is credit memo {found.number}, but another process "
            "holds it now: left to it",
            level="warning",
            woo_id=record.woo_id,
        )
    return recorded


def _release(
    state: _Run, refund_id: int, token: str, reason: str | None, *, uncount_attempt: bool = False
) -> None:
    """A claimed refund back to ``ready`` under its claim's token (``uncount_attempt``: the
    try did not count, nothing ran)."""
    state.ctx.store.set_refund_state(
        refund_id,
        OrderState.READY,
        reason=reason,
        expect=[OrderState.PUSHING],
        token=token,
        uncount_attempt=uncount_attempt,
    )


def _hold(state: _Run, record: RefundRecord, token: str | None, reason: str) -> None:
    expect = [OrderState.PUSHING] if token else [OrderState.READY]
    if state.ctx.store.set_refund_state(
        record.refund_id, OrderState.HELD, reason=reason, expect=expect, token=token
    ):
        state.count("held")
        state.attention(record, f"held: {reason}")
        state.ctx.event(
            STEP, f"refund {record.refund_id} held: {reason}", level="warning", woo_id=record.woo_id
        )


def _on_error(state: _Run, record: RefundRecord, token: str, exc: Woo2D365Error) -> None:
    """Settle a claimed refund by what the error means (``errors.OUTCOMES``), as push does."""
    ctx, store = state.ctx, state.ctx.store
    effect = outcome_of(exc).order_effect
    refund_id = record.refund_id
    if effect is OrderEffect.HELD:
        _hold(state, record, token, exc.message)
    elif effect is OrderEffect.FAILED or (
        effect is OrderEffect.RETRY and record.attempts + 1 >= ctx.settings.orders.max_attempts
    ):
        if store.set_refund_state(
            refund_id, OrderState.FAILED, reason=str(exc), expect=[OrderState.PUSHING], token=token
        ):
            state.count("failed")
            state.attention(record, f"failed: {exc}")
            ctx.event(STEP, f"refund {refund_id} failed: {exc}", level="error",
                      woo_id=record.woo_id)  # fmt: skip
    elif effect in (OrderEffect.RETRY, OrderEffect.WAIT, OrderEffect.STOP):
        uncount = effect is not OrderEffect.RETRY
        _release(state, refund_id, token, f"not sent: {exc}", uncount_attempt=uncount)
        state.count("retry_later")
        ctx.event(STEP, f"refund {refund_id} not sent ({exc}); tried again next run",
                  level="warning", woo_id=record.woo_id)  # fmt: skip
        if effect is OrderEffect.STOP:
            raise exc
    elif effect is OrderEffect.IN_DOUBT:
        state.count("in_doubt")
        ctx.event(
            STEP,
            f"refund {refund_id}: no answer from {state.erp.display_name} ({exc}); stays "
            "pushing and is looked up before anything is sent again",
            level="warning",
            woo_id=record.woo_id,
        )
    elif effect is OrderEffect.LOST:
        ctx.event(STEP, f"refund {refund_id} not sent: {exc}", level="warning",
                  woo_id=record.woo_id)  # fmt: skip
    else:
        raise exc


# -- 5. post, 6. note -------------------------------------------------------------------------


def _post_pending(state: _Run) -> None:
    ctx, erp, store = state.ctx, state.erp, state.ctx.store
    for record in _pushed(state, lambda r: r.post_pending):
        key = record.external_number or ""
        try:
            current = erp.find_credit_memo(key)
            if current is None:
                raise OrderDataError(f"credit memo {key} is no longer in {erp.display_name}")
            if current.number != record.d365_number:
                posted = current  # posting renumbers a memo: posted before, never twice
            elif current.awaiting_approval:
                _note_approval(state, record)
                continue  # posted by a later run once it is approved (released)
            else:
                posted = erp.post_credit_memo(current.id)  # a draft, or released after approval
        except DynamicsError as exc:
            if exc.status is None or getattr(exc, "retryable", False):
                raise
            state.count("post_failed")
            state.attention(record, f"not posted: {exc}")
            ctx.event(STEP, f"credit memo {record.d365_number} not posted: {exc}",
                      level="error", woo_id=record.woo_id)  # fmt: skip
            continue
        except OrderDataError as exc:
            state.attention(record, exc.message)
            continue
        if store.set_refund_posted(record.refund_id, posted.number or record.d365_number or ""):
            state.count("posted")
            ctx.event(
                STEP,
                f"credit memo {record.d365_number} posted as {posted.number}",
                woo_id=record.woo_id,
            )


def _note_approval(state: _Run, record: RefundRecord) -> None:
    """A credit memo that waits for an approval is not an error: it is said, and posted later."""
    state.count("awaiting_approval")
    state.ctx.event(
        STEP,
        f"credit memo {record.d365_number} waits for an approval in "
        f"{state.erp.display_name}; it is posted by the next run once approved",
        woo_id=record.woo_id,
    )


def _note_pending(state: _Run) -> None:
    pending = list(_pushed(state, lambda r: r.note_pending and not r.post_pending))
    _each(state, _note_one, pending, state.ctx.settings.woocommerce.max_concurrency)


def _note_one(state: _Run, record: RefundRecord) -> None:
    note = refund_note(record.refund_id, record.d365_number or "", state.erp.display_name)
    try:
        state.shop.add_note_once(record.woo_id, note)
    except ShopError as exc:
        if getattr(exc, "retryable", False):
            raise
        state.attention(record, f"shop note not written: {exc}")
        return
    state.ctx.store.set_refund_note_done(record.refund_id)
    state.count("noted")


def _pushed(state: _Run, wanted: Any) -> Iterable[RefundRecord]:
    for record in state.ctx.store.list_refunds(
        states=[OrderState.PUSHED], woo_ids=_narrowed(state)
    ):
        if wanted(record):
            yield record


# -- dry run ----------------------------------------------------------------------------------


def _dry_run(state: _Run) -> None:
    """The credit memos a run would create now: new refunds and ready ones of pushed orders."""
    store = state.ctx.store
    candidates: list[Refund] = [refund for refund, _ in state.found]
    for record in store.list_refunds(
        states=[OrderState.NEW, OrderState.READY], woo_ids=_narrowed(state), with_raw=True
    ):
        try:
            candidates.append(refund_from_shop(record.raw or {}, record.woo_id))
        except OrderDataError:
            continue
    for refund in candidates:
        order_record = store.get_order(refund.woo_id, with_raw=True)
        if order_record is None:
            continue
        if order_record.state is not OrderState.PUSHED:
            state.count("waiting")
            state.result.lines.append(
                f"refund {refund.refund_id} of order {refund.woo_id}: waits for its order "
                f"({order_record.state.value})"
            )
            continue
        try:
            order = order_from_shop(order_record.raw or {})
            key = state.erp.credit_memo_number(order, refund.refund_id)
            if refund.amount == 0:
                continue
            document = state.erp.prepare_credit_memo(
                refund,
                order,
                _item_numbers(state, order),
                sales_order_id=order_record.d365_id,
                key=key,
            )
        except OrderDataError as exc:
            state.count("held")
            state.result.lines.append(
                f"refund {refund.refund_id} of order {refund.woo_id}: would be held: {exc.message}"
            )
            continue
        state.result.lines.append(json.dumps(document.payload, ensure_ascii=False))
        state.count("would_create")
