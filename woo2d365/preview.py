"""``sync --dry-run``: read both systems, write nothing, say which sales orders a sync would
create and which orders it would hold."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from woo2d365.erp.base import ErpTarget, ItemLookup
from woo2d365.errors import ExitCode, OrderDataError
from woo2d365.model import OrderState
from woo2d365.pipeline.context import RunContext
from woo2d365.pipeline.pull import not_taken_reason, window_start
from woo2d365.pipeline.validate import problems_of, refresh_item_mirror
from woo2d365.runtime import Runtime
from woo2d365.shop.client import WooClient
from woo2d365.shop.mapping import order_from_shop

PREVIEWED_STATES = (OrderState.NEW, OrderState.READY, OrderState.HELD, OrderState.FAILED)
"""States of a stored order that a sync may still push."""


@dataclass
class Preview:
    """What ``sync --dry-run`` would do, one line per order."""

    lines: list[str] = field(default_factory=list)
    would_create: int = 0
    would_hold: int = 0

    @property
    def exit_code(self) -> ExitCode:
        """1 when an order would be held."""
        return ExitCode.ATTENTION if self.would_hold else ExitCode.OK

    def hold(self, woo_id: int, why: str) -> None:
        """An order the sync would hold, and why."""
        self.would_hold += 1
        self.lines.append(f"order {woo_id}: would be held: {why}")


def preview(runtime: Runtime, *, limit: int | None = None) -> Preview:
    """Read both systems, write nothing: which sales orders a sync would create, which it holds."""
    ctx = runtime.context()
    shop, erp = runtime.shop(), runtime.erp()
    result = Preview()
    try:
        refresh = refresh_item_mirror(ctx, erp, [], dry_run=True)
        items = refresh.items if refresh is not None else None
        candidates = _candidates(ctx, shop)
        for woo_id in sorted(candidates):
            if limit is not None and result.would_create >= limit:
                break
            raw = candidates[woo_id]
            if runtime.settings.woocommerce.takes(str(raw.get("status", ""))):
                _preview_order(ctx, erp, woo_id, raw, items, result)
    finally:
        erp.close()
    result.lines.append(
        f"dry run: {result.would_create} sales orders would be created, "
        f"{result.would_hold} orders held; nothing was written"
    )
    return result


def _candidates(ctx: RunContext, shop: WooClient) -> dict[int, dict[str, Any]]:
    """The shop JSON of every order a sync could push: those stored and not yet pushed, and
    those the pull window shows that a real pull would take."""
    candidates: dict[int, dict[str, Any]] = {}
    for record in ctx.store.list_orders(
        states=[OrderState.NEW, OrderState.READY, OrderState.HELD], with_raw=True
    ):
        candidates[record.woo_id] = record.raw or {}
    for page in shop.iter_orders_modified_after(window_start(ctx)):
        for raw in page.orders:
            known = ctx.store.get_order(int(raw.get("id", 0)))
            if known is None and not_taken_reason(ctx.settings.woocommerce, raw) is not None:
                continue  # a real pull would not take it either
            if known is None or known.state in PREVIEWED_STATES:
                candidates[int(raw["id"])] = raw
    return candidates


def _preview_order(
    ctx: RunContext,
    erp: ErpTarget,
    woo_id: int,
    raw: dict[str, Any],
    items: ItemLookup | None,
    result: Preview,
) -> None:
    """Add what a sync would do with one order to ``result``."""
    try:
        order = order_from_shop(raw)
        number = erp.external_number(order)
    except OrderDataError as exc:
        result.hold(woo_id, exc.message)
        return
    resolution = problems_of(ctx, erp, order, items=items)
    if resolution.problems:
        result.hold(woo_id, "; ".join(resolution.problems))
        return
    result.would_create += 1
    result.lines.append(
        f"would create sales order {number} (order {woo_id}, {len(order.lines)} lines, "
        f"total {order.total} {order.currency})"
    )
