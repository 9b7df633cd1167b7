"""``pull``: read new and changed shop orders into the state store without ever missing one.

The window follows ``docs/systems.md`` W2: every order modified after
*cursor − overlap* (all statuses, ``orderby=id`` ascending, every page), the cursor being the
largest ``date_modified_gmt`` the shop has shown, or the shop's ``Date`` header when the window
was empty, never the local clock. The cursor only moves forward and only after the last page.

What happens to one order:

* an exact version already stored (same id and ``date_modified_gmt``) → nothing;
* unknown, in a status of ``woocommerce.statuses`` and created at or after ``start_date`` →
  stored as ``new``; unknown otherwise → not stored (it is taken when a status change brings it
  into the window again);
* known, with a new modification time: the raw copy is replaced by the new version; then, unless
  nothing but the modification time, ``_links`` or our own ``_woo2d365_*`` meta changed (our
  write-back bumps ``date_modified`` under HPOS, so does opening the order in wp-admin):

  * not yet pushed (``new``, ``ready``, ``held``, ``failed``) → back to ``new`` to be validated
    again, or ``skipped`` when its status left ``woocommerce.statuses`` (cancelled, refunded,
    failed, on-hold…) before it was pushed;
  * ``skipped`` and back in a taken status → ``new`` again (it was never pushed);
  * ``pushed`` or ``pushing`` → never pushed again; a warning event "changed in the shop after
    it was pushed" names what changed (the alerts send it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from woo2d365.errors import OrderDataError, ShopError
from woo2d365.model import OrderState
from woo2d365.pipeline.context import RunContext
from woo2d365.pipeline.handover import ORDERS_PER_COMMIT, Handover
from woo2d365.pipeline.shipments import our_own_change, shipped_context
from woo2d365.settings import WooCommerceSettings
from woo2d365.shop.client import WooClient
from woo2d365.shop.mapping import (
    SKIP_STATUSES,
    content_fingerprint,
    created_at_of,
    modified_at_of,
    number_of,
    order_from_shop,
    order_id_of,
)
from woo2d365.store.base import OrderRecord, PulledOrder

CURSOR_KEY = "pull.cursor"
STEP = "pull"
_NOT_PUSHED = [OrderState.NEW, OrderState.READY, OrderState.HELD, OrderState.FAILED]
_PUSHED = (OrderState.PUSHED, OrderState.PUSHING)


@dataclass
class PullResult:
    """What one pull did.

    ``fetched`` counts order objects received (the overlap re-reads some); ``new``, ``updated``,
    ``skipped`` and ``changed_after_push`` count state-store changes; ``unchanged`` versions
    already stored or changes that do not matter; ``not_taken`` unknown orders left out (status or
    ``start_date``); ``unreadable`` orders whose data cannot be mapped (stored if possible, for
    validate to hold); ``missing`` ids asked for with ``order_ids`` that the shop does not know.
    """

    fetched: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    changed_after_push: int = 0
    not_taken: int = 0
    unreadable: int = 0
    missing: int = 0
    pages: int = 0
    requests: int = 0
    window_start: datetime | None = None
    cursor: datetime | None = None

    def counts(self) -> dict[str, int]:
        """The integer counts, e.g. for the run record."""
        return {
            name: value
            for name, value in self.__dict__.items()
            if isinstance(value, int) and not isinstance(value, bool)
        }


def pull(
    ctx: RunContext,
    shop: WooClient,
    *,
    since: datetime | None = None,
    order_ids: list[int] | None = None,
    handover: Handover | None = None,
) -> PullResult:
    """Pull new and changed orders from the shop into the state store (see the module docstring).

    ``since`` re-reads the window from that moment; the cursor moves forward from it only when the
    window covers the stored cursor. ``order_ids`` fetches those orders one by one and leaves the
    cursor alone. Shop errors propagate (:class:`ShopUnreachable` etc.); everything stored up to
    then stays stored and the cursor is unchanged, so the next run reads the same window again.
    ``handover`` is told the highest id of each page once it is stored (``sync`` validates it
    while the next page is read); a cancelled hand-over stops the pull, the cursor unchanged.
    """
    result = PullResult()
    requests_before = shop.request_count
    try:
        if order_ids:
            _pull_ids(ctx, shop, order_ids, result)
        else:
            _pull_window(ctx, shop, since, result, handover)
    finally:
        result.requests = shop.request_count - requests_before
    ctx.log.info(
        "pull: %d fetched, %d new, %d updated, %d skipped, %d changed after push (%d requests)",
        result.fetched,
        result.new,
        result.updated,
        result.skipped,
        result.changed_after_push,
        result.requests,
    )
    return result


def read_cursor(ctx: RunContext) -> datetime | None:
    """The stored cursor (aware UTC), or None before the first pull."""
    value = ctx.store.get_value(CURSOR_KEY)
    if not value:
        return None
    return _as_utc(datetime.fromisoformat(value))


def window_start(ctx: RunContext, since: datetime | None = None) -> datetime | None:
    """Where a pull starts reading: ``since``, else cursor − overlap, else ``start_date``."""
    settings = ctx.settings.woocommerce
    cursor = read_cursor(ctx)
    if since is not None:
        return _as_utc(since)
    if cursor is not None:
        return cursor - timedelta(minutes=settings.overlap_minutes)
    if settings.start_date is not None:
        return _as_utc(settings.start_date) - timedelta(seconds=1)  # modified_after is strict
    return None


def not_taken_reason(settings: WooCommerceSettings, raw: dict[str, Any]) -> str | None:
    """Why a shop order the store does not know is not taken (status, start date), or None."""
    status = str(raw.get("status") or "")
    if not settings.takes(status):
        return f"its status {status or '(none)'} is not in woocommerce.statuses"
    if settings.start_date is not None:
        try:
            created = created_at_of(raw)
        except OrderDataError:
            return None  # stored anyway; validate holds it with the mapping error
        if created < _as_utc(settings.start_date):
            return "it was created before woocommerce.start_date"
    return None


def _pull_window(
    ctx: RunContext,
    shop: WooClient,
    since: datetime | None,
    result: PullResult,
    handover: Handover | None = None,
) -> None:
    cursor = read_cursor(ctx)
    start = window_start(ctx, since)
    result.window_start = start
    newest: datetime | None = None
    last_server_date: datetime | None = None
    seen = 0
    for page in shop.iter_orders_modified_after(start):
        result.pages += 1
        last_server_date = page.server_date or last_server_date
        modified = _store_page(ctx, page.orders, result)
        if modified is not None and (newest is None or modified > newest):
            newest = modified
        seen += len(page.orders)
        ctx.report_progress("pull", seen, max(page.total, seen) or None)
        if handover is not None:
            if handover.cancelled:
                return  # the run is ending: the cursor stays where it was
            _hand_over(handover, page.orders)
    # Only now, with every page read, may the cursor move; and only forward. A modification
    # time ahead of the shop's own clock (a plugin's bogus date) must not carry it past "now".
    candidate = newest if newest is not None else last_server_date
    if candidate is not None and last_server_date is not None:
        candidate = min(candidate, last_server_date)
    covers_cursor = since is None or (cursor is not None and start is not None and start <= cursor)
    if candidate is not None and covers_cursor and (cursor is None or candidate > cursor):
        ctx.store.set_value(CURSOR_KEY, candidate.isoformat())
        cursor = candidate
    result.cursor = cursor


def _store_page(
    ctx: RunContext, orders: list[dict[str, Any]], result: PullResult
) -> datetime | None:
    """Store a page's orders, :data:`ORDERS_PER_COMMIT` a transaction, mapped before them so
    the store's lock is held only for the writes (in sync, push's fence waits on that lock);
    return the newest modification time."""
    check = _Checked(orders, ctx.settings.woocommerce)
    newest: datetime | None = None
    for start in range(0, len(orders), ORDERS_PER_COMMIT):
        with ctx.store.batch():
            for raw in orders[start : start + ORDERS_PER_COMMIT]:
                modified = _take(ctx, raw, result, explicit=False, check=check)
                if modified is not None and (newest is None or modified > newest):
                    newest = modified
    return newest


def _hand_over(handover: Handover, orders: list[dict[str, Any]]) -> None:
    """Tell the hand-over the page's ids are stored; one below an id told before comes late."""
    ids = [woo_id for raw in orders if isinstance(woo_id := raw.get("id"), int)]
    if not ids:
        return
    told, _finished = handover.snapshot()
    if told is not None and min(ids) <= told:
        handover.late(min(ids))
    handover.advance(max(ids))


def _pull_ids(ctx: RunContext, shop: WooClient, order_ids: list[int], result: PullResult) -> None:
    for woo_id in dict.fromkeys(order_ids):
        try:
            raw = shop.get_order(woo_id)
        except ShopError as exc:
            if exc.status != 404:
                raise
            result.missing += 1
            ctx.event(STEP, f"order {woo_id} does not exist in the shop", level="warning")
            continue
        _take(ctx, raw, result, explicit=True)
    result.cursor = read_cursor(ctx)


def _take(
    ctx: RunContext,
    raw: dict[str, Any],
    result: PullResult,
    *,
    explicit: bool,
    check: Callable[[dict[str, Any]], str | None] | None = None,
) -> datetime | None:
    """Store one shop order as the module docstring says; return its modification time.

    ``check`` gives the order's mapping problem (default: :func:`_mapping_problem`)."""
    check = check or _mapping_problem
    result.fetched += 1
    try:
        woo_id = order_id_of(raw)
        modified = modified_at_of(raw)
    except OrderDataError as exc:
        result.unreadable += 1
        ctx.event(STEP, f"an order from the shop was left out: {exc}", level="warning")
        return None
    before = ctx.store.get_order(woo_id, with_raw=True)
    if before is not None and before.shop_modified_at == modified and _same_content(before, raw):
        # This version is stored (the overlap reads it again). The shop's times are whole
        # seconds: a change in the same second as the stored version is told by its content.
        result.unchanged += 1
        return modified
    status = str(raw.get("status") or "")
    if before is None:
        _take_unknown(ctx, raw, woo_id, modified, result, explicit=explicit, check=check)
        return modified
    # Keep the latest version whatever it means, so the next overlap sees it as stored.
    ctx.store.save_pulled_order(_pulled(raw, woo_id, modified))
    if before.raw is not None and content_fingerprint(before.raw) == content_fingerprint(raw):
        # Only the modification time, links or our own write-back meta changed (HPOS bumps
        # date_modified on a meta write, and on merely opening the order in wp-admin).
        result.unchanged += 1
    elif (
        before.state in _PUSHED
        and before.raw is not None
        and our_own_change(ctx.store, before.raw, raw, before.woo_id)
    ):
        result.unchanged += 1  # the status the shipments step set (docs/architecture.md)
    elif before.state in _PUSHED:
        _changed_after_push(ctx, before, raw, result)
    else:
        _changed_before_push(ctx, before, raw, status, result, check)
    return modified


def _take_unknown(
    ctx: RunContext,
    raw: dict[str, Any],
    woo_id: int,
    modified: datetime,
    result: PullResult,
    *,
    explicit: bool,
    check: Callable[[dict[str, Any]], str | None],
) -> None:
    reason = not_taken_reason(ctx.settings.woocommerce, raw)
    if reason is not None:
        result.not_taken += 1
        if explicit:
            ctx.event(STEP, f"not taken: {reason}", level="warning", woo_id=woo_id)
        return
    ctx.store.save_pulled_order(_pulled(raw, woo_id, modified))
    result.new += 1
    problem = check(raw)
    if problem is None:
        ctx.event(STEP, f"pulled from the shop ({_summary(raw)})", woo_id=woo_id)
    else:
        result.unreadable += 1
        ctx.event(STEP, f"pulled, but {problem}", level="warning", woo_id=woo_id)


def _changed_before_push(
    ctx: RunContext,
    before: OrderRecord,
    raw: dict[str, Any],
    status: str,
    result: PullResult,
    check: Callable[[dict[str, Any]], str | None],
) -> None:
    woo_id = before.woo_id
    if before.state is OrderState.SKIPPED:
        # skipped is final (contract): a later change is recorded, never acted on.
        result.updated += 1
        ctx.event(
            STEP,
            f"changed in the shop after it was skipped (now {status or 'no status'});"
            " it stays skipped",
            level="warning",
            woo_id=woo_id,
        )
        return
    if status in SKIP_STATUSES:
        skip_reason = f"{status} in the shop before it was pushed"
        if ctx.store.set_state(woo_id, OrderState.SKIPPED, reason=skip_reason, expect=_NOT_PUSHED):
            result.skipped += 1
            ctx.event(STEP, f"skipped: {skip_reason}", woo_id=woo_id)
        else:
            _lost_race(ctx, woo_id, result)
        return
    waiting = not ctx.settings.woocommerce.takes(status)
    reason: str | None = None
    if waiting:
        reason = f"waiting: shop status {status or '(none)'} is not taken"
    if not ctx.store.set_state(
        woo_id, OrderState.NEW, reason=reason, expect=_NOT_PUSHED, reset_attempts=True
    ):
        _lost_race(ctx, woo_id, result)
        return
    result.updated += 1
    if waiting:
        message = f"{status} in the shop; not pushed unless it returns to a taken status"
    else:
        message = f"changed in the shop ({_changes(before, raw)}); it is validated again"
    problem = check(raw)
    if problem is not None:
        result.unreadable += 1
        ctx.event(STEP, f"{message}, but {problem}", level="warning", woo_id=woo_id)
    else:
        ctx.event(STEP, message, woo_id=woo_id)


def _changed_after_push(
    ctx: RunContext, before: OrderRecord, raw: dict[str, Any], result: PullResult
) -> None:
    result.changed_after_push += 1
    ctx.store.mark_changed_after_push(before.woo_id, ctx.clock())
    document = f" as {before.d365_number}" if before.d365_number else ""
    document += shipped_context(ctx.store, before.woo_id)
    ctx.event(
        STEP,
        f"changed in the shop after it was pushed{document} ({_changes(before, raw)}); "
        "it is not pushed again: correct the Dynamics sales order by hand if needed, then "
        f"`woo2d365 ack {before.woo_id}`",
        level="warning",
        woo_id=before.woo_id,
    )


def _lost_race(ctx: RunContext, woo_id: int, result: PullResult) -> None:
    """The order changed state under us (push claimed it): treat the change as after push."""
    result.changed_after_push += 1
    ctx.store.mark_changed_after_push(woo_id, ctx.clock())
    ctx.event(
        STEP,
        "changed in the shop while it was being pushed; it is not pushed again "
        f"(check the Dynamics sales order, then `woo2d365 ack {woo_id}`)",
        level="warning",
        woo_id=woo_id,
    )


# -- helpers -------------------------------------------------------------------------------------


def _pulled(raw: dict[str, Any], woo_id: int, modified: datetime) -> PulledOrder:
    return PulledOrder(
        woo_id=woo_id,
        number=number_of(raw),
        shop_status=str(raw.get("status") or ""),
        shop_modified_at=modified,
        currency=str(raw.get("currency") or ""),
        total=str(raw.get("total") or ""),
        raw=raw,
    )


def _same_content(stored: OrderRecord, raw: dict[str, Any]) -> bool:
    return stored.raw is None or content_fingerprint(stored.raw) == content_fingerprint(raw)


def _mapping_problem(raw: dict[str, Any]) -> str | None:
    """Why the order cannot be mapped, or None. Validate holds such an order with this reason."""
    try:
        order_from_shop(raw)
    except OrderDataError as exc:
        return f"its data cannot be read: {exc}"
    return None


class _Checked:
    """:func:`_mapping_problem` of a page's orders in a taken status, found once up front."""

    def __init__(self, orders: list[dict[str, Any]], settings: WooCommerceSettings) -> None:
        self._problems = {
            id(raw): _mapping_problem(raw)
            for raw in orders
            if settings.takes(str(raw.get("status") or ""))
        }

    def __call__(self, raw: dict[str, Any]) -> str | None:
        if id(raw) in self._problems:
            return self._problems[id(raw)]
        return _mapping_problem(raw)


def _summary(raw: dict[str, Any]) -> str:
    return f"{raw.get('status')}, {raw.get('total')} {raw.get('currency')}"


def _changes(before: OrderRecord, raw: dict[str, Any]) -> str:
    """A short list of what changed, for people: status, total, lines, addresses."""
    changes = []
    status = str(raw.get("status") or "")
    if status != before.shop_status:
        changes.append(f"status {before.shop_status} → {status}")
    total = str(raw.get("total") or "")
    if total != before.total:
        changes.append(f"total {before.total} → {total}")
    old = before.raw
    if old is not None:
        for key, label in (
            ("line_items", "lines"),
            ("shipping_lines", "shipping"),
            ("fee_lines", "fees"),
            ("billing", "billing address"),
            ("shipping", "shipping address"),
            ("refunds", "refunds"),
        ):
            if old.get(key) != raw.get(key):
                changes.append(f"{label} changed")
    return ", ".join(changes) or "details changed"


def _as_utc(moment: datetime) -> datetime:
    """Aware UTC; a naive value (e.g. ``start_date`` without offset) is taken as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
