"""``retry``: give failed and held orders another go, recording who asked and when."""

from __future__ import annotations

from dataclasses import dataclass, field

from woo2d365.errors import UsageError
from woo2d365.model import OrderState
from woo2d365.skumap import current_operator
from woo2d365.store.base import StateStore

# failed orders go straight back to the push queue; held ones are validated again first.
_RETRY_TARGET = {OrderState.FAILED: OrderState.READY, OrderState.HELD: OrderState.NEW}


@dataclass
class RetryResult:
    """Which orders were reset and which could not be."""

    retried: list[int] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)


def select_for_retry(
    store: StateStore, *, ids: list[int], failed: bool, held: bool, everything: bool
) -> list[int]:
    """The order ids a ``retry`` invocation means."""
    if not ids and not (failed or held or everything):
        raise UsageError("name order ids, or use --failed, --held or --all")
    if ids and (failed or held or everything):
        raise UsageError("give either order ids or one of --failed, --held, --all")
    if ids:
        return list(dict.fromkeys(ids))
    selected: list[int] = []
    if failed or everything:
        selected += store.order_ids_in_state(OrderState.FAILED)
    if held or everything:
        selected += store.order_ids_in_state(OrderState.HELD)
    return selected


def retry(store: StateStore, woo_ids: list[int], *, run_id: int | None = None) -> RetryResult:
    """Reset attempts of failed/held orders so the next run takes them; others are refused."""
    result = RetryResult()
    who = current_operator()
    for woo_id in woo_ids:
        order = store.get_order(woo_id)
        if order is None:
            result.refused.append((woo_id, "not in the state store (pull it first)"))
            continue
        target = _RETRY_TARGET.get(order.state)
        if target is None:
            result.refused.append((woo_id, _why_not(order.state)))
            continue
        if store.set_state(woo_id, target, expect=[order.state], reset_attempts=True):
            store.add_event(
                "retry",
                f"retry requested by {who}: {order.state.value} → {target.value}",
                woo_id=woo_id,
                run_id=run_id,
            )
            result.retried.append(woo_id)
        else:
            result.refused.append((woo_id, "changed state meanwhile; look again with status"))
    return result


def _why_not(state: OrderState) -> str:
    return {
        OrderState.PUSHED: "already in Dynamics; it is never sent twice",
        OrderState.PUSHING: "a create may be in flight; the next push looks it up in Dynamics",
        OrderState.SKIPPED: "skipped in the shop (cancelled, refunded or failed)",
        OrderState.NEW: "not validated yet; the next run takes it",
        OrderState.READY: "already waiting to be pushed",
    }.get(state, f"state {state.value} cannot be retried")


def retry_refunds(store: StateStore, refund_ids: list[int]) -> RetryResult:
    """``retry --refund ID``: held and failed refunds are sent on the next ``refunds`` run."""
    result = RetryResult()
    who = current_operator()
    for refund_id in dict.fromkeys(refund_ids):
        refund = store.get_refund(refund_id)
        if refund is None:
            result.refused.append((refund_id, "not in the state store (run refunds first)"))
            continue
        if refund.state not in (OrderState.HELD, OrderState.FAILED):
            result.refused.append((refund_id, _why_not(refund.state).replace("push", "refunds")))
            continue
        if store.set_refund_state(
            refund_id, OrderState.READY, expect=[refund.state], reset_attempts=True
        ):
            store.add_event(
                "retry",
                f"retry of refund {refund_id} requested by {who}: {refund.state.value} → ready",
                woo_id=refund.woo_id,
            )
            result.retried.append(refund_id)
        else:
            result.refused.append((refund_id, "changed state meanwhile; look again with status"))
    return result
