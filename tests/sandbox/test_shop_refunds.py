"""The shop emulator's refunds are WooCommerce 9.9's (docs/systems.md, "Refunds")."""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests

from tests.sandbox import test_shop_emulator as base
from tests.sandbox.test_shop_emulator import API, NOW, Clock, ShopFactory, call, sample_order

ca, make_shop = base.ca, base.make_shop  # the emulator module's fixtures


def _refunded_item(line: dict) -> str:
    (meta,) = [m for m in line["meta_data"] if m["key"] == "_refunded_item_id"]
    return str(meta["value"])


def test_a_line_refund_negates_the_line_and_names_the_order_line(make_shop: ShopFactory) -> None:
    shop = make_shop(clock=Clock(NOW))
    order = shop.add_order(sample_order(14))
    widget = order["line_items"][0]
    refund = shop.add_refund(14, reason="returned", quantities={widget["id"]: 1})
    body = call(shop, "GET", f"{API}/orders/14/refunds/{refund['id']}").json()
    assert "parent_id" not in body and "date_modified" not in body
    (line,) = body["line_items"]
    assert line["quantity"] == -1
    assert Decimal(line["total"]) == -Decimal(widget["total"]) / 2
    assert _refunded_item(line) == str(widget["id"])
    assert Decimal(body["amount"]) == -(Decimal(line["total"]) + Decimal(line["total_tax"]))
    listed = call(shop, "GET", f"{API}/orders/14").json()["refunds"]
    assert listed == [{"id": refund["id"], "reason": "returned", "total": "-" + body["amount"]}]


def test_get_refunds_lists_every_order_with_parent_id_after_a_date_and_in_pages(
    make_shop: ShopFactory,
) -> None:
    clock = Clock(NOW)
    shop = make_shop(clock=clock)
    shop.add_order(sample_order(14))
    shop.add_order(sample_order(15))
    first = shop.add_refund(14, amount="1.00")
    clock.advance(minutes=5)
    second = shop.add_refund(15, amount="2.00")
    third = shop.add_refund(14, amount="3.00")
    params = {"orderby": "id", "order": "asc", "per_page": 2, "dates_are_gmt": "true"}
    page = call(shop, "GET", f"{API}/refunds", params=params)
    assert page.headers["X-WP-Total"] == "3" and page.headers["X-WP-TotalPages"] == "2"
    assert [(r["id"], r["parent_id"]) for r in page.json()] == [
        (first["id"], 14),
        (second["id"], 15),
    ]
    assert 'rel="next"' in page.headers["Link"]
    after = (NOW.replace(tzinfo=None)).isoformat()
    later = call(shop, "GET", f"{API}/refunds", params={**params, "after": after}).json()
    assert [r["id"] for r in later] == [second["id"], third["id"]], "strictly after, GMT"


def test_status_refunded_refunds_the_rest_without_lines(make_shop: ShopFactory) -> None:
    shop = make_shop(clock=Clock(NOW))
    order = shop.add_order(sample_order(14))
    shop.add_refund(14, amount="5.00")
    with pytest.raises(ValueError, match="Invalid refund amount"):
        shop.add_refund(14, amount=order["total"])  # more than is left
    call(shop, "PUT", f"{API}/orders/14", json={"status": "refunded"})
    refunds = call(shop, "GET", f"{API}/orders/14/refunds").json()
    rest = refunds[0]
    assert rest["reason"] == "Order fully refunded." and rest["line_items"] == []
    assert Decimal(rest["amount"]) == Decimal(order["total"]) - Decimal("5.00")


def test_an_older_shop_has_no_get_refunds_but_the_order_endpoint(make_shop: ShopFactory) -> None:
    shop = make_shop()
    shop.serves_all_refunds = False
    shop.add_order(sample_order(14))
    assert call(shop, "GET", f"{API}/refunds").json()["code"] == "rest_no_route"
    assert call(shop, "GET", f"{API}/orders/14/refunds").status_code == 200
    assert call(shop, "GET", f"{API}/orders/99/refunds").status_code == 404
    response: requests.Response = call(shop, "GET", f"{API}/orders/14/refunds/1")
    assert response.json()["code"] == "woocommerce_rest_invalid_id"
