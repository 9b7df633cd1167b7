"""The SKU map room of the store: shop SKUs linked to Dynamics item numbers, and the SKUs that
hold orders because nothing maps them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

UpsertOutcome = Literal["added", "updated", "unchanged"]


@dataclass(frozen=True)
class SkuMapping:
    """A shop SKU linked to a Dynamics item number."""

    sku: str
    item_number: str
    note: str
    updated_by: str
    updated_at: datetime


class SkuMap(Protocol):
    """The SKU map and the unmapped SKUs of held orders."""

    def map_sku(
        self, sku: str, item_number: str, note: str, by: str, now: datetime
    ) -> UpsertOutcome:
        """Add or update one mapping."""
        ...

    def map_skus(
        self, rows: list[tuple[str, str, str]], by: str, now: datetime
    ) -> list[UpsertOutcome]:
        """Add or update many mappings (sku, item_number, note) in one transaction."""
        ...

    def unmap_sku(self, sku: str) -> bool:
        """Remove a mapping; True if it existed."""
        ...

    def sku_mapping(self, sku: str) -> SkuMapping | None:
        """One mapping."""
        ...

    def sku_mappings(self, skus: list[str] | None = None) -> list[SkuMapping]:
        """All mappings (or those of ``skus``), ordered by SKU."""
        ...

    def set_held_skus(self, woo_id: int, skus: list[str]) -> None:
        """Replace the list of unmapped SKUs that hold an order."""
        ...

    def unmapped_skus(self) -> list[tuple[str, int]]:
        """SKUs on held orders without a mapping, with the number of orders each holds."""
        ...
