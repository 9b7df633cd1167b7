"""``shipments``: Dynamics shipments and invoices back to the shop order (docs/architecture.md,
"Shipments").

One run:

1. **Read** what changed in Dynamics since the cursors (the ERP's own timestamps, less
   :data:`OVERLAP`), narrowed to this tool's documents by the external number prefix: posted
   shipments with their lines, their tracking (``[shipments] tracking_api``) and posted invoices.
   One paged read each, whatever the number of pushed orders.
2. **Match** each document to a pushed order by the stored key (``externalDocumentNumber``), the
   Dynamics order number or, for invoices, the order id (the sales order itself may be deleted).
3. **Record** them in the ledgers (store/shipments.py): a shipment or invoice read again (overlap,
   a tracking number typed in later, an invoice paid) updates its row and keeps what the shop was
   told.
4. **Report**, each once: per shipment a note (customer-visible with ``notify_customer``) naming
   it, its date, partial or not, carrier and tracking link when known; a tracking number that
   appears later gets one further note; when every goods line is shipped (summed per line
   sequence over all shipments against what was pushed) the shop order gets ``complete_status``;
   per invoice a private note and the meta entry ``_woo2d365_invoice``, rewritten when its status
   changes. Every write is claimed in the ledger before it is sent and recorded after; a claim
   found on the next run (a killed run, a lost answer) is settled by looking at the shop first
   (its notes, its status), never by writing blindly again.

An order cancelled or refunded in the shop is never written to: its shipments are recorded as
skipped and a person is told (attention). ``--dry-run`` reads both systems and writes nowhere,
the store included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from woo2d365.erp.base import ErpTarget, PostedInvoice, PostedShipment, ShipmentTracking
from woo2d365.errors import OrderDataError, ShopError, ShopUnreachable
from woo2d365.pipeline.context import RunContext
from woo2d365.pipeline.followup import FollowUpOptions, FollowUpResult
from woo2d365.shop.client import WooClient
from woo2d365.shop.mapping import OWN_META_PREFIX, order_from_shop
from woo2d365.store.base import (
    Fulfilment,
    InvoiceRecord,
    OrderRecord,
    ShipmentReport,
    StateStore,
)

STEP = "shipments"
D = TypeVar("D", ShipmentReport, InvoiceRecord)  # a posted document as the store keeps it
OVERLAP = timedelta(minutes=10)
"""Documents committed late with an older timestamp are still read; the ledger de-duplicates."""
CURSOR_KEYS = {
    "shipments": "shipments.cursor.shipments",
    "tracking": "shipments.cursor.tracking",
    "invoices": "shipments.cursor.invoices",
}
INVOICE_META_KEY = OWN_META_PREFIX + "invoice"
SWITCHED_ON_KEY = "shipments.switched_on"  # when the first run ended: later shipments are news
CLOSED_STATUSES = frozenset({"cancelled", "refunded", "failed", "trash"})
"""Shop statuses after which the tool writes nothing to the order (a person decides)."""
# What setting the status changes in the order besides ``date_modified`` (docs/systems.md W6).
STATUS_FIELDS = (
    "status",
    "date_completed",
    "date_completed_gmt",
    "date_paid",
    "date_paid_gmt",
    "is_editable",
    "needs_payment",
    "needs_processing",
)


# -- what the shop is told: the texts and the markers that find them again ---------------------


def shipment_marker(number: str) -> str:
    """The words of a shipment note that identify it among the order's notes."""
    return f"Dynamics 365 shipment {number}"


def invoice_marker(number: str) -> str:
    """The words of an invoice note that identify it among the order's notes."""
    return f"Dynamics 365 invoice {number}"


def carrier_text(carriers: dict[str, str], agent: str, tracking: str) -> str:
    """``carrier DHL Parcel, tracking number X: URL`` from ``[shipments.carriers]``."""
    name, _, template = carriers.get(agent, carriers.get(agent.upper(), "")).partition("|")
    name = name.strip() or agent
    parts = []
    if name:
        parts.append(f"carrier {name}")
    if tracking:
        link = template.strip().replace("%1", tracking) if template.strip() else ""
        parts.append(f"tracking number {tracking}" + (f": {link}" if link else ""))
    return ", ".join(parts)


def shipment_note(report: ShipmentReport, *, partial: bool, carriers: dict[str, str]) -> str:
    """The note for one shipment."""
    what = "Partly shipped" if partial else "Shipped"
    text = f"{what}: {shipment_marker(report.number)} of {report.posted_on}"
    carrier = carrier_text(carriers, report.agent, report.tracking)
    return f"{text}, {carrier}." if carrier else f"{text}."


def tracking_note(report: ShipmentReport, carriers: dict[str, str]) -> str:
    """The further note when the tracking number appears after the shipment was reported."""
    carrier = carrier_text(carriers, report.agent, report.tracking)
    return f"Tracking for {shipment_marker(report.number)}: {carrier}."


def invoice_note(record: InvoiceRecord) -> str:
    """The private note for one invoice."""
    return (
        f"Invoiced: {invoice_marker(record.number)} of {record.posted_on}, "
        f"{record.total_including_tax} {record.currency} incl. tax ({record.status})."
    ).replace("  ", " ")


def invoice_meta(records: list[InvoiceRecord]) -> str:
    """The ``_woo2d365_invoice`` meta value: every invoice of the order with its status."""
    return "; ".join(
        f"{r.number} {r.status} {r.total_including_tax} {r.currency}".strip() for r in records
    )


# -- the shop loop: our own writes come back on the next pull ----------------------------------


def only_our_status_change(before: dict[str, Any], after: dict[str, Any], status_set: str) -> bool:
    """True when ``after`` differs from ``before`` only by the status this step set (and what
    WooCommerce changes with it): pull then raises no "changed after push"."""
    from woo2d365.shop.mapping import content_fingerprint

    if not status_set or str(after.get("status") or "") != status_set:
        return False

    def without_status(raw: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in raw.items() if k not in STATUS_FIELDS}

    return content_fingerprint(without_status(before)) == content_fingerprint(without_status(after))


def our_own_change(
    store: StateStore, before: dict[str, Any], after: dict[str, Any], woo_id: int
) -> bool:
    """Pull's question for a pushed order that changed: was it only the status we set?"""
    if str(after.get("status") or "") == str(before.get("status") or ""):
        return False
    fulfilment = store.fulfilments([woo_id]).get(woo_id)
    if fulfilment is None or fulfilment.complete_state not in ("claimed", "done"):
        return False
    return only_our_status_change(before, after, fulfilment.status_set)


def shipped_context(store: StateStore, woo_id: int) -> str:
    """`` after it shipped (shipment 102001)`` for pull's alert about a change after push."""
    numbers = [r.number for r in store.shipment_reports([woo_id])]
    if not numbers:
        return ""
    return f" and after it shipped (shipment {', '.join(numbers)})"


# -- the step ----------------------------------------------------------------------------------


@dataclass
class _Work:
    """One order's documents as known after this run's read."""

    order: OrderRecord
    shipments: list[ShipmentReport] = field(default_factory=list)
    invoices: list[InvoiceRecord] = field(default_factory=list)
    fulfilment: Fulfilment | None = None
    baseline: bool = False  # first run, order already complete in the shop: nothing to tell


def run(
    ctx: RunContext, shop: WooClient, erp: ErpTarget, options: FollowUpOptions
) -> FollowUpResult:
    """Report new shipments and invoices of pushed orders to the shop, each once."""
    result = FollowUpResult(step=STEP, dry_run=options.dry_run)
    prefix = ctx.settings.orders.document_prefix.strip().upper()
    cursors = {name: _cursor(ctx, key) for name, key in CURSOR_KEYS.items()}
    shipments = erp.posted_shipments(prefix, _since(cursors["shipments"]))
    tracking = erp.shipment_tracking(prefix, _since(cursors["tracking"]))
    invoices = erp.posted_invoices(prefix, _since(cursors["invoices"]))
    result.counts["read"] = len(shipments) + len(tracking or []) + len(invoices)

    orders = _match_orders(ctx, shipments, tracking or [], invoices)
    seen_shipments, seen_invoices, unmatched = _observations(orders, shipments, tracking, invoices)
    seen_shipments = _with_known_tracking(ctx, seen_shipments, {t.id for t in tracking or []})
    if unmatched:
        result.counts["unmatched"] = unmatched
    if not options.dry_run:
        ctx.store.observe_shipments(seen_shipments)
        ctx.store.observe_invoices(seen_invoices)

    work = _work(ctx, seen_shipments, seen_invoices, options)
    first_run = ctx.store.get_value(SWITCHED_ON_KEY) is None
    if first_run:
        # Switched on for the first time: every shipment ever posted is read. Orders the shop
        # already shows complete were settled long ago; their customers get no late e-mails.
        complete = ctx.settings.shipments.complete_status
        for item in work.values():
            item.baseline = item.order.shop_status == complete
    carriers = {k.strip().upper(): v for k, v in ctx.settings.shipments.carriers.items()}
    _report_all(ctx, shop, erp, work, carriers, options, result)
    _write_invoice_meta(ctx, shop, work, options, result)

    if not options.dry_run and not ctx.lease_lost.is_set():
        for name, rows in (
            ("shipments", shipments),
            ("tracking", tracking),
            ("invoices", invoices),
        ):
            _advance(ctx, CURSOR_KEYS[name], cursors[name], rows or [])
        if first_run and not options.order_ids:  # a narrowed run saw only some orders
            ctx.store.set_value(SWITCHED_ON_KEY, ctx.clock().isoformat())
    return result


# -- reading and matching ----------------------------------------------------------------------


def record_shipped(ctx: RunContext, erp: ErpTarget, *, dry_run: bool) -> list[ShipmentReport]:
    """Read new posted shipments into the ledger without telling the shop anything.

    For ``stock`` while this step is switched off: Dynamics lowers inventory when it posts a
    shipment, so stock must know what was shipped. The shipments cursor moves as when this step
    runs; a shipment recorded here is reported to the shop only once the step is switched on
    (and not at all for orders the shop already shows complete, see :func:`run`).
    """
    prefix = ctx.settings.orders.document_prefix.strip().upper()
    cursor = _cursor(ctx, CURSOR_KEYS["shipments"])
    shipments = erp.posted_shipments(prefix, _since(cursor))
    orders = _match_orders(ctx, shipments, [], [])
    seen, _, _ = _observations(orders, shipments, None, [])
    if not dry_run:
        ctx.store.observe_shipments(seen)
        if not ctx.lease_lost.is_set():
            _advance(ctx, CURSOR_KEYS["shipments"], cursor, shipments)
    return seen


def _cursor(ctx: RunContext, key: str) -> datetime | None:
    value = ctx.store.get_value(key)
    return _parse(value) if value else None


def _since(cursor: datetime | None) -> datetime | None:
    return None if cursor is None else cursor - OVERLAP


def _parse(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _advance(
    ctx: RunContext,
    key: str,
    cursor: datetime | None,
    rows: list[PostedShipment] | list[ShipmentTracking] | list[PostedInvoice],
) -> None:
    stamps = [stamp for row in rows if (stamp := _parse(row.modified)) is not None]
    if stamps and (cursor is None or max(stamps) > cursor):
        ctx.store.set_value(key, max(stamps).isoformat())


def _match_orders(
    ctx: RunContext,
    shipments: list[PostedShipment],
    tracking: list[ShipmentTracking],
    invoices: list[PostedInvoice],
) -> dict[str, OrderRecord]:
    """Pushed orders of these documents, by ``ext:``, ``no:`` and ``id:`` keys."""
    documents: list[PostedShipment | ShipmentTracking | PostedInvoice] = [
        *shipments,
        *tracking,
        *invoices,
    ]
    records = ctx.store.pushed_orders_matching(
        external_numbers=[d.external_number.upper() for d in documents if d.external_number],
        d365_numbers=[d.order_number for d in documents if d.order_number],
        d365_ids=[i.order_id for i in invoices if i.order_id],
    )
    index: dict[str, OrderRecord] = {}
    for record in records:
        if record.external_number:
            index[f"ext:{record.external_number.upper()}"] = record
        if record.d365_number:
            index[f"no:{record.d365_number}"] = record
        if record.d365_id:
            index[f"id:{record.d365_id.lower()}"] = record
    return index


def _find(
    orders: dict[str, OrderRecord], external: str, number: str, order_id: str = ""
) -> OrderRecord | None:
    for key in (f"ext:{external.upper()}", f"no:{number}", f"id:{order_id.lower()}"):
        if key in orders:
            return orders[key]
    return None


def _observations(
    orders: dict[str, OrderRecord],
    shipments: list[PostedShipment],
    tracking: list[ShipmentTracking] | None,
    invoices: list[PostedInvoice],
) -> tuple[list[ShipmentReport], list[InvoiceRecord], int]:
    """Ledger rows for what was read; the number of documents of no pushed order."""
    unmatched = 0
    by_id = {t.id: t for t in tracking or []}
    seen: dict[str, ShipmentReport] = {}
    for shipment in shipments:
        order = _find(orders, shipment.external_number, shipment.order_number)
        if order is None:
            unmatched += 1
            continue
        found = by_id.get(shipment.id)
        seen[shipment.id] = ShipmentReport(
            shipment_id=shipment.id,
            woo_id=order.woo_id,
            number=shipment.number,
            posted_on=shipment.posted_on,
            lines={seq: _text(q) for seq, q in sorted(shipment.lines.items())},
            agent=found.agent if found else shipment.agent,
            tracking=found.tracking if found else shipment.tracking,
            modified=shipment.modified,
        )
    tracked_only = [t for t in tracking or [] if t.id not in seen]
    records: list[InvoiceRecord] = []
    for invoice in invoices:
        order = _find(orders, invoice.external_number, invoice.order_number, invoice.order_id)
        if order is None:
            unmatched += 1
            continue
        records.append(
            InvoiceRecord(
                invoice_id=invoice.id,
                woo_id=order.woo_id,
                number=invoice.number,
                status=invoice.status,
                currency=invoice.currency or order.currency,
                total_including_tax=_text(invoice.total_including_tax),
                total_excluding_tax=_text(invoice.total_excluding_tax),
                remaining=_text(invoice.remaining),
                posted_on=invoice.posted_on,
                modified=invoice.modified,
            )
        )
    reports = list(seen.values())
    # Tracking read without its shipment: kept as a stand-in for a row the ledger should know.
    for row in tracked_only:
        order = _find(orders, row.external_number, row.order_number)
        if order is not None:
            reports.append(
                ShipmentReport(
                    row.id,
                    order.woo_id,
                    row.number,
                    "",
                    {},
                    row.agent,
                    row.tracking,
                    note_state=_TRACKING_ONLY,
                )
            )
    return reports, records, unmatched


_TRACKING_ONLY = "tracking-only"


def _with_known_tracking(
    ctx: RunContext, seen: list[ShipmentReport], tracked: set[str]
) -> list[ShipmentReport]:
    """Shipments as the ledger should record them: a tracking row applied to a known shipment,
    and a shipment read without its tracking row keeps the tracking known before."""
    if not seen:
        return seen
    known = {r.shipment_id: r for r in ctx.store.shipment_reports(sorted({r.woo_id for r in seen}))}
    complete: list[ShipmentReport] = []
    for report in seen:
        before = known.get(report.shipment_id)
        if report.note_state == _TRACKING_ONLY:
            if before is not None:
                complete.append(replace(before, agent=report.agent, tracking=report.tracking))
        elif report.shipment_id not in tracked and before is not None:
            complete.append(replace(report, agent=before.agent, tracking=before.tracking))
        else:
            complete.append(report)
    return complete


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f") if value == value.to_integral_value() else str(value)


def _work(
    ctx: RunContext,
    seen_shipments: list[ShipmentReport],
    seen_invoices: list[InvoiceRecord],
    options: FollowUpOptions,
) -> dict[int, _Work]:
    """Every order with something to report: what was read now and what is still open."""
    store = ctx.store
    wanted = set(options.order_ids)
    ids = {r.woo_id for r in seen_shipments} | {r.woo_id for r in seen_invoices}
    ids |= {r.woo_id for r in store.shipment_reports(open_only=True)}
    ids |= {r.woo_id for r in store.invoice_records(open_only=True)}
    if wanted:
        ids &= wanted
    if not ids:
        return {}
    records = {r.woo_id: r for r in store.list_orders(woo_ids=sorted(ids), with_raw=True)}
    known_shipments = store.shipment_reports(sorted(ids))
    known_invoices = store.invoice_records(sorted(ids))
    fulfilments = store.fulfilments(sorted(ids))
    work = {woo_id: _Work(order=record) for woo_id, record in records.items()}
    for report in _observed(known_shipments, seen_shipments, "shipment_id", _SHIPMENT_SEEN):
        if report.woo_id in work:
            work[report.woo_id].shipments.append(report)
    for record in _observed(known_invoices, seen_invoices, "invoice_id", _INVOICE_SEEN):
        if record.woo_id in work:
            work[record.woo_id].invoices.append(record)
    for woo_id, item in work.items():
        item.shipments.sort(key=lambda r: r.number)
        item.invoices.sort(key=lambda r: r.number)
        item.fulfilment = fulfilments.get(woo_id)
    return work


_SHIPMENT_SEEN = ("lines", "agent", "tracking", "modified")
_INVOICE_SEEN = ("status", "total_including_tax", "total_excluding_tax", "remaining", "modified")
"""What a read of Dynamics updates on a known shipment, and on a known invoice."""


def _observed(known: Iterable[D], seen: Iterable[D], key: str, fields: tuple[str, ...]) -> list[D]:
    """What observing ``seen`` makes of the ``known`` documents (as ``observe_shipments`` and
    ``observe_invoices`` store them; a dry run too): a new one as seen, a known one with the
    ``fields`` it shows now."""
    merged = {getattr(document, key): document for document in known}
    for document in seen:
        before = merged.get(getattr(document, key))
        merged[getattr(document, key)] = (
            document
            if before is None
            else replace(before, **{name: getattr(document, name) for name in fields})
        )
    return list(merged.values())


# -- reporting one order -----------------------------------------------------------------------


def _report_all(
    ctx: RunContext,
    shop: WooClient,
    erp: ErpTarget,
    work: dict[int, _Work],
    carriers: dict[str, str],
    options: FollowUpOptions,
    result: FollowUpResult,
) -> None:
    """Each order on its own, ``woocommerce.max_concurrency`` at a time (the shop's latency is
    the cost); the first outage stops the rest and is raised."""

    def one(woo_id: int) -> FollowUpResult:
        own = FollowUpResult(step=STEP, dry_run=options.dry_run)
        if not ctx.lease_lost.is_set():
            _report_order(ctx, shop, erp, work[woo_id], carriers, options, own)
        return own

    workers = max(1, ctx.settings.woocommerce.max_concurrency)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="shipments") as pool:
        futures = [pool.submit(one, woo_id) for woo_id in sorted(work)]
        failure: BaseException | None = None
        for future in futures:
            try:
                done = future.result()
            except BaseException as exc:  # the first outage; the orders not begun are left
                if failure is None:
                    failure = exc
                    for other in futures:
                        other.cancel()
                continue
            for name, value in done.counts.items():
                result.counts[name] = result.counts.get(name, 0) + value
            result.attention += done.attention
            result.lines += done.lines
        if failure is not None:
            raise failure


def _report_order(
    ctx: RunContext,
    shop: WooClient,
    erp: ErpTarget,
    work: _Work,
    carriers: dict[str, str],
    options: FollowUpOptions,
    result: FollowUpResult,
) -> None:
    order = work.order
    goods = _goods_lines(erp, order)
    closed = order.shop_status in CLOSED_STATUSES
    try:
        shipped = _report_shipments(ctx, shop, work, goods, carriers, options, result)
        if not closed:
            for record in work.invoices:
                if record.note_state in ("pending", "claimed"):
                    _invoice_once(ctx, shop, record, options, result)
        if work.shipments and goods is not None:
            _fulfil(ctx, shop, work, goods, shipped, closed, options, result)
    except ShopUnreachable:
        raise
    except ShopError as exc:
        message = f"order {order.number}: the shop refused a shipment or invoice write: {exc}"
        result.attention.append(message)
        if not options.dry_run:
            ctx.event(STEP, message, level="error", woo_id=order.woo_id)


def _report_shipments(
    ctx: RunContext,
    shop: WooClient,
    work: _Work,
    goods: dict[int, Decimal] | None,
    carriers: dict[str, str],
    options: FollowUpOptions,
    result: FollowUpResult,
) -> dict[int, Decimal]:
    """Note each shipment (or its new tracking number) once; the quantity shipped per line."""
    order = work.order
    closed = order.shop_status in CLOSED_STATUSES
    shipped: dict[int, Decimal] = {}
    for report in work.shipments:
        for seq, quantity in report.lines.items():
            shipped[seq] = shipped.get(seq, Decimal(0)) + Decimal(quantity)
        if closed or work.baseline:
            _skip_unreported(ctx, report, order, options, result)
        elif report.note_state in ("pending", "claimed"):
            partial = goods is None or any(shipped.get(s, Decimal(0)) < q for s, q in goods.items())
            _shipment_once(ctx, shop, report, partial, carriers, options, result)
        elif report.note_state == "noted" and _tracking_is_new(report):
            _tracking_once(ctx, shop, report, carriers, options, result)
    return shipped


def _tracking_is_new(report: ShipmentReport) -> bool:
    return bool(report.tracking) and report.tracking != report.tracking_noted


def _goods_lines(erp: ErpTarget, order: OrderRecord) -> dict[int, Decimal] | None:
    """What has to ship (None when the stored shop order cannot be read)."""
    if order.raw is None:
        return None
    try:
        lines = erp.goods_lines(order_from_shop(order.raw))
    except OrderDataError:
        return None
    return {sequence: line.quantity for sequence, line in lines.items()}


def _skip_unreported(
    ctx: RunContext,
    report: ShipmentReport,
    order: OrderRecord,
    options: FollowUpOptions,
    result: FollowUpResult,
) -> None:
    """A shipment not told to the shop: its order is closed there (a person settles both
    systems), or was already complete when shipments was switched on (``work.baseline``)."""
    if report.note_state not in ("pending", "claimed"):
        return
    closed = order.shop_status in CLOSED_STATUSES
    if closed:
        message = (
            f"order {order.number} is {order.shop_status} in the shop, but Dynamics shipped it "
            f"(shipment {report.number} of {report.posted_on}); nothing is written to the shop: "
            "settle it by hand in both systems"
        )
        result.attention.append(message)
        would = f"would record shipment {report.number} as skipped: {message}"
    else:
        message = (
            f"shipment {report.number} of {report.posted_on} not reported: order {order.number} "
            f"was already {order.shop_status} in the shop when shipments was switched on"
        )
        _count(result, "already_complete")
        would = f"would record {message}"
    if options.dry_run:
        result.lines.append(would)
        return
    if ctx.store.set_shipment_note_state(
        report.shipment_id, "skipped", expect=["pending", "claimed"]
    ):
        ctx.event(STEP, message, level="warning" if closed else "info", woo_id=order.woo_id)
    if closed:
        _count(result, "skipped")


def _shipment_once(
    ctx: RunContext,
    shop: WooClient,
    report: ShipmentReport,
    partial: bool,
    carriers: dict[str, str],
    options: FollowUpOptions,
    result: FollowUpResult,
) -> None:
    text = shipment_note(report, partial=partial, carriers=carriers)
    customer = ctx.settings.shipments.notify_customer
    woo_id = report.woo_id
    if options.dry_run:
        kind = "customer" if customer else "private"
        result.lines.append(f"order {woo_id}: would add a {kind} note: {text}")
        _count(result, "shipments")
        return
    marker = shipment_marker(report.number)
    told_tracking = bool(report.tracking)

    def move(to: str, expect: list[str]) -> bool:
        return ctx.store.set_shipment_note_state(report.shipment_id, to, expect=expect)

    noted = _note_once(shop, woo_id, text, report.note_state, marker, move, customer=customer)
    if noted is None:
        return
    if noted == "landed":
        # Only its record was lost. It carried today's tracking number only if it says so: else
        # the tracking note is still to come.
        told_tracking = bool(report.tracking) and _has_note(shop, woo_id, marker, report.tracking)
    if told_tracking:
        ctx.store.set_tracking_note(report.shipment_id, claim="", noted=report.tracking)
    ctx.event(STEP, f"shop told: {text}", woo_id=woo_id)
    _count(result, "shipments")


def _tracking_once(
    ctx: RunContext,
    shop: WooClient,
    report: ShipmentReport,
    carriers: dict[str, str],
    options: FollowUpOptions,
    result: FollowUpResult,
) -> None:
    text = tracking_note(report, carriers)
    customer = ctx.settings.shipments.notify_customer
    woo_id = report.woo_id
    if options.dry_run:
        result.lines.append(f"order {woo_id}: would add a note: {text}")
        _count(result, "tracking")
        return
    if report.tracking_claim == report.tracking and _has_note(
        shop, woo_id, f"{shipment_marker(report.number)}: ", report.tracking
    ):
        pass  # sent by an earlier run whose answer was lost
    else:
        ctx.store.set_tracking_note(report.shipment_id, claim=report.tracking)
        shop.add_order_note(woo_id, text, customer_note=customer)
    ctx.store.set_tracking_note(report.shipment_id, claim="", noted=report.tracking)
    ctx.event(STEP, f"shop told: {text}", woo_id=woo_id)
    _count(result, "tracking")


def _invoice_once(
    ctx: RunContext,
    shop: WooClient,
    record: InvoiceRecord,
    options: FollowUpOptions,
    result: FollowUpResult,
) -> None:
    text = invoice_note(record)
    woo_id = record.woo_id
    if options.dry_run:
        result.lines.append(f"order {woo_id}: would add a private note: {text}")
        _count(result, "invoices")
        return

    def move(to: str, expect: list[str]) -> bool:
        return ctx.store.set_invoice_note_state(record.invoice_id, to, expect=expect)

    marker = invoice_marker(record.number)
    if _note_once(shop, woo_id, text, record.note_state, marker, move) is None:
        return
    ctx.event(STEP, f"invoice recorded: {text}", woo_id=woo_id)
    _count(result, "invoices")


def _fulfil(
    ctx: RunContext,
    shop: WooClient,
    work: _Work,
    goods: dict[int, Decimal],
    shipped: dict[int, Decimal],
    closed: bool,
    options: FollowUpOptions,
    result: FollowUpResult,
) -> None:
    """Record how far the order is shipped; once all goods shipped, set ``complete_status``."""
    order = work.order
    done = bool(goods) and all(shipped.get(seq, Decimal(0)) >= q for seq, q in goods.items())
    before = work.fulfilment or Fulfilment(order.woo_id, "")
    state = "shipped" if done else "partly"
    status = ctx.settings.shipments.complete_status
    if options.dry_run:
        pending = before.complete_state not in ("done", "skipped")
        if done and pending and not closed and order.shop_status != status:
            result.lines.append(f"order {order.woo_id}: would set the shop status {status}")
            _count(result, "completed")
        return
    if before.shipped != state:
        before = replace(before, shipped=state)
        ctx.store.save_fulfilment(before, expect_complete=[before.complete_state])
    if not done or closed or before.complete_state in ("done", "skipped"):
        return
    if order.shop_status == status:
        # Already there (a virtual order completed at payment): never write it again.
        ctx.store.save_fulfilment(
            replace(before, complete_state="skipped"), expect_complete=[before.complete_state]
        )
        return
    if before.complete_state == "claimed":
        current = shop.get_order(order.woo_id)
        if str(current.get("status") or "") == status:
            ctx.store.save_fulfilment(
                replace(before, complete_state="done", status_set=status),
                expect_complete=["claimed"],
            )
            _count(result, "completed")
            return
    elif not ctx.store.save_fulfilment(
        replace(before, complete_state="claimed", status_set=status), expect_complete=[""]
    ):
        return
    shop.set_order_status(order.woo_id, status)
    ctx.store.save_fulfilment(
        replace(before, complete_state="done", status_set=status), expect_complete=["claimed"]
    )
    ctx.event(STEP, f"every line shipped: shop status set to {status}", woo_id=order.woo_id)
    _count(result, "completed")


def _write_invoice_meta(
    ctx: RunContext,
    shop: WooClient,
    work: dict[int, _Work],
    options: FollowUpOptions,
    result: FollowUpResult,
) -> None:
    """``_woo2d365_invoice`` on every order whose invoices changed, in batches of 100."""
    values: dict[int, str] = {}
    for woo_id, item in work.items():
        if item.order.shop_status in CLOSED_STATUSES or not item.invoices:
            continue
        if any(r.meta_status != r.status for r in item.invoices):
            values[woo_id] = invoice_meta(item.invoices)
    if not values:
        return
    if options.dry_run:
        for woo_id, value in sorted(values.items()):
            result.lines.append(f"order {woo_id}: would set meta {INVOICE_META_KEY} = {value}")
        return
    refused = shop.set_orders_meta(INVOICE_META_KEY, values)
    for woo_id, reason in sorted(refused.items()):
        message = f"order {work[woo_id].order.number}: the shop refused the invoice meta: {reason}"
        result.attention.append(message)
        ctx.event(STEP, message, level="error", woo_id=woo_id)
    for woo_id in values:
        if woo_id not in refused:
            _invoice_meta_written(ctx, woo_id, work[woo_id].invoices, result)


def _invoice_meta_written(
    ctx: RunContext, woo_id: int, invoices: list[InvoiceRecord], result: FollowUpResult
) -> None:
    """Record the statuses the shop's invoice meta shows now; a changed one is an update."""
    for record in invoices:
        if record.meta_status == record.status:
            continue
        if record.meta_status:
            _count(result, "invoice_updates")
            ctx.event(
                STEP, f"invoice {record.number} is {record.status} in Dynamics now", woo_id=woo_id
            )
        ctx.store.set_invoice_meta_status(record.invoice_id, record.status)


def _note_once(
    shop: WooClient,
    woo_id: int,
    text: str,
    note_state: str,
    marker: str,
    move: Callable[[str, list[str]], bool],
    *,
    customer: bool = False,
) -> str | None:
    """Add a document's note to the shop order once, and record it ``noted``.

    A ``pending`` note is claimed first (``move``: the store's conditional state change); a
    ``claimed`` one whose note (``marker``) the order shows already landed in an earlier run
    whose record was lost, and is not added again. Returns ``"added"`` or ``"landed"``, or None
    when another run claimed it first.
    """
    if note_state == "claimed" and _has_note(shop, woo_id, marker):
        outcome = "landed"
    else:
        if note_state == "pending" and not move("claimed", ["pending"]):
            return None
        shop.add_order_note(woo_id, text, customer_note=customer)
        outcome = "added"
    move("noted", ["claimed"])
    return outcome


def _has_note(shop: WooClient, woo_id: int, *markers: str) -> bool:
    """True when one of the order's notes holds every marker (an earlier run's note landed)."""
    return any(
        all(marker in str(note.get("note") or "") for marker in markers)
        for note in shop.list_order_notes(woo_id)
    )


def _count(result: FollowUpResult, name: str) -> None:
    result.counts[name] = result.counts.get(name, 0) + 1
