"""What Dynamics already has of the orders push is about to create (docs/architecture.md,
"Exactly once", step 2): the sales order with the order's key, or, once Dynamics deleted it
because it was fully invoiced, what was posted from it.

The sales orders are looked up per chunk (one request per 50 keys). What was posted is read
once per run, keys only, from a little before the shop creation time of the oldest order met
so far (an invoice is always posted after its order was placed in the shop), and read again
from further back only when an older order comes; just the keys it names are then traced.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from woo2d365.erp.base import DocumentRef, DocumentTrace, ErpTarget
from woo2d365.errors import OrderDataError
from woo2d365.model import Order
from woo2d365.shop.mapping import order_from_shop
from woo2d365.store.base import OrderRecord

POSTED_MARGIN = timedelta(days=1)
"""Posted documents are read from this long before the oldest order's shop creation time: room
for the shop's and Dynamics' clocks to differ."""


class DynamicsLookup:
    """Asks Dynamics which keys it has; one per push run, safe to share between threads."""

    def __init__(self, erp: ErpTarget, prefix: str) -> None:
        self._erp = erp
        self._prefix = prefix.strip().upper()
        self._since: datetime | None = None  # the posted keys read cover changes after this
        self._posted: set[str] = set()
        self._lock = threading.Lock()

    def traces(self, keys: Sequence[str], oldest: datetime | None) -> dict[str, DocumentTrace]:
        """What Dynamics has of each of these keys; keys it has nothing of are left out.

        ``oldest`` is the earliest shop creation time of the keys' orders (None: none known,
        so nothing posted is looked for)."""
        found = self._erp.find_many(keys) if keys else {}
        traces = {key: DocumentTrace(document) for key, document in found.items()}
        rest = [key for key in keys if key not in found]
        if not rest or oldest is None:
            return traces
        posted = self._posted_keys(oldest - POSTED_MARGIN)
        refs = [DocumentRef(key) for key in rest if key.upper() in posted]
        if refs:
            for ref, trace in self._erp.find_traces(refs).items():
                if trace.exists:
                    traces[ref.external_number] = trace
        return traces

    def _posted_keys(self, since: datetime) -> set[str]:
        """The keys with something posted after ``since``, read only when not covered yet."""
        with self._lock:
            if self._since is None or since < self._since:
                self._posted |= self._erp.posted_keys(self._prefix, since)
                self._since = since
            return self._posted


def order_key(erp: ErpTarget, record: OrderRecord, order: Order | None = None) -> str | None:
    """An order's key in Dynamics: the one fixed at its first claim, else what the ERP builds
    from the shop copy (``order``, when it is mapped already); None when its data cannot give
    one. The one place of this rule for push, ``retry --force`` and ``reconcile``."""
    if record.external_number:
        return record.external_number
    try:
        return erp.external_number(
            order if order is not None else order_from_shop(record.raw or {})
        )
    except OrderDataError:
        return None


def oldest_created(orders: Iterable[Order | None]) -> datetime | None:
    """The earliest shop creation time of these orders (those that could be read)."""
    return min((order.created_at for order in orders if order is not None), default=None)
