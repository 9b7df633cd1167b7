"""What ``status`` reports: counts per state, the last sync, the oldest waiting order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from woo2d365.errors import UsageError
from woo2d365.model import OrderState
from woo2d365.store.base import Event, OrderRecord, RunRecord, StateStore


@dataclass(frozen=True)
class StatusReport:
    """A snapshot of the store for operators and scripts."""

    counts: dict[str, int]
    last_sync: RunRecord | None
    oldest_waiting: OrderRecord | None
    orders: list[OrderRecord]


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
    store: StateStore, *, state: OrderState | None = None, limit: int | None = None
) -> StatusReport:
    """Counts, last sync, oldest waiting order and the order list (newest update first)."""
    if limit is not None and limit < 0:
        raise UsageError("--limit must be 0 or more")
    return StatusReport(
        counts=store.counts(),
        last_sync=store.last_run("sync"),
        oldest_waiting=store.oldest_waiting(),
        orders=store.list_orders(states=[state] if state else None, limit=limit),
    )


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
    }


def order_detail_json(order: OrderRecord, events: list[Event]) -> dict[str, Any]:
    """``status ID --json``."""
    data = order_json(order)
    data["external_number"] = order.external_number
    data["events"] = [event_json(e) for e in events]
    return data
