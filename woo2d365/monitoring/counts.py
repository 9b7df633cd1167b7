"""What the store counts for monitoring: orders per state, the oldest order per open state.

``pushed`` is counted incrementally (see :func:`order_counts`); the status report, the check and
the metrics all read these.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from woo2d365.clock import utc_now
from woo2d365.errors import Woo2D365Error
from woo2d365.model import OrderState
from woo2d365.store.base import OrderRecord, StateStore

log = logging.getLogger("woo2d365.monitoring")

ATTENTION_STATES = (OrderState.HELD, OrderState.FAILED, OrderState.PUSHING)
"""What a person may have to act on (a ``pushing`` order is in doubt or being sent)."""


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


SYSTEM_NAMES = {"shop": "WooCommerce", "dynamics": "Dynamics 365"}
"""The systems a run can fail to reach, keyed as ``alerts.unreachable_runs`` counts them."""
