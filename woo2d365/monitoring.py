"""What monitoring reads: ``status`` reports, ``status --check`` and the Prometheus textfile.

* :func:`status_report` and the ``*_json`` helpers: counts per state, the last sync, the orders.
* :func:`check_status` / :func:`run_check`: the monitoring-plugin verdict (0 OK, 1 WARNING,
  2 CRITICAL, 3 UNKNOWN) as one line with performance data.
* :class:`SyncMetrics`: around ``sync --metrics-file``, counts the API requests of the run and
  writes the node_exporter textfile (:func:`render_metrics`) atomically, also when the run failed.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest, write_to_textfile

from woo2d365.clock import utc_now
from woo2d365.errors import (
    LockHeld,
    RunOutcome,
    StoreUnavailable,
    UsageError,
    Woo2D365Error,
    outcome_of,
)
from woo2d365.logs import clean
from woo2d365.model import OrderState
from woo2d365.store.base import Event, OrderRecord, RunRecord, StateStore
from woo2d365.store.refunds import RefundRecord
from woo2d365.store.stock import StockRunSummary, last_stock_run

if TYPE_CHECKING:
    from woo2d365.pipeline.sync import SyncResult
    from woo2d365.runtime import Runtime
    from woo2d365.settings import LoadedSettings

log = logging.getLogger("woo2d365.monitoring")


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


ATTENTION_STATES = (OrderState.HELD, OrderState.FAILED, OrderState.PUSHING)
"""What a person may have to act on (a ``pushing`` order is in doubt or being sent)."""


def parse_state(value: str | None) -> OrderState | None:
    """``--state`` value → :class:`OrderState`, with a readable error."""
    if value is None:
        return None
    try:
        return OrderState(value.strip().lower())
    except ValueError:
        known = ", ".join(s.value for s in OrderState)
        raise UsageError(f"--state {value!r} is not a state; use one of {known}") from None


# -- counts per state ---------------------------------------------------------------------------

PUSHED_COUNT_KEY = "monitoring.pushed_count"
PUSHED_COUNT_MARGIN = timedelta(hours=1)  # longer than any transaction and any clock skew
PUSHED_COUNT_ADVANCE = timedelta(hours=2)
PUSHED_COUNT_RECOUNT = timedelta(days=7)


def order_counts(store: StateStore, now: datetime | None = None) -> dict[str, int]:
    """Orders per state (every state, zero included), fast at a million orders.

    Every state but ``pushed`` is counted directly (a short index range: those are few).
    ``pushed``, nearly every order of a shop that has run for years, would cost a scan of
    the whole index each time; since ``pushed`` is final and ``pushed_at`` is set once, the
    count up to a moment *T* never changes, so it is kept in the store and only the orders
    pushed after *T* are counted. *T* trails the clock by an hour (moved on every two hours);
    the kept count is redone from scratch once a week, should anything ever break the rule.
    """
    moment = now or utc_now()
    counts = {
        state.value: store.count_in_state(state)
        for state in OrderState
        if state is not OrderState.PUSHED
    }
    counts[OrderState.PUSHED.value] = _pushed_count(store, moment)
    return {state.value: counts[state.value] for state in OrderState}


OPEN_STATES = (
    OrderState.HELD,
    OrderState.FAILED,
    OrderState.PUSHING,
    OrderState.READY,
    OrderState.NEW,
)
"""States an order is meant to leave; attention first (held, failed, in doubt), then the rest."""


def oldest_per_state(store: StateStore) -> dict[OrderState, OrderRecord]:
    """The order waiting longest in each open state (by when it entered it), if any."""
    found = {state: store.oldest_in_state(state) for state in OPEN_STATES}
    return {state: record for state, record in found.items() if record is not None}


def waited(record: OrderRecord, now: datetime) -> timedelta:
    """How long ``record`` has been in its state."""
    return max(timedelta(0), now - (record.since or record.updated_at))


def _pushed_count(store: StateStore, now: datetime) -> int:
    kept = _kept_pushed_count(store)
    target = now - PUSHED_COUNT_MARGIN
    if kept is None or kept[2] < now - PUSHED_COUNT_RECOUNT:
        until, count, verified = target, store.count_pushed_until(target), now
        _keep_pushed_count(store, until, count, verified)
    else:
        until, count, verified = kept
        if until < now - PUSHED_COUNT_ADVANCE:
            count += store.count_pushed_between(until, target)
            until = target
            _keep_pushed_count(store, until, count, verified)
    return count + store.count_pushed_between(until)


def _kept_pushed_count(store: StateStore) -> tuple[datetime, int, datetime] | None:
    value = store.get_value(PUSHED_COUNT_KEY)
    if not value:
        return None
    try:
        data = json.loads(value)
        until = datetime.fromisoformat(data["until"])
        verified = datetime.fromisoformat(data["verified"])
        count = int(data["count"])
    except (ValueError, KeyError, TypeError):
        return None
    if until.tzinfo is None or verified.tzinfo is None:
        return None
    return until, count, verified


def _keep_pushed_count(store: StateStore, until: datetime, count: int, verified: datetime) -> None:
    value = json.dumps(
        {"until": until.isoformat(), "count": count, "verified": verified.isoformat()}
    )
    try:
        store.set_value(PUSHED_COUNT_KEY, value)
    except Woo2D365Error as exc:  # a read-only account: count again next time
        log.debug("pushed count not kept: %s", exc)


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
    last = report.last_sync
    if last is None:
        lines.append("Last sync: never")
    else:
        ago = describe_age(max(timedelta(0), now - last.started_at))
        outcome = last.outcome or "still running"
        lines.append(f"Last sync: {when(last.started_at)} ({ago} ago), run {last.id}, {outcome}")
    stock = report.last_stock
    if stock is not None:
        lines.append(
            f"Last stock run: {when(stock.at)}, {stock.checked} SKUs checked, "
            f"{stock.written} written, {stock.refused} refused"
        )
    needs: list[str] = []
    for state in ATTENTION_STATES:
        count = counts.get(state.value, 0)
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
    for woo_id, change in report.changes.items():
        needs.append(f"order {woo_id} {change}")
    if report.write_backs_pending:
        needs.append(f"{report.write_backs_pending} write-backs to the shop pending")
    needs_line = "Needs you: " + ("; ".join(needs) if needs else "nothing")
    lines += textwrap.wrap(needs_line, width=80, subsequent_indent="  ", break_on_hyphens=False)
    waiting = report.oldest_waiting
    if waiting is not None:
        lines.append(
            f"Oldest waiting: order {waiting.woo_id} ({waiting.state.value}) since "
            f"{when(waiting.since)}"
        )
    return lines


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


# -- durations ----------------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str, *, option: str = "duration") -> timedelta:
    """``15m``, ``2h``, ``1d``, ``180d``, ``1h30m`` → :class:`timedelta` (more than zero).

    Units: s, m, h, d, w. :class:`UsageError` naming ``option`` otherwise.
    """
    text = value.strip().lower()
    parts = _DURATION_PART.findall(text)
    if not parts or _DURATION_PART.sub("", text).strip():
        raise UsageError(
            f"{option} {value!r} is not a duration; use a number and a unit s, m, h, d or w "
            "(15m, 2h, 1d, 180d)"
        )
    seconds = sum(int(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    if seconds <= 0:
        raise UsageError(f"{option} {value!r} must be longer than zero")
    return timedelta(seconds=seconds)


def describe_age(age: timedelta) -> str:
    """A short human age: ``45 s``, ``12 min``, ``3.5 h``, ``2.0 d``."""
    seconds = max(0.0, age.total_seconds())
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


# -- status --check -----------------------------------------------------------------------------

CHECK_LABELS = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}
WARNING_INTERVALS = 3  # the last successful sync may be this many expected intervals old
_SYSTEM_NAMES = {"shop": "WooCommerce", "dynamics": "Dynamics 365"}


@dataclass(frozen=True)
class CheckResult:
    """The verdict of ``status --check``: an exit code 0-3 and the one line to print."""

    code: int
    summary: str
    perfdata: str = ""

    @property
    def line(self) -> str:
        """``WOO2D365 WARNING - 2 held, … | held=2;;;0 …``."""
        text = f"WOO2D365 {CHECK_LABELS[self.code]} - {self.summary}"
        return f"{text} | {self.perfdata}" if self.perfdata else text


@dataclass(frozen=True)
class CheckLimits:
    """When the age of the last successful sync is a warning, and when it is critical."""

    warn_after: timedelta
    critical_after: timedelta
    max_wait: timedelta = timedelta(0)  # an order waiting longer in one state warns; 0: never
    stock_after: timedelta | None = None  # [stock] enabled: WARNING when stock is older
    unshipped_after: timedelta | None = None  # [shipments] warn_unshipped_after_days

    @classmethod
    def from_settings(
        cls,
        settings: Any,
        *,
        max_age: str | None = None,
        critical_age: str | None = None,
        max_wait: str | None = None,
    ) -> CheckLimits:
        """``[monitoring]`` and ``[alerts] max_wait_hours`` values, overridden by ``--max-age``,
        ``--critical-age`` and ``--max-wait``."""
        monitoring = settings.monitoring
        warn = timedelta(minutes=WARNING_INTERVALS * monitoring.expected_interval_minutes)
        critical = timedelta(minutes=monitoring.critical_after_minutes)
        if max_age is not None:
            warn = parse_duration(max_age, option="--max-age")
        if critical_age is not None:
            critical = parse_duration(critical_age, option="--critical-age")
        wait = timedelta(hours=settings.alerts.max_wait_hours)
        if max_wait is not None:
            wait = parse_duration(max_wait, option="--max-wait")
        stock = settings.stock
        stock_after = timedelta(minutes=stock.max_age_minutes) if stock.enabled else None
        shipments = settings.shipments
        days = shipments.warn_unshipped_after_days if shipments.enabled else 0
        unshipped = timedelta(days=days) if days > 0 else None
        return cls(
            warn_after=warn,
            critical_after=critical,
            max_wait=wait,
            stock_after=stock_after,
            unshipped_after=unshipped,
        )


def check_status(store: StateStore, limits: CheckLimits, now: datetime) -> CheckResult:
    """Decide OK / WARNING / CRITICAL from the store (README, "Monitoring").

    WARNING: held or failed orders; the last successful sync older than ``warn_after``.
    CRITICAL: the last sync ended with outcome ``error`` (an internal error: a bug, or a run that
    lost its lock), which never counts as a successful sync; the last successful sync older than
    ``critical_after`` (or none although syncs ran); the shop or Dynamics not reached in the
    latest run that tried.
    """
    from woo2d365.alerts import unreachable_runs

    counts = order_counts(store, now)
    last = store.last_run("sync")
    last_ok = store.last_successful_run("sync")
    critical: list[str] = []
    warning: list[str] = []
    for system, name in _SYSTEM_NAMES.items():
        runs = unreachable_runs(store, system)
        if runs:
            critical.append(f"{name} unreachable in the last {_runs(runs)}")
    if last is not None and last.outcome == "error":
        ended = iso(last.finished_at or last.started_at)
        critical.insert(0, f"the last sync (run {last.id} at {ended}) ended with an internal error")
    elif last is not None and last.outcome == "unreachable" and not critical:
        critical.append(f"the last sync (run {last.id}) could not reach a system")
    age: timedelta | None = None
    if last_ok is None:
        if last is None:
            warning.append("no sync has run yet")
        elif last.finished_at is None and last.outcome is None:
            warning.append("the first sync is still running")
        else:
            critical.append("no sync has succeeded yet")
    else:
        age = now - (last_ok.finished_at or last_ok.started_at)
        if age > limits.critical_after:
            critical.append(
                f"last successful sync {describe_age(age)} ago "
                f"(critical after {describe_age(limits.critical_after)})"
            )
        elif age > limits.warn_after:
            warning.append(
                f"last successful sync {describe_age(age)} ago "
                f"(expected within {describe_age(limits.warn_after)})"
            )
    held, failed = counts.get("held", 0), counts.get("failed", 0)
    if held or failed:
        warning.append(f"{held} held, {failed} failed")
        attention = ["woo2d365 status --state held" if held else "woo2d365 status --state failed"]
    else:
        attention = []
    oldest = _over_max_wait(store, limits, now)
    if oldest is not None:
        warning.append(
            f"order {oldest.woo_id} {oldest.state.value} for {describe_age(waited(oldest, now))} "
            f"(over {describe_age(limits.max_wait)})"
        )
        attention.append(f"woo2d365 status {oldest.woo_id}")
    stock_warning = _stock_warning(store, limits, now)
    if stock_warning:
        warning.append(stock_warning)
    refunds = store.refund_counts()
    held_refunds, failed_refunds = refunds.get("held", 0), refunds.get("failed", 0)
    if held_refunds or failed_refunds:
        warning.append(f"refunds: {held_refunds} held, {failed_refunds} failed")
        attention.append("woo2d365 status (refunds per order: woo2d365 status ID)")
    changed = store.changed_after_push_ids()
    if changed:
        warning.append(f"{len(changed)} changed in the shop after the push")
        attention.append(f"woo2d365 ack {changed[0]}")
    if limits.unshipped_after is not None:
        late, some = store.unshipped_pushed_before(now - limits.unshipped_after, limit=1)
        if late:
            days = limits.unshipped_after.days
            what = "order" if late == 1 else "orders"
            warning.append(f"{late} pushed {what} not shipped within {days} days")
            attention.append(f"woo2d365 status {some[0]}")
    code = 2 if critical else 1 if warning else 0
    parts = critical + warning
    if not parts:
        parts.append("0 held, 0 failed")
        if age is not None:
            parts.append(f"last successful sync {describe_age(age)} ago")
    elif age is not None and not any("last successful sync" in p for p in parts):
        parts.append(f"last successful sync {describe_age(age)} ago")
    summary = "; ".join(parts)
    if attention:
        summary += f" (see {attention[0]})"
    return CheckResult(code, summary, _perfdata(counts, age, limits))


def _over_max_wait(store: StateStore, limits: CheckLimits, now: datetime) -> OrderRecord | None:
    """The order waiting longest in an open state, when that is longer than ``max_wait``."""
    if limits.max_wait <= timedelta(0):
        return None
    oldest = oldest_per_state(store).values()
    longest = max(oldest, key=lambda record: waited(record, now), default=None)
    if longest is None or waited(longest, now) <= limits.max_wait:
        return None
    return longest


def _stock_warning(store: StateStore, limits: CheckLimits, now: datetime) -> str | None:
    """With ``[stock] enabled``: stock not synced within ``[stock] max_age_minutes``."""
    if limits.stock_after is None:
        return None
    last = last_stock_run(store)
    if last is None:
        return "stock has never been synced"
    age = now - last.at
    if age <= limits.stock_after:
        return None
    return (
        f"stock last synced {describe_age(age)} ago "
        f"(expected within {describe_age(limits.stock_after)})"
    )


def _runs(count: int) -> str:
    return "run" if count == 1 else f"{count} runs"


def _perfdata(counts: dict[str, int], age: timedelta | None, limits: CheckLimits) -> str:
    values = [f"{state}={counts.get(state, 0)};;;0" for state in ("held", "failed")]
    values += [
        f"{state}={counts.get(state, 0)};;;0"
        for state in ("new", "ready", "pushing", "pushed", "skipped")
    ]
    if age is not None:
        values.append(
            f"last_success_age={max(0, int(age.total_seconds()))}s;"
            f"{int(limits.warn_after.total_seconds())};"
            f"{int(limits.critical_after.total_seconds())};0"
        )
    return " ".join(values)


def run_check(
    load_settings: Callable[[], LoadedSettings],
    open_store: Callable[[], StateStore],
    *,
    max_age: str | None = None,
    critical_age: str | None = None,
    max_wait: str | None = None,
    clock: Callable[[], datetime] | None = None,
    conflicting: Sequence[str] = (),
) -> CheckResult:
    """``status --check`` whole: every failure to decide is UNKNOWN (3), never a traceback.

    ``conflicting`` names options given together with ``--check`` that it cannot honour.
    """
    if conflicting:
        return CheckResult(3, f"--check cannot be combined with {', '.join(conflicting)}")
    try:
        limits = CheckLimits.from_settings(
            load_settings().settings,
            max_age=max_age,
            critical_age=critical_age,
            max_wait=max_wait,
        )
        store = open_store()
        return check_status(store, limits, (clock or utc_now)())
    except Woo2D365Error as exc:
        return CheckResult(3, clean(str(exc)))
    except Exception as exc:  # a monitoring plugin answers UNKNOWN, whatever went wrong
        log.debug("status --check failed", exc_info=True)
        return CheckResult(3, clean(f"internal error: {type(exc).__name__}: {exc}"))


# -- Prometheus textfile ------------------------------------------------------------------------

RUN_OUTCOMES = tuple(o.value for o in RunOutcome if o is not RunOutcome.INTERRUPTED)


@dataclass
class ApiCounter:
    """HTTP requests sent to one system and how many of them failed (no answer or >= 400)."""

    requests: int = 0
    errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, *, failed: bool) -> None:
        """Count one request."""
        with self._lock:
            self.requests += 1
            if failed:
                self.errors += 1


@functools.cache
def _instrumented_types() -> tuple[type[Any], type[Any]]:
    """``(CountingSession, MeteredRuntime)``, built on first use.

    Only ``sync --metrics-file`` needs them; defining them lazily keeps ``requests`` and the
    runtime out of the import of this module, which ``status`` loads.
    """
    import requests

    from woo2d365.http import TrustingSession
    from woo2d365.runtime import SHOP_KEYS, Runtime
    from woo2d365.shop.client import WooClient

    class CountingSession(TrustingSession):
        """A :class:`TrustingSession` that counts requests and failed requests."""

        def __init__(self, counter: ApiCounter, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.counter = counter

        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            """Send and count."""
            try:
                response = super().request(method, url, *args, **kwargs)
            except requests.RequestException:
                self.counter.count(failed=True)
                raise
            self.counter.count(failed=response.status_code >= 400)
            return response

    @dataclass
    class MeteredRuntime(Runtime):
        """A :class:`Runtime` whose shop client and ERP target are counted for the metrics."""

        shop_counter: ApiCounter = field(default_factory=ApiCounter)
        targets: list[Any] = field(default_factory=list)

        def shop(self) -> WooClient:
            """The WooCommerce client on a counting session."""
            self.loaded.require(*SHOP_KEYS)
            session = CountingSession(self.shop_counter)
            return WooClient(self.settings.woocommerce, session=session)

        def erp(self) -> Any:
            """The ERP target, remembered so its client's request counts can be read later."""
            target = super().erp()
            self.targets.append(target)
            return target

    return CountingSession, MeteredRuntime


def _dynamics_counts(targets: list[Any]) -> tuple[int, int | None] | None:
    """``(requests, errors)`` of the Business Central clients used; None when none was."""
    clients: list[Any] = [getattr(t, "client", None) for t in targets]
    clients = [c for c in clients if c is not None and hasattr(c, "request_count")]
    if not clients:
        return None
    requests_sent = sum(int(c.request_count) for c in clients)
    errors: list[Any] = [getattr(c, "error_count", None) for c in clients]
    if any(e is None for e in errors):
        return requests_sent, None
    return requests_sent, sum(int(e) for e in errors)


@dataclass(frozen=True)
class MetricsSnapshot:
    """What one sync run leaves for Prometheus."""

    outcome: str
    finished_at: datetime
    duration_seconds: float
    counts: dict[str, int] | None = None
    changed_after_push: int | None = None
    last_success_at: datetime | None = None
    api: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    unreachable_runs: dict[str, int] = field(default_factory=dict)
    run_orders: dict[str, int] = field(default_factory=dict)
    oldest_age_seconds: dict[str, float] = field(default_factory=dict)
    write_backs_pending: int | None = None


def render_metrics(snapshot: MetricsSnapshot) -> CollectorRegistry:
    """The metrics of one sync run, as a registry of their own (gauges: the last run's values)."""
    registry = CollectorRegistry()

    def gauge(name: str, help_text: str, labels: Sequence[str] = ()) -> Gauge:
        return Gauge(name, help_text, labels, registry=registry)

    if snapshot.counts is not None:
        orders = gauge("woo2d365_orders", "Orders in the state store by state.", ["state"])
        for state in OrderState:
            orders.labels(state=state.value).set(snapshot.counts.get(state.value, 0))
    if snapshot.counts is not None:
        oldest = gauge(
            "woo2d365_oldest_order_age_seconds",
            "How long the longest-waiting order of each open state has been in it (0: none).",
            ["state"],
        )
        for state in OPEN_STATES:
            oldest.labels(state=state.value).set(snapshot.oldest_age_seconds.get(state.value, 0))
    if snapshot.write_backs_pending is not None:
        gauge(
            "woo2d365_write_backs_pending",
            "Pushed orders whose note and meta are not in the shop yet.",
        ).set(snapshot.write_backs_pending)
    if snapshot.changed_after_push is not None:
        gauge(
            "woo2d365_changed_after_push",
            "Orders changed in the shop after their push, not acknowledged (woo2d365 ack).",
        ).set(snapshot.changed_after_push)
    gauge("woo2d365_run_duration_seconds", "Duration of the last sync run in seconds.").set(
        snapshot.duration_seconds
    )
    gauge("woo2d365_last_run_timestamp_seconds", "When the last sync run ended (Unix time).").set(
        snapshot.finished_at.timestamp()
    )
    if snapshot.last_success_at is not None:
        gauge(
            "woo2d365_last_success_timestamp_seconds",
            "When the last sync that reached both systems ended (Unix time).",
        ).set(snapshot.last_success_at.timestamp())
    outcome = gauge(
        "woo2d365_run_outcome",
        "Outcome of the last sync run: 1 for the outcome it had, 0 for the others.",
        ["outcome"],
    )
    for name in RUN_OUTCOMES:
        outcome.labels(outcome=name).set(1 if snapshot.outcome == name else 0)
    if snapshot.run_orders:
        run_orders = gauge(
            "woo2d365_run_orders", "Orders the last sync run handled, by result.", ["result"]
        )
        for result, value in snapshot.run_orders.items():
            run_orders.labels(result=result).set(value)
    if snapshot.api:
        requests_sent = gauge(
            "woo2d365_api_requests",
            "HTTP requests the last sync run sent, retries included, by system.",
            ["system"],
        )
        errors = gauge(
            "woo2d365_api_errors",
            "HTTP requests of the last sync run that failed (no answer, or status 400 or more), "
            "by system.",
            ["system"],
        )
        for system, (sent, failed) in snapshot.api.items():
            requests_sent.labels(system=system).set(sent)
            if failed is not None:
                errors.labels(system=system).set(failed)
    if snapshot.unreachable_runs:
        unreachable = gauge(
            "woo2d365_unreachable_runs",
            "Sync runs in a row that could not reach the system.",
            ["system"],
        )
        for system, value in snapshot.unreachable_runs.items():
            unreachable.labels(system=system).set(value)
    return registry


def metrics_text(registry: CollectorRegistry) -> str:
    """The Prometheus text exposition of a registry."""
    return generate_latest(registry).decode("utf-8")


def write_metrics_file(path: Path, registry: CollectorRegistry) -> None:
    """Write the textfile for node_exporter's collector atomically (``write_to_textfile``: a
    temporary file beside it, renamed), readable by the collector's user (0644)."""
    write_to_textfile(str(path), registry)
    os.chmod(path, 0o644)  # metrics only; node_exporter usually runs as another user


class SyncMetrics:
    """Around one ``sync``: counts its API requests and writes the metrics file at the end.

    The file is written whatever the outcome (unreachable systems and store included), except
    when another sync held the run lock: that run did nothing and the holder writes its own.
    A metrics file that cannot be written is logged and never changes the run's exit code.
    Without a path the object does nothing.
    """

    def __init__(self, path: Path | None, *, clock: Callable[[], datetime] | None = None) -> None:
        self.path = path
        self.clock = clock or utc_now
        self.result: SyncResult | None = None
        self._runtime: Any = None  # the MeteredRuntime of instrument()
        self._started = 0.0

    def instrument(self, runtime: Runtime) -> Runtime:
        """The runtime to run the sync with (counted when a metrics file is wanted)."""
        if self.path is None:
            return runtime
        metered = _instrumented_types()[1]
        self._runtime = metered(runtime.loaded, runtime.store, runtime.clock)
        return self._runtime

    def __enter__(self) -> SyncMetrics:
        self._started = time.monotonic()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.path is None or isinstance(exc, LockHeld):
            return
        if exc is not None and not isinstance(exc, Exception):
            return  # interrupted: no half-truths in the metrics file
        try:
            write_metrics_file(self.path, render_metrics(self.snapshot(exc)))
        except OSError as error:
            log.error("metrics file %s not written: %s", self.path, error.strerror or error)

    def snapshot(self, exc: BaseException | None = None) -> MetricsSnapshot:
        """What to write, from the result (or the error) and what the store can still tell."""
        duration = time.monotonic() - self._started
        result = self.result
        if result is not None:
            outcome = result.outcome
        else:
            outcome = (outcome_of(exc).run_outcome if exc else RunOutcome.ERROR).value
        api: dict[str, tuple[int, int | None]] = {}
        runtime = self._runtime
        if runtime is not None:
            counter = runtime.shop_counter
            if counter.requests:
                api["shop"] = (counter.requests, counter.errors)
            dynamics = _dynamics_counts(runtime.targets)
            if dynamics is not None:
                api["dynamics"] = dynamics
        counts: dict[str, int] | None = None
        changed: int | None = None
        last_success: datetime | None = None
        unreachable: dict[str, int] = {}
        ages: dict[str, float] = {}
        pending: int | None = None
        if runtime is not None and not _store_failed(exc):
            try:
                from woo2d365.alerts import unreachable_runs

                counts = order_counts(runtime.store)
                changed = len(runtime.store.changed_after_push_ids())
                success = runtime.store.last_successful_run("sync")
                if success is not None:
                    last_success = success.finished_at or success.started_at
                unreachable = {s: unreachable_runs(runtime.store, s) for s in _SYSTEM_NAMES}
                now = self.clock()
                ages = {
                    state.value: waited(record, now).total_seconds()
                    for state, record in oldest_per_state(runtime.store).items()
                }
                pending = len(runtime.store.write_back_pending_ids())
            except Woo2D365Error as error:
                log.warning("metrics: the state store could not be read: %s", error)
        return MetricsSnapshot(
            outcome=outcome,
            finished_at=self.clock(),
            duration_seconds=duration,
            counts=counts,
            changed_after_push=changed,
            last_success_at=last_success,
            api=api,
            unreachable_runs=unreachable,
            run_orders=_run_orders(result),
            oldest_age_seconds=ages,
            write_backs_pending=pending,
        )


def _store_failed(exc: BaseException | None) -> bool:
    return isinstance(exc, StoreUnavailable)


def _run_orders(result: SyncResult | None) -> dict[str, int]:
    if result is None:
        return {}
    orders: dict[str, int] = {}
    if result.pull is not None:
        orders["pulled"] = result.pull.new + result.pull.updated
    if result.validate is not None:
        orders["held"] = len(result.validate.newly_held)
    if result.push is not None:
        orders["pushed"] = result.push.in_dynamics
        orders["failed"] = len(result.push.failed)
    return orders
