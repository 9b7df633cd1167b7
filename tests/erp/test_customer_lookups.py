"""Customers per e-mail cost one create each: their lookups are batched, one request per push.

Before the orders are pushed, the e-mail addresses the store does not know are looked up
together (``email eq 'a' or email eq 'b' ...``, as many per request as fit in a URL), so a new
customer costs its create and nothing else, and an existing one (a guest too) is still used.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

import pytest

from tests.erp.pipeline_helpers import Clock, make_context, put_order, simple_order
from tests.erp.sandbox_fixtures import make_client, make_settings, make_target, settle
from tests.fixtures.proxies import assert_environment_read_once
from woo2d365.erp.businesscentral.target import CUSTOMER_SENT_PREFIX
from woo2d365.erp.odata_query import MAX_FILTER_CHARACTERS
from woo2d365.model import OrderState
from woo2d365.pipeline.push import push
from woo2d365.pipeline.validate import validate
from woo2d365.sandbox.businesscentral import BusinessCentralEmulator
from woo2d365.sandbox.shop_data import DEFAULT_BILLING, product_by_sku
from woo2d365.settings import Settings
from woo2d365.store import SqlStore

WIDGET = product_by_sku("WIDGET-001")


def _order(woo_id: int, email: str) -> dict[str, Any]:
    return simple_order(woo_id, [(WIDGET, 1)], billing={**DEFAULT_BILLING, "email": email})


def _customer_requests(bc: BusinessCentralEmulator) -> tuple[int, int]:
    settle(bc)
    gets = sum(1 for r in bc.requests if r.method == "GET" and r.path.endswith("/customers"))
    posts = sum(1 for r in bc.requests if r.method == "POST" and r.path.endswith("/customers"))
    return gets, posts


def _push_all(settings: Settings, store: SqlStore, raws: list[dict[str, Any]]) -> Any:
    clock = Clock()
    for raw in raws:
        put_order(store, raw)
    validate(make_context(settings, store, clock), make_target(settings, store))
    return push(make_context(settings, store, clock), make_target(settings, store))


def test_new_customers_of_a_push_cost_one_lookup_in_all_and_one_create_each(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    existing = bc.add_customer("Anna Gast", email="Anna.Gast@Example.com")
    emails = ["Anna.Gast@Example.com"] + [f"nieuw{n}@example.nl" for n in range(10)]
    raws = [_order(9200 + n, email) for n, email in enumerate(emails)]
    raws.append(_order(9299, "nieuw3@example.nl"))  # a second order of a new customer
    bc.reset_requests()
    result = _push_all(bc_settings, sqlite_store, raws)
    assert len(result.pushed) == len(raws)
    assert _customer_requests(bc) == (1, 10)  # one batched lookup, one create per new address
    by_external = {o["externalDocumentNumber"]: o for o in bc.sales_orders()}
    assert by_external["WC-9200"]["customerNumber"] == existing["number"]
    assert by_external["WC-9204"]["customerNumber"] == by_external["WC-9299"]["customerNumber"]
    assert len({c["email"].lower() for c in bc.customers()}) == len(bc.customers()) == 11


def test_a_second_push_needs_no_customer_request_for_known_addresses(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    _push_all(bc_settings, sqlite_store, [_order(9300, "vaste.klant@example.nl")])
    bc.reset_requests()
    result = _push_all(bc_settings, sqlite_store, [_order(9301, "Vaste.Klant@example.nl")])
    assert len(result.pushed) == 1 and _customer_requests(bc) == (0, 0)


def test_when_the_batched_lookup_fails_each_order_looks_its_customer_up(
    bc: BusinessCentralEmulator, sqlite_store: SqlStore
) -> None:
    settings = make_settings(bc)
    existing = bc.add_customer("Bekende Klant", email="bekend@example.nl")
    bc.fail_next(
        1,
        status=400,
        code="BadRequest_NotFound",
        message="The filter is too complex.",
        method="GET",
        path_contains="customers",
    )
    result = _push_all(
        settings, sqlite_store, [_order(9400, "bekend@example.nl"), _order(9401, "x@example.nl")]
    )
    assert len(result.pushed) == 2
    by_external = {o["externalDocumentNumber"]: o for o in bc.sales_orders()}
    assert by_external["WC-9400"]["customerNumber"] == existing["number"]
    assert len(bc.customers()) == 2
    record = sqlite_store.get_order(9401)
    assert record is not None and record.state is OrderState.PUSHED


def test_many_addresses_are_looked_up_in_requests_that_each_fit_in_a_url(
    bc: BusinessCentralEmulator, bc_settings: Settings
) -> None:
    for n in range(0, 120, 7):
        bc.add_customer(f"Klant {n}", email=f"klant.{n}+shop@example.nl")
    addresses = [f"klant.{n}+shop@example.nl" for n in range(120)]
    bc.reset_requests()
    found = make_client(bc_settings).find_customers_by_emails(addresses)
    assert sorted(c["email"] for c in found) == sorted(addresses[::7])
    settle(bc)
    lookups = [r for r in bc.requests if r.path.endswith("/customers")]
    assert 2 <= len(lookups) <= 6
    for request in lookups:
        assert len(request.query) <= MAX_FILTER_CHARACTERS + 200  # $filter plus $select
        assert "%2B" in request.query  # '+' in an e-mail is encoded, never a space
        assert unquote(request.query).count(" or ") >= 10


def test_the_environment_is_read_once_and_proxy_variables_still_apply(
    bc_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_environment_read_once(lambda: make_client(bc_settings)._session, monkeypatch)


def test_a_customer_create_without_answer_is_sent_again_only_after_the_request_limit(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    clock = Clock()
    put_order(sqlite_store, _order(9400, "verloren.antwoord@example.nl"))
    validate(make_context(bc_settings, sqlite_store, clock), make_target(bc_settings, sqlite_store))

    def run() -> Any:
        return push(
            make_context(bc_settings, sqlite_store, clock),
            make_target(bc_settings, sqlite_store, clock=clock),
        )

    bc.drop_next(method="POST", path_contains="customers")  # sent; no answer, nothing created
    first = run()
    assert 9400 in first.retry_later and bc.customers() == []
    bc.reset_requests()
    early = run()  # looked up (not found) but not created: Dynamics may still be working on it
    assert 9400 in early.retry_later and "dynamics.request_limit_seconds" in early.retry_later[9400]
    assert _customer_requests(bc)[1] == 0
    record = sqlite_store.get_order(9400)
    assert record is not None and record.state is OrderState.READY
    assert record.attempts == 0, "waiting for Dynamics is not the order's failure"
    clock.advance(bc_settings.dynamics.request_limit_seconds + 1)
    late = run()
    assert [p.woo_id for p in late.pushed] == [9400]
    assert len(bc.customers()) == 1


def test_a_customer_create_refused_before_it_ran_is_sent_again_at_once(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    clock = Clock()
    put_order(sqlite_store, _order(9401, "druk.moment@example.nl"))
    validate(make_context(bc_settings, sqlite_store, clock), make_target(bc_settings, sqlite_store))
    bc.fail_next(5, status=503, retry_after=0, method="POST", path_contains="customers")
    first = push(
        make_context(bc_settings, sqlite_store, clock), make_target(bc_settings, sqlite_store)
    )
    assert 9401 in first.retry_later
    second = push(
        make_context(bc_settings, sqlite_store, clock), make_target(bc_settings, sqlite_store)
    )
    assert [p.woo_id for p in second.pushed] == [9401] and len(bc.customers()) == 1


def test_a_customer_sent_before_is_looked_up_even_when_the_batched_lookup_missed_it(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    clock = Clock()
    email = "laat.geboekt@example.nl"
    sent = clock() - timedelta(seconds=bc_settings.dynamics.request_limit_seconds + 1)
    digest = hashlib.sha256(email.encode()).hexdigest()[:32]
    sqlite_store.set_value(f"{CUSTOMER_SENT_PREFIX}{digest}", sent.isoformat())
    put_order(sqlite_store, _order(9402, email))
    validate(make_context(bc_settings, sqlite_store, clock), make_target(bc_settings, sqlite_store))
    bc.reset_requests()
    result = push(
        make_context(bc_settings, sqlite_store, clock),
        make_target(bc_settings, sqlite_store, clock=clock),
    )
    assert [p.woo_id for p in result.pushed] == [9402]
    # The batched lookup, then one of its own: a create sent before may have committed since.
    assert _customer_requests(bc) == (2, 1)
    assert sqlite_store.get_value(f"{CUSTOMER_SENT_PREFIX}{digest}") == ""


def test_a_refused_customer_create_leaves_nothing_in_doubt(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    clock = Clock()
    put_order(sqlite_store, _order(9403, "geweigerd@example.nl"))
    validate(make_context(bc_settings, sqlite_store, clock), make_target(bc_settings, sqlite_store))
    bc.fail_next(1, status=400, code="BadRequest", message="refused", method="POST",
                 path_contains="customers")  # fmt: skip
    first = push(
        make_context(bc_settings, sqlite_store, clock), make_target(bc_settings, sqlite_store)
    )
    assert 9403 in first.failed
    digest = hashlib.sha256(b"geweigerd@example.nl").hexdigest()[:32]
    assert not sqlite_store.get_value(f"{CUSTOMER_SENT_PREFIX}{digest}")
