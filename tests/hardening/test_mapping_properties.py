"""Property tests: shop JSON → canonical order → Business Central bodies, for any order.

Orders come from the shop emulator's own :func:`build_order` (so money adds up the way
WooCommerce computes it) with random products, quantities, coupons, fees, currencies and texts,
then random JSON mutations of the kind plugins and data entry produce. Whatever comes in:

* the mapper and the payload builders raise nothing but the tool's own errors;
* every text fits its Business Central field (``docs/systems.md`` B2), counted as Business Central
  counts: UTF-16 code units, so an emoji takes two positions;
* the lines add up to the shop total to the cent, computed as Business Central does:
  ``round(quantity × unitPrice) − discountAmount`` per line, in the currency's precision.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from woo2d365.erp.businesscentral.normalize import is_valid_email
from woo2d365.erp.businesscentral.payload import build_customer, build_sales_order
from woo2d365.errors import Woo2D365Error
from woo2d365.model import LineKind, Order
from woo2d365.sandbox.shop_data import CATALOGUE, NO_SKU_PRODUCT, Product, build_order
from woo2d365.settings import OrdersSettings
from woo2d365.shop.mapping import order_from_shop

ORDERS = OrdersSettings(shipping_account="8400", fee_account="8410", document_prefix="WC-")
CREATED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PROPERTY_SETTINGS = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Field lengths of the API pages (``docs/systems.md`` B2), header and lines of a sales order.
SALES_ORDER_LIMITS = {
    "customerNumber": 20,
    "externalDocumentNumber": 35,
    "shipToName": 100,
    "shipToContact": 100,
    "sellToAddressLine1": 100,
    "sellToAddressLine2": 50,
    "sellToCity": 30,
    "sellToState": 30,
    "sellToCountry": 10,
    "sellToPostCode": 20,
    "shipToAddressLine1": 100,
    "shipToAddressLine2": 50,
    "shipToCity": 30,
    "shipToState": 30,
    "shipToCountry": 10,
    "shipToPostCode": 20,
    "currencyCode": 10,
    "phoneNumber": 30,
    "email": 80,
}
LINE_LIMITS = {"lineObjectNumber": 20, "description": 100, "description2": 50}
CUSTOMER_LIMITS = {
    "displayName": 100,
    "addressLine1": 100,
    "addressLine2": 50,
    "city": 30,
    "state": 30,
    "country": 10,
    "postalCode": 20,
    "phoneNumber": 30,
    "email": 80,
}
PRECISION = {"JPY": Decimal("1")}  # every other currency of the generator: cents
CENT = Decimal("0.01")


def bc_length(value: str) -> int:
    """Positions a text takes in a Business Central field: UTF-16 code units."""
    return len(value.encode("utf-16-le", "surrogatepass")) // 2


# -- strategies ---------------------------------------------------------------------------------

TRICKY = [
    "",
    " ",
    "  Jan \n\t de   Vries  ",
    "AT&T",
    "AT&amp;T",
    "Caf&eacute; &#8211; &#x1F600;",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "שלום עולם",
    "شارع الملك فيصل 12",
    "Zoë 😀👨‍👩‍👧‍👦🇳🇱",
    "😀" * 60,
    "x" * 49 + "😀",
    "É" * 101,
    "Straße ß",
    "0031 (0)6-1234 5678 ext. 12 bel na 18u",
    "tel: +31 6 12345678",
    "jan@example.nl",
    "Jan.de.Vries+shop@Example.COM",
    "not an address",
    "a@b",
    "nl",
    "XK",
    "x" * 150,
]
TEXT = st.one_of(
    st.sampled_from(TRICKY),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=130),
)
MAYBE_TEXT = st.one_of(st.none(), TEXT)
SKUS = st.one_of(
    st.none(), st.just(""), st.sampled_from([p.sku for p in CATALOGUE]), st.text(max_size=30)
)
PRICES = st.decimals(min_value=0, max_value=999, places=2)
PRODUCTS = st.one_of(
    st.sampled_from([*CATALOGUE, NO_SKU_PRODUCT]),
    st.builds(
        Product,
        sku=SKUS,
        name=TEXT,
        price=PRICES,
        tax_rate=st.sampled_from([Decimal("21"), Decimal("9"), Decimal("0")]),
        product_id=st.integers(0, 99),
        variation_id=st.integers(0, 3),
        parent_name=MAYBE_TEXT,
    ),
)
ADDRESS_FIELDS = ("first_name", "last_name", "company", "address_1", "address_2", "city",
                  "state", "postcode", "country", "email", "phone")  # fmt: skip
ADDRESSES = st.fixed_dictionaries({name: MAYBE_TEXT for name in ADDRESS_FIELDS})
COUPONS = st.one_of(
    st.none(),
    st.tuples(st.just("pct"), st.just("percent"), st.decimals(1, 100, places=0)),
    st.tuples(st.just("fix"), st.just("fixed_cart"), st.decimals(0, 80, places=2)),
)
CURRENCIES = st.sampled_from([("EUR", 2), ("USD", 2), ("JPY", 0), ("EUR", 3)])


@st.composite
def shop_orders(draw: st.DrawFn) -> tuple[dict[str, Any], int]:
    """An order as the shop sends it, and its money decimals (``dp``)."""
    currency, dp = draw(CURRENCIES)
    items = draw(st.lists(st.tuples(PRODUCTS, st.integers(1, 40)), min_size=1, max_size=8))
    kwargs: dict[str, Any] = {
        "items": items,
        "created_gmt": CREATED,
        "prices_include_tax": draw(st.booleans()),
        "shipping": draw(st.one_of(st.none(), st.decimals(0, 60, places=2))),
        "fees": draw(st.lists(st.tuples(TEXT, st.decimals(-40, 40, places=2)), max_size=3)),
        "coupon": draw(COUPONS),
        "billing": draw(ADDRESSES),
        "shipping_address": draw(st.one_of(st.none(), st.just({}), ADDRESSES)),
        "guest": draw(st.booleans()),
        "currency": currency,
        "dp": dp,
        "number": draw(st.one_of(st.none(), st.text(min_size=1, max_size=40))),
    }
    try:
        raw = build_order(draw(st.integers(1, 10**9)), **kwargs)
    except (ValueError, ArithmeticError):
        assume(False)  # the generator itself cannot build this (e.g. a coupon over the cart)
    return raw, dp


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)
GARBAGE_MONEY = st.sampled_from(
    [
        *("", "abc", "1,50", "1e400", "-1e-400", "NaN", "Infinity", "12.3456789012345678901"),
        *("0x10", " 7.50 ", "-0.00", 7, 7.5, 1e300, True, None, [], {}),
    ]
)
# Keys whose text (or absence) cannot change an amount: the lines must still add up.
TEXT_KEYS = frozenset(
    {*ADDRESS_FIELDS, "name", "method_title", "method_id", "sku", "number", "status",
     "customer_note", "payment_method", "payment_method_title", "parent_name", "code"}
)  # fmt: skip


def _paths(raw: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Every (container path, key) in the order one level into its objects and lists."""
    paths: list[tuple[Any, ...]] = [(key,) for key in raw]
    for key in ("billing", "shipping"):
        if isinstance(raw.get(key), dict):
            paths += [(key, field) for field in raw[key]]
    for key in ("line_items", "shipping_lines", "fee_lines", "coupon_lines"):
        entries = raw.get(key)
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(entry, dict):
                paths += [(key, index, field) for field in entry]
    return paths


def _set(raw: dict[str, Any], path: tuple[Any, ...], value: Any, *, delete: bool) -> None:
    target: Any = raw
    for part in path[:-1]:
        target = target[part]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value


@st.composite
def mutated_orders(draw: st.DrawFn) -> tuple[dict[str, Any], int, bool]:
    """A built order with 0-4 random mutations; True when money or quantities were touched."""
    raw, dp = draw(shop_orders())
    money_touched = False
    for _ in range(draw(st.integers(0, 4))):
        paths = _paths(raw)
        path = draw(st.sampled_from(paths))
        kind = draw(st.sampled_from(["null", "text", "delete", "json", "money"]))
        value: Any = None
        if kind == "text":
            value = draw(TEXT)
        elif kind == "json":
            value = draw(JSON_VALUES)
        elif kind == "money":
            value = draw(GARBAGE_MONEY)
        _set(raw, path, value, delete=kind == "delete")
        harmless = kind in ("text", "null", "delete") and path[-1] in TEXT_KEYS
        money_touched = money_touched or not harmless
    return raw, dp, money_touched


# -- what must hold -----------------------------------------------------------------------------


def _item_numbers(order: Order) -> list[str | None]:
    return [
        f"ITEM-{i}" if line.kind is LineKind.ITEM else None for i, line in enumerate(order.lines)
    ]


def _build(raw: dict[str, Any]) -> tuple[Order, dict[str, Any], dict[str, Any]] | None:
    """Map and build; None when the tool refused the order with its own error."""
    try:
        order = order_from_shop(raw)
        sales_order = build_sales_order(
            order, item_numbers=_item_numbers(order), customer_number="C00010", orders=ORDERS
        ).payload
        customer = build_customer(order).payload
    except Woo2D365Error:
        return None
    return order, sales_order, customer


def _check_texts(body: dict[str, Any], limits: dict[str, int], where: str) -> None:
    for key, value in body.items():
        assert value is not None, f"{where}.{key} is null"
        if key in limits:
            assert isinstance(value, str), f"{where}.{key}"
            assert bc_length(value) <= limits[key], f"{where}.{key} ({bc_length(value)}): {value!r}"
            assert value == value.strip(), f"{where}.{key} has spaces at its ends"
    phone = body.get("phoneNumber", "")
    assert not any(ch.isalpha() for ch in phone), f"{where}.phoneNumber has letters: {phone!r}"
    if "email" in body:
        assert is_valid_email(body["email"]), f"{where}.email {body['email']!r}"


def _check_payload(sales_order: dict[str, Any], customer: dict[str, Any]) -> None:
    json.dumps(sales_order, allow_nan=False)  # JSON numbers only, no NaN or Infinity
    _check_texts({k: v for k, v in sales_order.items() if k != "salesOrderLines"},
                 SALES_ORDER_LIMITS, "salesOrder")  # fmt: skip
    assert sales_order["externalDocumentNumber"] == sales_order["externalDocumentNumber"].upper()
    for index, line in enumerate(sales_order["salesOrderLines"]):
        _check_texts(line, LINE_LIMITS, f"salesOrderLines[{index}]")
        assert "sequence" not in line
        for key in ("quantity", "unitPrice", "discountAmount"):
            if key in line:
                assert type(line[key]) in (int, float), f"{key} must be a JSON number"
        assert line.get("discountAmount", 0) >= 0
        if line["lineType"] != "Comment":
            assert line["quantity"] > 0
    _check_texts(customer, CUSTOMER_LIMITS, "customer")
    assert customer["displayName"]


def _bc_line_amount(line: dict[str, Any], precision: Decimal) -> Decimal:
    """A line's amount as Business Central computes it, in the document currency's precision."""
    quantity = Decimal(str(line["quantity"]))
    unit = Decimal(str(line["unitPrice"]))
    discount = Decimal(str(line.get("discountAmount", 0)))
    gross = (quantity * unit).quantize(precision, rounding=ROUND_HALF_UP)
    return gross - discount.quantize(precision, rounding=ROUND_HALF_UP)


def _check_amounts(order: Order, sales_order: dict[str, Any], dp: int) -> None:
    precision = PRECISION.get(order.currency, CENT)
    priced = [line for line in sales_order["salesOrderLines"] if line["lineType"] != "Comment"]
    total = sum((_bc_line_amount(line, precision) for line in priced), Decimal(0))
    expected = order.total if order.prices_include_tax else order.total - order.total_tax
    if dp <= 2:
        assert total == expected, f"lines {total} != shop {expected}"
    else:  # the shop shows fractions of a cent that no sales order can carry
        assert abs(total - expected) <= Decimal("0.005") * len(priced), (total, expected)


# -- the properties -----------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(order_and_dp=shop_orders())
def test_any_built_order_fits_business_central_and_adds_up_to_the_cent(
    order_and_dp: tuple[dict[str, Any], int],
) -> None:
    raw, dp = order_and_dp
    built = _build(raw)
    if built is None:
        return
    order, sales_order, customer = built
    _check_payload(sales_order, customer)
    _check_amounts(order, sales_order, dp)


@PROPERTY_SETTINGS
@given(mutated=mutated_orders())
def test_any_mutated_order_is_refused_with_the_tools_own_error_or_fits(
    mutated: tuple[dict[str, Any], int, bool],
) -> None:
    raw, dp, money_touched = mutated
    built = _build(raw)  # anything but a Woo2D365Error fails the test here
    if built is None:
        return
    order, sales_order, customer = built
    _check_payload(sales_order, customer)
    if not money_touched:
        _check_amounts(order, sales_order, dp)


@settings(max_examples=200, deadline=None)
@given(raw=JSON_VALUES)
def test_arbitrary_json_never_breaks_the_mapper(raw: Any) -> None:
    with contextlib.suppress(Woo2D365Error):
        order_from_shop(raw)


def test_an_emoji_counts_two_positions_of_a_business_central_field() -> None:
    # 99 letters and an emoji: 100 code points, 101 UTF-16 units; Business Central refuses it.
    raw = build_order(
        9001,
        items=[(CATALOGUE[0], 1)],
        created_gmt=CREATED,
        billing={
            "first_name": "x" * 49,
            "last_name": "y" * 49 + "😀",
            "email": "e@example.nl",
            "country": "NL",
        },
    )
    built = _build(raw)
    assert built is not None
    _, sales_order, customer = built
    assert bc_length(sales_order["shipToName"]) <= 100
    assert bc_length(customer["displayName"]) <= 100
    assert sales_order["shipToName"] == "x" * 49 + " " + "y" * 49  # cut before the emoji


@pytest.mark.parametrize(
    "value", ["12.3456789012345678901", "1e400", 1e300, "-1e-400", "0.0000001", "123456789012.5"]
)
@pytest.mark.parametrize(
    "path",
    [
        ("total",),
        ("line_items", 0, "total"),
        ("line_items", 0, "quantity"),
        ("fee_lines", 0, "total"),
        ("shipping_lines", 0, "total"),
    ],
)
def test_absurd_amounts_are_refused_as_order_data_never_a_crash(
    value: Any, path: tuple[Any, ...]
) -> None:
    raw = build_order(
        9002,
        items=[(CATALOGUE[0], 2), (CATALOGUE[4], 1)],
        created_gmt=CREATED,
        shipping=Decimal("4.09"),
        fees=[("Verpakking", Decimal("1.50"))],
        billing={"email": "e@example.nl", "country": "NL", "first_name": "A"},
    )
    _set(raw, path, value, delete=False)
    built = _build(raw)  # anything but a Woo2D365Error fails here
    if built is not None:
        _check_payload(built[1], built[2])


def test_a_unit_price_with_too_many_digits_for_a_json_number_holds_the_order() -> None:
    raw = build_order(
        9003, items=[(CATALOGUE[0], 1)], created_gmt=CREATED, billing={"email": "e@example.nl"}
    )
    line = raw["line_items"][0]
    line.update(quantity="0.00003", subtotal="99999999.98", total="99999999.98")
    assert _build(raw) is None  # an OrderDataError: the order is held, the run goes on
