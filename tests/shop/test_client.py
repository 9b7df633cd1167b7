"""The real WooClient against the shop emulator over sockets on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.fixtures.proxies import assert_environment_read_once
from tests.shop.conftest import (
    CONSUMER_KEY,
    CONSUMER_SECRET,
    ShopFactory,
    Waits,
    assert_no_secret,
    woo_client,
    woo_settings,
)
from woo2d365.errors import (
    ConfigError,
    ShopAuthenticationError,
    ShopError,
    ShopUnreachable,
    UsageError,
)
from woo2d365.http import retry_after_seconds
from woo2d365.sandbox.shop import ShopEmulator
from woo2d365.sandbox.shop_data import CATALOGUE, build_order
from woo2d365.settings import WooCommerceSettings
from woo2d365.shop.client import (
    SALES_ORDER_META_KEY,
    USER_AGENT,
    WooClient,
    _batch_refusals,
    write_back_note,
)

T0 = datetime(2026, 11, 22, 5, 0, 0, tzinfo=UTC)


def order(
    order_id: int, *, status: str = "processing", modified: datetime | None = None
) -> dict[str, Any]:
    """A realistic order created at ``T0 + id minutes``."""
    created = T0 + timedelta(minutes=order_id)
    return build_order(
        order_id,
        items=[(CATALOGUE[order_id % len(CATALOGUE)], 1 + order_id % 3)],
        created_gmt=created,
        status=status,
        modified_gmt=modified or created,
    )


def ids(client: WooClient, after: datetime | None = None, **kwargs: Any) -> list[int]:
    return [
        o["id"] for page in client.iter_orders_modified_after(after, **kwargs) for o in page.orders
    ]


def list_requests(shop: ShopEmulator) -> list[Any]:
    return [r for r in shop.requests if r.path.endswith("/orders")]


# -- authentication ---------------------------------------------------------------------------


def test_basic_auth_over_https_reads_orders(shop: ShopEmulator) -> None:
    shop.add_orders(order(i) for i in range(1, 4))
    assert ids(woo_client(shop)) == [1, 2, 3]


def test_query_auth_works_when_the_host_strips_the_authorization_header(
    make_shop: ShopFactory,
) -> None:
    shop = make_shop(strip_authorization=True)
    shop.add_order(order(1))
    with pytest.raises(ShopAuthenticationError) as refused:
        ids(woo_client(shop, auth="basic"))
    assert 'try auth = "query"' in str(refused.value)
    assert ids(woo_client(shop, auth="query")) == [1]


def test_oauth1_signs_requests_to_a_plain_http_shop(make_shop: ShopFactory) -> None:
    shop = make_shop(https=False, ca=None)
    shop.add_orders(order(i) for i in range(1, 4))
    client = woo_client(shop, auth="oauth1")
    assert ids(client, page_size=2) == [1, 2, 3]
    assert client.set_sales_order_numbers({2: "SO-7"}) == {}  # a signed POST with a JSON body
    meta = {m["key"]: m["value"] for m in shop.get_order(2)["meta_data"]}
    assert meta[SALES_ORDER_META_KEY] == "SO-7"


def test_oauth1_with_a_wrong_secret_is_refused_in_one_line_without_the_secret(
    make_shop: ShopFactory,
) -> None:
    shop = make_shop(https=False, ca=None)
    client = woo_client(shop, auth="oauth1", consumer_secret="cs_" + "0" * 40)
    with pytest.raises(ShopAuthenticationError) as refused:
        client.get_order(1)
    message = str(refused.value)
    assert message.startswith("WooCommerce refused the API key (401")
    assert "\n" not in message
    assert_no_secret(message)
    assert "0" * 40 not in message


@pytest.mark.parametrize("auth", ["basic", "query"])
def test_basic_and_query_auth_are_refused_for_a_plain_http_url(
    make_shop: ShopFactory, auth: str
) -> None:
    shop = make_shop(https=False, ca=None)
    with pytest.raises(ConfigError, match=r'does not work over plain http.*auth = "oauth1"'):
        WooClient(woo_settings(shop, auth=auth))
    assert shop.requests == []


def test_basic_auth_that_wordpress_sees_as_plain_http_gets_a_401_that_explains_it(
    make_shop: ShopFactory,
) -> None:
    # A TLS-terminating proxy: the URL is https, but WordPress sees plain http and ignores Basic.
    shop = make_shop(https=False, ca=None)
    client = woo_client(shop, auth="basic", url="https://proxy.invalid")
    client.base_url = shop.url.rstrip("/") + "/wp-json/wc/v3"
    with pytest.raises(ShopAuthenticationError) as refused:
        ids(client)
    assert "woocommerce_rest_cannot_view" in str(refused.value)
    assert 'auth = "oauth1"' in str(refused.value)
    assert_no_secret(str(refused.value))


def test_a_pasted_line_break_around_the_secret_does_not_matter(shop: ShopEmulator) -> None:
    shop.add_order(order(1))
    assert ids(woo_client(shop, consumer_secret=f" {CONSUMER_SECRET}\n")) == [1]


def test_a_wrong_secret_under_query_auth_never_shows_the_secret(shop: ShopEmulator) -> None:
    wrong = "cs_" + "f00d" * 10
    client = woo_client(shop, auth="query", consumer_secret=wrong)
    with pytest.raises(ShopAuthenticationError) as refused:
        ids(client)
    message = str(refused.value)
    assert "Consumer secret is invalid" in message
    assert "consumer_secret does not belong to the consumer key" in message
    assert wrong not in message and CONSUMER_KEY not in message
    assert refused.value.status == 401


def test_an_unreachable_shop_under_query_auth_never_shows_the_secret(shop: ShopEmulator) -> None:
    waits = Waits()
    client = woo_client(shop, waits, auth="query", max_tries=2)
    shop.stop()
    with pytest.raises(ShopUnreachable) as failed:
        ids(client)
    assert "after 2 tries" in str(failed.value)
    assert_no_secret(str(failed.value))
    assert failed.value.__suppress_context__  # the requests exception (with the URL) is dropped
    assert len(waits) == 1


def test_a_read_only_key_cannot_write_back_and_the_message_says_so(make_shop: ShopFactory) -> None:
    shop = make_shop(key_permissions="read")
    shop.add_order(order(1))
    client = woo_client(shop)
    assert ids(client) == [1]
    with pytest.raises(ShopAuthenticationError, match="read-only"):
        client.set_sales_order_numbers({1: "SO-1"})
    assert client.check_access().can_write is False


def test_the_environment_is_read_once_and_proxy_variables_still_apply(
    shop: ShopEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_environment_read_once(lambda: woo_client(shop)._session, monkeypatch)


def test_check_access_reports_what_it_can_discover(shop: ShopEmulator) -> None:
    shop.add_orders(order(i) for i in range(1, 6))
    info = woo_client(shop).check_access()
    assert info.orders_total == 5
    assert info.can_write is True
    assert info.server_date is not None
    assert abs(info.server_date - datetime.now(UTC)) < timedelta(minutes=1)
    assert shop.get_order(1)["status"] == "processing"  # the write probe changed nothing
    assert (info.hpos, info.notes) == (True, ())
    assert info.order_datastore is not None and "OrdersTableDataStore" in info.order_datastore


def test_check_access_sees_a_shop_without_hpos(make_shop: ShopFactory) -> None:
    info = woo_client(make_shop(hpos=False)).check_access(probe_write=False)
    assert (info.hpos, info.can_write, info.orders_total) == (False, None, 0)


# -- paging and listing -----------------------------------------------------------------------


def test_paging_reads_every_page_once_in_id_order(shop: ShopEmulator) -> None:
    shop.add_orders(order(i) for i in range(1, 251))
    client = woo_client(shop)
    pages = list(client.iter_orders_modified_after(None, page_size=7))
    assert [p.page for p in pages] == list(range(1, 37))
    assert {p.total_pages for p in pages} == {36} and {p.total for p in pages} == {250}
    assert [o["id"] for p in pages for o in p.orders] == list(range(1, 251))
    assert client.request_count == 36 == len(list_requests(shop))


def test_a_lone_surrogate_in_a_text_becomes_a_replacement_character_and_pairs_stay(
    shop: ShopEmulator,
) -> None:
    broken = order(1)
    broken["billing"]["first_name"] = "Ren\ud800e \U0001f600"  # sent as \ud800 and a pair
    broken["customer_note"] = "\udc00"
    shop.add_orders([broken, order(2)])
    [page] = list(woo_client(shop).iter_orders_modified_after(None))
    first, second = page.orders
    assert first["billing"]["first_name"] == "Ren\ufffde \U0001f600"
    assert first["customer_note"] == "\ufffd"
    assert json.dumps(first, ensure_ascii=False).encode("utf-8")  # a store can hold it now
    assert second["billing"] == order(2)["billing"], "the page's other orders are as sent"


def test_a_lone_half_after_a_text_that_looks_like_an_escape_is_replaced_too(
    shop: ShopEmulator,
) -> None:
    tricky = order(3)
    tricky["shipping"]["company"] = "C:\\ud800\udc00"  # a backslash-u text, then a lone half
    shop.add_orders([tricky])
    [page] = list(woo_client(shop).iter_orders_modified_after(None))
    assert page.orders[0]["shipping"]["company"] == "C:\\ud800\ufffd"


@pytest.mark.parametrize("concurrency", [1, 3])
def test_pages_after_the_first_are_fetched_at_once_up_to_max_concurrency(
    shop: ShopEmulator, concurrency: int
) -> None:
    shop.add_orders(order(i) for i in range(1, 61))
    shop.latency = 0.05
    client = woo_client(shop, max_concurrency=concurrency)
    pages = list(client.iter_orders_modified_after(None, page_size=5))
    assert [p.page for p in pages] == list(range(1, 13))  # still yielded in order
    assert [o["id"] for p in pages for o in p.orders] == list(range(1, 61))
    assert shop.max_in_flight == concurrency


def test_pages_announced_while_paging_are_read_too(shop: ShopEmulator) -> None:
    shop.add_orders(order(i) for i in range(1, 11))
    added = False

    def grow(page: int) -> None:
        nonlocal added
        if page == 2 and not added:  # page 1 said 2 pages; five more orders make 3
            added = True
            shop.add_orders(order(i) for i in range(11, 16))

    shop.on_list_page = grow
    pages = list(woo_client(shop, max_concurrency=2).iter_orders_modified_after(None, page_size=5))
    assert [o["id"] for p in pages for o in p.orders] == list(range(1, 16))


def test_pages_that_vanish_while_paging_come_back_empty(shop: ShopEmulator) -> None:
    shop.add_orders(order(i) for i in range(1, 21))
    removed = False

    def shrink(page: int) -> None:
        nonlocal removed
        if page > 1 and not removed:  # page 1 said 4 pages; with 5 deleted there are 3
            removed = True
            for i in range(16, 21):
                shop.orders.pop(i)

    shop.on_list_page = shrink
    pages = list(woo_client(shop, max_concurrency=4).iter_orders_modified_after(None, page_size=5))
    assert [o["id"] for p in pages for o in p.orders] == list(range(1, 16))


def test_listing_follows_the_recipe_query(shop: ShopEmulator) -> None:
    after = datetime(2026, 11, 22, 6, 16, 56, 750000, tzinfo=UTC)
    ids(woo_client(shop), after)
    query = list_requests(shop)[0].query
    assert query["modified_after"] == ["2026-11-22T06:16:56"]  # naive UTC, fraction cut off
    assert query["dates_are_gmt"] == ["true"]
    assert (query["orderby"], query["order"], query["per_page"]) == (["id"], ["asc"], ["100"])
    assert "status" not in query
    assert "consumer_secret" not in query  # basic auth: no secret in the URL


def test_per_page_above_100_is_refused_before_it_reaches_the_shop(shop: ShopEmulator) -> None:
    client = woo_client(shop)
    with pytest.raises(UsageError, match="between 1 and 100"):
        ids(client, page_size=101)
    assert shop.requests == []


def test_a_400_from_the_shop_is_one_readable_line(shop: ShopEmulator) -> None:
    client = woo_client(shop)
    with pytest.raises(ShopError) as refused:
        client._request("GET", "/orders", params={"per_page": 101})
    assert str(refused.value).startswith(
        "WooCommerce answered 400 rest_invalid_param: Invalid parameter(s): per_page"
    )
    assert "between 1 (inclusive) and 100 (inclusive)" in str(refused.value)
    assert not isinstance(refused.value, ShopUnreachable)
    assert len(shop.requests) == 1  # not retried


@pytest.mark.parametrize(
    "line",
    (Path(__file__).parent / "samples" / "errors.jsonl").read_text(encoding="utf-8").splitlines(),
)
def test_every_real_error_body_becomes_one_readable_line(line: str) -> None:
    body = json.loads(line)
    response = requests.Response()
    response.status_code = 500 if isinstance(body["data"], int) else body["data"]["status"]
    response._content = line.encode()
    response.headers["Content-Type"] = "application/json; charset=UTF-8"
    client = WooClient(woo_settings_for("https://shop.example.com", auth="basic"))
    error = client._error("GET", "/orders", response)
    assert error.code == body["code"] and error.status == response.status_code
    assert body["message"] in str(error) and "\n" not in str(error)
    assert isinstance(error, ShopAuthenticationError) == (response.status_code == 401)


def test_an_unknown_order_is_a_404_shop_error(shop: ShopEmulator) -> None:
    with pytest.raises(ShopError) as missing:
        woo_client(shop).get_order(4242)
    assert (missing.value.status, missing.value.code) == (
        404,
        "woocommerce_rest_shop_order_invalid_id",
    )


def test_timezone_trap_modified_after_is_compared_in_utc(make_shop: ShopFactory) -> None:
    # Site in Berlin (UTC+1 in November); the order was modified at 05:46:56 UTC = 06:46:56 local.
    shop = make_shop(timezone="Europe/Berlin")
    modified = datetime(2026, 11, 22, 5, 46, 56, tzinfo=UTC)
    shop.add_order(order(14, modified=modified))
    client = woo_client(shop)
    assert ids(client, modified - timedelta(seconds=59)) == [14]
    assert ids(client, modified) == []  # strictly after
    berlin = modified.astimezone(ZoneInfo("Europe/Berlin"))  # any aware time is converted
    assert ids(client, berlin - timedelta(seconds=30)) == [14]


def test_pages_carry_the_shops_clock(shop: ShopEmulator) -> None:
    page = next(woo_client(shop).iter_orders_modified_after(None))
    assert page.server_date is not None and page.server_date.tzinfo is not None
    assert (page.orders, page.total, page.total_pages) == ([], 0, 0)


# -- retries ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_statuses_are_retried_after_retry_after(shop: ShopEmulator, status: int) -> None:
    shop.add_order(order(1))
    shop.fail_next(2, status=status, retry_after=3)
    waits = Waits()
    client = woo_client(shop, waits)
    assert ids(client) == [1]
    assert waits == [3.0, 3.0]
    assert [r.status for r in list_requests(shop)] == [status, status, 200]


def test_without_retry_after_waits_grow_exponentially_with_full_jitter(shop: ShopEmulator) -> None:
    shop.fail_next(4, status=503)
    waits = Waits()
    ids(woo_client(shop, waits, max_tries=5))
    assert len(waits) == 4
    assert all(0 <= wait <= 2**i for i, wait in enumerate(waits))


def test_a_retry_after_longer_than_max_wait_seconds_is_not_waited_for(shop: ShopEmulator) -> None:
    shop.fail_next(1, status=429, retry_after=3600)
    waits = Waits()
    client = WooClient(woo_settings(shop), sleep=waits, max_wait_seconds=7.5)
    with pytest.raises(ShopUnreachable) as failed:
        ids(client)
    assert waits == [] and failed.value.status == 429  # the next run tries again


def test_retry_after_as_an_http_date_is_measured_on_the_servers_clock() -> None:
    response = requests.Response()
    response.headers["Date"] = "Sun, 22 Nov 2026 05:00:00 GMT"
    response.headers["Retry-After"] = "Sun, 22 Nov 2026 05:00:42 GMT"
    assert retry_after_seconds(response) == 42
    response.headers["Retry-After"] = "soon"
    assert retry_after_seconds(response) is None


def test_retries_give_up_after_max_tries_as_unreachable(shop: ShopEmulator) -> None:
    shop.fail_next(10, status=503, retry_after=1)
    waits = Waits()
    with pytest.raises(ShopUnreachable) as failed:
        ids(woo_client(shop, waits, max_tries=3))
    assert "did not answer GET /orders after 3 tries: 503" in str(failed.value)
    assert failed.value.retryable and failed.value.status == 503
    assert len(list_requests(shop)) == 3 and waits == [1.0, 1.0]


def test_an_html_503_page_is_an_error_not_a_crash(shop: ShopEmulator) -> None:
    shop.fail_next(5, status=503, html=True)
    with pytest.raises(ShopUnreachable) as failed:
        ids(woo_client(shop, max_tries=2))
    assert "HTML page" in str(failed.value)


def test_an_html_403_from_a_firewall_is_not_retried(shop: ShopEmulator) -> None:
    shop.fail_next(1, status=403, html=True)
    with pytest.raises(ShopError) as blocked:
        ids(woo_client(shop))
    assert not isinstance(blocked.value, ShopUnreachable)
    assert "403 with an HTML page" in str(blocked.value)
    assert len(shop.requests) == 1


def test_a_dropped_connection_is_retried(shop: ShopEmulator) -> None:
    shop.add_order(order(1))
    shop.drop_next(1)
    waits = Waits()
    assert ids(woo_client(shop, waits)) == [1]
    assert len(waits) == 1


def test_a_slow_shop_times_out_and_is_retried_then_given_up(shop: ShopEmulator) -> None:
    shop.latency = 1.0
    with pytest.raises(ShopUnreachable, match=r"no answer within 0.3 s"):
        ids(woo_client(shop, max_tries=2, timeout_seconds=0.3))


def test_tls_verification_is_on(shop: ShopEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    waits = Waits()
    with pytest.raises(ShopUnreachable, match="certificate could not be verified") as failed:
        ids(woo_client(shop, waits))
    assert "REQUESTS_CA_BUNDLE" in str(failed.value)
    assert waits == []  # a certificate does not get better by waiting


# -- writing back -----------------------------------------------------------------------------


def test_meta_for_many_orders_goes_in_batches_of_100_and_refusals_are_reported(
    shop: ShopEmulator,
) -> None:
    shop.add_orders(order(i) for i in range(1, 151))
    numbers = {i: f"SO-{i}" for i in range(1, 151)}
    numbers[999] = "SO-999"  # not in the shop
    refused = woo_client(shop).set_sales_order_numbers(numbers)
    assert list(refused) == [999] and "Invalid ID" in refused[999]
    batches = [r for r in shop.requests if r.path.endswith("/orders/batch")]
    assert [(r.method, len(r.json["update"])) for r in batches] == [("POST", 100), ("POST", 51)]
    for i in (1, 100, 150):
        meta = {m["key"]: m["value"] for m in shop.get_order(i)["meta_data"]}
        assert meta[SALES_ORDER_META_KEY] == f"SO-{i}"


def test_a_shop_with_a_lower_batch_limit_gets_smaller_batches(shop: ShopEmulator) -> None:
    shop.batch_limit = 30  # a shop that filters woocommerce_rest_batch_items_limit
    shop.add_orders(order(i) for i in range(1, 81))
    refused = woo_client(shop).set_sales_order_numbers({i: f"SO-{i}" for i in range(1, 81)})
    assert refused == {}
    answered = [
        len(r.json["update"])
        for r in shop.requests
        if r.path.endswith("/batch") and r.status == 200
    ]
    assert answered == [20, 20, 20, 20]  # 80 → 413, 40 → 413, then 20 at a time
    refused_sizes = [len(r.json["update"]) for r in shop.requests if r.status == 413]
    assert refused_sizes == [80, 40]  # the smaller size is kept, not found again per batch
    meta = {m["key"]: m["value"] for m in shop.get_order(80)["meta_data"]}
    assert meta[SALES_ORDER_META_KEY] == "SO-80"


def test_write_back_sets_meta_and_one_private_note_even_when_retried(shop: ShopEmulator) -> None:
    shop.add_order(order(1))
    client = woo_client(shop)
    for again in (False, True):  # the second as a retry after a half-done write-back
        client.write_back_note(1, "SO-1234", again=again)
        assert client.set_sales_order_numbers({1: "SO-1234"}) == {}
    meta = {m["key"]: m["value"] for m in shop.get_order(1)["meta_data"]}
    assert meta[SALES_ORDER_META_KEY] == "SO-1234"
    notes = [n for n in shop.notes[1] if n["note"] == write_back_note("SO-1234")]
    assert len(notes) == 1 and notes[0]["customer_note"] is False
    assert write_back_note("SO-1234") == "Created in Dynamics 365 as sales order SO-1234"


def test_a_note_is_not_blindly_repeated_after_a_dropped_connection(shop: ShopEmulator) -> None:
    shop.add_order(order(1))
    shop.drop_next(1, method="POST")
    client = woo_client(shop)
    with pytest.raises(ShopUnreachable):
        client.add_order_note(1, "hello")
    assert len([r for r in shop.requests if r.method == "POST"]) == 1


def test_requests_identify_the_tool(shop: ShopEmulator) -> None:
    client = woo_client(shop)
    assert client._session.headers["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith("woo2d365/")


def test_settings_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"woocommerce\.url is required"):
        WooClient(woo_settings_for("", auth="basic"))
    with pytest.raises(ConfigError, match="site root"):
        WooClient(woo_settings_for("https://shop.example.com/wp-json/wc/v3", auth="basic"))
    with pytest.raises(ConfigError, match=r"woocommerce\.consumer_secret is required"):
        WooClient(woo_settings_for("https://shop.example.com", auth="basic", consumer_secret=""))


def woo_settings_for(url: str, **overrides: Any) -> WooCommerceSettings:
    values: dict[str, Any] = {
        "url": url,
        "consumer_key": CONSUMER_KEY,
        "consumer_secret": CONSUMER_SECRET,
    }
    values.update(overrides)
    return WooCommerceSettings(**values)


@pytest.mark.parametrize(
    "answer",
    [
        {"update": [{"id": 1}]},  # order 2 not mentioned
        {"update": [{"id": 1}, {"id": "2", "error": None}]},  # an id that is not ours
        {"update": [{"id": 1}, "oops"]},
    ],
)
def test_a_batch_answer_that_does_not_confirm_an_order_counts_as_refused(
    answer: dict[str, Any],
) -> None:
    assert _batch_refusals(answer, [1, 2]) == {
        2: "the shop's batch answer does not mention this order"
    }
    assert set(_batch_refusals([], [1, 2])) == {1, 2}  # not a batch answer at all
