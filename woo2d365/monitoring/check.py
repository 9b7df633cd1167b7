"""``status --check``: the monitoring-plugin verdict (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)
as one line with performance data."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from woo2d365.clock import utc_now
from woo2d365.errors import Woo2D365Error
from woo2d365.logs import clean
from woo2d365.monitoring.counts import SYSTEM_NAMES, oldest_per_state, order_counts, waited
from woo2d365.monitoring.durations import describe_age, parse_duration
from woo2d365.monitoring.report import iso
from woo2d365.store.base import OrderRecord, StateStore
from woo2d365.store.stock import last_stock_run

if TYPE_CHECKING:
    from woo2d365.settings import LoadedSettings, Settings

log = logging.getLogger("woo2d365.monitoring")

CHECK_LABELS = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}
WARNING_INTERVALS = 3  # the last successful sync may be this many expected intervals old


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
        settings: Settings,
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
    counts = order_counts(store, now)
    found = _Findings(critical=_critical_runs(store))
    age = _last_success_age(store, limits, now, found)
    for warn in _WARNINGS:
        warning = warn(store, counts, limits, now)
        if warning is not None:
            found.warn(*warning)
    code = 2 if found.critical else 1 if found.warning else 0
    return CheckResult(code, found.summary(age), _perfdata(counts, age, limits))


@dataclass
class _Findings:
    """What the check found: critical and warning texts, and the commands that show more."""

    critical: list[str] = field(default_factory=list)
    warning: list[str] = field(default_factory=list)
    see: list[str] = field(default_factory=list)  # the first is named in the summary

    def warn(self, text: str, see: str | None = None) -> None:
        """Add a warning, with the command that shows more."""
        self.warning.append(text)
        if see is not None:
            self.see.append(see)

    def summary(self, age: timedelta | None) -> str:
        """Critical first, then warnings, the age of the last success and what to look at."""
        parts = self.critical + self.warning
        if not parts:
            parts.append("0 held, 0 failed")
        if age is not None and not any("last successful sync" in p for p in parts):
            parts.append(f"last successful sync {describe_age(age)} ago")
        summary = "; ".join(parts)
        return f"{summary} (see {self.see[0]})" if self.see else summary


def _critical_runs(store: StateStore) -> list[str]:
    """Systems not reached in the runs that tried, and a last sync that ended in error."""
    from woo2d365.alerts import unreachable_runs

    critical: list[str] = []
    for system, name in SYSTEM_NAMES.items():
        runs = unreachable_runs(store, system)
        if runs:
            critical.append(f"{name} unreachable in the last {_runs(runs)}")
    last = store.last_run("sync")
    if last is not None and last.outcome == "error":
        ended = iso(last.finished_at or last.started_at)
        critical.insert(0, f"the last sync (run {last.id} at {ended}) ended with an internal error")
    elif last is not None and last.outcome == "unreachable" and not critical:
        critical.append(f"the last sync (run {last.id}) could not reach a system")
    return critical


def _last_success_age(
    store: StateStore, limits: CheckLimits, now: datetime, found: _Findings
) -> timedelta | None:
    """The age of the last successful sync (None: none yet), judged into ``found``."""
    last_ok = store.last_successful_run("sync")
    if last_ok is None:
        last = store.last_run("sync")
        if last is None:
            found.warn("no sync has run yet")
        elif last.finished_at is None and last.outcome is None:
            found.warn("the first sync is still running")
        else:
            found.critical.append("no sync has succeeded yet")
        return None
    age = now - (last_ok.finished_at or last_ok.started_at)
    if age > limits.critical_after:
        found.critical.append(
            f"last successful sync {describe_age(age)} ago "
            f"(critical after {describe_age(limits.critical_after)})"
        )
    elif age > limits.warn_after:
        found.warn(
            f"last successful sync {describe_age(age)} ago "
            f"(expected within {describe_age(limits.warn_after)})"
        )
    return age


_Warning = tuple[str, str | None]  # what is wrong, and the command that shows more


def _held_or_failed(
    store: StateStore, counts: dict[str, int], limits: CheckLimits, now: datetime
) -> _Warning | None:
    held, failed = counts.get("held", 0), counts.get("failed", 0)
    if not (held or failed):
        return None
    see = "woo2d365 status --state held" if held else "woo2d365 status --state failed"
    return f"{held} held, {failed} failed", see


def _waiting_too_long(
    store: StateStore, counts: dict[str, int], limits: CheckLimits, now: datetime
) -> _Warning | None:
    oldest = _over_max_wait(store, limits, now)
    if oldest is None:
        return None
    return (
        f"order {oldest.woo_id} {oldest.state.value} for {describe_age(waited(oldest, now))} "
        f"(over {describe_age(limits.max_wait)})",
        f"woo2d365 status {oldest.woo_id}",
    )


def _stock_too_old(
    store: StateStore, counts: dict[str, int], limits: CheckLimits, now: datetime
) -> _Warning | None:
    text = _stock_warning(store, limits, now)
    return (text, None) if text else None


def _refunds_held_or_failed(
    store: StateStore, counts: dict[str, int], limits: CheckLimits, now: datetime
) -> _Warning | None:
    refunds = store.refund_counts()
    held, failed = refunds.get("held", 0), refunds.get("failed", 0)
    if not (held or failed):
        return None
    return (
        f"refunds: {held} held, {failed} failed",
        "woo2d365 status (refunds per order: woo2d365 status ID)",
    )


def _changed_after_push(
    store: StateStore, counts: dict[str, int], limits: CheckLimits, now: datetime
) -> _Warning | None:
    changed = store.changed_after_push_ids()
    if not changed:
        return None
    return f"{len(changed)} changed in the shop after the push", f"woo2d365 ack {changed[0]}"


def _not_shipped(
    store: StateStore, counts: dict[str, int], limits: CheckLimits, now: datetime
) -> _Warning | None:
    if limits.unshipped_after is None:
        return None
    late, some = store.unshipped_pushed_before(now - limits.unshipped_after, limit=1)
    if not late:
        return None
    what = "order" if late == 1 else "orders"
    return (
        f"{late} pushed {what} not shipped within {limits.unshipped_after.days} days",
        f"woo2d365 status {some[0]}",
    )


_WARNINGS: tuple[
    Callable[[StateStore, dict[str, int], CheckLimits, datetime], _Warning | None], ...
] = (
    _held_or_failed,
    _waiting_too_long,
    _stock_too_old,
    _refunds_held_or_failed,
    _changed_after_push,
    _not_shipped,
)
"""The warnings of the check, in the order the summary names them."""


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
