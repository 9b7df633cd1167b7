"""``stock``: Dynamics inventory → the shop's stock quantities (docs/architecture.md, "Stock").

For every shop product or variation whose SKU resolves to a stock-kept Dynamics item (the SKU map
and direct matches, by the rule validation uses), the quantity is the item's inventory, less what
pushed orders still hold (:func:`unshipped_quantities`), less ``[stock] reserve``, rounded down,
never below 0. Only what differs from what the shop reports is written, with ``manage_stock: true``,
through the batch endpoints; a product the shop refuses is reported and the rest goes on.

Reads: the shop's products and variations are kept in the store (``stock_targets``), refreshed
from the products modified since the last look (a variation's save moves its parent's
``date_modified``; a full listing once a day catches deletions); Dynamics inventory is one paged
read of every stock-kept item. A dry run reads the same and writes nowhere, the store included.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from woo2d365.erp.base import ErpTarget
from woo2d365.errors import OrderDataError
from woo2d365.pipeline.context import RunContext
from woo2d365.pipeline.followup import FollowUpOptions, FollowUpResult
from woo2d365.pipeline.shipments import record_shipped
from woo2d365.pipeline.validate import item_for_sku
from woo2d365.shop.client import BATCH_LIMIT, StockAnswer, WooClient
from woo2d365.shop.mapping import order_from_shop
from woo2d365.store.base import CachedItem, ShipmentReport, StateStore, StockTarget
from woo2d365.store.stock import StockRunSummary, save_stock_run

STEP = "stock"
CURSOR_KEY = "stock.products_cursor"
FULL_LISTING_KEY = "stock.products_full_at"
FULL_LISTING_EVERY = timedelta(hours=24)
UNSHIPPED_SHOP_STATUSES = ("pending", "processing", "on-hold")
"""Shop statuses of a pushed order whose goods have not left the warehouse yet."""
_NO_STOCK_TYPES = frozenset({"external", "grouped"})  # WooCommerce keeps no stock for these
_GONE_CODES = frozenset(
    {"woocommerce_rest_product_invalid_id", "woocommerce_rest_product_variation_invalid_id"}
)

Resolve = Callable[[str], str | None]


@dataclass
class StockPlan:
    """What one run would write: target → quantity, and what it checked."""

    writes: dict[tuple[int, int], int] = field(default_factory=dict)
    targets: dict[tuple[int, int], StockTarget] = field(default_factory=dict)
    checked: int = 0


def run(
    ctx: RunContext, shop: WooClient, erp: ErpTarget, options: FollowUpOptions
) -> FollowUpResult:
    """Set the shop's stock of every mapped SKU from Dynamics inventory (see the module doc)."""
    result = FollowUpResult(step=STEP, dry_run=options.dry_run)
    store = ctx.store
    targets, listed = refresh_targets(ctx, shop, dry_run=options.dry_run)
    inventory = erp.item_inventory()
    resolve = sku_resolver(ctx, inventory)
    if not ctx.settings.shipments.enabled:  # else the shipments step keeps the ledger current
        shipped_now = record_shipped(ctx, erp, dry_run=options.dry_run)
    else:
        shipped_now = []
    pending = unshipped_quantities(store, resolve, erp, also=shipped_now)
    wanted = set(options.skus)
    if wanted:
        targets = [t for t in targets if t.sku in wanted]
        for sku in sorted(wanted - {t.sku for t in targets}):
            result.lines.append(f"SKU {sku}: no product or variation in the shop has it")
        for sku in sorted({t.sku for t in targets if resolve(t.sku) not in inventory}):
            result.lines.append(f"SKU {sku}: not mapped to a stock-kept Dynamics item")
    plan = plan_writes(targets, inventory, pending, resolve, ctx.settings.stock.reserve)
    result.counts = {"checked": plan.checked, "written": 0, "refused": 0, "listed": listed}
    if options.dry_run:
        for key, quantity in sorted(plan.writes.items()):
            target = plan.targets[key]
            result.lines.append(
                f"{_describe(target)}: stock {_shown(target)} → {quantity} (would write)"
            )
        result.counts = {"checked": plan.checked, "to_write": len(plan.writes), "listed": listed}
        return result
    written, refused = write_stock(ctx, shop, plan, result)
    result.counts["written"], result.counts["refused"] = written, refused
    save_stock_run(
        store,
        StockRunSummary(at=ctx.clock(), checked=plan.checked, written=written, refused=refused),
    )
    return result


# -- the shop's products by SKU ---------------------------------------------------------------
def refresh_targets(
    ctx: RunContext, shop: WooClient, *, dry_run: bool = False
) -> tuple[list[StockTarget], int]:
    """The shop's products and variations with a SKU, brought up to date from the products
    modified since the last look (all of them on the first run and once a day).

    Returns the targets and how many products were listed. A dry run keeps them in memory only.
    """
    store = ctx.store
    now = ctx.clock()
    cursor = _parse_time(store.get_value(CURSOR_KEY) or "")
    last_full = _parse_time(store.get_value(FULL_LISTING_KEY) or "")
    full = cursor is None or last_full is None or last_full < now - FULL_LISTING_EVERY
    since = None
    if not full and cursor is not None:
        since = cursor - timedelta(minutes=ctx.settings.woocommerce.overlap_minutes)
    known = {} if full else {t.key: t for t in store.stock_targets()}
    listing = _Listing(newest=cursor)
    for page in shop.iter_products(since):
        for product in page.products:
            listing.add(product)
        if page.server_date is not None and listing.newest is None:
            listing.newest = page.server_date
    workers = max(1, min(ctx.settings.woocommerce.max_concurrency, len(listing.variable)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stock") as pool:
        for (product_id, sku), variations in zip(
            listing.variable.items(),
            pool.map(shop.product_variations, listing.variable),
            strict=True,
        ):
            listing.fresh += _variation_targets(product_id, sku, variations)
    ids = set(listing.listed)
    merged = {k: t for k, t in known.items() if k[0] not in ids}
    merged.update({t.key: t for t in listing.fresh})
    if not dry_run:
        store.put_stock_targets(listing.fresh, product_ids=listing.listed, everything=full)
        if listing.newest is not None:
            store.set_value(CURSOR_KEY, listing.newest.isoformat())
        if full:
            store.set_value(FULL_LISTING_KEY, now.isoformat())
    return sorted(merged.values(), key=lambda t: t.key), len(listing.listed)


@dataclass
class _Listing:
    """What a product listing found: every product id, the targets with a SKU, the variable
    products whose variations are still to list (→ their SKU), the newest change seen."""

    newest: datetime | None
    listed: list[int] = field(default_factory=list)
    fresh: list[StockTarget] = field(default_factory=list)
    variable: dict[int, str] = field(default_factory=dict)

    def add(self, product: dict[str, Any]) -> None:
        product_id = _int(product.get("id"))
        if product_id <= 0:
            return
        self.listed.append(product_id)
        kind = str(product.get("type") or "simple")
        if kind in _NO_STOCK_TYPES:
            return
        sku = str(product.get("sku") or "").strip()
        if sku:
            self.fresh.append(_target(product_id, 0, sku, product))
        if kind == "variable" and product.get("variations"):
            self.variable[product_id] = sku
        stamp = _parse_time(str(product.get("date_modified_gmt") or ""))
        if stamp is not None and (self.newest is None or stamp > self.newest):
            self.newest = stamp


def _variation_targets(
    product_id: int, parent_sku: str, variations: list[dict[str, Any]]
) -> list[StockTarget]:
    """The variations with a SKU of their own: one that shows its parent's SKU has none (it
    inherits it, and the parent stands for it)."""
    found = []
    for variation in variations:
        own = str(variation.get("sku") or "").strip()
        variation_id = _int(variation.get("id"))
        if own and own != parent_sku and variation_id > 0:
            found.append(_target(product_id, variation_id, own, variation))
    return found


def _target(product_id: int, variation_id: int, sku: str, shown: dict[str, Any]) -> StockTarget:
    manage = shown.get("manage_stock")
    quantity = shown.get("stock_quantity")
    return StockTarget(
        product_id=product_id,
        variation_id=variation_id,
        sku=sku,
        manage_stock="parent" if manage == "parent" else "true" if manage is True else "false",
        stock_quantity=_int(quantity) if isinstance(quantity, int | float | str) else None,
        date_modified=str(shown.get("date_modified_gmt") or ""),
    )


# -- the quantity ------------------------------------------------------------------------------
def sku_resolver(ctx: RunContext, inventory: dict[str, Decimal]) -> Resolve:
    """SKU → stock-kept item number by the rule validation uses (``orders.sku_match``)."""
    orders = ctx.settings.orders
    mapped: dict[str, str] = {}
    if orders.sku_match != "direct":
        mapped = {m.sku: m.item_number.strip().upper() for m in ctx.store.sku_mappings()}
    items = {n: CachedItem(number=n, id="", display_name="", blocked=False) for n in inventory}
    cache: dict[str, str | None] = {}

    def resolve(sku: str) -> str | None:
        if sku not in cache:
            cache[sku] = item_for_sku(sku, orders.sku_match, mapped, items)
        return cache[sku]

    return resolve


def unshipped_quantities(
    store: StateStore,
    resolve: Resolve,
    erp: ErpTarget,
    *,
    also: Iterable[ShipmentReport] = (),
) -> dict[str, Decimal]:
    """Per item number, the quantity on orders this tool pushed that Dynamics has not shipped.

    Dynamics lowers inventory only when a shipment is posted, while the shop lowered its stock
    when the order was placed. An order counts while its shop status is one of
    :data:`UNSHIPPED_SHOP_STATUSES` (the shop calls it done otherwise), each goods line less what
    the shipments ledger has recorded as shipped for it (``woo2d365 shipments``: a partly shipped
    order counts only its rest, a shipped one nothing, even before the shop shows it complete).
    """
    raws = store.pushed_order_raws(list(UNSHIPPED_SHOP_STATUSES))
    ids = [int(raw["id"]) for raw in raws if isinstance(raw.get("id"), int)]
    shipped: dict[int, dict[int, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    reports: dict[str, ShipmentReport] = {r.shipment_id: r for r in also}  # a dry run's read
    for start in range(0, len(ids), 500):
        for report in store.shipment_reports(ids[start : start + 500]):
            reports.setdefault(report.shipment_id, report)
    wanted = set(ids)
    for report in reports.values():
        if report.woo_id in wanted:
            for sequence, quantity in report.lines.items():
                shipped[report.woo_id][int(sequence)] += Decimal(quantity)
    held: dict[str, Decimal] = defaultdict(Decimal)
    for raw in raws:
        try:
            lines = erp.goods_lines(order_from_shop(raw))
        except OrderDataError:
            continue  # a shop order that cannot be read was never pushed as it stands
        done = shipped.get(int(raw.get("id") or 0), {})
        for sequence, line in lines.items():
            left = line.quantity - done.get(sequence, Decimal(0))
            number = resolve(line.sku) if line.sku else None
            if number is not None and left > 0:
                held[number] += left
    return dict(held)


def stock_quantity(inventory: Decimal, unshipped: Decimal, reserve: int) -> int:
    """The shop quantity: inventory − unshipped − reserve, rounded down, never below 0."""
    return max(0, math.floor(inventory - unshipped - reserve))


def plan_writes(
    targets: Iterable[StockTarget],
    inventory: dict[str, Decimal],
    unshipped: dict[str, Decimal],
    resolve: Resolve,
    reserve: int,
) -> StockPlan:
    """Which products and variations get which quantity: only where the shop shows another."""
    plan = StockPlan()
    for target in targets:
        number = resolve(target.sku)
        if number is None or number not in inventory:
            continue
        plan.checked += 1
        quantity = stock_quantity(inventory[number], unshipped.get(number, Decimal(0)), reserve)
        if target.manage_stock == "true" and target.stock_quantity == quantity:
            continue
        plan.writes[target.key] = quantity
        plan.targets[target.key] = target
    return plan


# -- writing -----------------------------------------------------------------------------------
def write_stock(
    ctx: RunContext, shop: WooClient, plan: StockPlan, result: FollowUpResult
) -> tuple[int, int]:
    """Write the plan: products in batches, variations in batches per parent; returns
    ``(written, refused)``. What was done is stored even when the shop goes away half-way."""
    groups: dict[int | None, dict[int, int]] = defaultdict(dict)
    for (product_id, variation_id), quantity in plan.writes.items():
        if variation_id:
            groups[product_id][variation_id] = quantity
        else:
            groups[None][product_id] = quantity
    jobs: list[tuple[int | None, dict[int, int]]] = []
    for parent, quantities in sorted(groups.items(), key=lambda g: -1 if g[0] is None else g[0]):
        entries = sorted(quantities.items())
        jobs += [
            (parent, dict(entries[start : start + BATCH_LIMIT]))
            for start in range(0, len(entries), BATCH_LIMIT)
        ]
    written = refused = 0
    failure: BaseException | None = None
    workers = max(1, min(ctx.settings.woocommerce.max_concurrency, len(jobs)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stock") as pool:
        futures = {
            pool.submit(shop.set_stock, parent, chunk): (parent, chunk) for parent, chunk in jobs
        }
        for future in as_completed(futures):
            parent, chunk = futures[future]
            try:
                answer = future.result()
            except Exception as exc:  # the shop went away: keep what the others did
                failure = failure or exc
                continue
            written += _record_answer(ctx, plan, parent, chunk, answer)
            for object_id, reason in answer.refused.items():
                key = (parent, object_id) if parent is not None else (object_id, 0)
                target = plan.targets[key]
                if any(code in reason for code in _GONE_CODES):
                    ctx.store.forget_stock_target(*key)  # deleted in the shop: listed again if back
                refused += 1
                line = f"{_describe(target)}: the shop refused stock {chunk[object_id]}: {reason}"
                result.attention.append(line)
                ctx.event(STEP, line, level="warning")
    if failure is not None:
        raise failure
    return written, refused


def _record_answer(
    ctx: RunContext, plan: StockPlan, parent: int | None, chunk: dict[int, int], answer: StockAnswer
) -> int:
    """Store what the shop saved: its stock as shown, and the quantity written per SKU."""
    saved: list[StockTarget] = []
    quantities_by_sku: dict[str, int] = {}
    for object_id, shown in answer.written.items():
        key = (parent, object_id) if parent is not None else (object_id, 0)
        target = plan.targets[key]
        saved.append(_target(key[0], key[1], target.sku, shown))
        quantities_by_sku[target.sku] = chunk[object_id]
    ctx.store.update_stock_targets(saved)
    ctx.store.record_stock_written(quantities_by_sku, ctx.clock())
    return len(saved)


# -- helpers -----------------------------------------------------------------------------------
def _describe(target: StockTarget) -> str:
    if target.variation_id:
        return f"SKU {target.sku} (variation {target.variation_id} of product {target.product_id})"
    return f"SKU {target.sku} (product {target.product_id})"


def _shown(target: StockTarget) -> str:
    if target.manage_stock != "true":
        return "not managed" if target.manage_stock == "false" else "kept by the parent"
    return str(target.stock_quantity)


def _int(value: Any) -> int:
    try:
        return int(Decimal(str(value)))
    except (ArithmeticError, ValueError):
        return 0


def _parse_time(text: str) -> datetime | None:
    """An ISO time; a naive one (the shop's ``*_gmt`` fields) is UTC."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return moment
