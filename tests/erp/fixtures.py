"""Fixture orders for the Business Central tests, built with the shop emulator's own arithmetic.

Each covers one case the payload must get right: a coupon, prices incl. tax, shipping with tax, a
fee (and a negative one), a guest, a long address. Shared by tests/erp and tests/pipeline.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from woo2d365.sandbox.shop_data import (
    CATALOGUE,
    DEFAULT_BILLING,
    build_order,
    product_by_sku,
)

SHIPPING_ACCOUNT = "8400"
FEE_ACCOUNT = "8410"
CREATED = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)  # 00:30 in Amsterdam: orderDate stays UTC

LONG_ADDRESS: dict[str, Any] = {
    "first_name": "Maximiliane-Charlotte",
    "last_name": "von Hohenzollern-Sigmaringen und Wittelsbach-Zweibrücken-Birkenfeld",
    "company": "",
    "address_1": "Sint-Jan-de-Doperstraat 1234, achterom via de groene poort naast de garage",
    "address_2": "Tweede verdieping, appartement 7b, bel aanbellen bij de buren svp",
    "city": "Sint-Michielsgestel-Den Dungen-Gemonde-Maaskantje",
    "state": "Noord-Brabant",
    "postcode": "5271 ab",
    "country": "nl",
    "email": "Max.Hohenzollern@Example.COM",
    "phone": "tel. +31 (0)73 555 0100 ext. 12 (alleen overdag bereikbaar)",
}


def _p(sku: str) -> Any:
    return product_by_sku(sku)


def fixture_orders() -> dict[str, dict[str, Any]]:
    """Name → shop order JSON (as ``GET /wc/v3/orders/{id}`` returns it)."""
    return {
        "coupon_percent_excl": build_order(
            5001,
            items=[(_p("WIDGET-001"), 2), (_p("BELL-DINGDONG"), 3)],
            coupon=("welkom10", "percent", Decimal("10")),
            shipping=Decimal("4.09"),
            customer_id=2,
            created_gmt=CREATED,
        ),
        "prices_incl_fixed_coupon": build_order(
            5002,
            items=[(_p("SOCKS-3P"), 2), (_p("UMBRELLA-XL"), 3)],
            prices_include_tax=True,
            coupon=("sokken-actie", "fixed_cart", Decimal("7.50")),
            shipping=Decimal("4.09"),
            customer_id=7,
            created_gmt=CREATED,
        ),
        "prices_incl_percent_coupon": build_order(
            5003,
            items=[(_p("GRINDER-ELG"), 1), (_p("TORCH-CB"), 3), (_p("PUMP-DLX"), 1)],
            prices_include_tax=True,
            coupon=("zomer15", "percent", Decimal("15")),
            shipping=Decimal("4.09"),
            customer_id=3,
            created_gmt=CREATED,
        ),
        "shipping_with_tax": build_order(
            5004,
            items=[(_p("SHIRT-S"), 1), (_p("SHIRT-M"), 2)],
            shipping=Decimal("6.61"),
            shipping_tax_rate=Decimal("21"),
            customer_id=4,
            created_gmt=CREATED,
        ),
        "fees": build_order(
            5005,
            items=[(_p("PUMP-DLX"), 1), (_p("BELL-DINGDONG"), 2)],
            fees=[("Cadeauverpakking", Decimal("2.50")), ("Korting vaste klant", Decimal("-5.00"))],
            shipping=Decimal("4.09"),
            customer_id=5,
            created_gmt=CREATED,
        ),
        "guest": build_order(
            5006,
            items=[(_p("GRINDER-ELG"), 1)],
            guest=True,
            billing={
                **DEFAULT_BILLING,
                "first_name": "Siobhán",
                "last_name": "O'Brien",
                "address_1": "Invalidenstraße 117",
                "city": "Berlin",
                "postcode": "10115",
                "country": "DE",
                "email": "o'brien+shop@example.ie",
                "phone": "+49 30 555 0117",
            },
            shipping=Decimal("4.09"),
            created_gmt=CREATED,
        ),
        "long_address": build_order(
            5007,
            items=[(_p("UMBRELLA-XL"), 1)],
            guest=True,
            billing=LONG_ADDRESS,
            shipping_address={},
            shipping=Decimal("0"),
            created_gmt=CREATED,
        ),
    }


def item_numbers_for(order: Any) -> list[str | None]:
    """Each line's item number when SKUs are the item numbers (the catalogue's case)."""
    from woo2d365.model import LineKind

    return [
        (line.sku or "").upper() or None if line.kind is LineKind.ITEM else None
        for line in order.lines
    ]


def catalogue_items() -> list[tuple[str, str, Decimal]]:
    """``(number, name, VAT %)`` of every catalogue product with a SKU (for the emulator)."""
    seen: dict[str, tuple[str, str, Decimal]] = {}
    for product in CATALOGUE:
        if product.sku and product.sku.upper() not in seen:
            seen[product.sku.upper()] = (product.sku.upper(), product.name[:100], product.tax_rate)
    return list(seen.values())
