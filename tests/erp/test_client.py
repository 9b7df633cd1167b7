"""The Business Central client against the emulator: URLs, paging, quoting, every error family,
retries that honour Retry-After, creates that are never repeated blindly, and the shared limits."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.erp.sandbox_fixtures import FAST_RETRY, make_client, make_settings, settle
from woo2d365.erp.businesscentral.auth import MsalTokenProvider
from woo2d365.erp.businesscentral.client import BusinessCentralClient, classify
from woo2d365.erp.odata_client import AnsweredInDoubt, TransientError
from woo2d365.erp.odata_query import odata_string, query_string
from woo2d365.erp.pacing import SlidingWindowLimiter
from woo2d365.errors import (
    ConfigError,
    DocumentInDoubt,
    DocumentRefused,
    DynamicsError,
    DynamicsUnreachable,
)
from woo2d365.http import retry_after_seconds
from woo2d365.retries import RetryPolicy
from woo2d365.sandbox.businesscentral import BusinessCentralEmulator
from woo2d365.settings import Settings


def _order_body(external: str = "WC-1", item: str = "WIDGET-001") -> dict[str, Any]:
    return {
        "customerNumber": "C00010",
        "externalDocumentNumber": external,
        "orderDate": "2026-03-01",
        "salesOrderLines": [
            {"lineType": "Item", "lineObjectNumber": item, "quantity": 2, "unitPrice": 19.99}
        ],
    }


@pytest.fixture
def with_customer(bc: BusinessCentralEmulator) -> BusinessCentralEmulator:
    bc.add_customer("Sanne de Vries", email="sanne@example.nl", number="C00010")
    return bc


def _api_requests(bc: BusinessCentralEmulator, method: str, fragment: str) -> list[Any]:
    settle(bc)
    return [r for r in bc.requests if r.method == method and fragment in r.path]


# -- addressing, paging, quoting ----------------------------------------------------------------


def test_base_url_has_tenant_and_environment(
    bc: BusinessCentralEmulator, bc_settings: Settings
) -> None:
    assert make_client(bc_settings).base_url == bc.api_base()


def test_company_is_resolved_once_by_name_or_by_id(
    bc: BusinessCentralEmulator, bc_settings: Settings
) -> None:
    client = make_client(bc_settings)
    assert client.company_id() == client.company_id() == bc.company_id()
    by_id = make_client(make_settings(bc, dynamics={"company": bc.company_id().upper()}))
    assert by_id.company_id() == bc.company_id()
    assert len(_api_requests(bc, "GET", "/companies")) == 2


def test_an_unknown_company_is_a_configuration_error_listing_the_companies(
    bc: BusinessCentralEmulator,
) -> None:
    client = make_client(make_settings(bc, dynamics={"company": "CRONUS DE"}))
    with pytest.raises(ConfigError, match="'CRONUS NL'"):
        client.company_id()


def test_items_are_paged_by_following_next_link_verbatim(
    bc: BusinessCentralEmulator, bc_settings: Settings
) -> None:
    client = make_client(bc_settings, page_size=5)
    items = list(client.items())
    assert len(items) == 16
    assert len({item["number"] for item in items}) == 16
    pages = _api_requests(bc, "GET", "/items")
    assert len(pages) == 4
    assert all("skiptoken" in page.query for page in pages[1:])


def test_filter_values_are_quoted_and_fully_encoded(
    bc: BusinessCentralEmulator, bc_settings: Settings
) -> None:
    bc.add_customer("Siobhán O'Brien", email="o'brien+shop@example.ie")
    bc.add_customer("Someone Else", email="o'brien shop@example.ie".replace(" ", ""))
    client = make_client(bc_settings)
    found = client.find_customers_by_email("o'brien+shop@example.ie")
    assert [c["displayName"] for c in found] == ["Siobhán O'Brien"]
    query = _api_requests(bc, "GET", "/customers")[-1].query
    assert "%2B" in query and "%27%27" in query and "+" not in query


def test_odata_literals() -> None:
    assert odata_string("o'brien") == "'o''brien'"
    assert query_string({"$filter": "email eq 'a+b@c.d'"}) == (
        "?$filter=email%20eq%20%27a%2Bb%40c.d%27"
    )


# -- error families -----------------------------------------------------------------------------


def test_a_data_error_is_permanent_with_dynamics_message_and_not_retried(
    with_customer: BusinessCentralEmulator, bc_settings: Settings
) -> None:
    client = make_client(bc_settings)
    with pytest.raises(DocumentRefused) as caught:
        client.create_sales_order(_order_body(item="NO-SUCH-ITEM"))
    assert not caught.value.retryable
    assert "Item does not exist" in str(caught.value)
    assert len(_api_requests(with_customer, "POST", "salesOrders")) == 1
    assert with_customer.sales_orders() == []


def test_a_read_refused_for_bad_syntax_is_permanent(
    bc: BusinessCentralEmulator, bc_settings: Settings
) -> None:
    client = make_client(bc_settings)
    client.company_id()
    bc.fail_next(status=400, code="BadRequest_NotFound", message="Bad Request - Error in query")
    with pytest.raises(DynamicsError) as caught:
        list(client.items())
    assert not caught.value.retryable
    assert caught.value.code == "BadRequest_NotFound"
    assert len(_api_requests(bc, "GET", "/items")) == 1


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (503, "Internal_ServiceUnavailable"),
        (429, "Application_TooManyRequests"),
        (502, "Internal_DataPlaneUnavailable"),
        (500, "Internal_ServerError"),
        (408, "Internal_OperationTimedOut"),
        (504, "Internal_GatewayTimeout"),
    ],
)
def test_transient_read_errors_are_retried(
    bc: BusinessCentralEmulator, bc_settings: Settings, status: int, code: str
) -> None:
    client = make_client(bc_settings)
    client.company_id()
    bc.fail_next(2, status=status, code=code, method="GET", path_contains="/items")
    assert len(list(client.items())) == 16
    assert [r.status for r in _api_requests(bc, "GET", "/items")] == [status, status, 200]


def test_retry_after_is_honoured(bc: BusinessCentralEmulator, bc_settings: Settings) -> None:
    client = make_client(bc_settings)
    client.company_id()
    bc.fail_next(status=503, code="Internal_ServiceUnavailable", retry_after=1, method="GET")
    started = time.monotonic()
    list(client.items())
    assert time.monotonic() - started >= 1.0
    assert [r.status for r in _api_requests(bc, "GET", "/items")] == [503, 200]


def test_a_retry_after_longer_than_the_cap_gives_up_at_once(
    bc: BusinessCentralEmulator, bc_settings: Settings
) -> None:
    client = make_client(bc_settings)
    client.company_id()
    bc.fail_next(status=429, code="Application_TooManyRequests", retry_after=3600, method="GET")
    started = time.monotonic()
    with pytest.raises(TransientError) as caught:
        list(client.items())
    assert caught.value.retry_after == 3600
    assert time.monotonic() - started < 1.0


def test_retries_stop_after_max_tries(bc: BusinessCentralEmulator, bc_settings: Settings) -> None:
    client = make_client(bc_settings)
    client.company_id()
    bc.fail_next(10, status=503, code="Internal_ServiceUnavailable", method="GET")
    with pytest.raises(TransientError):
        list(client.items())
    assert len(_api_requests(bc, "GET", "/items")) == FAST_RETRY.max_tries


def test_a_dropped_read_is_retried(bc: BusinessCentralEmulator, bc_settings: Settings) -> None:
    client = make_client(bc_settings)
    client.company_id()
    bc.drop_next(method="GET", path_contains="/items")
    assert len(list(client.items())) == 16


@pytest.mark.parametrize(
    ("status", "code"),
    [(429, "Application_TooManyRequests"), (503, "Internal_ServiceUnavailable")],
)
def test_a_create_refused_before_processing_is_sent_again(
    with_customer: BusinessCentralEmulator, bc_settings: Settings, status: int, code: str
) -> None:
    client = make_client(bc_settings)
    with_customer.fail_next(status=status, code=code, retry_after=1, method="POST")
    created = client.create_sales_order(_order_body())
    assert created["externalDocumentNumber"] == "WC-1"
    assert [r.status for r in _api_requests(with_customer, "POST", "salesOrders")] == [status, 201]
    assert len(with_customer.sales_orders()) == 1


def test_a_create_answered_with_a_server_error_is_looked_up_before_it_is_sent_again(
    with_customer: BusinessCentralEmulator, bc_settings: Settings
) -> None:
    client = make_client(bc_settings)
    client.company_id()
    with_customer.reset_requests()
    with_customer.fail_next(status=500, code="Internal_ServerError", method="POST")
    client.create_sales_order(_order_body())
    settle(with_customer)
    calls = [(r.method, r.status) for r in with_customer.requests]
    assert calls == [("POST", 500), ("GET", 200), ("POST", 201)]
    assert len(with_customer.sales_orders()) == 1


def test_a_create_tries_at_most_max_tries_posts_in_one_loop_whose_waits_are_injected(
    with_customer: BusinessCentralEmulator, bc_settings: Settings
) -> None:
    waits: list[float] = []
    client = BusinessCentralClient(
        bc_settings.dynamics,
        MsalTokenProvider(bc_settings.dynamics),
        retry=FAST_RETRY,
        sleep=waits.append,
    )
    client.company_id()
    with_customer.reset_requests()
    with_customer.fail_next(2, status=500, code="Internal_ServerError", method="POST")
    with_customer.fail_next(
        9, status=429, code="Application_TooManyRequests", retry_after=1, method="POST"
    )
    with pytest.raises(TransientError):
        client.create_sales_order(_order_body())
    settle(with_customer)
    posts = [r.status for r in with_customer.requests if r.method == "POST"]
    assert posts == [500, 500, 429, 429], "one loop of max_tries sends, 500s and 429s alike"
    assert len(waits) == FAST_RETRY.max_tries - 1 and waits[-1] == 1.0
    assert with_customer.sales_orders() == []


def test_a_create_dropped_after_commit_is_in_doubt_and_exists_once(
    with_customer: BusinessCentralEmulator, bc_settings: Settings
) -> None:
    client = make_client(bc_settings)
    with_customer.drop_after_commit_next()
    with pytest.raises(DocumentInDoubt):
        client.create_sales_order(_order_body())
    assert len(_api_requests(with_customer, "POST", "salesOrders")) == 1
    assert len(with_customer.sales_orders()) == 1
    assert [o["number"] for o in client.find_sales_orders("WC-1")] == [
        with_customer.sales_orders()[0]["number"]
    ]


def test_a_create_whose_connection_drops_is_in_doubt_not_resent(
    with_customer: BusinessCentralEmulator, bc_settings: Settings
) -> None:
    client = make_client(bc_settings)
    with_customer.drop_next(method="POST")
    with pytest.raises(DocumentInDoubt):
        client.create_sales_order(_order_body())
    assert len(_api_requests(with_customer, "POST", "salesOrders")) == 1


def test_an_unreachable_api_is_reported_after_retries(
    bc: BusinessCentralEmulator, bc_settings: Settings
) -> None:
    client = make_client(bc_settings)
    client.company_id()
    bc.stop()
    with pytest.raises(DynamicsUnreachable):
        list(client.items())


# -- limits -------------------------------------------------------------------------------------


def test_never_more_requests_in_flight_than_max_concurrency(
    bc: BusinessCentralEmulator,
) -> None:
    bc.latency = 0.05
    client = make_client(make_settings(bc, dynamics={"max_concurrency": 2}))
    client.company_id()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda _: client.find_customers_by_email("x@example.com"), range(16)))
    assert bc.max_in_flight_seen == 2


def test_the_send_guard_writes_before_the_request_slot_and_checks_again_inside_it(
    with_customer: BusinessCentralEmulator,
) -> None:
    client = make_client(make_settings(with_customer, dynamics={"max_concurrency": 1}))
    client.company_id()
    calls: list[str] = []

    class Guard:
        def before_slot(self) -> None:
            # The fence's store write may wait on the store: it must not hold the only slot.
            reader = threading.Thread(target=client.find_customers_by_email, args=("x@y.nl",))
            reader.start()
            reader.join(timeout=10)
            calls.append("before_slot: " + ("blocked a read" if reader.is_alive() else "read ran"))

        def before_send(self) -> None:
            calls.append("before_send")

        def not_sent(self) -> None:
            calls.append("not_sent")

    client.create_sales_order(_order_body(), Guard())
    assert calls == ["before_slot: read ran", "before_send"]


def test_the_client_paces_itself_inside_the_rate_limit(sandbox_ca: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sandbox_ca.ca_path))
    with BusinessCentralEmulator(ca=sandbox_ca, rate_limit=3, rate_window_seconds=0.5) as bc:
        settings = make_settings(bc)
        client = make_client(settings)
        # A margin wider than a loaded machine's scheduling jitter between a request's start
        # (which the client counts) and its arrival (which the emulator counts).
        client._limiter = SlidingWindowLimiter(3, window_seconds=0.5, margin_seconds=0.2)
        started = time.monotonic()
        for _ in range(6):
            client.find_customers_by_email("x@example.com")
        elapsed = time.monotonic() - started
        settle(bc)
    assert len(bc.requests) == 7
    assert all(r.status != 429 for r in bc.requests)
    assert elapsed >= 1.0  # 7 requests, 3 per half second


def test_sliding_window_limiter_waits_for_the_oldest_start_to_leave_the_window() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = SlidingWindowLimiter(3, 300.0, margin_seconds=0, clock=lambda: now[0], sleep=sleep)
    for moment in (0.0, 10.0, 20.0):
        now[0] = moment
        assert limiter.acquire() == 0.0
    now[0] = 30.0
    assert limiter.acquire() == pytest.approx(270.0)
    assert now[0] == pytest.approx(300.0)


def test_sliding_window_limiter_is_shared_by_threads() -> None:
    limiter = SlidingWindowLimiter(5, window_seconds=0.5)
    started = time.monotonic()
    threads = [threading.Thread(target=limiter.acquire) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert time.monotonic() - started >= 0.45


# -- classification -----------------------------------------------------------------------------


def _response(
    status: int, code: str = "", headers: dict[str, str] | None = None
) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = (
        f'{{"error": {{"code": "{code}", "message": "msg  CorrelationId: x."}}}}'.encode()
        if code
        else b""
    )
    response.headers.update(headers or {})
    return response


@pytest.mark.parametrize(
    ("status", "code", "method", "kind", "retryable"),
    [
        (400, "Application_StringExceededLength", "POST", DocumentRefused, False),
        (400, "BadRequest_InvalidToken", "POST", DocumentRefused, False),
        (403, "Authorization_InsufficientPermissions", "POST", DocumentRefused, False),
        (404, "Internal_RecordNotFound", "POST", DocumentRefused, False),
        (400, "Internal_EntityWithSameKeyExists", "POST", DocumentRefused, False),
        (500, "Internal_ServerError", "POST", AnsweredInDoubt, True),
        (500, "Internal_ServerError", "GET", TransientError, True),
        (503, "Internal_TenantUnavailable", "GET", TransientError, True),
        (429, "Application_TooManyRequests", "POST", TransientError, True),
        (502, "", "POST", TransientError, True),
        (504, "", "POST", DocumentInDoubt, True),
        (408, "", "POST", AnsweredInDoubt, True),
        (408, "", "GET", TransientError, True),
    ],
)
def test_classify_by_error_code_and_status(
    status: int, code: str, method: str, kind: type, retryable: bool
) -> None:
    problem = classify(_response(status, code), method=method)
    assert type(problem) is kind
    assert problem is not None and problem.retryable is retryable


def test_retry_after_as_seconds_or_http_date() -> None:
    assert retry_after_seconds(_response(503, headers={"Retry-After": "7"})) == 7
    assert retry_after_seconds(_response(503)) is None
    date = _response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert retry_after_seconds(date) == 0.0


def test_fast_retry_policy_keeps_tests_short() -> None:
    assert RetryPolicy().max_tries >= FAST_RETRY.max_tries


def test_an_unknown_environment_is_a_configuration_error(bc: BusinessCentralEmulator) -> None:
    client = make_client(make_settings(bc, dynamics={"environment": "sandbox"}))
    with pytest.raises(ConfigError, match=r"dynamics\.environment 'sandbox'"):
        client.company_id()
