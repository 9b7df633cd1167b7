"""The Dynamics mirror room of the store: items and customers as Dynamics last showed them, and
the cursors of their refreshes in the key/value table. An ERP target gets this room, not the
whole store (docs/architecture.md, "The store's rooms").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from woo2d365.store.runs import KeyValues
from woo2d365.store.sku_map import SkuMap


@dataclass(frozen=True)
class CachedItem:
    """A Dynamics item as mirrored in the store."""

    number: str
    id: str
    display_name: str
    blocked: bool
    last_modified: str = ""  # Dynamics' lastModifiedDateTime, verbatim
    blocked_reason: str = ""  # why it is blocked, when Dynamics says more than "blocked"


@dataclass(frozen=True)
class CachedCustomer:
    """A Dynamics customer found or created for an e-mail address."""

    email: str  # lower-cased key
    number: str
    id: str


class DynamicsMirror(KeyValues, Protocol):
    """The item mirror, the customer cache and the key/value table their cursors live in."""

    def upsert_items(self, items: list[CachedItem]) -> None:
        """Store or refresh mirrored items."""
        ...

    def replace_items(self, items: list[CachedItem]) -> None:
        """Replace the whole item mirror (a full refresh catches deletions)."""
        ...

    def items_by_number(self, numbers: list[str]) -> dict[str, CachedItem]:
        """Mirrored items for these numbers."""
        ...

    def item_count(self) -> int:
        """Number of mirrored items."""
        ...

    def get_customer(self, email: str) -> CachedCustomer | None:
        """The cached customer for an e-mail address (case-insensitive)."""
        ...

    def put_customer(self, customer: CachedCustomer) -> None:
        """Cache a customer for an e-mail address."""
        ...

    def count_customers_before(self, before: datetime) -> int:
        """Cached customers (e-mail → number) stored before ``before``."""
        ...

    def delete_customers_before(self, before: datetime) -> int:
        """Forget cached customers stored before ``before``; return how many."""
        ...


class MirrorAndSkuMap(DynamicsMirror, SkuMap, Protocol):
    """The mirror and the SKU map: a target that looks up, between full reads, the SKUs held
    orders did not find (Finance & Operations)."""
