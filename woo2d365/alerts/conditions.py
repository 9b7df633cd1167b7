"""Alert conditions: what needs a person now, each with a stable key and a message.

Standing conditions last until they clear, and then earn a recovery line:

* ``held:<woo_id>`` and ``failed:<woo_id>``: the order is in that state (from the store);
* ``waiting:<woo_id>``: the order has been ``new``, ``ready`` or ``pushing`` (not held or failed:
  those alert already) for longer than ``[alerts] max_wait_hours``;
* ``refund:<woo_id>:<refund_id>``: a shop refund of the order is held or failed (no credit memo);
* ``unreachable:shop`` and ``unreachable:dynamics``: the system could not be reached in
  :data:`UNREACHABLE_RUNS` runs in a row (consecutive failures counted in the store's key/value
  table under ``alerts.unreachable.<system>.count``).

One-shot conditions come from the events of one run, are sent once and never recover:

* ``changed:<woo_id>:<stamp>``: the order changed in the shop after it was pushed;
* ``mismatch:<woo_id>``: Dynamics' total differs from the shop's.

Messages name orders by number and SKUs, never e-mail or street addresses; e-mail addresses
in texts that come from elsewhere (Dynamics' messages) are masked.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from woo2d365.model import OrderState
from woo2d365.store.base import Event, OrderRecord, StateStore

UNREACHABLE_RUNS = 3
MESSAGE_LIMIT = 1000  # characters of a reason or event text quoted in an alert
ONE_SHOT_KINDS = frozenset({"changed", "mismatch"})
SYSTEMS: dict[str, str] = {"shop": "WooCommerce", "dynamics": "Dynamics 365"}

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# pull: "changed in the shop after it was pushed as SO-1 (...)" and, when push claimed the order
# meanwhile, "changed in the shop while it was being pushed; ...".
_CHANGED_AFTER_PUSH = re.compile(
    r"changed in the shop (?:after it was pushed|while it was being pushed)", re.IGNORECASE
)
# push: "Business Central total 12.00 differs from the shop total 10.00 by +2.00 (...)"; any
# warning naming a total together with "differs", "difference" or "mismatch" counts, so a reworded
# message still alerts.
_TOTAL = re.compile(r"\btotals?\b", re.IGNORECASE)
_MISMATCH = re.compile(r"\bdiffer(?:s|ent|ence)?\b|\bmismatch(?:es|ed)?\b", re.IGNORECASE)


@dataclass(frozen=True)
class Condition:
    """One thing that needs a person, identified by a key that is stable across runs."""

    key: str
    kind: str  # held | failed | unreachable | changed | mismatch
    message: str
    commands: tuple[str, ...] = ()

    @property
    def one_shot(self) -> bool:
        """True for conditions sent once that never recover (changes, mismatches)."""
        return self.kind in ONE_SHOT_KINDS


ALERT_LEVELS = ("warning", "error")  # the levels of the events that raise one-shot alerts


def kind_of(key: str) -> str:
    """The kind of an alert key (``held:12`` → ``held``)."""
    return key.partition(":")[0]


def woo_id_of(key: str) -> int | None:
    """The order id in an order-related alert key, else None."""
    parts = key.split(":")
    if len(parts) >= 2 and parts[1].isdigit():
        return int(parts[1])
    return None


def mask_personal_data(text: str) -> str:
    """``text`` with e-mail addresses replaced by ``[e-mail]``."""
    return _EMAIL.sub("[e-mail]", text)


def clean_text(text: str) -> str:
    """A text from elsewhere as one masked line of bounded length, fit for any channel."""
    line = " ".join(mask_personal_data(text).split())
    if len(line) > MESSAGE_LIMIT:
        line = line[: MESSAGE_LIMIT - 1].rstrip() + "…"
    return line


def order_label(woo_id: int, number: str | None) -> str:
    """How people know the order: ``order 1234``, or ``order A-17 (id 1234)``."""
    if not number or number == str(woo_id):
        return f"order {woo_id}"
    return f"order {number} (id {woo_id})"


def map_sku_command(sku: str) -> str:
    """The exact command that maps ``sku`` (shell-quoted) to an item the operator fills in."""
    return f"woo2d365 map-sku add {shlex.quote(sku)} ITEM"


def order_conditions(store: StateStore) -> list[Condition]:
    """``held`` and ``failed`` conditions for every order in those states, by order id."""
    records = store.list_orders(states=[OrderState.HELD, OrderState.FAILED])
    conditions = []
    for record in sorted(records, key=lambda r: r.woo_id):
        label = order_label(record.woo_id, record.number)
        reason = clean_text(record.reason or "no reason recorded")
        if record.state is OrderState.HELD:
            conditions.append(
                Condition(f"held:{record.woo_id}", "held", f"{label} is held: {reason}")
            )
        else:
            conditions.append(
                Condition(
                    f"failed:{record.woo_id}",
                    "failed",
                    f"{label} failed: {reason}",
                    commands=(f"woo2d365 retry {record.woo_id}",),
                )
            )
    return conditions


STUCK_STATES = (OrderState.NEW, OrderState.READY, OrderState.PUSHING)
"""States an order should pass through within a run or two; held and failed alert on their own."""


def waiting_conditions(
    store: StateStore, max_wait: timedelta, now: datetime, *, limit: int = 100
) -> list[Condition]:
    """``waiting`` conditions for orders stuck in :data:`STUCK_STATES` longer than ``max_wait``."""
    if max_wait <= timedelta(0):
        return []
    records = store.orders_waiting_since(list(STUCK_STATES), now - max_wait, limit=limit)
    conditions = []
    for record in sorted(records, key=lambda r: r.woo_id):
        since = record.since or record.updated_at
        hours = int((now - since).total_seconds() // 3600)
        conditions.append(
            Condition(
                f"waiting:{record.woo_id}",
                "waiting",
                f"{order_label(record.woo_id, record.number)} has been {record.state.value} for "
                f"{hours} h (since {since.astimezone(UTC):%Y-%m-%d %H:%M} UTC)",
                commands=(f"woo2d365 status {record.woo_id}",),
            )
        )
    return conditions


def refund_conditions(store: StateStore) -> list[Condition]:
    """A ``refund`` condition for every held or failed shop refund, by order and refund."""
    conditions = []
    for record in store.list_refunds(states=[OrderState.HELD, OrderState.FAILED]):
        reason = clean_text(record.reason or "no reason recorded")
        conditions.append(
            Condition(
                f"refund:{record.woo_id}:{record.refund_id}",
                "refund",
                f"refund {record.refund_id} of {order_label(record.woo_id, None)} is "
                f"{record.state.value}: {reason}",
                commands=(f"woo2d365 retry --refund {record.refund_id}",),
            )
        )
    return conditions


def is_changed_after_push(event: Event) -> bool:
    """True for pull's warning that a pushed (or being pushed) order changed in the shop."""
    return (
        event.woo_id is not None
        and event.step == "pull"
        and event.level in ALERT_LEVELS
        and _CHANGED_AFTER_PUSH.search(event.message) is not None
    )


def is_total_mismatch(event: Event) -> bool:
    """True for push's warning that Dynamics' total differs from the shop's.

    Tolerant by design: a ``push`` warning about an order whose text names a total and says it
    differs (``differs``, ``different``, ``difference``) or mismatches.
    """
    return (
        event.woo_id is not None
        and event.step == "push"
        and event.level in ALERT_LEVELS
        and _TOTAL.search(event.message) is not None
        and _MISMATCH.search(event.message) is not None
    )


def event_conditions(
    events: Iterable[Event],
    numbers: Mapping[int, str],
    total_mismatches: Mapping[int, str] | None = None,
) -> list[Condition]:
    """One-shot conditions from the events of one run (plus mismatches the caller names).

    ``numbers`` maps order ids to shop order numbers for the messages.
    """
    found: dict[str, Condition] = {}
    mismatches: dict[int, str] = {}
    for event in events:
        if event.woo_id is None:
            continue
        if is_changed_after_push(event):
            stamp = event.at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
            key = f"changed:{event.woo_id}:{stamp}"
            label = order_label(event.woo_id, numbers.get(event.woo_id))
            found[key] = Condition(key, "changed", f"{label} {clean_text(event.message)}")
        elif is_total_mismatch(event):
            mismatches.setdefault(event.woo_id, event.message)
    for woo_id, message in (total_mismatches or {}).items():
        mismatches.setdefault(woo_id, message)
    for woo_id, message in sorted(mismatches.items()):
        label = order_label(woo_id, numbers.get(woo_id))
        key = f"mismatch:{woo_id}"
        found[key] = Condition(key, "mismatch", f"{label}: {clean_text(message)}")
    return list(found.values())


def event_order_ids(events: Iterable[Event]) -> set[int]:
    """Ids of orders named by alerting events (to look their numbers up)."""
    return {
        e.woo_id
        for e in events
        if e.woo_id is not None and (is_changed_after_push(e) or is_total_mismatch(e))
    }


# -- reachability --------------------------------------------------------------------------------


def _count_key(system: str) -> str:
    return f"alerts.unreachable.{system}.count"


def _since_key(system: str) -> str:
    return f"alerts.unreachable.{system}.since"


def unreachable_runs(store: StateStore, system: str) -> int:
    """How many runs in a row could not reach ``system`` (``shop`` or ``dynamics``)."""
    value = store.get_value(_count_key(system))
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def record_reachability(
    store: StateStore, system: str, reachable: bool | None, now: datetime
) -> int:
    """Count this run's outcome for ``system``; return the consecutive failures so far.

    ``None`` (the run did not contact the system) leaves the count as it is.
    """
    count = unreachable_runs(store, system)
    if reachable is None:
        return count
    if reachable:
        if count:
            store.set_value(_count_key(system), "0")
        return 0
    if count == 0:
        store.set_value(_since_key(system), now.astimezone(UTC).isoformat())
    store.set_value(_count_key(system), str(count + 1))
    return count + 1


def unreachable_condition(store: StateStore, system: str, count: int) -> Condition | None:
    """The ``unreachable:<system>`` condition when ``count`` reached :data:`UNREACHABLE_RUNS`."""
    if count < UNREACHABLE_RUNS:
        return None
    since = store.get_value(_since_key(system))
    first = ""
    if since:
        try:
            first = f" since {datetime.fromisoformat(since):%Y-%m-%d %H:%M} UTC"
        except ValueError:
            first = ""
    name = SYSTEMS.get(system, system)
    # Stable text (no running count), so a still-unreachable system is not re-announced.
    return Condition(
        f"unreachable:{system}",
        "unreachable",
        f"{name} could not be reached in {UNREACHABLE_RUNS} or more runs in a row{first}",
        commands=("woo2d365 doctor",),
    )


def recovery_text(key: str, orders: Mapping[int, OrderRecord]) -> str:
    """The line that says a condition cleared: ``order 1234 is no longer held (now ready)``."""
    kind = kind_of(key)
    if kind == "unreachable":
        system = key.partition(":")[2]
        return f"{SYSTEMS.get(system, system)} is reachable again"
    woo_id = woo_id_of(key)
    if woo_id is None:
        return f"{key} has cleared"
    if kind == "refund":
        refund_id = key.rpartition(":")[2]
        return f"refund {refund_id} of {order_label(woo_id, None)} is no longer held or failed"
    record = orders.get(woo_id)
    if record is None:
        return f"{order_label(woo_id, None)} is no longer {kind}"
    now = record.state.value
    if record.state is OrderState.PUSHED and record.d365_number:
        now = f"in Dynamics as {record.d365_number}"
    return f"{order_label(woo_id, record.number)} is no longer {kind} (now {now})"
