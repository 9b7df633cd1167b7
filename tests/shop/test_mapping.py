"""Shop JSON → canonical Order, on the order captured from a real WooCommerce 9.9.5 shop."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from woo2d365.errors import OrderDataError
from woo2d365.model import LineKind
from woo2d365.sandbox.shop_data import SHIRT_PARENT_SKU, realistic_orders
from woo2d365.shop.mapping import (
    content_fingerprint,
    decode_text,
    email_of,
    modified_at_of,
    order_from_shop,
)
from woo2d365.shop.refunds import id_or_zero, refund_from_shop

SAMPLES = Path(__file__).parent / "samples"


@pytest.fixture
def sample() -> dict[str, Any]:
    """The real HPOS order (``woocommerce-samples/order-hpos-wc9.9.5.json``)."""
    return json.loads((SAMPLES / "order-hpos-wc9.9.5.json").read_text(encoding="utf-8"))


def _variation(line_id: int, variation_id: int, sku: str | None, size: str) -> dict[str, Any]:
    return {
        "id": line_id,
        "name": f"T-Shirt - {size}",
        "product_id": 11,
        "variation_id": variation_id,
        "quantity": 1,
        "subtotal": "13.50",
        "subtotal_tax": "0.00",
        "total": "13.50",
        "total_tax": "0.00",
        "meta_data": [
            {"id": 19, "key": "size", "value": size, "display_key": "Size", "display_value": size}
        ],
        "sku": sku,
        "price": 13.5,
        "parent_name": "T-Shirt",
    }


def test_sample_order_maps_header_fields(sample: dict[str, Any]) -> None:
    order = order_from_shop(sample)
    assert (order.woo_id, order.number, order.status, order.currency) == (
        14,
        "14",
        "completed",
        "EUR",
    )
    assert order.prices_include_tax is False
    assert order.total == Decimal("58.38") and order.total_tax == Decimal("0.00")
    assert order.is_guest and order.email == "erika@example.com"
    assert order.payment_method == "bacs"
    assert order.created_at == datetime(2026, 11, 22, 5, 46, 56, tzinfo=UTC)
    assert order.modified_at == datetime(2026, 11, 22, 5, 48, 45, tzinfo=UTC)


def test_email_of_reads_the_address_the_mapped_order_has_without_mapping_it(
    sample: dict[str, Any],
) -> None:
    for raw in realistic_orders(40, seed=3, start_gmt=datetime(2026, 1, 5, tzinfo=UTC)):
        assert email_of(raw) == order_from_shop(raw).email
    sample["billing"]["email"] = "  Jan&amp;Co@Example.NL "
    assert email_of(sample) == order_from_shop(sample).email == "Jan&Co@Example.NL"
    sample["billing"] = []  # PHP's empty array
    assert email_of(sample) == order_from_shop(sample).email == ""
    sample["line_items"] = "not a list"  # the order cannot be mapped; its address still reads
    assert email_of(sample) == ""
    assert email_of({"id": 1}) == ""


def test_dates_come_from_the_gmt_fields_not_the_shop_timezone(sample: dict[str, Any]) -> None:
    # date_modified is Berlin time (06:48:45); the mapping must read date_modified_gmt.
    assert modified_at_of(sample) == datetime(2026, 11, 22, 5, 48, 45, tzinfo=UTC)
    sample["date_modified_gmt"] = None
    with pytest.raises(OrderDataError, match="date_modified_gmt is missing"):
        modified_at_of(sample)


def test_sample_lines_add_up_to_the_order_total_to_the_cent(sample: dict[str, Any]) -> None:
    order = order_from_shop(sample)
    kinds = [line.kind for line in order.lines]
    assert kinds == [LineKind.ITEM, LineKind.ITEM, LineKind.SHIPPING]
    widget, shirt, shipping = order.lines
    assert (widget.sku, widget.quantity, widget.total) == (
        "WIDGET-001",
        Decimal(2),
        Decimal("39.98"),
    )
    assert (shirt.sku, shirt.variation_id, shirt.parent_sku_inherited) == ("SHIRT-M", 13, False)
    assert (shipping.name, shipping.total, shipping.sku) == ("Flat rate", Decimal("4.90"), None)
    assert order.lines_gross_total == order.total


def test_money_never_comes_from_the_float_price(sample: dict[str, Any]) -> None:
    sample["line_items"][0]["price"] = 0.1 + 0.2  # garbage in the float field must not matter
    order = order_from_shop(sample)
    assert order.lines[0].total == Decimal("39.98")
    assert all(isinstance(line.total, Decimal) for line in order.lines)


def test_three_decimal_and_zero_decimal_money_strings_are_kept_exactly(
    sample: dict[str, Any],
) -> None:
    sample["line_items"][0]["total"] = "39.985"
    sample["total"] = "1500"
    order = order_from_shop(sample)
    assert order.lines[0].total == Decimal("39.985")
    assert order.total == Decimal("1500")


@pytest.mark.parametrize(
    "bad",
    [
        *("12,50", "abc", None, "NaN", "Infinity", {"x": 1}, True),
        "1e1000000",  # beyond the decimal context: normalize() overflowed
        "1.0000000000000000000000000001",  # 29 digits: normalize() rounded it to 1, let it in
    ],
)
def test_unreadable_money_is_an_order_data_error_naming_the_field(
    sample: dict[str, Any], bad: Any
) -> None:
    sample["line_items"][1]["total"] = bad
    with pytest.raises(OrderDataError, match=r"order 14: line item 2: total is not an amount"):
        order_from_shop(sample)


@pytest.mark.parametrize("bad_id", [None, 0, "14", -3, True, 2**63])  # 2**63: past BIGINT
def test_an_order_without_a_valid_id_cannot_be_mapped(sample: dict[str, Any], bad_id: Any) -> None:
    sample["id"] = bad_id
    with pytest.raises(OrderDataError, match="without a valid id"):
        order_from_shop(sample)


def test_fee_lines_including_negative_fees_become_fee_lines(sample: dict[str, Any]) -> None:
    sample["fee_lines"] = [
        {"id": 9, "name": "Loyalty discount", "total": "-5.00", "total_tax": "-1.05"},
        {"id": 10, "name": "Gift wrap &amp; card", "total": "2.00", "total_tax": "0.42"},
    ]
    fees = [line for line in order_from_shop(sample).lines if line.kind is LineKind.FEE]
    assert [(f.name, f.total, f.total_tax, f.quantity) for f in fees] == [
        ("Loyalty discount", Decimal("-5.00"), Decimal("-1.05"), Decimal(1)),
        ("Gift wrap & card", Decimal("2.00"), Decimal("0.42"), Decimal(1)),
    ]


def test_deleted_product_line_keeps_its_money_with_no_sku(sample: dict[str, Any]) -> None:
    sample["line_items"][0].update({"product_id": 0, "sku": None})
    sample["line_items"][1]["sku"] = ""
    widget, shirt, _ = order_from_shop(sample).lines
    assert (widget.sku, widget.product_id, widget.total) == (None, 0, Decimal("39.98"))
    assert shirt.sku is None


def test_nulls_in_addresses_become_empty_and_entities_are_decoded(sample: dict[str, Any]) -> None:
    sample["billing"].update(
        {
            "company": None,
            "address_2": None,
            "phone": None,
            "last_name": "M&uuml;ller &amp; S&ouml;hne",
        }
    )
    sample["billing"]["city"] = "AT&T Town"  # a bare ampersand is text, not an entity
    sample["shipping"] = None
    sample["customer_note"] = None
    order = order_from_shop(sample)
    assert (order.billing.company, order.billing.line2, order.billing.phone) == ("", "", "")
    assert order.billing.last_name == "Müller & Söhne"
    assert order.billing.city == "AT&T Town"
    assert order.shipping.is_empty and order.customer_note == ""


def test_decode_text_leaves_entity_lookalikes_without_semicolon() -> None:
    assert decode_text("Smith &not Jones &amp; Co &#8211; Ltd") == "Smith &not Jones & Co – Ltd"


def test_a_variation_reporting_its_parents_sku_is_flagged(sample: dict[str, Any]) -> None:
    # The LIVE case: two variations without their own SKU both report the parent's "SHIRT".
    sample["line_items"][1:] = [_variation(2, 13, "SHIRT", "M"), _variation(4, 15, "SHIRT", "L")]
    lines = order_from_shop(sample).item_lines
    assert [line.parent_sku_inherited for line in lines] == [False, True, True]


def test_a_lone_variation_whose_sku_names_none_of_its_attributes_is_flagged(
    sample: dict[str, Any],
) -> None:
    sample["line_items"][1] = _variation(2, 13, "SHIRT", "M")
    assert order_from_shop(sample).lines[1].parent_sku_inherited is True


def test_variation_skus_of_their_own_are_not_flagged(sample: dict[str, Any]) -> None:
    sample["line_items"][1:] = [
        _variation(2, 13, "SHIRT-M", "M"),
        _variation(4, 15, "shirt_l_blue", "L"),
    ]
    assert [line.parent_sku_inherited for line in order_from_shop(sample).lines] == [
        False,
        False,
        False,
        False,
    ]


def test_a_parent_sku_beside_its_variations_own_sku_is_flagged(sample: dict[str, Any]) -> None:
    # One variation has its own SKU, the other reports the parent's, which prefixes it.
    sample["line_items"][1:] = [_variation(2, 13, "TS", "M"), _variation(4, 15, "TS-L", "L")]
    sample["line_items"][1]["meta_data"] = []
    flags = [line.parent_sku_inherited for line in order_from_shop(sample).item_lines]
    assert flags == [False, True, False]


def test_coupon_codes_and_decimal_quantities_are_kept(sample: dict[str, Any]) -> None:
    sample["coupon_lines"] = [
        {"id": 7, "code": "summer10", "discount": "1.00"},
        {"id": 8, "code": None},
    ]
    sample["line_items"][0]["quantity"] = "1.5"
    order = order_from_shop(sample)
    assert order.coupon_codes == ("summer10",)
    assert order.lines[0].quantity == Decimal("1.5")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("line_items", {"id": 1}, "line_items is not a list of objects"),
        ("line_items", ["x"], "line_items is not a list of objects"),
        ("billing", "Erika", "billing is not an address object"),
        ("date_created_gmt", "yesterday", "date_created_gmt is not a date"),
        # Year 1 with an offset overflowed astimezone(); year 999 was stored as "999-12-31 …",
        # which the store could not read back, nor MySQL keep.
        ("date_created_gmt", "0001-01-01T00:00:00+01:00", "date_created_gmt is not a date"),
        ("date_created_gmt", "0999-12-31T23:00:00", "date_created_gmt is not a date"),
        ("date_modified_gmt", "9999-12-31T23:00:00-02:00", "date_modified_gmt is not a date"),
    ],
)
def test_malformed_structures_raise_order_data_errors(
    sample: dict[str, Any], field: str, value: Any, message: str
) -> None:
    sample[field] = value
    with pytest.raises(OrderDataError, match=message):
        order_from_shop(sample)


@pytest.mark.parametrize(
    "digits",
    [
        *("²", "١٢", "4²"),  # str.isdigit() says yes to these, int() does not (or differs)
        "9" * 5000,  # int() refuses more than 4,300 digits with a ValueError
        str(2**63),  # more than the store's BIGINT keeps
    ],
)
def test_an_id_in_digits_other_than_ascii_or_too_long_is_an_order_data_error(
    sample: dict[str, Any], digits: str
) -> None:
    sample["customer_id"] = digits
    with pytest.raises(OrderDataError, match="order 14: customer_id is not a whole number"):
        order_from_shop(sample)


def test_an_id_with_leading_zeros_is_its_number_however_many_zeros() -> None:
    assert id_or_zero("0012") == 12
    assert id_or_zero("0" * 4300 + "7") == 7  # int() counts the zeros against its 4,300 digits
    assert id_or_zero("0" * 30) == 0


def test_fingerprint_ignores_our_own_write_back_and_modification_times(
    sample: dict[str, Any],
) -> None:
    after_write_back = copy.deepcopy(sample)
    after_write_back["date_modified"] = "2026-11-22T07:00:00"
    after_write_back["date_modified_gmt"] = "2026-11-22T06:00:00"
    after_write_back["meta_data"].append(
        {"id": 99, "key": "_woo2d365_sales_order", "value": "SO-1"}
    )
    assert content_fingerprint(after_write_back) == content_fingerprint(sample)

    someone_elses_meta = copy.deepcopy(sample)
    someone_elses_meta["meta_data"][1]["value"] = "edited"
    assert content_fingerprint(someone_elses_meta) != content_fingerprint(sample)

    refunded = copy.deepcopy(after_write_back)
    refunded["status"] = "refunded"
    assert content_fingerprint(refunded) != content_fingerprint(sample)


def test_every_realistic_order_maps_and_its_lines_add_up_to_its_total() -> None:
    orders = [
        order_from_shop(raw)
        for raw in realistic_orders(300, start_gmt=datetime(2026, 1, 5, tzinfo=UTC))
    ]
    assert all(order.lines_gross_total == order.total for order in orders)
    flagged = {
        (line.sku, line.parent_sku_inherited)
        for order in orders
        for line in order.item_lines
        if line.variation_id
    }
    assert flagged == {(SHIRT_PARENT_SKU, True), ("SHIRT-S", False), ("SHIRT-M", False)}


@pytest.mark.parametrize("meta_data", [5, True])
def test_a_refund_line_whose_meta_is_not_a_list_is_an_order_data_error(meta_data: Any) -> None:
    refund = {
        "id": 77,
        "amount": "4.99",
        "date_created_gmt": "2026-03-02T10:00:00",
        "line_items": [
            {
                "id": 80,
                "quantity": -1,
                "total": "-4.99",
                "total_tax": "0.00",
                "meta_data": meta_data,
            }
        ],
    }
    with pytest.raises(OrderDataError, match="no _refunded_item_id names the refunded order line"):
        refund_from_shop(refund, 14)  # a bare iteration of 5 or True raised TypeError
