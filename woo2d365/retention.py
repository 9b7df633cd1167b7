"""Retention (GDPR): ``woo2d365 prune --older-than 180d``.

What is removed, for everything older than the cut-off (``now - older_than``):

* **events** (the per-order and per-run history; their texts can name customers);
* the **personal data in the stored shop JSON** of orders that are final (``pushed`` and
  ``skipped``) and were last updated before the cut-off: billing and shipping names, company,
  street, city, postcode, e-mail and phone; the customer note, IP address and user agent; the
  order key and payment URL (they open the order in the shop); the values of meta data (plugins
  keep personal data there) and refund reasons. Kept: ids, numbers, statuses, dates, currency,
  totals and taxes, country and state, the lines with their SKUs, quantities and amounts, the
  shipping and fee lines, and our own ``_woo2d365_*`` meta. The order's row (state, Dynamics
  number, totals) is untouched. A ``_woo2d365_pruned`` entry records when, and the content
  fingerprint of the original, so a later change in the shop can still be told from our pruning;
* **cached customers** (``bc_customers``: e-mail address → Business Central customer number)
  cached before the cut-off. This is safe: the cache only saves requests; on a miss the customer
  is looked up by e-mail in Business Central before one would be created, and cached again.
  Dynamics itself, the system of record, keeps its customer cards.

Orders waiting for a person (``held``, ``failed``) and orders still on their way keep their data:
they are not done. Each run remembers its cut-off (``retention.pruned_until``) so the next one only
reads orders that reached the cut-off since; an order that changed meanwhile has a newer
``updated_at`` and comes round again. Pruning is idempotent.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from woo2d365.errors import UsageError
from woo2d365.model import OrderState
from woo2d365.monitoring.durations import parse_duration
from woo2d365.shop.mapping import PRUNED_MARK, content_fingerprint
from woo2d365.store.base import StateStore

PRUNED_KEY = "retention.pruned_until"
OWN_META_PREFIX = "_woo2d365"
FINAL_STATES = (OrderState.PUSHED, OrderState.SKIPPED)
BATCH = 500
MINIMUM_AGE = timedelta(days=1)

ADDRESS_FIELDS = (
    "first_name",
    "last_name",
    "company",
    "address_1",
    "address_2",
    "city",
    "postcode",
    "email",
    "phone",
)
"""Personal fields of ``billing`` and ``shipping``; ``country`` and ``state`` are kept."""

ORDER_FIELDS = (
    "customer_note",
    "customer_ip_address",
    "customer_user_agent",
    "order_key",
    "payment_url",
)
"""Personal (or order-opening) top-level fields, emptied."""


@dataclass(frozen=True)
class PruneReport:
    """What ``prune`` removed (or, in a dry run, would remove)."""

    cutoff: datetime
    events: int
    orders: int
    customers: int
    dry_run: bool

    def summary(self, older_than: str) -> str:
        """One line for the operator."""
        verb = "would remove" if self.dry_run else "removed"
        line = (
            f"prune: {verb} {self.events} events, the personal data of {self.orders} pushed or "
            f"skipped orders and {self.customers} cached customer e-mail addresses older than "
            f"{older_than} (before {self.cutoff:%Y-%m-%d %H:%M} UTC)"
        )
        return line + ("; dry run, nothing was changed" if self.dry_run else "")


def parse_retention(value: str) -> timedelta:
    """``--older-than`` → :class:`timedelta`; at least a day, so ``180m`` is not taken for days."""
    age = parse_duration(value, option="--older-than")
    if age < MINIMUM_AGE:
        raise UsageError(
            f"--older-than {value!r} is less than a day; retention is counted in days (180d)"
        )
    return age


def scrub_order(raw: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A copy of the shop JSON without personal data (see the module docstring); idempotent."""
    if isinstance(raw.get(PRUNED_MARK), dict):
        fingerprint = raw[PRUNED_MARK].get("fingerprint")
    else:
        fingerprint = content_fingerprint(raw)
    clean = copy.deepcopy(raw)
    for part in ("billing", "shipping"):
        _blank(clean.get(part), ADDRESS_FIELDS)
    _blank(clean, ORDER_FIELDS)
    _scrub_meta(clean.get("meta_data"), keep_own=True)
    for key in ("line_items", "shipping_lines", "fee_lines", "coupon_lines", "tax_lines"):
        for line in _dicts(clean.get(key)):
            _scrub_meta(line.get("meta_data"), keep_own=True)
    for refund in _dicts(clean.get("refunds")):
        _blank(refund, ("reason",))
    clean[PRUNED_MARK] = {"at": now.astimezone(UTC).isoformat(), "fingerprint": fingerprint}
    return clean


def _blank(data: Any, names: Iterable[str]) -> None:
    """Empty the fields ``names`` of ``data`` that it has (nothing when it is not an object)."""
    if not isinstance(data, dict):
        return
    for name in names:
        if name in data:
            data[name] = ""


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The objects of a JSON list (none when ``value`` is not a list)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _scrub_meta(meta: Any, *, keep_own: bool) -> None:
    if not isinstance(meta, list):
        return
    for entry in meta:
        if not isinstance(entry, dict):
            continue
        if keep_own and str(entry.get("key", "")).startswith(OWN_META_PREFIX):
            continue
        for name in ("value", "display_value"):
            if name in entry:
                entry[name] = None


def prune(
    store: StateStore, older_than: timedelta, *, now: datetime, dry_run: bool = False
) -> PruneReport:
    """Remove old events, personal data of old final orders and old cached customers."""
    cutoff = now - older_than
    since = _pruned_until(store)
    # Orders updated before the previous cut-off were pruned then (or changed, and so updated).
    orders_start = min(since, cutoff) if since is not None else None
    if dry_run:
        return PruneReport(
            cutoff=cutoff,
            events=store.count_events_before(cutoff),
            orders=sum(
                store.count_orders_updated_between(state, orders_start, cutoff)
                for state in FINAL_STATES
            ),
            customers=store.count_customers_before(cutoff),
            dry_run=True,
        )
    orders = 0
    for state in FINAL_STATES:
        orders += _prune_orders(store, state, orders_start, cutoff, now)
    events = store.delete_events_before(cutoff)
    customers = store.delete_customers_before(cutoff)
    if since is None or cutoff > since:
        store.set_value(PRUNED_KEY, cutoff.astimezone(UTC).isoformat())
    return PruneReport(cutoff, events, orders, customers, dry_run=False)


def _prune_orders(
    store: StateStore, state: OrderState, start: datetime | None, end: datetime, now: datetime
) -> int:
    changed = 0
    after: tuple[datetime, int] | None = None
    while True:
        batch = store.order_raws_updated_between(state, start, end, after=after, limit=BATCH)
        if not batch:
            return changed
        rows = [(woo_id, scrub_order(raw, now), at) for woo_id, at, raw in batch]
        changed += store.replace_raws(rows)
        last_id, last_at, _ = batch[-1]
        after = (last_at, last_id)
        if len(batch) < BATCH:
            return changed


def _pruned_until(store: StateStore) -> datetime | None:
    value = store.get_value(PRUNED_KEY)
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
