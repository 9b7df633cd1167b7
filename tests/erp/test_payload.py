"""The exact Business Central request bodies built from fixture orders (snapshots) and their rules.

Snapshots live in tests/erp/snapshots/; after a deliberate change regenerate them with
``UPDATE_SNAPSHOTS=1 pytest tests/erp/test_payload.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.erp.fixtures import FEE_ACCOUNT, SHIPPING_ACCOUNT, fixture_orders, item_numbers_for
from woo2d365.erp.businesscentral.normalize import FieldNormalizer, is_valid_email
from woo2d365.erp.businesscentral.payload import (
    build_customer,
    build_sales_order,
    country_problems,
    external_document_number,
    json_number,
    line_basis,
    line_price,
)
from woo2d365.errors import OrderDataError
from woo2d365.model import LineKind, Order
from woo2d365.settings import OrdersSettings
from woo2d365.shop.mapping import order_from_shop

SNAPSHOTS = Path(__file__).parent / "snapshots"
ORDERS = OrdersSettings(shipping_account=SHIPPING_ACCOUNT, fee_account=FEE_ACCOUNT)
CENT = Decimal("0.01")


def _order(name: str) -> Order:
    return order_from_shop(fixture_orders()[name])


def _build(order: Order, orders: OrdersSettings = ORDERS) -> tuple[dict, tuple[str, ...]]:
    draft = build_sales_order(
        order, item_numbers=item_numbers_for(order), customer_number="C00010", orders=orders
    )
    return draft.payload, draft.warnings


def _check_snapshot(name: str, document: object) -> None:
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    path = SNAPSHOTS / f"{name}.json"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no snapshot {path.name}; run with UPDATE_SNAPSHOTS=1 and review it"
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(fixture_orders()))
def test_sales_order_payload_matches_snapshot(name: str) -> None:
    payload, warnings = _build(_order(name))
    _check_snapshot(f"sales_order_{name}", {"payload": payload, "warnings": list(warnings)})


@pytest.mark.parametrize("name", ["guest", "long_address"])
def test_customer_payload_matches_snapshot(name: str) -> None:
    draft = build_customer(_order(name))
    _check_snapshot(
        f"customer_{name}", {"payload": draft.payload, "warnings": list(draft.warnings)}
    )


@pytest.mark.parametrize("name", sorted(fixture_orders()))
def test_line_amounts_reproduce_the_shop_line_totals_to_the_cent(name: str) -> None:
    order = _order(name)
    payload, _ = _build(order)
    priced = [line for line in payload["salesOrderLines"] if line["lineType"] != "Comment"]
    shop_lines = [
        line
        for line in order.lines
        if line.kind is LineKind.ITEM or line_basis(line, order.prices_include_tax)[1] != 0
    ]
    assert len(priced) == len(shop_lines)
    for sent, shop in zip(priced, shop_lines, strict=True):
        quantity = Decimal(str(sent["quantity"]))
        unit = Decimal(str(sent["unitPrice"]))
        discount = Decimal(str(sent.get("discountAmount", 0)))
        amount = (quantity * unit).quantize(CENT, rounding=ROUND_HALF_UP) - discount
        assert amount == line_basis(shop, order.prices_include_tax)[1]
        assert discount >= 0
    if order.prices_include_tax:
        gross = sum(
            (Decimal(str(x["quantity"])) * Decimal(str(x["unitPrice"]))).quantize(CENT)
            - Decimal(str(x.get("discountAmount", 0)))
            for x in priced
        )
        assert gross == order.total


def test_payload_has_no_nulls_no_strings_for_numbers_and_no_sequence() -> None:
    for name in fixture_orders():
        payload, _ = _build(_order(name))
        text = json.dumps(payload)
        assert "null" not in text
        for line in payload["salesOrderLines"]:
            assert "sequence" not in line
            for key in ("quantity", "unitPrice", "discountAmount"):
                if key in line:
                    assert isinstance(line[key], int | float) and not isinstance(line[key], bool)


def test_order_date_is_the_utc_date_of_the_order() -> None:
    payload, _ = _build(_order("guest"))
    # created 2026-03-01 23:30 UTC, already 2 March in the shop's time zone
    assert payload["orderDate"] == "2026-03-01"


def test_external_document_number_is_prefix_plus_number_upper_case() -> None:
    assert external_document_number("wc-", "10234") == "WC-10234"


def test_an_over_long_external_document_number_is_an_order_error_not_cut() -> None:
    with pytest.raises(OrderDataError, match="35"):
        external_document_number("WEBSHOP-NEDERLAND-", "2026-000000012345678")


def test_long_texts_are_cut_with_a_warning_and_kept_in_comment_lines() -> None:
    payload, warnings = _build(_order("long_address"))
    assert len(payload["sellToCity"]) <= 30
    assert payload["sellToCity"] == "Sint-Michielsgestel-Den Dungen"
    assert len(payload["sellToAddressLine2"]) <= 50
    comments = [x["description"] for x in payload["salesOrderLines"] if x["lineType"] == "Comment"]
    assert any("Sint-Michielsgestel-Den Dungen-Gemonde-Maaskantje" in c for c in comments)
    assert all(len(c) <= 100 for c in comments)
    assert any("sellToCity cut to 30" in w for w in warnings)


def test_phone_keeps_only_the_characters_business_central_accepts() -> None:
    norm = FieldNormalizer()
    assert norm.phone("phone", "tel. +31 (0)73 555-0100 ext. 12") == "+31 (0)73 555-0100 . 12"
    assert norm.warnings
    clean = FieldNormalizer()
    assert clean.phone("phone", "+31 20 555 0100") == "+31 20 555 0100"
    assert clean.warnings == []


@pytest.mark.parametrize(
    ("address", "valid"),
    [
        ("o'brien+shop@example.ie", True),
        ("a.b@sub.example.co.uk", True),
        ("no-at-sign.example.com", False),
        ("two@@example.com", False),
        ("space in@example.com", False),
        ("nodot@localhost", False),
        ("dots..twice@example.com", False),
    ],
)
def test_email_check_follows_business_central(address: str, valid: bool) -> None:
    assert is_valid_email(address) is valid


def test_an_invalid_email_is_left_out_with_a_warning() -> None:
    order = _order("guest")
    broken = replace(order, billing=replace(order.billing, email="not an address"))
    payload, warnings = _build(broken)
    assert "email" not in payload
    assert any("not a valid e-mail" in w for w in warnings)


def test_shipping_without_an_account_is_an_order_error() -> None:
    with pytest.raises(OrderDataError, match=r"orders\.shipping_account"):
        _build(_order("guest"), OrdersSettings(fee_account=FEE_ACCOUNT))


def test_free_shipping_needs_no_account_and_sends_no_line() -> None:
    payload, _ = _build(_order("long_address"), OrdersSettings())
    assert [x["lineType"] for x in payload["salesOrderLines"]].count("Account") == 0


def test_unknown_country_codes_are_named() -> None:
    problems = country_problems(_order("guest"), {"NL", "BE"})
    assert problems == [
        "country code 'DE' of the billing address and shipping address is not known in "
        "Business Central (add it under Countries/Regions, or correct the order)"
    ]
    assert country_problems(_order("guest"), {"DE"}) == []
    assert country_problems(_order("guest"), None) == []


def test_json_number_keeps_decimal_digits_exactly() -> None:
    assert json_number(Decimal("19.99")) == 19.99
    assert json.dumps(json_number(Decimal("2.000"))) == "2"
    assert json.dumps(json_number(Decimal("7.01376"))) == "7.01376"


def test_line_price_uses_the_shelf_price_and_the_coupon_share() -> None:
    assert line_price(Decimal(3), Decimal("23.85"), Decimal("21.47")) == (
        Decimal("7.95"),
        Decimal("2.38"),
    )


def test_line_price_never_gives_a_negative_discount() -> None:
    unit, discount = line_price(Decimal(3), Decimal("10.00"), Decimal("10.01"))
    assert discount >= 0
    assert (unit * 3).quantize(CENT, rounding=ROUND_HALF_UP) - discount == Decimal("10.01")


@given(
    quantity=st.integers(min_value=1, max_value=500),
    before_cents=st.integers(min_value=0, max_value=10_000_000),
    discount_cents=st.integers(min_value=0, max_value=10_000_000),
)
def test_line_price_reproduces_any_line_total(
    quantity: int, before_cents: int, discount_cents: int
) -> None:
    before = Decimal(before_cents) / 100
    after = max(Decimal(0), before - Decimal(discount_cents) / 100)
    unit, discount = line_price(Decimal(quantity), before, after)
    assert discount >= 0
    assert unit == unit.quantize(Decimal("0.00001"))
    assert (unit * quantity).quantize(CENT, rounding=ROUND_HALF_UP) - discount == after


def test_a_shop_amount_with_three_decimals_is_matched_to_the_cent_without_a_negative_discount() -> (
    None
):
    # Found by the property test: a 3-decimal shop (16.521) once gave a discount of -0.001.
    unit, discount = line_price(Decimal("1"), Decimal("16.521"), Decimal("16.521"))
    assert discount >= 0
    assert (unit * 1).quantize(Decimal("0.01")) - discount == Decimal("16.52")
