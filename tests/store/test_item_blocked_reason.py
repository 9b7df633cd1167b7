"""Why an item is blocked is kept with the mirrored item (migration 9), on SQLite and MariaDB."""

from __future__ import annotations

from woo2d365.store import SqlStore
from woo2d365.store.base import CachedItem


def test_the_reason_an_item_is_blocked_is_stored_and_read_back(store: SqlStore) -> None:
    store.replace_items(
        [
            CachedItem("MUG-1", "mug-1", "Mug", True, blocked_reason="stopped for sales"),
            CachedItem("MUG-2", "MUG-2", "Mug 2", False),
        ]
    )
    found = store.items_by_number(["MUG-1", "MUG-2"])
    assert found["MUG-1"].blocked_reason == "stopped for sales"
    assert found["MUG-1"].id == "mug-1", "the exact item number, as F&O has it"
    assert found["MUG-2"].blocked_reason == "" and not found["MUG-2"].blocked
