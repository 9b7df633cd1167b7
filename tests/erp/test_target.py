"""The Business Central target: item mirror, customers per e-mail, documents, and the totals that
Dynamics computes for every fixture order (reconciliation)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.erp.fixtures import fixture_orders, item_numbers_for
from tests.erp.sandbox_fixtures import make_client, make_settings, make_target, settle
from woo2d365.erp.base import DocumentRef, PostedDocument
from woo2d365.erp.businesscentral import open_target
from woo2d365.erp.businesscentral.target import (
    ITEMS_CURSOR_KEY,
    ITEMS_FULL_REFRESH_KEY,
    PLACEHOLDER_CUSTOMER,
)
from woo2d365.errors import ConfigError, DocumentRefused, OrderDataError
from woo2d365.model import LineKind, Order
from woo2d365.sandbox.businesscentral import BusinessCentralEmulator
from woo2d365.settings import Settings
from woo2d365.shop.mapping import order_from_shop
from woo2d365.store import SqlStore


def _order(name: str) -> Order:
    return order_from_shop(fixture_orders()[name])


def _gets(bc: BusinessCentralEmulator, fragment: str) -> list[str]:
    settle(bc)
    return [r.query for r in bc.requests if r.method == "GET" and fragment in r.path]


# -- item mirror --------------------------------------------------------------------------------


def test_first_refresh_mirrors_every_item(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    refresh = make_target(bc_settings, sqlite_store).refresh_items()
    assert refresh.full and refresh.fetched == 16
    assert sqlite_store.item_count() == 16
    assert sqlite_store.get_value(ITEMS_CURSOR_KEY)


def test_later_refreshes_fetch_only_changed_items(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    make_target(bc_settings, sqlite_store).refresh_items()
    bc.set_item("WIDGET-001", blocked=True)
    bc.reset_requests()
    target = make_target(bc_settings, sqlite_store)
    target.cursor_overlap = timedelta(0)
    refresh = target.refresh_items()
    assert not refresh.full
    assert refresh.fetched == 1
    assert sqlite_store.items_by_number(["WIDGET-001"])["WIDGET-001"].blocked
    query = _gets(bc, "/items")[0]
    assert "lastModifiedDateTime%20gt%20" in query


def test_the_mirror_is_replaced_daily(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    make_target(bc_settings, sqlite_store).refresh_items()
    tomorrow = datetime.now(UTC) + timedelta(hours=25)
    target = make_target(bc_settings, sqlite_store)
    target.clock = lambda: tomorrow
    assert target.refresh_items().full


def test_a_refusal_over_a_missing_item_forces_a_full_refresh(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    target = make_target(bc_settings, sqlite_store)
    target.refresh_items()
    order = _order("guest")
    numbers = ["GONE-ITEM" if n else None for n in item_numbers_for(order)]
    document = target.prepare(order, numbers)
    with pytest.raises(DocumentRefused, match="Item does not exist"):
        target.create(document)
    assert sqlite_store.get_value(ITEMS_FULL_REFRESH_KEY) == ""
    assert make_target(bc_settings, sqlite_store).refresh_items().full


# -- customers ----------------------------------------------------------------------------------


def test_an_existing_customer_with_the_email_is_used(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    bc.add_customer("Siobhán O'Brien", email="o'brien+shop@example.ie", number="WEB-0042")
    document = make_target(bc_settings, sqlite_store).prepare(
        _order("guest"), item_numbers_for(_order("guest"))
    )
    assert document.payload["customerNumber"] == "WEB-0042"
    assert not any(r.method == "POST" for r in bc.requests)
    assert sqlite_store.get_customer("O'Brien+shop@example.ie").number == "WEB-0042"


def test_a_new_customer_is_created_once_then_served_from_the_cache(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    order = _order("long_address")
    first = make_target(bc_settings, sqlite_store).prepare(order, item_numbers_for(order))
    bc.reset_requests()
    second = make_target(bc_settings, sqlite_store).prepare(order, item_numbers_for(order))
    assert first.payload["customerNumber"] == second.payload["customerNumber"]
    customers = bc.customers()
    assert len(customers) == 1
    assert customers[0]["city"] == "Sint-Michielsgestel-Den Dungen"
    assert any("created customer" in n and "***@" in n for n in first.notes), first.notes
    assert not any("created customer" in w for w in first.warnings), "a fact, not a problem"
    assert _gets(bc, "customers") == []  # a known customer costs no request


def test_parallel_orders_of_one_new_customer_create_it_once(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    target = make_target(bc_settings, sqlite_store)
    order = _order("guest")
    with ThreadPoolExecutor(max_workers=4) as pool:
        numbers = set(
            pool.map(
                lambda _: target.prepare(order, item_numbers_for(order)).payload["customerNumber"],
                range(4),
            )
        )
    assert len(numbers) == 1
    assert len(bc.customers()) == 1


def test_a_customer_created_without_answer_is_found_instead_of_created_twice(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    bc.drop_after_commit_next(path_contains="customers")
    document = make_target(bc_settings, sqlite_store).prepare(
        _order("guest"), item_numbers_for(_order("guest"))
    )
    assert len(bc.customers()) == 1
    assert document.payload["customerNumber"] == bc.customers()[0]["number"]


def test_fixed_mode_uses_the_configured_customer_without_requests(
    bc: BusinessCentralEmulator, sqlite_store: SqlStore
) -> None:
    settings = make_settings(bc, orders={"customer_mode": "fixed", "customer_number": "web"})
    document = make_target(settings, sqlite_store).prepare(
        _order("guest"), item_numbers_for(_order("guest"))
    )
    assert document.payload["customerNumber"] == "WEB"
    assert bc.customers() == []


def test_fixed_mode_without_a_customer_number_is_a_configuration_error(
    bc: BusinessCentralEmulator, sqlite_store: SqlStore
) -> None:
    settings = make_settings(bc, orders={"customer_mode": "fixed"})
    with pytest.raises(ConfigError, match=r"orders\.customer_number"):
        make_target(settings, sqlite_store)


def test_a_dry_run_creates_no_customer_and_says_so(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    document = make_target(bc_settings, sqlite_store).prepare(
        _order("guest"), item_numbers_for(_order("guest")), dry_run=True
    )
    assert document.placeholder_customer
    assert document.payload["customerNumber"] == PLACEHOLDER_CUSTOMER
    assert document.new_customer is not None
    assert any("creates one" in w for w in document.warnings)
    assert bc.customers() == []
    assert sqlite_store.get_customer("o'brien+shop@example.ie") is None


# -- checks -------------------------------------------------------------------------------------


def test_a_country_business_central_does_not_know_is_named(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    order = _order("guest")
    irish = replace(order, billing=replace(order.billing, country="IE"))
    target = make_target(bc_settings, sqlite_store)
    assert target.check_order(irish) == [
        "country code 'IE' of the billing address is not known in Business Central "
        "(add it under Countries/Regions, or correct the order)"
    ]
    with pytest.raises(OrderDataError, match="'IE'"):
        target.prepare(irish, item_numbers_for(irish))
    settle(bc)
    assert len(_gets(bc, "countriesRegions")) == 1  # read once per run


def test_country_codes_dynamics_cannot_give_are_not_checked_and_not_asked_again_in_the_run(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    order = _order("guest")
    irish = replace(order, billing=replace(order.billing, country="IE"))
    target = make_target(bc_settings, sqlite_store)
    bc.fail_next(50, status=503, path_contains="countriesRegions")
    target.load_checks()
    asked = len(_gets(bc, "countriesRegions"))
    assert asked >= 1
    # validate checks orders inside a store transaction: no request (and no backoff) from there
    assert target.check_order(irish) == [], "not known, so not checked"
    assert target.check_order(order) == []
    assert len(_gets(bc, "countriesRegions")) == asked


def test_per_email_mode_needs_an_email(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    order = _order("guest")
    anonymous = replace(order, billing=replace(order.billing, email=""))
    problems = make_target(bc_settings, sqlite_store).check_order(anonymous)
    assert any("no e-mail address" in p for p in problems)


# -- documents and reconciliation ---------------------------------------------------------------


def test_find_returns_the_document_or_none(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    target = make_target(bc_settings, sqlite_store)
    order = _order("fees")
    created = target.create(target.prepare(order, item_numbers_for(order)))
    assert target.find("WC-5005") == created
    assert target.find("WC-404") is None


def _sales_orders(bc: BusinessCentralEmulator, prefix: str, count: int) -> list[dict[str, Any]]:
    """``count`` one-line sales orders keyed ``prefix`` + 0, 1, ... for a customer of their own."""
    customer = bc.add_customer(f"Orders {prefix}")["number"]
    line = {"lineType": "Item", "lineObjectNumber": "WIDGET-001", "quantity": 1}
    return [
        bc.add_sales_order(
            {
                "customerNumber": customer,
                "externalDocumentNumber": f"{prefix}{i}",
                "salesOrderLines": [line],
            }
        )
        for i in range(count)
    ]


def test_find_traces_names_the_sales_order_else_what_was_posted_from_it_in_batched_requests(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    orders = _sales_orders(bc, "WC-T", 60)
    refs = [DocumentRef(o["externalDocumentNumber"], o["number"], o["id"]) for o in orders]
    invoices = [bc.ship_and_invoice(o["number"])[1] for o in orders[:56]]  # orders deleted
    refs[55] = replace(refs[55], external_number="WC-RETYPED")  # found by the order's id
    shipment = bc.ship(orders[57]["number"])
    assert shipment is not None
    bc.delete_sales_order(orders[57]["number"])  # invoiced elsewhere; only its shipment names it
    bc.delete_sales_order(orders[58]["number"])  # deleted with nothing posted
    target = make_target(bc_settings, sqlite_store)
    target.connect()
    bc.reset_requests()

    traces = target.find_traces(refs)

    for ref, invoice in zip(refs[:56], invoices, strict=True):
        assert traces[ref].sales_order is None
        assert traces[ref].posted == (PostedDocument("invoice", invoice["number"]),)
    assert traces[refs[56]].sales_order is not None
    assert traces[refs[56]].sales_order.number == orders[56]["number"]
    assert traces[refs[57]].posted == (PostedDocument("shipment", shipment["number"]),)
    assert str(traces[refs[57]]) == f"posted shipment {shipment['number']}"
    assert not traces[refs[58]].exists
    assert traces[refs[59]].exists
    assert len(_gets(bc, "")) <= 10, "batched lookups, never one per order (9 here)"
    # What push records an invoiced order as: the sales order the posted document names.
    invoiced = traces[refs[0]].document(refs[0].external_number)
    assert invoiced is not None
    assert (invoiced.number, invoiced.id) == (orders[0]["number"], orders[0]["id"].lower())
    shipped = traces[refs[57]].document(refs[57].external_number)
    assert shipped is not None and (shipped.number, shipped.id) == (orders[57]["number"], "")


def test_posted_keys_name_the_orders_with_a_posted_invoice_or_shipment_in_one_read_each(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    numbers = [order["number"] for order in _sales_orders(bc, "WC-P", 3)]
    bc.ship_and_invoice(numbers[0])  # the sales order is deleted
    assert bc.ship(numbers[1]) is not None  # shipped only
    target = make_target(bc_settings, sqlite_store)
    target.connect()
    bc.reset_requests()

    before = datetime.now(UTC) - timedelta(hours=1)
    assert target.posted_keys("WC-", before) == {"WC-P0", "WC-P1"}
    assert len(_gets(bc, "")) == 2, "one read of invoices, one of shipments"
    assert target.posted_keys("WC-", datetime.now(UTC) + timedelta(hours=1)) == set()
    assert target.posted_keys("SHOP2-", before) == set()


def test_every_fixture_order_reconciles_with_the_dynamics_totals(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    """Line amounts are exact in both tax modes; the only possible difference is VAT rounding.

    With prices incl. tax, Dynamics' total is the shop total to the cent. With prices excl. tax,
    the net total is exact, and Dynamics rounds VAT once per rate over the document where the
    shop rounds per line: the totals may differ by a cent, within orders.total_tolerance.
    """
    target = make_target(bc_settings, sqlite_store)
    tolerance = Decimal(str(bc_settings.orders.total_tolerance))
    for name in fixture_orders():
        order = _order(name)
        created = target.create(target.prepare(order, item_numbers_for(order)))
        assert created.total_including_tax is not None
        document = next(o for o in bc.sales_orders() if o["number"] == created.number)
        net = sum(
            (line.total for line in order.lines if line.kind is LineKind.ITEM or line.total),
            Decimal(0),
        )
        if order.prices_include_tax:
            assert created.total_including_tax == order.total, name
        else:
            assert Decimal(str(document["totalAmountExcludingTax"])) == net, name
            assert abs(created.total_including_tax - order.total) <= tolerance, name
        priced = [x for x in document["salesOrderLines"] if x["lineType"] != "Comment"]
        shop = [x for x in order.lines if x.kind is LineKind.ITEM or x.total]
        for sent, line in zip(priced, shop, strict=True):
            expected = line.total + line.total_tax if order.prices_include_tax else line.total
            amount = Decimal(str(sent["quantity"])) * Decimal(str(sent["unitPrice"]))
            amount = amount.quantize(Decimal("0.01")) - Decimal(str(sent["discountAmount"]))
            assert amount == expected, (name, line.name)


def test_the_client_requests_are_counted(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    client = make_client(bc_settings)
    make_target(bc_settings, sqlite_store, client).refresh_items()
    settle(bc)
    assert client.request_count == len(bc.requests) == 2


def test_open_target_wires_the_process_wide_token_provider(
    bc: BusinessCentralEmulator, bc_settings: Settings, sqlite_store: SqlStore
) -> None:
    first = open_target(bc_settings, sqlite_store)
    first.connect()
    second = open_target(bc_settings, sqlite_store)
    second.connect()
    assert bc.token_requests == 1  # one msal app and token cache per process
    first.close()
    second.close()


def test_open_target_names_a_missing_setting(sqlite_store: SqlStore) -> None:
    with pytest.raises(ConfigError, match=r"dynamics\.tenant_id is required"):
        open_target(Settings(), sqlite_store)
