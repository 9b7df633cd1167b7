"""One digest per run: new conditions, reminders and recoveries, de-duplicated in the store.

:meth:`AlertCenter.process_run` compares the conditions active now with the alert records of
earlier runs:

* a condition without a record, never delivered, or whose message changed → sent as new;
* a condition last sent ``repeat_after_minutes`` ago or longer → sent again as a reminder;
* a record of a standing condition that is no longer active → a recovery line, once;
* nothing of the above → nothing is sent.

Delivery decides what is remembered. When at least one channel took the digest, its conditions
are marked sent and recovered records are forgotten. So a broken channel among working ones does
not make every run repeat the digest on the working ones: the broken channel misses that digest
(each failure is logged as a warning and named in :attr:`DigestOutcome.failures`). When no
channel took it, nothing is marked sent: the next run sends it again. One-shot conditions
(changes after push, total mismatches) come from one run's events only, so an undelivered one is
kept as a pending record and sent with the next digest.
"""

from __future__ import annotations

import logging
import socket
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from woo2d365.alerts.channels import AlertDeliveryError, Channel, channels_from_settings
from woo2d365.alerts.conditions import (
    ALERT_LEVELS,
    ONE_SHOT_KINDS,
    SYSTEMS,
    Condition,
    event_conditions,
    event_order_ids,
    kind_of,
    map_sku_command,
    order_conditions,
    record_reachability,
    recovery_text,
    refund_conditions,
    unreachable_condition,
    waiting_conditions,
    woo_id_of,
)
from woo2d365.alerts.message import AlertMessage, Entry, Section
from woo2d365.logs import redact
from woo2d365.settings import AlertsSettings
from woo2d365.store.base import AlertRecord, OrderRecord, StateStore

log = logging.getLogger("woo2d365.alerts")
STEP = "alerts"

ONE_SHOT_MEMORY = timedelta(days=30)  # sent one-shots are remembered this long, then forgotten
MAX_ENTRIES = 50  # per section; the rest is counted with a pointer to `woo2d365 status`

_HEADINGS: dict[str, str] = {
    "unreachable": "Not reachable (orders wait; nothing is lost):",
    "failed": "Failed orders (Dynamics refused them: fix the cause, then retry):",
    "held": "Held orders (they wait until the cause is fixed; every sync checks them again):",
    "changed": (
        "Changed in the shop after it was pushed (not pushed again: correct the Dynamics sales "
        "order by hand if needed):"
    ),
    "mismatch": "Totals that differ between the shop and Dynamics (check the sales order):",
    "waiting": "Orders waiting longer than [alerts] max_wait_hours (check why they do not move):",
    "refund": "Refunds held or failed (no credit memo yet: fix the cause, then retry):",
}
_KIND_ORDER = ("unreachable", "held", "failed", "refund", "waiting", "changed", "mismatch")
_SUBJECT_WORDS: dict[str, str] = {
    "held": "held",
    "failed": "failed",
    "changed": "changed after push",
    "mismatch": "with a total mismatch",
    "waiting": "waiting too long",
    "refund": "refund(s) held or failed",
}


@dataclass(frozen=True)
class DigestOutcome:
    """What :meth:`AlertCenter.process_run` found, sent and remembered."""

    subject: str | None = None  # None: nothing sent (nothing to say, or no channel configured)
    body: str = ""  # the plain-text body as e-mailed
    alerts: tuple[str, ...] = ()  # keys sent as new (or changed)
    reminders: tuple[str, ...] = ()  # keys sent again after repeat_after_minutes
    recoveries: tuple[str, ...] = ()  # keys of conditions that cleared
    active: tuple[str, ...] = ()  # every standing condition active now
    delivered: tuple[str, ...] = ()  # channels that took the digest
    failures: dict[str, str] = field(default_factory=dict)  # channel → error (safe to show)
    channels: tuple[str, ...] = ()  # channels configured

    @property
    def sent(self) -> bool:
        """True when at least one channel took the digest."""
        return bool(self.delivered)


@dataclass
class _Plan:
    alerts: list[Condition] = field(default_factory=list)
    reminders: list[tuple[Condition, AlertRecord]] = field(default_factory=list)
    recoveries: list[tuple[str, str]] = field(default_factory=list)  # key, text
    quiet: list[Condition] = field(default_factory=list)  # active, already reported
    forget: list[str] = field(default_factory=list)  # records to drop whatever happens

    @property
    def empty(self) -> bool:
        return not (self.alerts or self.reminders or self.recoveries)


class AlertCenter:
    """Turns the state of the store after a run into at most one digest on every channel."""

    def __init__(
        self,
        store: StateStore,
        settings: AlertsSettings,
        *,
        clock: Callable[[], datetime],
        channels: Sequence[Channel] | None = None,
        hostname: str | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.channels: list[Channel] = (
            list(channels) if channels is not None else channels_from_settings(settings)
        )
        self.hostname = hostname or socket.gethostname()

    def process_run(
        self,
        run_id: int | None,
        *,
        shop_reachable: bool | None,
        dynamics_reachable: bool | None,
        total_mismatches: Mapping[int, str] | None = None,
    ) -> DigestOutcome:
        """Send this run's digest, if there is anything to say; never raises for a channel.

        ``shop_reachable`` / ``dynamics_reachable``: whether this run reached the system (None:
        it did not try). ``total_mismatches``: order id → message, in addition to the push
        warnings found among the run's events. Store errors propagate (the caller's run
        already handles an unreachable store).
        """
        now = self.clock()
        counts = {
            "shop": record_reachability(self.store, "shop", shop_reachable, now),
            "dynamics": record_reachability(self.store, "dynamics", dynamics_reachable, now),
        }
        standing = [*order_conditions(self.store), *refund_conditions(self.store)]
        max_wait = timedelta(hours=self.settings.max_wait_hours)
        standing += waiting_conditions(self.store, max_wait, now)
        for system, count in counts.items():
            condition = unreachable_condition(self.store, system, count)
            if condition is not None:
                standing.append(condition)
        one_shots = self._one_shots(run_id, total_mismatches)
        records = {r.key: r for r in self.store.alert_records()}
        plan = self._plan(standing, one_shots, records, now)
        active = tuple(c.key for c in standing)
        names = tuple(c.name for c in self.channels)

        if plan.empty:
            if plan.forget:
                self.store.save_alert_records([], plan.forget)
            return DigestOutcome(active=active, channels=names)
        if not self.channels:
            # Nothing can be delivered: remember nothing, so a channel configured later
            # receives every condition that is still active.
            log.debug("no alert channel configured; %d conditions not sent", len(plan.alerts))
            return DigestOutcome(active=active, channels=names)

        message = self._compose(plan, now)
        delivered, failures = self._send(message)
        self._remember(plan, records, now, delivered=bool(delivered))
        return DigestOutcome(
            subject=message.subject,
            body=message.plain_text(),
            alerts=tuple(c.key for c in plan.alerts),
            reminders=tuple(c.key for c, _ in plan.reminders),
            recoveries=tuple(key for key, _ in plan.recoveries),
            active=active,
            delivered=tuple(delivered),
            failures=failures,
            channels=names,
        )

    # -- deciding --------------------------------------------------------------------------
    def _one_shots(
        self, run_id: int | None, total_mismatches: Mapping[int, str] | None
    ) -> list[Condition]:
        # Only warnings and errors raise alerts; a large run's other events stay in the store.
        events = self.store.run_events(run_id, levels=ALERT_LEVELS) if run_id is not None else []
        ids = event_order_ids(events) | set(total_mismatches or {})
        numbers: dict[int, str] = {}
        if ids:
            numbers = {o.woo_id: o.number for o in self.store.list_orders(woo_ids=sorted(ids))}
        return event_conditions(events, numbers, total_mismatches)

    def _plan(
        self,
        standing: list[Condition],
        one_shots: list[Condition],
        records: dict[str, AlertRecord],
        now: datetime,
    ) -> _Plan:
        plan = _Plan()
        repeat = timedelta(minutes=self.settings.repeat_after_minutes)
        for condition in standing:
            _plan_standing(plan, condition, records.get(condition.key), now, repeat)
        for condition in one_shots:
            record = records.get(condition.key)
            if record is None or record.last_sent is None:
                plan.alerts.append(condition)
        current = {c.key for c in one_shots}
        active_keys = {c.key for c in standing}
        cleared: list[str] = []
        for key, record in records.items():
            if kind_of(key) in ONE_SHOT_KINDS:
                _plan_kept_one_shot(plan, key, record, now, current=key in current)
            elif key not in active_keys:
                if record.last_sent is None:
                    plan.forget.append(key)  # cleared before anyone was told
                else:
                    cleared.append(key)
        if cleared:
            orders = self._orders_of(cleared)
            plan.recoveries = [(key, recovery_text(key, orders)) for key in sorted(cleared)]
        return plan

    def _orders_of(self, keys: list[str]) -> dict[int, OrderRecord]:
        ids = sorted({i for i in (woo_id_of(k) for k in keys) if i is not None})
        if not ids:
            return {}
        return {o.woo_id: o for o in self.store.list_orders(woo_ids=ids)}

    # -- composing -------------------------------------------------------------------------
    def _compose(self, plan: _Plan, now: datetime) -> AlertMessage:
        by_kind: dict[str, list[Entry]] = {}
        for condition in plan.alerts:
            by_kind.setdefault(condition.kind, []).append(
                Entry(condition.message, condition.commands)
            )
        for condition, record in plan.reminders:
            first = f"{record.first_seen.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
            by_kind.setdefault(condition.kind, []).append(
                Entry(f"{condition.message} (still open since {first})", condition.commands)
            )
        sections: list[Section] = []
        for kind in sorted(by_kind, key=_kind_rank):
            entries = by_kind[kind]
            heading = _HEADINGS.get(kind, f"{kind}:")
            sections.append(Section(heading, _capped(entries, kind)))
            if kind == "held":
                fixes = self._sku_fixes()
                if fixes:
                    sections.append(fixes)
        if plan.recoveries:
            sections.append(Section("Resolved:", tuple(Entry(text) for _, text in plan.recoveries)))
        if plan.quiet:
            summary = ", ".join(_tally(plan.quiet))
            sections.append(
                Section("Still open, reported before:", (Entry(summary, ("woo2d365 status",)),))
            )
        footer = f"woo2d365 on {self.hostname}, {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        return AlertMessage(_subject(plan), tuple(sections), footer)

    def _sku_fixes(self) -> Section | None:
        unmapped = self.store.unmapped_skus()
        if not unmapped:
            return None
        entries = [
            Entry(
                f"SKU {sku} holds {count} order{'s' if count != 1 else ''}",
                (map_sku_command(sku),),
            )
            for sku, count in unmapped
        ]
        return Section(
            "To release orders held by unmapped SKUs, map each SKU to its Dynamics item number "
            "(replace ITEM); the next sync releases them:",
            _capped(entries, "unmapped"),
        )

    # -- sending and remembering -----------------------------------------------------------
    def _send(self, message: AlertMessage) -> tuple[list[str], dict[str, str]]:
        delivered: list[str] = []
        failures: dict[str, str] = {}
        for channel in self.channels:
            error = deliver(channel, message)
            if error is None:
                delivered.append(channel.name)
            else:
                failures[channel.name] = error
                log.warning(
                    "alert channel %s failed: %s", channel.name, error, extra={"step": STEP}
                )
        if delivered:
            log.info(
                "alert digest sent (%s): %s",
                ", ".join(delivered),
                message.subject,
                extra={"step": STEP},
            )
        else:
            log.warning(
                "the alert digest reached no channel; the next run sends it again",
                extra={"step": STEP},
            )
        return delivered, failures

    def _remember(
        self, plan: _Plan, records: dict[str, AlertRecord], now: datetime, *, delivered: bool
    ) -> None:
        upsert: list[AlertRecord] = []
        delete = list(plan.forget)
        if delivered:
            for condition in plan.alerts:
                before = records.get(condition.key)
                first_seen = before.first_seen if before else now
                upsert.append(_record(condition, not condition.one_shot, first_seen, now))
            for condition, record in plan.reminders:
                upsert.append(_record(condition, True, record.first_seen, now))
            delete.extend(key for key, _ in plan.recoveries)
        else:
            # Only new conditions get a (pending) record, for their first-seen time and, for
            # one-shots, so that they are not lost; sent records stay as they were.
            for condition in plan.alerts:
                if condition.key not in records:
                    upsert.append(_record(condition, True, now, None))
        if upsert or delete:
            self.store.save_alert_records(upsert, delete)


def deliver(channel: Channel, message: AlertMessage) -> str | None:
    """Send ``message`` on ``channel``; the error text (safe to show) or None when delivered."""
    try:
        channel.send(message)
    except AlertDeliveryError as exc:
        return redact(str(exc))
    except Exception as exc:  # an alert channel must never fail the run, whatever it raises
        log.debug("alert channel %s raised", channel.name, exc_info=True)
        return redact(f"{type(exc).__name__}: {' '.join(str(exc).split())}")
    return None


def send_test_alert(
    settings: AlertsSettings,
    *,
    clock: Callable[[], datetime],
    channels: Sequence[Channel] | None = None,
    hostname: str | None = None,
) -> list[tuple[str, str | None]]:
    """Send a test alert on every configured channel: ``(channel, error or None)`` each.

    For ``woo2d365 doctor --test-alerts``; an empty list means no channel is configured.
    """
    chosen = list(channels) if channels is not None else channels_from_settings(settings)
    host = hostname or socket.gethostname()
    now = clock().astimezone(UTC)
    message = AlertMessage(
        "woo2d365: test alert",
        (
            Section(
                "This is a test alert from woo2d365 doctor --test-alerts.",
                (
                    Entry(
                        "If you can read this, alerts about held and failed orders and "
                        "unreachable systems reach you here."
                    ),
                ),
            ),
        ),
        f"woo2d365 on {host}, {now:%Y-%m-%d %H:%M} UTC",
    )
    results: list[tuple[str, str | None]] = []
    for channel in chosen:
        error = deliver(channel, message)
        if error is not None:
            log.warning("test alert on %s failed: %s", channel.name, error, extra={"step": STEP})
        results.append((channel.name, error))
    return results


def _record(
    condition: Condition, active: bool, first_seen: datetime, last_sent: datetime | None
) -> AlertRecord:
    """What the store remembers of an alert condition."""
    return AlertRecord(
        key=condition.key,
        kind=condition.kind,
        message=condition.message,
        active=active,
        first_seen=first_seen,
        last_sent=last_sent,
    )


def _kind_rank(kind: str) -> int:
    return _KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER)


def _capped(entries: list[Entry], kind: str) -> tuple[Entry, ...]:
    if len(entries) <= MAX_ENTRIES:
        return tuple(entries)
    more = len(entries) - MAX_ENTRIES
    command = f"woo2d365 status --state {kind}" if kind in ("held", "failed") else "woo2d365 status"
    if kind == "unmapped":
        command = "woo2d365 map-sku list --unmapped"
    return (*entries[:MAX_ENTRIES], Entry(f"… and {more} more", (command,)))


def _subject(plan: _Plan) -> str:
    """``woo2d365: 2 orders held, 1 failed`` and the like."""
    parts = _tally([*plan.alerts, *(c for c, _ in plan.reminders)])
    recovered_systems = [key for key, _ in plan.recoveries if kind_of(key) == "unreachable"]
    for key in recovered_systems:
        parts.append(f"{_short_system(key.partition(':')[2])} reachable again")
    resolved = len(plan.recoveries) - len(recovered_systems)
    if resolved:
        parts.append(f"{resolved} resolved")
    return "woo2d365: " + ", ".join(parts)


def _tally(conditions: list[Condition]) -> list[str]:
    """``["WooCommerce unreachable", "2 orders held", "1 failed"]`` for ``conditions``."""
    parts = [
        f"{_short_system(c.key.partition(':')[2])} unreachable"
        for c in sorted(conditions, key=lambda c: c.key)
        if c.kind == "unreachable"
    ]
    tally = Counter(c.kind for c in conditions if c.kind != "unreachable")
    for position, kind in enumerate(sorted(tally, key=_kind_rank)):
        count = tally[kind]
        noun = f" order{'s' if count != 1 else ''}" if position == 0 and kind != "refund" else ""
        parts.append(f"{count}{noun} {_SUBJECT_WORDS.get(kind, kind)}")
    return parts


def _short_system(system: str) -> str:
    return "Dynamics" if system == "dynamics" else SYSTEMS.get(system, system)


def _plan_standing(
    plan: _Plan,
    condition: Condition,
    record: AlertRecord | None,
    now: datetime,
    repeat: timedelta,
) -> None:
    """A standing condition: new or changed is alerted, reminded after ``repeat``, else quiet."""
    if record is None or record.last_sent is None or record.message != condition.message:
        plan.alerts.append(condition)
    elif now - record.last_sent >= repeat:
        plan.reminders.append((condition, record))
    else:
        plan.quiet.append(condition)


def _plan_kept_one_shot(
    plan: _Plan, key: str, record: AlertRecord, now: datetime, *, current: bool
) -> None:
    """A one-shot kept from an earlier run: sent when no channel had it, forgotten once old."""
    if record.last_sent is None and not current:
        # Pending from a run whose digest reached no channel: send it now.
        if now - record.first_seen < ONE_SHOT_MEMORY:
            plan.alerts.append(Condition(key, kind_of(key), record.message))
        else:
            plan.forget.append(key)
    elif record.last_sent is not None and now - record.last_sent >= ONE_SHOT_MEMORY:
        plan.forget.append(key)
