"""validate: every ``new`` and ``held`` order becomes ``ready`` or ``held`` with its reasons.

Each item line must resolve to a Dynamics item that exists and is not blocked, through the SKU map
and/or the item number itself (``orders.sku_match``); shipping and fee lines need their G/L
account; the ERP adds the checks only it can make (document number length, country codes, a
customer e-mail). Held orders are validated again on every run, so ``map-sku add`` releases them
without a ``retry``.

Validation reads the item mirror in the state store (refreshed once per run through the ERP); it
makes no request per order and never calls the shop.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from woo2d365.erp.base import ErpTarget, ItemLookup, ItemRefresh
from woo2d365.errors import DynamicsAuthenticationError, DynamicsError, OrderDataError
from woo2d365.model import ZERO, Line, LineKind, Order, OrderState
from woo2d365.pipeline.context import RunContext
from woo2d365.pipeline.handover import ORDERS_PER_COMMIT, Handover, handed_over_ids
from woo2d365.pipeline.kept import KeptDict, KeptList
from woo2d365.settings import OrdersSettings
from woo2d365.shop.mapping import order_from_shop
from woo2d365.store.base import CachedItem, OrderRecord, StateStore

STEP = "validate"
CHUNK = 200  # orders read and decided per store transaction
ITEM_NUMBER_LENGTH = 20  # Business Central item No. is Code[20]
VALIDATED_STATES = [OrderState.NEW, OrderState.HELD]
_Decision = tuple[tuple[str, ...], tuple[str, ...]]  # (problems, unmapped SKUs) of one order


@dataclass(frozen=True)
class LineResolution:
    """How an order's lines resolve to Dynamics items.

    ``item_numbers`` aligns with ``order.lines`` (None for shipping, fees and unresolved lines);
    ``problems`` name each offending line; ``unmapped_skus`` are SKUs a ``map-sku add`` would fix.
    """

    item_numbers: tuple[str | None, ...]
    problems: tuple[str, ...] = ()
    unmapped_skus: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every line resolves."""
        return not self.problems


@dataclass
class ValidateResult:
    """What one validate run decided."""

    # The first entries of each kind, and the count of all as len() (pipeline/kept.py).
    ready: KeptList[int] = field(default_factory=KeptList)
    held: KeptDict[int, str] = field(default_factory=KeptDict)  # woo_id → reason
    newly_held: KeptList[int] = field(default_factory=KeptList)  # held now, not so before
    released: KeptList[int] = field(default_factory=KeptList)  # held before, ready now
    not_taken: KeptList[int] = field(default_factory=KeptList)  # status not in woocommerce.statuses
    item_refresh: ItemRefresh | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def needs_attention(self) -> bool:
        """True when an order is held (exit code 1)."""
        return bool(self.held)


@dataclass(frozen=True)
class LineLookup:
    """The SKU map entries and mirrored items the lines of some orders may resolve to."""

    mapped: dict[str, str]  # SKU → item number (upper-case)
    found: dict[str, CachedItem]  # item number → item


def look_up_lines(
    orders: Iterable[Order],
    store: StateStore,
    settings: OrdersSettings,
    *,
    items: ItemLookup | None = None,
) -> LineLookup:
    """Read, in one transaction, what the item lines of ``orders`` may resolve to, per
    ``orders.sku_match``; ``items`` replaces the store's mirror (a dry run's unsaved refresh).

    One read for a chunk of orders instead of one per order: fewer turns of the store's lock,
    which push's fence waits for before each send.
    """
    mode = settings.sku_match
    skus = sorted(
        {
            line.sku
            for order in orders
            for line in order.lines
            if line.kind is LineKind.ITEM and line.sku
        }
    )
    mapped: dict[str, str] = {}
    with store.batch():  # the map and the mirror read in one transaction
        if mode != "direct" and skus:
            mapped = {m.sku: m.item_number.strip().upper() for m in store.sku_mappings(skus)}
        candidates = set(mapped.values())
        if mode != "map":
            candidates.update(sku.upper() for sku in skus if len(sku) <= ITEM_NUMBER_LENGTH)
        mirror = items if items is not None else store
        found = mirror.items_by_number(sorted(candidates)) if candidates else {}
    return LineLookup(mapped, found)


def resolve_lines(
    order: Order,
    store: StateStore,
    orders: OrdersSettings,
    *,
    items: ItemLookup | None = None,
    lookup: LineLookup | None = None,
) -> LineResolution:
    """Resolve every line through the SKU map and the item mirror, per ``orders.sku_match``.

    ``items`` replaces the store's mirror (a dry run's unsaved refresh); ``lookup`` is what
    :func:`look_up_lines` read for a chunk of orders this one belongs to.
    """
    mode = orders.sku_match
    if lookup is None:
        lookup = look_up_lines([order], store, orders, items=items)
    mapped, found = lookup.mapped, lookup.found

    numbers: list[str | None] = []
    problems: list[str] = []
    unmapped: list[str] = []
    for position, line in enumerate(order.lines, 1):
        if line.kind is LineKind.ITEM:
            number, problem, is_unmapped = _item_line(line, mode, mapped, found)
        else:
            number, problem, is_unmapped = None, _account_problem(line, orders), False
        numbers.append(number)
        if problem:
            problems.append(f'line {position} "{line.name}": {problem}')
        if is_unmapped and line.sku:
            unmapped.append(line.sku)
    return LineResolution(tuple(numbers), tuple(problems), tuple(dict.fromkeys(unmapped)))


def _account_problem(line: Line, orders: OrdersSettings) -> str | None:
    """Why a shipping or fee line with an amount cannot be booked: its G/L account is not set."""
    account = orders.shipping_account if line.kind is LineKind.SHIPPING else orders.fee_account
    if account.strip() or line.total + line.total_tax == ZERO:
        return None
    key = "shipping_account" if line.kind is LineKind.SHIPPING else "fee_account"
    return f"{line.kind.value} needs orders.{key} (a G/L account)"


def _item_line(
    line: Line, mode: str, mapped: dict[str, str], found: dict[str, CachedItem]
) -> tuple[str | None, str | None, bool]:
    """``(item number, problem, unmapped)`` of one item line, with the hints an operator needs."""
    number, problem, is_unmapped = _resolve_item(line.sku, mode, mapped, found)
    if problem and not line.sku and line.product_id == 0:
        # WooCommerce reports a permanently deleted product as product_id 0, sku null.
        problem = (
            "has no SKU because its product was deleted in the shop (no Dynamics item can "
            "be found for it: enter this order in Dynamics by hand)"
        )
    if line.quantity <= 0 and line.total + line.total_tax != ZERO:
        # Caught here, not only when the payload is built, so the order stays held rather
        # than being released and held again by every run.
        amount = line.total + line.total_tax
        bad = f"quantity {line.quantity} with an amount of {amount} (correct it in the shop)"
        problem = f"{problem}; {bad}" if problem else bad
    if problem and line.parent_sku_inherited and is_unmapped:
        problem += " (a variation that may report its parent's SKU: give it its own SKU)"
    return number, problem, is_unmapped


def item_for_sku(
    sku: str, mode: str, mapped: dict[str, str], items: dict[str, CachedItem]
) -> str | None:
    """The item number ``sku`` resolves to under ``orders.sku_match`` (``mapped``: the SKU map,
    ``items``: the items that may be used), by the rule validation holds lines to; else None."""
    return _resolve_item(sku, mode, mapped, items)[0]


def _resolve_item(
    sku: str | None, mode: str, mapped: dict[str, str], items: dict[str, CachedItem]
) -> tuple[str | None, str | None, bool]:
    """``(item number, problem, unmapped)`` for one item line."""
    if not sku:
        return None, "has no SKU (give the product a SKU in the shop, then retry the order)", False
    number: str | None = None
    how = ""
    if sku in mapped:
        number, how = mapped[sku], "mapped"
    elif mode != "map" and sku.upper() in items:
        number, how = sku.upper(), "direct"
    if number is None:
        if mode == "direct":
            if len(sku) > ITEM_NUMBER_LENGTH:
                return (
                    None,
                    (
                        f"SKU {sku} is longer than {ITEM_NUMBER_LENGTH} characters, so it cannot "
                        'be an item number (set orders.sku_match = "map-then-direct" and map it)'
                    ),
                    False,
                )
            return None, f"SKU {sku} is not an item number in Dynamics", False
        return None, f"SKU {sku} is not mapped (map-sku add {sku} ITEM)", True
    item = items.get(number)
    if item is None:
        return (
            None,
            (f"SKU {sku} is mapped to item {number}, which does not exist in Dynamics"),
            False,
        )
    if item.blocked:
        via = f"SKU {sku} → item {number}" if how == "mapped" else f"item {number}"
        return None, f"{via} is {item.blocked_reason or 'blocked'} in Dynamics", False
    return number, None, False


def validate(
    ctx: RunContext,
    erp: ErpTarget,
    *,
    order_ids: list[int] | None = None,
    refresh_items: bool = True,
    after: Handover | None = None,
    hand_over: Handover | None = None,
) -> ValidateResult:
    """Decide ``ready`` or ``held`` for every ``new`` and ``held`` order (or of ``order_ids``).

    Refreshes the item mirror once first (``refresh_items``). When Dynamics cannot be reached the
    existing mirror is used with a warning; with an empty mirror the error is raised.
    In ``sync``, ``after`` is pull's hand-over (orders are validated as their pages are stored)
    and ``hand_over`` tells push, page by page, up to which id every order is decided.
    """
    result = ValidateResult()
    store = ctx.store
    items: ItemLookup | None = None
    if refresh_items:
        result.item_refresh = refresh_item_mirror(ctx, erp, result.warnings)
        items = result.item_refresh.items if result.item_refresh else None
    if hand_over is not None:
        hand_over.start()
    checks_loaded = False
    highest: int | None = None
    # A chunk at a time: bounded memory, and a commit per few orders instead of a few per order.
    for chunk in _chunks(store, order_ids, after, hand_over):
        if not checks_loaded:
            erp.load_checks()  # HTTP now: never inside the store transactions below
            checks_loaded = True
        _validate_chunk(ctx, erp, chunk, result, items=items)
        if hand_over is not None:
            if highest is not None and chunk[0] <= highest:
                hand_over.late(chunk[0])
            highest = max(chunk[-1], highest or chunk[-1])
            hand_over.advance(highest)
    return result


def _validate_chunk(
    ctx: RunContext,
    erp: ErpTarget,
    chunk: list[int],
    result: ValidateResult,
    *,
    items: ItemLookup | None,
) -> None:
    """Decide the chunk's orders, then record them :data:`ORDERS_PER_COMMIT` a transaction.

    Deciding before the transactions keeps the store's lock for the writes alone: in sync, push
    sends meanwhile, its fence waiting on that lock right before each send.
    """
    records = ctx.store.list_orders(states=VALIDATED_STATES, with_raw=True, woo_ids=chunk)
    read: list[tuple[OrderRecord, Order | str]] = []
    for record in sorted(records, key=lambda r: r.woo_id):
        if not ctx.settings.woocommerce.takes(record.shop_status):
            result.not_taken.append(record.woo_id)
            continue
        try:
            read.append((record, order_from_shop(record.raw or {})))
        except OrderDataError as exc:
            read.append((record, f"the shop order cannot be read: {exc.message}"))
    orders = [order for _, order in read if isinstance(order, Order)]
    lookup = look_up_lines(orders, ctx.store, ctx.settings.orders, items=items)
    decided: list[tuple[OrderRecord, _Decision]] = []
    for record, order in read:
        if isinstance(order, str):
            decided.append((record, ((order,), ())))
            continue
        resolution = problems_of(ctx, erp, order, items=items, lookup=lookup)
        decided.append((record, (resolution.problems, resolution.unmapped_skus)))
    for start in range(0, len(decided), ORDERS_PER_COMMIT):
        with ctx.store.batch():
            for record, (problems, unmapped) in decided[start : start + ORDERS_PER_COMMIT]:
                _apply(ctx, record, problems, unmapped, result)


def _chunks(
    store: StateStore,
    order_ids: list[int] | None,
    after: Handover | None = None,
    hand_over: Handover | None = None,
) -> Iterator[list[int]]:
    """The ids to validate, ascending, :data:`CHUNK` at a time: those given, else every ``new``
    and ``held`` order, read from the store a page at a time (never the whole set at once);
    with ``after``, only what pull has stored so far, waiting for more until it has finished."""
    if after is not None and order_ids is None:
        covered = hand_over.advance if hand_over is not None else None
        yield from handed_over_ids(
            store, VALIDATED_STATES, CHUNK, after, late_states=[OrderState.NEW], covered=covered
        )
        return
    if order_ids is not None:
        ids = sorted(set(order_ids))
        for start in range(0, len(ids), CHUNK):
            yield ids[start : start + CHUNK]
        return
    last: int | None = None
    while page := store.order_ids_after(VALIDATED_STATES, last, CHUNK):
        yield page
        last = page[-1]


def refresh_item_mirror(
    ctx: RunContext, erp: ErpTarget, warnings: list[str], *, dry_run: bool = False
) -> ItemRefresh | None:
    """Refresh the item mirror once; an unreachable Dynamics leaves the last copy (a warning).

    Raises when there is no copy to fall back on, or the credentials are refused.
    """
    try:
        refresh = erp.refresh_items(dry_run=dry_run)
    except DynamicsAuthenticationError:
        raise
    except DynamicsError as exc:
        if not exc.retryable or ctx.store.item_count() == 0:
            raise
        message = f"item list not refreshed, using the copy from the last run: {exc}"
        warnings.append(message)
        if not dry_run:
            ctx.event(STEP, message, level="warning")
        return None
    ctx.log.info(
        "items: %s refresh, %d fetched", "full" if refresh.full else "incremental", refresh.fetched
    )
    return refresh


def problems_of(
    ctx: RunContext,
    erp: ErpTarget,
    order: Order,
    *,
    items: ItemLookup | None = None,
    lookup: LineLookup | None = None,
) -> LineResolution:
    """Line resolution plus the ERP's own checks, as one :class:`LineResolution`."""
    resolution = resolve_lines(order, ctx.store, ctx.settings.orders, items=items, lookup=lookup)
    extra = erp.check_order(order)
    if not extra:
        return resolution
    return LineResolution(
        resolution.item_numbers, (*resolution.problems, *extra), resolution.unmapped_skus
    )


def _apply(
    ctx: RunContext,
    record: OrderRecord,
    problems: tuple[str, ...],
    unmapped: tuple[str, ...],
    result: ValidateResult,
) -> None:
    """Record what was decided for one order: ``held`` or ``ready``."""
    if problems:
        _hold(ctx, record, problems, unmapped, result)
    else:
        _make_ready(ctx, record, result)


def _hold(
    ctx: RunContext,
    record: OrderRecord,
    problems: tuple[str, ...],
    unmapped: tuple[str, ...],
    result: ValidateResult,
) -> None:
    woo_id, reason = record.woo_id, "; ".join(problems)
    if ctx.store.set_state(woo_id, OrderState.HELD, reason=reason, expect=VALIDATED_STATES):
        ctx.store.set_held_skus(woo_id, list(unmapped))
        result.held[woo_id] = reason
        if record.state is not OrderState.HELD or record.reason != reason:
            result.newly_held.append(woo_id)
            ctx.event(STEP, f"held: {reason}", level="warning", woo_id=woo_id)


def _make_ready(ctx: RunContext, record: OrderRecord, result: ValidateResult) -> None:
    woo_id = record.woo_id
    if ctx.store.set_state(woo_id, OrderState.READY, reason=None, expect=VALIDATED_STATES):
        ctx.store.set_held_skus(woo_id, [])
        result.ready.append(woo_id)
        if record.state is OrderState.HELD:
            result.released.append(woo_id)
            ctx.event(STEP, "released: every line resolves now; ready", woo_id=woo_id)
        else:
            ctx.event(STEP, "ready: every line resolves to a Dynamics item", woo_id=woo_id)
