"""Helpers for the validate and push tests: orders in the store, a run context, a shop writer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.erp.fixtures import CREATED
from woo2d365.errors import ShopUnreachable
from woo2d365.model import OrderState
from woo2d365.pipeline.context import RunContext
from woo2d365.sandbox.shop_data import DEFAULT_BILLING, Product, build_order
from woo2d365.settings import Settings
from woo2d365.shop.client import SALES_ORDER_META_KEY
from woo2d365.shop.mapping import order_from_shop
from woo2d365.store.base import PulledOrder, StateStore


def put_order(store: StateStore, raw: dict[str, Any]) -> int:
    """Store a shop order as pull would (state ``new``); return its id."""
    order = order_from_shop(raw)
    store.save_pulled_order(
        PulledOrder(
            woo_id=order.woo_id,
            number=order.number,
            shop_status=order.status,
            shop_modified_at=order.modified_at,
            currency=order.currency,
            total=str(order.total),
            raw=raw,
        )
    )
    return order.woo_id


def simple_order(woo_id: int, items: list[tuple[Product, int]], **kwargs: Any) -> dict[str, Any]:
    """A shop order with these items, shipping 4.09 and a per-id e-mail address."""
    billing = {**DEFAULT_BILLING, "email": f"buyer{woo_id}@example.nl"}
    return build_order(
        woo_id,
        items=items,
        created_gmt=CREATED,
        shipping=kwargs.pop("shipping", Decimal("4.09")),
        billing=kwargs.pop("billing", billing),
        **kwargs,
    )


class Clock:
    """A clock tests move forward."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def make_context(
    settings: Settings, store: StateStore, clock: Callable[[], datetime] | None = None
) -> RunContext:
    """A run context on this store with a test clock."""
    return RunContext(settings=settings, store=store, clock=clock or Clock(), worker="test:1")


def state_of(store: StateStore, woo_id: int) -> OrderState:
    """The order's state."""
    record = store.get_order(woo_id)
    assert record is not None
    return record.state


@dataclass
class RecordingShop:
    """A shop writer that records notes and meta, or fails while ``down``."""

    down: bool = False
    notes: list[tuple[int, str]] = field(default_factory=list)
    meta: list[tuple[int, str, str]] = field(default_factory=list)

    def write_back_note(self, woo_id: int, sales_order_number: str, *, again: bool) -> None:
        if self.down:
            raise ShopUnreachable("shop cannot be reached: connection refused")
        note = (woo_id, f"Created in Dynamics 365 as sales order {sales_order_number}")
        if again and note in self.notes:
            return
        self.notes.append(note)

    def set_sales_order_numbers(self, numbers: Mapping[int, str]) -> dict[int, str]:
        if self.down:
            raise ShopUnreachable("shop cannot be reached: connection refused")
        self.meta.extend((woo_id, SALES_ORDER_META_KEY, n) for woo_id, n in numbers.items())
        return {}
