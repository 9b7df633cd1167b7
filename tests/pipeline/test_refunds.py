"""The refunds step's reading of shop ids it does not map (``parent_id``, an order's
``refunds[]``): bad shop data there is a refund left unread, never a crash of the step."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from woo2d365.pipeline import refunds
from woo2d365.store import SqlStore, open_store

BAD_IDS = ["abc", "²", "9" * 5000, 2**63, [1], {"id": 1}]
"""int() raised ValueError (text, "²", 5,000 digits) or TypeError (a list, an object); the
store's driver raised OverflowError for 2**63."""


@pytest.fixture
def state_store(tmp_path: Path) -> Iterator[SqlStore]:
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield store
    store.close()


def _state(store: SqlStore, shop: Any = None) -> Any:
    ctx = SimpleNamespace(store=store, log=SimpleNamespace(warning=print))
    options = SimpleNamespace(order_ids=[], dry_run=False)
    return SimpleNamespace(ctx=ctx, options=options, shop=shop)


@pytest.mark.parametrize("parent_id", BAD_IDS)
def test_a_refund_with_an_unreadable_parent_id_is_one_of_no_order_of_ours(
    state_store: SqlStore, parent_id: Any
) -> None:
    refund = {"id": 77, "parent_id": parent_id, "amount": "4.99",
              "date_created_gmt": "2026-03-02T10:00:00"}  # fmt: skip
    shop = SimpleNamespace(iter_refunds_created_after=lambda after: iter([[refund]]))
    state = _state(state_store, shop)
    refunds._discover(state)
    assert state.ctx.store.list_refunds() == []


@pytest.mark.parametrize(
    "listed", [[{"id": bad} for bad in BAD_IDS], ["x", None], 5, True, {"id": 1}]
)
def test_an_order_listing_its_refunds_unreadably_is_checked_without_a_crash(
    state_store: SqlStore, listed: Any
) -> None:
    state = _state(state_store)
    saved_at = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    refunds._check_order_refunds(state, 14, saved_at, {"id": 14, "refunds": listed})
