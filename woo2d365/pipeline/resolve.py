"""Closing an order by hand, sending one again whose Dynamics document was deleted, and
acknowledging a change made in the shop after the push (``ack``).

* ``resolve ID --document NUMBER``: the order was entered in Dynamics by hand; it is recorded
  ``pushed`` to that document (which must exist), never created by the tool.
* ``resolve ID --skip --reason TEXT``: the order is not to be sent; it is recorded ``skipped``.
* ``retry ID --force``: an order whose document no longer exists in Dynamics is sent again: a
  ``pushed`` one, or one held because the shop's meta names a document Dynamics lacks (a new or
  restored state store). Checked first with :meth:`ErpTarget.find_traces`: neither the sales
  order (by its number or key) nor an invoice or shipment posted from it (Business Central
  deletes a fully invoiced sales order; docs/architecture.md, "Is the order still in
  Dynamics?") may exist.

Each is recorded in the order's events with who asked and why. An order that may be in flight
(``pushing``) is never touched: the next push settles it.
"""

from __future__ import annotations

from dataclasses import dataclass

from woo2d365.erp.base import DocumentRef, ErpTarget
from woo2d365.errors import OrderDataError, UsageError
from woo2d365.model import OrderState
from woo2d365.pipeline.context import RunContext
from woo2d365.pipeline.in_dynamics import order_key
from woo2d365.shop.mapping import order_from_shop
from woo2d365.skumap import current_operator
from woo2d365.store.base import OrderRecord

STEP = "resolve"
OPEN_STATES = [OrderState.NEW, OrderState.READY, OrderState.HELD, OrderState.FAILED]
DELETED_DOCUMENT_KEY = "push.deleted_document.{woo_id}"
"""Store key: the document of an order that was deleted in Dynamics and forced to be sent again
(the shop's meta may still name it; it must not hold the order)."""


@dataclass(frozen=True)
class Resolved:
    """What a resolve or forced retry did, in one line."""

    woo_id: int
    message: str


def _open_order(ctx: RunContext, woo_id: int) -> OrderRecord:
    record = ctx.store.get_order(woo_id)
    if record is None:
        raise UsageError(f"order {woo_id} is not in the state store (pull it first)")
    if record.state is OrderState.PUSHED:
        raise UsageError(
            f"order {woo_id} is already in Dynamics as sales order {record.d365_number}"
        )
    if record.state is OrderState.PUSHING:
        raise UsageError(
            f"order {woo_id} may be in flight to Dynamics; the next push looks it up first"
        )
    if record.state is OrderState.SKIPPED:
        raise UsageError(f"order {woo_id} is skipped already")
    return record


def resolve_document(ctx: RunContext, erp: ErpTarget, woo_id: int, number: str) -> Resolved:
    """Record an open order as ``pushed`` to a document entered in Dynamics by hand."""
    record = _open_order(ctx, woo_id)
    number = number.strip()
    if not number:
        raise UsageError("--document needs the Dynamics sales order number")
    erp.connect()
    found = erp.find_number(number)
    if found is None:
        raise UsageError(f"{erp.display_name} has no sales order {number}; nothing was changed")
    who = current_operator()
    recorded = ctx.store.mark_pushed(
        woo_id,
        d365_id=found.id,
        d365_number=found.number,
        external_number=found.external_number or record.external_number or "",
        now=ctx.clock(),
        expect=OPEN_STATES,
    )
    if not recorded:
        raise UsageError(f"order {woo_id} changed state meanwhile; look again with status")
    message = (
        f"resolved by {who}: entered by hand in {erp.display_name} as sales order {found.number}; "
        "recorded as pushed"
    )
    ctx.event(STEP, message, woo_id=woo_id)
    return Resolved(woo_id, message)


def resolve_skip(ctx: RunContext, woo_id: int, reason: str) -> Resolved:
    """Record an open order as ``skipped``: it is not to be sent to Dynamics."""
    _open_order(ctx, woo_id)
    reason = reason.strip()
    if not reason:
        raise UsageError("--skip needs --reason TEXT (why the order is not to be sent)")
    who = current_operator()
    text = f"skipped by {who}: {reason}"
    if not ctx.store.set_state(woo_id, OrderState.SKIPPED, reason=text, expect=OPEN_STATES):
        raise UsageError(f"order {woo_id} changed state meanwhile; look again with status")
    ctx.event(STEP, text, woo_id=woo_id)
    return Resolved(woo_id, text)


def force_retry(ctx: RunContext, erp: ErpTarget, woo_id: int) -> Resolved:
    """Send again an order whose Dynamics document is gone: a ``pushed`` one, or one held
    because the shop's meta names a document Dynamics no longer has (checked first)."""
    record = ctx.store.get_order(woo_id, with_raw=True)
    if record is None:
        raise UsageError(f"order {woo_id} is not in the state store (pull it first)")
    if record.state is OrderState.PUSHED:
        gone = record.d365_number or ""
    else:
        try:
            gone = order_from_shop(record.raw or {}).recorded_document
        except OrderDataError:
            gone = ""
        if record.state not in OPEN_STATES or not gone:
            raise UsageError(
                f"order {woo_id} is {record.state.value} and names no deleted document: --force "
                "is for an order whose Dynamics document was deleted (use retry without --force)"
            )
    erp.connect()
    ref = DocumentRef(order_key(erp, record) or "", number=gone, id=record.d365_id or "")
    trace = erp.find_traces([ref])[ref]
    if trace.sales_order is not None:
        raise UsageError(
            f"order {woo_id} still exists in {erp.display_name} as sales order "
            f"{trace.sales_order.number}; it is never sent twice"
        )
    if trace.exists:  # the sales order went when it was invoiced; what was posted stays
        raise UsageError(
            f"order {woo_id} is in {erp.display_name} as {trace}, posted from sales order "
            f"{gone or ref.external_number} (Dynamics deletes a fully invoiced sales order); "
            "it is never sent twice"
        )
    who = current_operator()
    text = (
        f"sent again on request of {who}: sales order {gone} no longer exists in {erp.display_name}"
    )
    # Recorded before the order is opened, so a push that claims it at once already knows.
    ctx.store.set_value(DELETED_DOCUMENT_KEY.format(woo_id=woo_id), gone)
    if record.state is OrderState.PUSHED:
        changed = ctx.store.forget_document(woo_id, text)
    else:  # validated again, then pushed
        changed = ctx.store.set_state(
            woo_id, OrderState.NEW, reason=text, expect=[record.state], reset_attempts=True
        )
    if not changed:
        raise UsageError(f"order {woo_id} changed state meanwhile; look again with status")
    ctx.event(STEP, text, woo_id=woo_id)
    return Resolved(woo_id, text)


def acknowledge(ctx: RunContext, woo_id: int) -> Resolved:
    """A person has seen (and, in Dynamics, handled) a change made in the shop after the push."""
    record = ctx.store.get_order(woo_id)
    if record is None:
        raise UsageError(f"order {woo_id} is not in the state store")
    if record.changed_at is None or not ctx.store.acknowledge_change(woo_id):
        raise UsageError(f"order {woo_id} has no change after its push to acknowledge")
    text = f"change in the shop after the push acknowledged by {current_operator()}"
    ctx.event("ack", text, woo_id=woo_id)
    return Resolved(woo_id, text)
