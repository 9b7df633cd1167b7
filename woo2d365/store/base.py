"""The state store interface: the composite of the store's rooms.

Each room is a Protocol in its own module, with the records it holds: orders and their events
(:mod:`~woo2d365.store.orders`), the SKU map (:mod:`~woo2d365.store.sku_map`), runs, locks and
the key/value table (:mod:`~woo2d365.store.runs`), the Dynamics mirror
(:mod:`~woo2d365.store.mirror`), alerts (:mod:`~woo2d365.store.alerts`), fulfilment
(:mod:`~woo2d365.store.shipments`), refunds (:mod:`~woo2d365.store.refunds`) and stock
(:mod:`~woo2d365.store.stock`). :class:`StateStore` is all of them over one database; code that
needs one room asks for that room (docs/architecture.md, "The store's rooms").

Both backends (SQLite and MySQL/MariaDB) implement it with the same code and SQL in
:mod:`woo2d365.store.sql`; only the dialect differs. Every method is one transaction (or part of
the one of an open :meth:`StateStore.batch`) and safe to call from several threads of one process.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from woo2d365.store.alerts import AlertRecord as AlertRecord
from woo2d365.store.alerts import AlertStore
from woo2d365.store.mirror import CachedCustomer as CachedCustomer
from woo2d365.store.mirror import CachedItem as CachedItem
from woo2d365.store.mirror import DynamicsMirror
from woo2d365.store.orders import Event as Event
from woo2d365.store.orders import OrderRecord as OrderRecord
from woo2d365.store.orders import OrderStore
from woo2d365.store.orders import PulledOrder as PulledOrder
from woo2d365.store.refunds import RefundRecord as RefundRecord
from woo2d365.store.refunds import RefundStore
from woo2d365.store.runs import RunRecord as RunRecord
from woo2d365.store.runs import RunStore
from woo2d365.store.shipments import Fulfilment as Fulfilment
from woo2d365.store.shipments import FulfilmentStore
from woo2d365.store.shipments import InvoiceRecord as InvoiceRecord
from woo2d365.store.shipments import ShipmentReport as ShipmentReport
from woo2d365.store.sku_map import SkuMap
from woo2d365.store.sku_map import SkuMapping as SkuMapping
from woo2d365.store.sku_map import UpsertOutcome as UpsertOutcome
from woo2d365.store.stock import StockStore
from woo2d365.store.stock import StockTarget as StockTarget


class StateStore(
    OrderStore,
    SkuMap,
    RunStore,
    DynamicsMirror,
    AlertStore,
    FulfilmentStore,
    RefundStore,
    StockStore,
    Protocol,
):
    """What the pipeline and the CLI need from persistent state: every room, one database."""

    def migrate(self) -> int:
        """Apply pending migrations; return the schema version."""
        ...

    def scratch_copy(self) -> AbstractContextManager[StateStore]:
        """A throwaway store holding a copy of what the sync steps read (``sync --dry-run``
        runs them over it); this store is only read."""
        ...

    def schema_version(self) -> int:
        """The version of the applied schema (0 for an empty database)."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...

    def batch(self) -> AbstractContextManager[None]:
        """A block whose store calls share one transaction (committed at its end)."""
        ...

    def reopen(self) -> StateStore:
        """The same database through a connection of its own (for a heartbeat thread)."""
        ...
