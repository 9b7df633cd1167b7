"""The WooCommerce emulator against plain ``requests`` over real sockets, and the order fixtures.

OAuth requests are signed by requests-oauthlib, independently of the emulator's own verifier.
Expected bodies and headers are those of the live shop (``docs/systems.md``, W1–W4).
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests_oauthlib import OAuth1

from woo2d365.sandbox.shop import ShopEmulator
from woo2d365.sandbox.shop_data import (
    CATALOGUE,
    SCENARIO_COUNT,
    SHIRT_PARENT_SKU,
    Product,
    build_order,
    deleted_product,
    product_by_sku,
    realistic_orders,
    unmapped_product,
)
from woo2d365.sandbox.tls import SandboxCA

KEY = "ck_" + "1a2b3c4d5e" * 4
SECRET = "cs_" + "9f8e7d6c5b" * 4
API = "/wp-json/wc/v3"
NOW = datetime(2026, 11, 22, 6, 0, 0, tzinfo=UTC)
TIMEOUT = 3

CANNOT_LIST = {
    "code": "woocommerce_rest_cannot_view",
    "message": "Sorry, you cannot list resources.",
    "data": {"status": 401},
}
SECRET_INVALID = {
    "code": "woocommerce_rest_authentication_error",
    "message": "Consumer secret is invalid.",
    "data": {"status": 401},
}
PER_PAGE_INVALID = {
    "code": "rest_invalid_param",
    "message": "Invalid parameter(s): per_page",
    "data": {
        "status": 400,
        "params": {"per_page": "per_page must be between 1 (inclusive) and 100 (inclusive)"},
        "details": {
            "per_page": {
                "code": "rest_out_of_bounds",
                "message": "per_page must be between 1 (inclusive) and 100 (inclusive)",
                "data": None,
            }
        },
    },
}
INVALID_ID = {
    "code": "woocommerce_rest_shop_order_invalid_id",
    "message": "Invalid ID.",
    "data": {"status": 404},
}


class Clock:
    """A settable clock for the emulator."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(scope="module")
def ca() -> Iterator[SandboxCA]:
    authority = SandboxCA()
    yield authority
    authority.cleanup()


ShopFactory = Callable[..., ShopEmulator]


@pytest.fixture
def make_shop(ca: SandboxCA) -> Iterator[ShopFactory]:
    started: list[ShopEmulator] = []

    def make(**options: Any) -> ShopEmulator:
        options.setdefault("consumer_key", KEY)
        options.setdefault("consumer_secret", SECRET)
        if options.setdefault("https", True):
            options.setdefault("ca", ca)
        shop = ShopEmulator(**options).start()
        started.append(shop)
        return shop

    yield make
    for shop in started:
        shop.stop()


def call(
    shop: ShopEmulator, method: str, path: str, *, auth: Any = (KEY, SECRET), **kwargs: Any
) -> requests.Response:
    """One request with a fresh connection, trusting the sandbox CA explicitly."""
    url = path if path.startswith("http") else shop.url + path
    return requests.request(
        method, url, auth=auth, verify=shop.ca_path or True, timeout=TIMEOUT, **kwargs
    )


def oauth(method: str = "HMAC-SHA256", kind: str = "query", secret: str = SECRET) -> OAuth1:
    return OAuth1(KEY, secret, signature_method=method, signature_type=kind)


def sample_order(order_id: int = 14, **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "items": [(CATALOGUE[0], 2), (product_by_sku("SHIRT-M"), 1)],
        "created_gmt": datetime(2026, 11, 22, 5, 40, 0, tzinfo=UTC),
        "shipping": Decimal("4.09"),
    }
    options.update(overrides)
    return build_order(order_id, **options)


def ids(response: requests.Response) -> list[int]:
    return [order["id"] for order in response.json()]


# --- authentication ----------------------------------------------------------------------------


def test_basic_auth_works_over_https(make_shop: ShopFactory) -> None:
    shop = make_shop()
    shop.add_order(sample_order())
    response = call(shop, "GET", f"{API}/orders")
    assert response.status_code == 200
    assert ids(response) == [14]
    assert shop.requests[-1].auth == "basic"


def test_basic_auth_is_ignored_over_http(make_shop: ShopFactory) -> None:
    shop = make_shop(https=False)
    shop.add_order(sample_order())
    response = call(shop, "GET", f"{API}/orders")
    assert response.status_code == 401
    assert response.json() == CANNOT_LIST


@pytest.mark.parametrize(("https", "expected"), [(True, 200), (False, 401)])
def test_query_auth_works_only_over_https(
    make_shop: ShopFactory, https: bool, expected: int
) -> None:
    shop = make_shop(https=https)
    params = {"consumer_key": KEY, "consumer_secret": SECRET}
    response = call(shop, "GET", f"{API}/orders", auth=None, params=params)
    assert response.status_code == expected
    if expected == 401:
        assert response.json() == CANNOT_LIST


def test_wrong_secret_is_refused_as_consumer_secret_invalid(make_shop: ShopFactory) -> None:
    shop = make_shop()
    response = call(shop, "GET", f"{API}/orders", auth=(KEY, "cs_" + "0" * 40))
    assert response.status_code == 401
    assert response.json() == SECRET_INVALID
    query = {"consumer_key": KEY, "consumer_secret": SECRET + "\n"}  # pasted with a newline
    assert call(shop, "GET", f"{API}/orders", auth=None, params=query).json() == SECRET_INVALID


def test_unknown_key_is_treated_as_anonymous(make_shop: ShopFactory) -> None:
    shop = make_shop()
    response = call(shop, "GET", f"{API}/orders", auth=("ck_" + "e" * 40, SECRET))
    assert response.status_code == 401
    assert response.json() == CANNOT_LIST


@pytest.mark.parametrize("method", ["HMAC-SHA256", "HMAC-SHA1"])
@pytest.mark.parametrize("kind", ["query", "auth_header"])
def test_oauth1_signed_by_requests_oauthlib_works_over_http(
    make_shop: ShopFactory, method: str, kind: str
) -> None:
    shop = make_shop(https=False)
    shop.add_orders(realistic_orders(5, start_gmt=NOW - timedelta(days=1)))
    params = {
        "status": "processing,completed",
        "modified_after": "2026-11-21T00:00:00",
        "dates_are_gmt": "true",
        "per_page": 2,
    }
    response = call(shop, "GET", f"{API}/orders", auth=oauth(method, kind), params=params)
    assert response.status_code == 200, response.text
    assert shop.requests[-1].auth == "oauth1"
    assert len(response.json()) == 2


def test_oauth1_with_a_wrong_secret_does_not_match(make_shop: ShopFactory) -> None:
    shop = make_shop(https=False)
    response = call(shop, "GET", f"{API}/orders", auth=oauth(secret="cs_" + "0" * 40))
    assert response.status_code == 401
    assert response.json()["message"] == "Invalid signature - provided signature does not match."


def test_oauth1_signature_covers_the_query(make_shop: ShopFactory) -> None:
    shop = make_shop(https=False)
    prepared = requests.Request(
        "GET", shop.url + f"{API}/orders?per_page=5", auth=oauth()
    ).prepare()
    assert prepared.url is not None
    prepared.url = prepared.url.replace("per_page=5", "per_page=6")
    with requests.Session() as session:
        response = session.send(prepared, timeout=TIMEOUT)
    assert response.status_code == 401
    assert "signature does not match" in response.json()["message"]


def test_oauth1_unsupported_signature_method_is_refused(make_shop: ShopFactory) -> None:
    shop = make_shop(https=False)
    response = call(shop, "GET", f"{API}/orders", auth=oauth("HMAC-SHA512"))
    assert response.status_code == 401
    assert response.json()["message"] == "Invalid signature - signature method is invalid."


def test_oauth1_unknown_key_is_invalid(make_shop: ShopFactory) -> None:
    shop = make_shop(https=False, consumer_key="ck_" + "b" * 40)
    response = call(shop, "GET", f"{API}/orders", auth=oauth())
    assert response.status_code == 401
    assert response.json() == {
        "code": "woocommerce_rest_authentication_error",
        "message": "Consumer key is invalid.",
        "data": {"status": 401},
    }


def test_oauth1_nonce_cannot_be_reused(make_shop: ShopFactory) -> None:
    shop = make_shop(https=False)
    prepared = requests.Request("GET", shop.url + f"{API}/orders", auth=oauth()).prepare()
    with requests.Session() as session:
        first = session.send(prepared, timeout=TIMEOUT)
        second = session.send(prepared, timeout=TIMEOUT)
    assert first.status_code == 200
    assert second.status_code == 401
    assert second.json()["message"] == "Invalid nonce - nonce has already been used."


@pytest.mark.parametrize(
    ("skew_minutes", "expected"), [(14, 200), (-14, 200), (16, 401), (-16, 401)]
)
def test_oauth1_timestamp_must_be_within_15_minutes_of_the_server_clock(
    make_shop: ShopFactory, skew_minutes: int, expected: int
) -> None:
    clock = Clock(datetime.now(UTC) + timedelta(minutes=skew_minutes))
    shop = make_shop(https=False, clock=clock)
    response = call(shop, "GET", f"{API}/orders", auth=oauth())
    assert response.status_code == expected
    if expected == 401:
        assert response.json()["message"] == "Invalid timestamp."


def test_oauth1_also_works_over_https_when_basic_is_absent(make_shop: ShopFactory) -> None:
    shop = make_shop()
    response = call(shop, "GET", f"{API}/orders", auth=oauth())
    assert response.status_code == 200
    assert shop.requests[-1].auth == "oauth1"


def test_read_only_key_can_read_but_not_write(make_shop: ShopFactory) -> None:
    shop = make_shop(key_permissions="read")
    shop.add_order(sample_order())
    assert call(shop, "GET", f"{API}/orders/14").status_code == 200
    response = call(shop, "PUT", f"{API}/orders/14", json={"meta_data": []})
    assert response.status_code == 401
    assert response.json() == {
        "code": "woocommerce_rest_authentication_error",
        "message": "The API key provided does not have write permissions.",
        "data": {"status": 401},
    }
    # The permission is checked before the order is looked up: a write probe on order 0.
    assert call(shop, "PUT", f"{API}/orders/0", json={}).status_code == 401


def test_write_probe_on_order_zero_with_a_read_write_key_is_invalid_id(
    make_shop: ShopFactory,
) -> None:
    shop = make_shop()
    response = call(shop, "PUT", f"{API}/orders/0", json={})
    assert response.status_code == 400
    assert response.json() == {**INVALID_ID, "data": {"status": 400}}


def test_write_only_key_cannot_read(make_shop: ShopFactory) -> None:
    shop = make_shop(key_permissions="write")
    response = call(shop, "GET", f"{API}/orders")
    assert response.status_code == 401
    assert response.json()["message"] == "The API key provided does not have read permissions."


def test_stripped_authorization_header_leaves_only_query_auth(make_shop: ShopFactory) -> None:
    shop = make_shop(strip_authorization=True)
    assert call(shop, "GET", f"{API}/orders").json() == CANNOT_LIST
    query = {"consumer_key": KEY, "consumer_secret": SECRET}
    assert call(shop, "GET", f"{API}/orders", auth=None, params=query).status_code == 200


def test_stripped_authorization_header_breaks_oauth_header_but_not_oauth_query(
    make_shop: ShopFactory,
) -> None:
    shop = make_shop(https=False, strip_authorization=True)
    assert call(shop, "GET", f"{API}/orders", auth=oauth(kind="auth_header")).status_code == 401
    assert call(shop, "GET", f"{API}/orders", auth=oauth(kind="query")).status_code == 200


def test_credentials_are_never_recorded(make_shop: ShopFactory) -> None:
    shop = make_shop()
    call(
        shop,
        "GET",
        f"{API}/orders",
        auth=None,
        params={"consumer_key": KEY, "consumer_secret": SECRET},
    )
    call(shop, "GET", f"{API}/orders", auth=oauth())
    recorded = repr(shop.requests)
    assert KEY not in recorded
    assert SECRET not in recorded
    assert shop.requests[0].query["consumer_secret"] == ["[redacted]"]
    assert shop.requests[0].auth == "query"


def test_anonymous_read_of_a_missing_order_is_404_but_of_an_existing_one_401(
    make_shop: ShopFactory,
) -> None:
    shop = make_shop(https=False)
    shop.add_order(sample_order())
    assert call(shop, "GET", f"{API}/orders/999").json() == INVALID_ID
    existing = call(shop, "GET", f"{API}/orders/14")
    assert existing.status_code == 401
    assert existing.json()["message"] == "Sorry, you cannot view this resource."


# --- listing -----------------------------------------------------------------------------------


def test_per_page_101_is_a_400_with_the_wordpress_body(make_shop: ShopFactory) -> None:
    shop = make_shop()
    response = call(shop, "GET", f"{API}/orders", params={"per_page": 101})
    assert response.status_code == 400
    assert response.json() == PER_PAGE_INVALID
    # Parameters are validated before the permission check, as in WordPress.
    assert call(shop, "GET", f"{API}/orders", auth=None, params={"per_page": 0}).status_code == 400


def test_unknown_status_is_rest_not_in_enum(make_shop: ShopFactory) -> None:
    shop = make_shop()
    response = call(shop, "GET", f"{API}/orders", params={"status": "processing,shipped"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "rest_invalid_param"
    assert body["data"]["details"]["status"]["code"] == "rest_not_in_enum"
    assert body["data"]["params"]["status"].startswith("status[1] is not one of any, trash,")


def test_paging_headers_and_links_across_pages(make_shop: ShopFactory) -> None:
    shop = make_shop()
    shop.add_orders(realistic_orders(25, start_gmt=NOW - timedelta(days=3)))
    first = call(
        shop, "GET", f"{API}/orders", params={"per_page": 10, "orderby": "id", "order": "asc"}
    )
    assert first.headers["X-WP-Total"] == "25"
    assert first.headers["X-WP-TotalPages"] == "3"
    assert first.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert set(first.links) == {"next"}
    seen = ids(first)
    response = first
    while "next" in response.links:
        response = call(shop, "GET", response.links["next"]["url"])
        seen += ids(response)
    assert seen == list(range(1000, 1025))
    assert set(response.links) == {"prev"}
    assert "page=2" in response.links["prev"]["url"]
    assert "status%5B0%5D=any" in response.links["prev"]["url"]
    past = call(shop, "GET", f"{API}/orders", params={"per_page": 10, "page": 4})
    assert past.status_code == 200
    assert past.json() == []
    assert past.headers["X-WP-Total"] == "25"
    assert past.headers["X-WP-TotalPages"] == "3"


def test_default_list_is_newest_first_ten_per_page(make_shop: ShopFactory) -> None:
    shop = make_shop()
    shop.add_orders(realistic_orders(12, start_gmt=NOW - timedelta(days=1)))
    assert ids(call(shop, "GET", f"{API}/orders")) == list(range(1011, 1001, -1))


def test_status_filter_accepts_comma_and_array_forms_and_any_excludes_trash(
    make_shop: ShopFactory,
) -> None:
    shop = make_shop()
    shop.add_orders(realistic_orders(SCENARIO_COUNT, start_gmt=NOW - timedelta(days=1)))
    shop.set_status(1000, "trash")
    comma = call(
        shop, "GET", f"{API}/orders", params={"status": "processing,completed", "per_page": 100}
    )
    array = call(shop, "GET", f"{API}/orders?status[]=processing&status[]=completed&per_page=100")
    assert ids(comma) == ids(array)
    assert {o["status"] for o in comma.json()} == {"processing", "completed"}
    everything = ids(call(shop, "GET", f"{API}/orders", params={"per_page": 100}))
    assert 1000 not in everything
    assert len(everything) == SCENARIO_COUNT - 1
    assert ids(call(shop, "GET", f"{API}/orders", params={"status": "trash"})) == [1000]


def test_include_exclude_and_orderby_include(make_shop: ShopFactory) -> None:
    shop = make_shop()
    shop.add_orders(realistic_orders(6, start_gmt=NOW - timedelta(days=1)))
    included = call(
        shop, "GET", f"{API}/orders", params={"include": "1003,1001,1004", "orderby": "include"}
    )
    assert ids(included) == [1003, 1001, 1004]
    excluded = call(shop, "GET", f"{API}/orders", params={"exclude": "1000,1001", "orderby": "id"})
    assert ids(excluded) == [1005, 1004, 1003, 1002]


def test_dp_reformats_money_strings_but_not_price_or_taxes(make_shop: ShopFactory) -> None:
    shop = make_shop()
    shop.add_order(sample_order(items=[(CATALOGUE[0], 2)], shipping=Decimal("4.50")))
    stored = shop.orders[14]
    assert (stored["total"], stored["line_items"][0]["subtotal"]) == (
        "53.83",
        "39.98",
    )  # 39.98 + 8.40 + 4.50 + 0.95
    four = call(shop, "GET", f"{API}/orders/14", params={"dp": 4}).json()
    assert (four["total"], four["line_items"][0]["subtotal"]) == ("53.8300", "39.9800")
    zero = call(shop, "GET", f"{API}/orders", params={"dp": 0}).json()[0]
    assert (zero["total"], zero["line_items"][0]["subtotal"]) == ("54", "40")
    assert zero["line_items"][0]["price"] == 19.99
    assert zero["line_items"][0]["taxes"] == stored["line_items"][0]["taxes"]


TRAP_ROWS = [
    ("2026-11-22T06:16:56", None, True),
    ("2026-11-22T06:16:56", "true", False),
    ("2026-11-22T05:16:56", "true", True),
    ("2026-11-22T05:16:56Z", None, True),
    ("2026-11-22T06:16:56+01:00", None, True),
    ("2026-11-22T05:16:56Z", "true", False),
]


@pytest.mark.parametrize("hpos", [True, False])
@pytest.mark.parametrize(("value", "dates_are_gmt", "found"), TRAP_ROWS)
def test_modified_after_timezone_trap_rows(
    make_shop: ShopFactory, hpos: bool, value: str, dates_are_gmt: str | None, found: bool
) -> None:
    """docs/systems.md W2: order modified 05:46:56 UTC = 06:46:56 in Berlin."""
    shop = make_shop(hpos=hpos)
    shop.add_order(sample_order(modified_gmt=datetime(2026, 11, 22, 5, 46, 56, tzinfo=UTC)))
    params = {"modified_after": value}
    if dates_are_gmt:
        params["dates_are_gmt"] = dates_are_gmt
    response = call(shop, "GET", f"{API}/orders", params=params)  # requests sends + as %2B
    assert response.status_code == 200
    assert ids(response) == ([14] if found else [])


def test_unencoded_plus_in_an_offset_becomes_a_space_and_an_invalid_date(
    make_shop: ShopFactory,
) -> None:
    shop = make_shop()
    response = call(shop, "GET", f"{API}/orders?modified_after=2026-11-22T06:16:56+01:00")
    assert response.status_code == 400
    assert response.json()["data"]["details"]["modified_after"]["code"] == "rest_invalid_date"


def test_modified_after_is_strict_to_the_second(make_shop: ShopFactory) -> None:
    shop = make_shop()
    shop.add_order(sample_order(modified_gmt=datetime(2026, 11, 22, 5, 46, 56, tzinfo=UTC)))
    base = {"dates_are_gmt": "true"}
    equal = call(
        shop, "GET", f"{API}/orders", params={**base, "modified_after": "2026-11-22T05:46:56"}
    )
    before = call(
        shop, "GET", f"{API}/orders", params={**base, "modified_after": "2026-11-22T05:46:55"}
    )
    assert ids(equal) == []
    assert ids(before) == [14]
    upper = {**base, "modified_before": "2026-11-22T05:46:56"}
    assert ids(call(shop, "GET", f"{API}/orders", params=upper)) == []


def test_after_and_before_filter_on_creation(make_shop: ShopFactory) -> None:
    shop = make_shop()
    shop.add_orders(realistic_orders(4, start_gmt=NOW - timedelta(days=1)))
    second = shop.orders[1001]["date_created_gmt"]
    after = call(shop, "GET", f"{API}/orders", params={"after": second, "dates_are_gmt": "true"})
    before = call(shop, "GET", f"{API}/orders", params={"before": second, "dates_are_gmt": "true"})
    assert ids(after) == [1003, 1002]
    assert ids(before) == [1000]


def test_date_header_and_modification_stamps_come_from_the_clock(make_shop: ShopFactory) -> None:
    clock = Clock(datetime(2026, 7, 1, 10, 0, 0, tzinfo=UTC))
    shop = make_shop(clock=clock)
    shop.add_order(sample_order())
    response = call(shop, "GET", f"{API}/orders")
    assert response.headers["Date"] == "Wed, 01 Jul 2026 10:00:00 GMT"
    clock.advance(seconds=30)
    modified = shop.set_status(14, "completed")
    assert modified["date_modified_gmt"] == "2026-07-01T10:00:30"
    assert modified["date_modified"] == "2026-07-01T12:00:30"  # Berlin summer time


def test_rest_route_works_without_pretty_permalinks(make_shop: ShopFactory) -> None:
    shop = make_shop(pretty_permalinks=False)
    shop.add_order(sample_order())
    pretty = call(shop, "GET", f"{API}/orders")
    assert pretty.status_code == 404
    assert pretty.headers["Content-Type"].startswith("text/html")
    plain = call(shop, "GET", "/", params={"rest_route": "/wc/v3/orders"})
    assert plain.status_code == 200
    assert ids(plain) == [14]


def test_unknown_route_is_rest_no_route(make_shop: ShopFactory) -> None:
    shop = make_shop()
    response = call(shop, "GET", f"{API}/ordres")
    assert response.status_code == 404
    assert response.json()["code"] == "rest_no_route"


def test_index_tells_namespaces_and_site_timezone(make_shop: ShopFactory) -> None:
    shop = make_shop(timezone="Europe/Amsterdam", clock=Clock(NOW))
    index = call(shop, "GET", "/wp-json/", auth=None).json()
    assert "wc/v3" in index["namespaces"]
    assert index["timezone_string"] == "Europe/Amsterdam"
    assert index["gmt_offset"] == 1


@pytest.mark.parametrize("hpos", [True, False])
def test_system_status_reports_the_order_storage(make_shop: ShopFactory, hpos: bool) -> None:
    shop = make_shop(hpos=hpos)
    body = call(shop, "GET", f"{API}/system_status", params={"_fields": "settings"}).json()
    assert set(body) == {"settings"}
    assert body["settings"]["HPOS_enabled"] is hpos
    assert ("OrdersTableDataStore" in body["settings"]["order_datastore"]) is hpos
    assert call(shop, "GET", f"{API}/system_status", auth=None).status_code == 401


def test_on_list_page_runs_before_each_page_and_can_cause_drift(make_shop: ShopFactory) -> None:
    shop = make_shop()
    orders = realistic_orders(5, start_gmt=NOW - timedelta(days=1))
    shop.add_orders(orders)
    pages: list[int] = []

    def new_order_arrives(page: int) -> None:
        pages.append(page)
        if page == 2:
            shop.add_order(sample_order(2000, created_gmt=NOW))

    shop.on_list_page = new_order_arrives
    first = ids(call(shop, "GET", f"{API}/orders", params={"per_page": 2}))
    second = ids(call(shop, "GET", f"{API}/orders", params={"per_page": 2, "page": 2}))
    assert pages == [1, 2]
    assert first == [1004, 1003]
    assert second == [1003, 1002]  # date desc while an order arrives: a duplicate


# --- single orders, meta, notes ----------------------------------------------------------------


def test_missing_order_is_404_on_get_and_400_on_put(make_shop: ShopFactory) -> None:
    shop = make_shop()
    get = call(shop, "GET", f"{API}/orders/77")
    put = call(shop, "PUT", f"{API}/orders/77", json={"meta_data": []})
    assert (get.status_code, get.json()) == (404, INVALID_ID)
    assert put.status_code == 400
    assert put.json()["code"] == "woocommerce_rest_shop_order_invalid_id"


def test_meta_put_replaces_an_existing_key_and_adds_new_ones(make_shop: ShopFactory) -> None:
    shop = make_shop()
    shop.add_order(sample_order(meta_data=[("_d365_sales_order_id", "SO-1"), ("keep", "me")]))
    before = {m["key"]: m["id"] for m in shop.orders[14]["meta_data"]}
    body = {
        "meta_data": [
            {"key": "_d365_sales_order_id", "value": "SO-2"},
            {"key": "new", "value": "x"},
        ]
    }
    response = call(shop, "PUT", f"{API}/orders/14", json=body)
    assert response.status_code == 200
    meta = {m["key"]: m for m in response.json()["meta_data"]}
    assert meta["_d365_sales_order_id"] == {
        "id": before["_d365_sales_order_id"],
        "key": "_d365_sales_order_id",
        "value": "SO-2",
    }
    assert meta["keep"]["value"] == "me"
    assert meta["new"]["value"] == "x"
    assert meta["new"]["id"] not in before.values()
    assert shop.orders[14]["meta_data"] == response.json()["meta_data"]


def test_batch_updates_each_order_and_reports_a_failed_item_inside_a_200(
    make_shop: ShopFactory,
) -> None:
    shop = make_shop()
    shop.add_order(sample_order(14))
    shop.add_order(sample_order(15))
    body = {
        "update": [
            {"id": 14, "meta_data": [{"key": "_d365_sales_order_id", "value": "SO-14"}]},
            {"id": 77, "meta_data": [{"key": "_d365_sales_order_id", "value": "SO-77"}]},
            {"id": 15, "meta_data": [{"key": "_d365_sales_order_id", "value": "SO-15"}]},
        ]
    }
    response = call(shop, "POST", f"{API}/orders/batch", json=body)
    assert response.status_code == 200
    answer = response.json()
    assert list(answer) == ["update"]
    first, missing, last = answer["update"]
    assert first["id"] == 14 and first["number"] == "14"
    assert missing == {
        "id": 77,
        "error": {
            "code": "woocommerce_rest_shop_order_invalid_id",
            "message": "Invalid ID.",
            "data": {"status": 400},
        },
    }
    assert last["id"] == 15
    for order_id in (14, 15):
        meta = {m["key"]: m["value"] for m in shop.orders[order_id]["meta_data"]}
        assert meta["_d365_sales_order_id"] == f"SO-{order_id}"


def test_batch_of_more_than_100_items_is_refused_with_413(make_shop: ShopFactory) -> None:
    shop = make_shop()
    shop.add_order(sample_order(14))
    body = {"update": [{"id": 14, "meta_data": []}] * 100, "delete": [14]}
    response = call(shop, "POST", f"{API}/orders/batch", json=body)
    assert response.status_code == 413
    assert response.json() == {
        "code": "woocommerce_rest_request_entity_too_large",
        "message": "Unable to accept more than 100 items for this request.",
        "data": {"status": 413},
    }
    ok = call(shop, "POST", f"{API}/orders/batch", json={"update": body["update"]})
    assert ok.status_code == 200 and len(ok.json()["update"]) == 100


def test_batch_needs_an_authenticated_key(make_shop: ShopFactory) -> None:
    shop = make_shop()
    response = call(shop, "POST", f"{API}/orders/batch", auth=None, json={"update": []})
    assert response.status_code == 401
    assert response.json()["code"] == "woocommerce_rest_cannot_batch"


@pytest.mark.parametrize(("hpos", "bumped"), [(True, True), (False, False)])
def test_meta_only_put_bumps_date_modified_with_hpos_but_not_with_cpt(
    make_shop: ShopFactory, hpos: bool, bumped: bool
) -> None:
    clock = Clock(NOW)
    shop = make_shop(hpos=hpos, clock=clock)
    shop.add_order(sample_order())
    original = shop.orders[14]["date_modified_gmt"]
    clock.advance(seconds=14)
    body = {"meta_data": [{"key": "_d365_sales_order_id", "value": "SO-1"}]}
    response = call(shop, "PUT", f"{API}/orders/14", json=body)
    assert response.status_code == 200
    expected = "2026-11-22T06:00:14" if bumped else original
    assert response.json()["date_modified_gmt"] == expected
    assert shop.orders[14]["date_modified_gmt"] == expected


@pytest.mark.parametrize("hpos", [True, False])
def test_status_put_bumps_date_modified_and_adds_a_status_note(
    make_shop: ShopFactory, hpos: bool
) -> None:
    clock = Clock(NOW)
    shop = make_shop(hpos=hpos, clock=clock)
    shop.add_order(sample_order())
    clock.advance(minutes=1)
    response = call(shop, "PUT", f"{API}/orders/14", json={"status": "completed"})
    assert response.json()["status"] == "completed"
    assert response.json()["date_modified_gmt"] == "2026-11-22T06:01:00"
    assert response.json()["date_completed_gmt"] == "2026-11-22T06:01:00"
    assert shop.notes[14][-1]["note"] == "Order status changed from Processing to Completed."


def test_put_with_an_unknown_status_is_rest_not_in_enum(make_shop: ShopFactory) -> None:
    shop = make_shop()
    shop.add_order(sample_order())
    response = call(shop, "PUT", f"{API}/orders/14", json={"status": "shipped"})
    assert response.status_code == 400
    assert response.json()["data"]["details"]["status"]["code"] == "rest_not_in_enum"


def test_note_post_returns_201_and_does_not_bump_date_modified(make_shop: ShopFactory) -> None:
    clock = Clock(NOW)
    shop = make_shop(clock=clock)
    shop.add_order(sample_order())
    original = shop.orders[14]["date_modified_gmt"]
    clock.advance(minutes=5)
    response = call(
        shop,
        "POST",
        f"{API}/orders/14/notes",
        json={"note": "In Dynamics: SO-1", "customer_note": False},
    )
    assert response.status_code == 201
    note = response.json()
    assert note["note"] == "In Dynamics: SO-1"
    assert note["customer_note"] is False
    assert note["author"] == "WooCommerce"
    assert note["date_created_gmt"] == "2026-11-22T06:05:00"
    assert note["date_created"] == "2026-11-22T07:05:00"
    assert response.headers["Location"].endswith(f"/orders/14/notes/{note['id']}")
    assert shop.orders[14]["date_modified_gmt"] == original
    listed = call(shop, "GET", f"{API}/orders/14/notes").json()
    assert [n["id"] for n in listed] == [note["id"]]


def test_notes_are_listed_newest_first(make_shop: ShopFactory) -> None:
    shop = make_shop()
    shop.add_order(sample_order())
    old = shop.add_note(14, "old", at=NOW - timedelta(hours=1))
    new = shop.add_note(14, "new", at=NOW)
    listed = call(shop, "GET", f"{API}/orders/14/notes").json()
    assert [n["id"] for n in listed] == [new["id"], old["id"]]


def test_note_without_text_is_400_missing_callback_param(make_shop: ShopFactory) -> None:
    shop = make_shop()
    shop.add_order(sample_order())
    response = call(shop, "POST", f"{API}/orders/14/notes", json={"customer_note": False})
    assert response.status_code == 400
    assert response.json() == {
        "code": "rest_missing_callback_param",
        "message": "Missing parameter(s): note",
        "data": {"status": 400, "params": ["note"]},
    }


def test_notes_of_a_missing_order_are_404(make_shop: ShopFactory) -> None:
    shop = make_shop()
    response = call(shop, "POST", f"{API}/orders/5/notes", json={"note": "x"})
    assert response.status_code == 404
    assert response.json()["code"] == "woocommerce_rest_shop_order_invalid_id"


def test_invalid_json_body_is_400(make_shop: ShopFactory) -> None:
    shop = make_shop()
    shop.add_order(sample_order())
    response = call(
        shop, "PUT", f"{API}/orders/14", data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "rest_invalid_json"


# --- faults --------------------------------------------------------------------------------------


def test_fail_next_answers_429_with_retry_after_then_recovers(make_shop: ShopFactory) -> None:
    shop = make_shop()
    shop.fail_next(status=429, retry_after=7)
    limited = call(shop, "GET", f"{API}/orders")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "7"
    assert limited.json()["data"]["status"] == 429
    assert call(shop, "GET", f"{API}/orders").status_code == 200
    assert [r.status for r in shop.requests] == [429, 200]


def test_fail_next_html_503_is_not_json(make_shop: ShopFactory) -> None:
    shop = make_shop()
    shop.fail_next(2, status=503, html=True)
    for _ in range(2):
        response = call(shop, "GET", f"{API}/orders")
        assert response.status_code == 503
        assert response.headers["Content-Type"].startswith("text/html")
        with pytest.raises(ValueError):
            response.json()
    assert call(shop, "GET", f"{API}/orders").status_code == 200


def test_fail_next_matches_only_its_path_and_method(make_shop: ShopFactory) -> None:
    shop = make_shop()
    shop.add_order(sample_order())
    shop.fail_next(status=502, path_prefix=f"{API}/orders/14/notes", method="POST")
    assert call(shop, "GET", f"{API}/orders/14/notes").status_code == 200
    assert call(shop, "POST", f"{API}/orders/14/notes", json={"note": "a"}).status_code == 502
    assert shop.notes[14] == []
    assert call(shop, "POST", f"{API}/orders/14/notes", json={"note": "a"}).status_code == 201


def test_drop_next_closes_the_connection_without_an_answer(make_shop: ShopFactory) -> None:
    shop = make_shop()
    shop.drop_next()
    with pytest.raises(requests.ConnectionError):
        call(shop, "GET", f"{API}/orders")
    assert call(shop, "GET", f"{API}/orders").status_code == 200
    assert [r.status for r in shop.requests] == [0, 200]


def test_drop_after_processing_keeps_the_write(make_shop: ShopFactory) -> None:
    shop = make_shop()
    shop.add_order(sample_order())
    shop.drop_next(method="POST", after_processing=True)
    with pytest.raises(requests.ConnectionError):
        call(shop, "POST", f"{API}/orders/14/notes", json={"note": "committed"})
    assert [n["note"] for n in shop.notes[14]] == ["committed"]


def test_latency_delays_every_answer(make_shop: ShopFactory) -> None:
    shop = make_shop()
    shop.latency = 0.3
    started = time.monotonic()
    call(shop, "GET", f"{API}/orders")
    assert time.monotonic() - started >= 0.3
    with pytest.raises(requests.Timeout):
        requests.get(shop.url + f"{API}/orders", verify=shop.ca_path, timeout=0.1)


def test_request_bodies_over_10_mb_are_refused_unread(make_shop: ShopFactory) -> None:
    shop = make_shop(https=False)
    port = int(shop.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        raw.sendall(
            f"PUT {API}/orders/1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\nContent-Length: 20000000\r\n\r\n{".encode()
        )
        answer = raw.recv(4096).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413")


def test_stop_closes_kept_alive_connections_and_threads(ca: SandboxCA) -> None:
    shop = ShopEmulator(consumer_key=KEY, consumer_secret=SECRET, ca=ca).start()
    session = requests.Session()
    assert session.get(
        shop.url + f"{API}/orders", auth=(KEY, SECRET), verify=shop.ca_path, timeout=TIMEOUT
    ).ok
    shop.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("shop-emulator-")]
    with pytest.raises(requests.ConnectionError):
        session.get(
            shop.url + f"{API}/orders", auth=(KEY, SECRET), verify=shop.ca_path, timeout=TIMEOUT
        )
    session.close()


def test_emulator_makes_its_own_ca_when_none_is_given() -> None:
    with ShopEmulator(consumer_key=KEY, consumer_secret=SECRET) as shop:
        assert shop.ca_path is not None
        response = requests.get(
            shop.url + f"{API}/orders", auth=(KEY, SECRET), verify=shop.ca_path, timeout=TIMEOUT
        )
        assert response.status_code == 200
    with ShopEmulator(https=False) as plain:
        assert plain.ca_path is None
        assert plain.url.startswith("http://127.0.0.1:")


# --- order fixtures ------------------------------------------------------------------------------

SAMPLE_TOP_KEYS = [
    "id", "parent_id", "status", "currency", "version", "prices_include_tax", "date_created",
    "date_modified", "discount_total", "discount_tax", "shipping_total", "shipping_tax", "cart_tax",
    "total", "total_tax", "customer_id", "order_key", "billing", "shipping", "payment_method",
    "payment_method_title", "transaction_id", "customer_ip_address", "customer_user_agent",
    "created_via", "customer_note", "date_completed", "date_paid", "cart_hash", "number",
    "meta_data", "line_items", "tax_lines", "shipping_lines", "fee_lines", "coupon_lines",
    "refunds", "payment_url", "is_editable", "needs_payment", "needs_processing",
    "date_created_gmt", "date_modified_gmt", "date_completed_gmt", "date_paid_gmt",
    "currency_symbol", "_links",
]  # fmt: skip
SAMPLE_LINE_KEYS = [
    "id", "name", "product_id", "variation_id", "quantity", "tax_class", "subtotal", "subtotal_tax",
    "total", "total_tax", "taxes", "meta_data", "sku", "price", "image", "parent_name",
]  # fmt: skip
MONEY = re.compile(r"^-?\d+\.\d{2}$")
NAIVE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")


def money_problems(order: dict[str, Any]) -> list[str]:
    """Every way ``order`` breaks WooCommerce's money rules (empty when consistent)."""
    d = Decimal
    problems = []
    groups = ("line_items", "shipping_lines", "fee_lines")
    lines_sum = sum((d(ln["total"]) + d(ln["total_tax"]) for g in groups for ln in order[g]), d(0))
    if lines_sum != d(order["total"]):
        problems.append(f"lines {lines_sum} != total {order['total']}")
    line_tax = sum((d(ln["total_tax"]) for g in groups for ln in order[g]), d(0))
    if line_tax != d(order["total_tax"]):
        problems.append(f"line taxes {line_tax} != total_tax {order['total_tax']}")
    if d(order["cart_tax"]) + d(order["shipping_tax"]) != d(order["total_tax"]):
        problems.append("cart_tax + shipping_tax != total_tax")
    shipping = sum((d(ln["total"]) for ln in order["shipping_lines"]), d(0))
    if shipping != d(order["shipping_total"]):
        problems.append("shipping_total")
    tax_lines = sum(
        (d(t["tax_total"]) + d(t["shipping_tax_total"]) for t in order["tax_lines"]), d(0)
    )
    if tax_lines != d(order["total_tax"]):
        problems.append(f"tax lines {tax_lines} != total_tax")
    discount_lines = sum((d(ln["subtotal"]) - d(ln["total"]) for ln in order["line_items"]), d(0))
    # discount_total comes from unrounded amounts: each line may differ from it by a cent.
    if abs(discount_lines - d(order["discount_total"])) > d("0.01") * len(order["line_items"]):
        problems.append("discount_total differs from the lines by more than a cent per line")
    for line in order["line_items"]:
        if d(line["total"]) > d(line["subtotal"]) or d(line["total"]) < 0:
            problems.append(f"line {line['id']} discount out of range")
        for name in ("subtotal", "subtotal_tax", "total", "total_tax"):
            if not MONEY.match(line[name]):
                problems.append(f"line {line['id']} {name} {line[name]!r}")
        if not isinstance(line["price"], int | float) or isinstance(line["price"], bool):
            problems.append("price is not a number")
    for name in (
        "discount_total",
        "discount_tax",
        "shipping_total",
        "shipping_tax",
        "cart_tax",
        "total",
        "total_tax",
    ):
        if not MONEY.match(order[name]):
            problems.append(f"{name} {order[name]!r}")
    return problems


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=10**6))
def test_realistic_orders_lines_add_up_to_the_total(seed: int) -> None:
    orders = realistic_orders(40, seed=seed, start_gmt=NOW - timedelta(days=5))
    for order in orders:
        assert money_problems(order) == [], order["id"]


def entered(line: dict[str, Any], incl: bool, which: str) -> Decimal:
    """A line's ``subtotal`` or ``total`` on the basis prices are entered in."""
    amount = Decimal(line[which])
    return amount + Decimal(line[f"{which}_tax"]) if incl else amount


products = st.sampled_from([*CATALOGUE, deleted_product("Oude mok", Decimal("12.50"))])
coupons = st.one_of(
    st.none(),
    st.tuples(
        st.just("pct"),
        st.just("percent"),
        st.sampled_from([Decimal(5), Decimal(10), Decimal("12.5"), Decimal(100)]),
    ),
    st.tuples(
        st.just("fix"),
        st.just("fixed_cart"),
        st.sampled_from([Decimal(1), Decimal("7.50"), Decimal(10), Decimal(5000)]),
    ),
)


@settings(max_examples=200, deadline=None)
@given(
    items=st.lists(
        st.tuples(products, st.integers(min_value=1, max_value=7)), min_size=1, max_size=6
    ),
    incl=st.booleans(),
    coupon=coupons,
    shipping=st.sampled_from([None, Decimal(0), Decimal("4.09"), Decimal("6.95")]),
    fees=st.lists(
        st.sampled_from([("Inpakken", Decimal("2.50")), ("Korting", Decimal("-3.00"))]), max_size=2
    ),
)
def test_build_order_money_is_consistent_for_any_cart(
    items: list[tuple[Product, int]],
    incl: bool,
    coupon: tuple[str, str, Decimal] | None,
    shipping: Decimal | None,
    fees: list[tuple[str, Decimal]],
) -> None:
    order = build_order(
        7,
        items=items,
        created_gmt=NOW,
        prices_include_tax=incl,
        coupon=coupon,
        shipping=shipping,
        fees=fees,
    )
    assert money_problems(order) == []
    for (product, quantity), line in zip(items, order["line_items"], strict=True):
        gross_subtotal = Decimal(line["subtotal"]) + Decimal(line["subtotal_tax"])
        if incl:
            assert gross_subtotal == product.price * quantity
        else:
            assert Decimal(line["subtotal"]) == product.price * quantity
    if coupon is not None and coupon[1] == "fixed_cart":
        # A fixed amount is on the basis the prices are entered in (incl. VAT or not).
        lines = order["line_items"]
        basis = sum((entered(ln, incl, "subtotal") for ln in lines), Decimal(0))
        given_away = basis - sum((entered(ln, incl, "total") for ln in lines), Decimal(0))
        assert given_away == min(coupon[2], basis)


def test_fixed_cart_coupon_is_spread_per_unit_not_by_price() -> None:
    order = build_order(
        1,
        items=[(product_by_sku("GRINDER-ELG"), 1), (product_by_sku("STROOP-8"), 4)],
        created_gmt=NOW,
        coupon=("vijf", "fixed_cart", Decimal(5)),
    )
    discounts = [Decimal(ln["subtotal"]) - Decimal(ln["total"]) for ln in order["line_items"]]
    assert discounts == [Decimal("1.00"), Decimal("4.00")]
    assert order["coupon_lines"][0]["nominal_amount"] == 5.0
    assert order["coupon_lines"][0]["discount"] == "5.00"


def test_shipping_and_fees_are_excl_vat_even_when_prices_include_it() -> None:
    order = build_order(
        1,
        items=[(product_by_sku("BELL-DINGDONG"), 1)],
        created_gmt=NOW,
        prices_include_tax=True,
        shipping=Decimal("4.09"),
        fees=[("Inpakken", Decimal("2.50"))],
    )
    assert (order["shipping_lines"][0]["total"], order["shipping_lines"][0]["total_tax"]) == (
        "4.09",
        "0.86",
    )
    assert (order["fee_lines"][0]["total"], order["fee_lines"][0]["total_tax"]) == ("2.50", "0.53")
    line = order["line_items"][0]
    assert (line["subtotal"], line["subtotal_tax"]) == ("6.57", "1.38")  # 7.95 incl. 21 %
    assert order["total"] == "15.93"  # 7.95 + 4.09 + 0.86 + 2.50 + 0.53


def test_incl_vat_price_keeps_unrounded_decimals() -> None:
    order = build_order(
        1, items=[(product_by_sku("STROOP-8"), 3)], created_gmt=NOW, prices_include_tax=True
    )
    line = order["line_items"][0]
    assert isinstance(line["price"], float)
    assert len(str(line["price"]).split(".")[1]) > 2
    assert len(line["taxes"][0]["total"].split(".")[1]) > 2


def test_built_order_has_the_shape_of_a_real_wc_9_9_order() -> None:
    order = realistic_orders(SCENARIO_COUNT, start_gmt=NOW)[3]
    assert list(order) == SAMPLE_TOP_KEYS
    assert [list(line) for line in order["line_items"]] == [SAMPLE_LINE_KEYS] * len(
        order["line_items"]
    )
    assert isinstance(order["number"], str)
    for name in (
        "date_created",
        "date_modified",
        "date_created_gmt",
        "date_modified_gmt",
        "date_paid_gmt",
    ):
        assert NAIVE.match(order[name]), name
    local = datetime.fromisoformat(order["date_created"])
    gmt = datetime.fromisoformat(order["date_created_gmt"])
    assert local - gmt == timedelta(hours=1)  # Berlin in November
    assert order["_links"]["self"][0]["href"].endswith(f"/wp-json/wc/v3/orders/{order['id']}")
    assert order["currency_symbol"] == "€"


def test_realistic_orders_cover_every_scenario() -> None:
    orders = realistic_orders(60, seed=3, start_gmt=NOW - timedelta(days=7))
    lines = [line for order in orders for line in order["line_items"]]
    statuses = [order["status"] for order in orders]
    assert any(order["customer_id"] == 0 for order in orders)
    assert {c["discount_type"] for o in orders for c in o["coupon_lines"]} >= {
        "percent",
        "fixed_cart",
    }
    assert {o["prices_include_tax"] for o in orders} == {True, False}
    assert any(Decimal(f["total"]) < 0 for o in orders for f in o["fee_lines"])
    assert any(Decimal(f["total"]) > 0 for o in orders for f in o["fee_lines"])
    assert any(
        ln["sku"] == SHIRT_PARENT_SKU and ln["variation_id"] and ln["parent_name"] for ln in lines
    )
    deleted = [ln for ln in lines if ln["product_id"] == 0]
    assert deleted and all(ln["sku"] is None and ln["image"]["id"] == 0 for ln in deleted)
    assert any(o["billing"]["company"] for o in orders)
    assert any(not all(ord(c) < 128 for c in ln["name"]) for ln in lines)
    assert any(
        "🍰" in (o["billing"]["company"] or "") or "👵" in (o["customer_note"] or "")
        for o in orders
    )
    assert any(o["billing"]["address_2"] is None for o in orders)
    assert any(o["refunds"] and o["refunds"][0]["total"].startswith("-") for o in orders)
    assert any(not any(o["shipping"].values()) for o in orders)
    assert statuses.count("processing") + statuses.count("completed") > len(orders) * 0.7
    assert {"pending", "cancelled", "on-hold"} <= set(statuses)
    assert [o["id"] for o in orders] == list(range(1000, 1060))
    created = [o["date_created_gmt"] for o in orders]
    assert created == sorted(created)


def test_realistic_orders_are_deterministic_per_seed() -> None:
    start = NOW - timedelta(days=2)
    assert realistic_orders(30, seed=9, start_gmt=start) == realistic_orders(
        30, seed=9, start_gmt=start
    )
    assert realistic_orders(30, seed=9, start_gmt=start) != realistic_orders(
        30, seed=10, start_gmt=start
    )


def test_unmapped_product_reports_its_sku_in_an_order() -> None:
    product = unmapped_product("NOT-IN-ERP-1")
    order = build_order(3, items=[(product, 2)], created_gmt=NOW)
    assert order["line_items"][0]["sku"] == "NOT-IN-ERP-1"
    assert order["line_items"][0]["product_id"] == product.product_id != 0
    assert unmapped_product("NOT-IN-ERP-1") == product
    assert "NOT-IN-ERP-1" not in {p.sku for p in CATALOGUE}


def test_deleted_product_lines_flag_turns_every_line_into_a_deleted_products() -> None:
    order = build_order(
        3, items=[(CATALOGUE[1], 1), (CATALOGUE[5], 1)], created_gmt=NOW, deleted_product_lines=True
    )
    for line in order["line_items"]:
        assert (line["product_id"], line["variation_id"], line["sku"], line["image"]["id"]) == (
            0,
            0,
            None,
            0,
        )
    assert money_problems(order) == []
