"""``status``: the report of the store (counts, last sync, the orders), its one-screen summary
and its JSON (``status --json``, ``status ID --json``)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from woo2d365.errors import UsageError
from woo2d365.model import OrderState
from woo2d365.monitoring.counts import (
    ATTENTION_STATES,
    OPEN_STATES,
    oldest_per_state,
    order_counts,
    waited,
)
from woo2d365.monitoring.durations import describe_age
from woo2d365.store.base import Event, OrderRecord, RunRecord, StateStore
from woo2d365.store.refunds import RefundRecord
from woo2d365.store.stock import StockRunSummary, last_stock_run


@dataclass(frozen=True)
class StatusReport:
    """A snapshot of the store for operators and scripts."""

    counts: dict[str, int]
    last_sync: RunRecord | None
    oldest_waiting: OrderRecord | None
    orders: list[OrderRecord]
    changed_after_push: list[int] = field(default_factory=list)  # not acknowledged yet
    changes: dict[int, str] = field(default_factory=dict)  # the first few of them: what changed
    oldest: dict[OrderState, OrderRecord] = field(default_factory=dict)  # per open state
    write_backs_pending: int = 0
    last_stock: StockRunSummary | None = None  # woo2d365 stock
    fulfilment: dict[str, int] = field(default_factory=dict)  # shipped, partly_shipped, invoiced
    refund_counts: dict[str, int] = field(default_factory=dict)  # refunds per state

    @property
    def total(self) -> int:
        """Orders in the store."""
        return sum(self.counts.values())


def parse_state(value: str | None) -> OrderState | None:
    """``--state`` value → :class:`OrderState`, with a readable error."""
    if value is None:
        return None
    try:
        return OrderState(value.strip().lower())
    except ValueError:
        known = ", ".join(s.value for s in OrderState)
        raise UsageError(f"--state {value!r} is not a state; use one of {known}") from None


def status_report(
    store: StateStore,
    *,
    state: OrderState | None = None,
    limit: int | None = None,
    now: datetime | None = None,
    attention_first: bool = False,
    number: str | None = None,
    email: str | None = None,
    since: datetime | None = None,
) -> StatusReport:
    """Counts, last sync, the oldest order per open state and the order list.

    The list is the most recently updated first; with ``attention_first`` (the table people
    read) held, failed and pushing orders come first, longest waiting first, then the rest.
    ``number``, ``email`` and ``since`` (updated since) narrow the list, not the counts.
    """
    if limit is not None and limit < 0:
        raise UsageError("--limit must be 0 or more")
    narrow: dict[str, Any] = {"number": number, "email": email, "updated_since": since}
    if attention_first and state is None:
        rank = {s: i for i, s in enumerate(ATTENTION_STATES)}
        first = store.list_orders(states=list(ATTENTION_STATES), limit=limit, **narrow)
        first.sort(key=lambda o: (rank[o.state], o.since or o.updated_at, o.woo_id))
        left = None if limit is None else limit - len(first)
        others = [s for s in OrderState if s not in ATTENTION_STATES]
        rest = store.list_orders(states=others, limit=left, **narrow) if left != 0 else []
        orders = first + rest
    else:
        orders = store.list_orders(states=[state] if state else None, limit=limit, **narrow)
    oldest = oldest_per_state(store)
    changed = store.changed_after_push_ids()
    return StatusReport(
        counts=order_counts(store, now),
        last_sync=store.last_run("sync"),
        oldest_waiting=store.oldest_waiting(),
        orders=orders,
        changed_after_push=changed,
        changes={woo_id: _what_changed(store, woo_id) for woo_id in changed[:SHOWN_CHANGES]},
        oldest=oldest,
        write_backs_pending=len(store.write_back_pending_ids()),
        last_stock=last_stock_run(store),
        fulfilment=store.fulfilment_counts(),
        refund_counts=store.refund_counts(),
    )


SHOWN_CHANGES = 3  # changes after push spelled out in the summary


def _what_changed(store: StateStore, woo_id: int) -> str:
    """The last "changed after push" event of an order, in its own words."""
    from woo2d365.alerts.conditions import is_changed_after_push

    for event in reversed(store.events(woo_id)):
        if is_changed_after_push(event):
            return event.message.split("; ", 1)[0]  # what changed, not the advice after it
    return "changed in the shop after it was pushed"


def summary_lines(
    report: StatusReport, now: datetime, when: Callable[[datetime | None], str]
) -> list[str]:
    """The one-screen summary above the order table: counts, last sync, what needs you."""
    counts = report.counts
    shown = [*OPEN_STATES, OrderState.PUSHED, OrderState.SKIPPED]
    lines = ["Orders: " + ", ".join(f"{counts.get(s.value, 0)} {s.value}" for s in shown)]
    if any(report.fulfilment.values()):
        f = report.fulfilment
        lines.append(
            f"Pushed orders: {f.get('shipped', 0)} shipped, {f.get('partly_shipped', 0)} partly "
            f"shipped, {f.get('invoiced', 0)} invoiced"
        )
    if any(report.refund_counts.values()):
        refunds = ", ".join(f"{n} {state}" for state, n in report.refund_counts.items() if n)
        lines.append(f"Refunds: {refunds}")
    lines.append(_last_sync_line(report.last_sync, now, when))
    stock = report.last_stock
    if stock is not None:
        lines.append(
            f"Last stock run: {when(stock.at)}, {stock.checked} SKUs checked, "
            f"{stock.written} written, {stock.refused} refused"
        )
    needs = _needs_you(report, now)
    needs_line = "Needs you: " + ("; ".join(needs) if needs else "nothing")
    lines += textwrap.wrap(needs_line, width=80, subsequent_indent="  ", break_on_hyphens=False)
    waiting = report.oldest_waiting
    if waiting is not None:
        lines.append(
            f"Oldest waiting: order {waiting.woo_id} ({waiting.state.value}) since "
            f"{when(waiting.since)}"
        )
    return lines


def _last_sync_line(
    last: RunRecord | None, now: datetime, when: Callable[[datetime | None], str]
) -> str:
    if last is None:
        return "Last sync: never"
    ago = describe_age(max(timedelta(0), now - last.started_at))
    outcome = last.outcome or "still running"
    return f"Last sync: {when(last.started_at)} ({ago} ago), run {last.id}, {outcome}"


def _needs_you(report: StatusReport, now: datetime) -> list[str]:
    """What a person may have to act on, longest waiting named per state."""
    needs: list[str] = []
    for state in ATTENTION_STATES:
        count = report.counts.get(state.value, 0)
        oldest = report.oldest.get(state)
        if count and oldest is not None:
            label = "pushing (sent or in doubt)" if state is OrderState.PUSHING else state.value
            needs.append(
                f"{count} {label} (longest: order {oldest.woo_id}, "
                f"{describe_age(waited(oldest, now))})"
            )
    if report.changed_after_push:
        first = report.changed_after_push[0]
        needs.append(
            f"{len(report.changed_after_push)} changed in the shop after the push "
            f"(woo2d365 ack {first})"
        )
    needs += [f"order {woo_id} {change}" for woo_id, change in report.changes.items()]
    if report.write_backs_pending:
        needs.append(f"{report.write_backs_pending} write-backs to the shop pending")
    return needs


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with an explicit offset, or ``None``."""
    return value.isoformat() if value is not None else None


def run_json(run: RunRecord | None) -> dict[str, Any] | None:
    """A run as JSON."""
    if run is None:
        return None
    return {
        "id": run.id,
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "outcome": run.outcome,
        "counts": run.counts,
    }


def order_json(order: OrderRecord) -> dict[str, Any]:
    """An order's row of ``status --json``."""
    return {
        "woo_id": order.woo_id,
        "number": order.number,
        "state": order.state.value,
        "reason": order.reason,
        "d365_id": order.d365_id,
        "d365_number": order.d365_number,
        "attempts": order.attempts,
        "shop_status": order.shop_status,
        "total": order.total,
        "currency": order.currency,
        "updated_at": iso(order.updated_at),
        "pushed_at": iso(order.pushed_at),
        "changed_after_push_at": iso(order.changed_at),
    }


def event_json(event: Event) -> dict[str, Any]:
    """An event as JSON."""
    return {"at": iso(event.at), "step": event.step, "level": event.level, "message": event.message}


def report_json(report: StatusReport) -> dict[str, Any]:
    """``status --json``."""
    return {
        "counts": report.counts,
        "last_sync": run_json(report.last_sync),
        "oldest_waiting": order_json(report.oldest_waiting) if report.oldest_waiting else None,
        "orders": [order_json(o) for o in report.orders],
        "changed_after_push": report.changed_after_push,
        "last_stock": report.last_stock.as_json() if report.last_stock else None,
        "fulfilment": report.fulfilment,
        "refund_counts": report.refund_counts,
    }


def order_detail_json(
    order: OrderRecord,
    events: list[Event],
    store: StateStore | None = None,
    refunds: Sequence[RefundRecord] = (),
) -> dict[str, Any]:
    """``status ID --json``; with ``store`` also the order's shipments and invoices."""
    data = order_json(order)
    data["external_number"] = order.external_number
    data["events"] = [event_json(e) for e in events]
    if store is not None:
        data.update(documents_json(store, order.woo_id))
    data["refunds"] = [refund_json(refund) for refund in refunds]
    return data


def documents_json(store: StateStore, woo_id: int) -> dict[str, Any]:
    """The order's Dynamics shipments and invoices as ``status ID --json`` shows them."""
    return {
        "shipments": [
            {
                "number": r.number,
                "posted_at": f"{r.posted_on}T00:00:00+00:00" if len(r.posted_on) == 10 else None,
                "tracking": r.tracking or None,
            }
            for r in store.shipment_reports([woo_id])
        ],
        "invoices": [
            {"number": r.number, "status": r.status} for r in store.invoice_records([woo_id])
        ],
    }


def refund_json(refund: RefundRecord) -> dict[str, Any]:
    """A refund of ``status ID --json`` (refund states as order states)."""
    return {
        "refund_id": refund.refund_id,
        "state": refund.state.value,
        "reason": refund.reason,
        "d365_number": refund.d365_number,
        "amount": refund.amount,
        "external_number": refund.external_number,
    }
