"""Posted shipments and invoices in the Business Central emulator, as BC shows them (docs/systems.md
B4): partial and full shipments, invoicing that deletes the order, Paid moving the invoice's
timestamp, tracking added after posting through the custom API page."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from tests.sandbox.test_bc_emulator import Api, _seed, _trust_sandbox_ca, ca  # noqa: F401
from woo2d365.sandbox.businesscentral import TRACKING_API, BusinessCentralEmulator
from woo2d365.sandbox.tls import SandboxCA


@pytest.fixture
def bc(ca: SandboxCA) -> Iterator[BusinessCentralEmulator]:  # noqa: F811
    with BusinessCentralEmulator(ca=ca) as emulator:
        _seed(emulator)
        yield emulator


@pytest.fixture
def api(bc: BusinessCentralEmulator) -> Api:
    return Api(bc)


def _order(bc: BusinessCentralEmulator, external: str = "WC-1001") -> str:
    order = bc.add_sales_order(
        {
            "customerNumber": bc.customers()[0]["number"],
            "externalDocumentNumber": external,
            "salesOrderLines": [
                {"lineType": "Item", "lineObjectNumber": "1000", "quantity": 3},
                {"lineType": "Item", "lineObjectNumber": "2000", "quantity": 2},
                {"lineType": "Account", "lineObjectNumber": "8400", "quantity": 1, "unitPrice": 5},
            ],
        }
    )
    return str(order["number"])


def test_a_partial_then_a_full_shipment_are_two_postings_and_the_order_stays(
    bc: BusinessCentralEmulator, api: Api
) -> None:
    number = _order(bc)
    first = bc.ship(number, {10000: 1})
    assert first is not None and first["orderNumber"] == number
    assert first["externalDocumentNumber"] == "WC-1001"
    second = bc.ship(number)
    assert second is not None and second["number"] != first["number"]
    answer = api.get(
        f"{api.company}/salesShipments",
        params={
            "$filter": "startswith(externalDocumentNumber,'WC-')",
            "$expand": "salesShipmentLines",
        },
    )
    assert answer.status_code == 200, answer.text
    shipments = answer.json()["value"]
    assert [s["number"] for s in shipments] == [first["number"], second["number"]]
    assert "orderId" not in shipments[0], "shipments carry no orderId"
    shipped: dict[int, Decimal] = {}
    for shipment in shipments:
        for line in shipment["salesShipmentLines"]:
            shipped[line["sequence"]] = shipped.get(line["sequence"], Decimal(0)) + Decimal(
                str(line["quantity"])
            )
    assert shipped == {10000: 3, 20000: 2, 30000: 1}
    order = api.get(f"{api.company}/salesOrders", params={"$filter": f"number eq '{number}'"})
    assert order.json()["value"][0]["fullyShipped"] is True
    lines = api.get(
        f"{api.company}/salesShipmentLines",
        params={"$filter": f"documentNo eq '{first['number']}'"},
    )
    assert lines.status_code == 200 and len(lines.json()["value"]) == 1
    assert api.post(f"{api.company}/salesShipments", {}).status_code == 405


def test_a_posted_shipment_lowers_the_items_inventory_and_not_their_modification_time(
    bc: BusinessCentralEmulator,
) -> None:
    bc.set_inventory("1000", 10)
    before = next(i for i in bc.items() if i["number"] == "1000")
    number = _order(bc)
    assert next(i for i in bc.items() if i["number"] == "1000")["inventory"] == 10, (
        "an order does not lower inventory; a shipment does"
    )
    bc.ship(number, {10000: 1})
    bc.ship(number)
    after = next(i for i in bc.items() if i["number"] == "1000")
    assert after["inventory"] == 7
    assert after["lastModifiedDateTime"] == before["lastModifiedDateTime"]


def test_ship_and_invoice_in_one_go_deletes_the_order_but_the_invoice_keeps_its_id(
    bc: BusinessCentralEmulator, api: Api
) -> None:
    number = _order(bc)
    order_id = bc.sales_orders()[0]["id"]
    shipment, _invoice = bc.ship_and_invoice(number)
    assert bc.sales_orders() == []
    assert api.get(f"{api.company}/salesOrders({order_id})").status_code == 404
    answer = api.get(
        f"{api.company}/salesInvoices",
        params={"$filter": "startswith(externalDocumentNumber,'WC-')"},
    )
    assert answer.status_code == 200, answer.text
    [row] = answer.json()["value"]
    assert row["orderId"] == order_id and row["orderNumber"] == number
    assert row["status"] == "Open" and row["totalAmountIncludingTax"] > 0
    assert shipment["orderNumber"] == number


def test_paid_moves_the_invoice_and_tracking_moves_the_shipment_past_a_cursor(
    bc: BusinessCentralEmulator, api: Api
) -> None:
    number = _order(bc)
    shipment = bc.ship(number)
    assert shipment is not None
    invoice = bc.invoice(number)
    assert invoice is not None
    cursor = max(shipment["lastModifiedDateTime"], invoice["lastModifiedDateTime"])
    time.sleep(0.01)
    since = {"$filter": f"lastModifiedDateTime gt {cursor}"}
    assert api.get(f"{api.company}/salesShipments", params=since).json()["value"] == []
    bc.set_invoice_status(invoice["number"], "Paid")
    bc.set_tracking(shipment["number"], "DHL", "JVGL0123456789")
    [paid] = api.get(f"{api.company}/salesInvoices", params=since).json()["value"]
    assert paid["status"] == "Paid" and paid["remainingAmount"] == 0
    [moved] = api.get(f"{api.company}/salesShipments", params=since).json()["value"]
    assert "packageTrackingNumber" not in moved, "API v2.0 does not show tracking"
    publisher, group, version, entity_set = TRACKING_API.split("/")
    custom = (
        f"{bc.url}/v2.0/{bc.tenant_id}/{bc.environment}/api/{publisher}/{group}/{version}"
        f"/companies({bc.company_id()})/{entity_set}"
    )
    [row] = api.get(custom, params=since).json()["value"]
    assert row["packageTrackingNumber"] == "JVGL0123456789" and row["shippingAgentCode"] == "DHL"
    bc.tracking_api = None
    assert api.get(custom).status_code == 404, "the extension is not installed"


def test_posted_documents_are_paged_like_the_other_entity_sets(
    bc: BusinessCentralEmulator, api: Api
) -> None:
    for index in range(5):
        bc.ship(_order(bc, f"WC-{2000 + index}"))
    url = f"{api.company}/salesShipments"
    seen = []
    pages = 0
    while url:
        answer = api.get(url, headers={"Prefer": "odata.maxpagesize=2"})
        assert answer.status_code == 200, answer.text
        seen += [s["number"] for s in answer.json()["value"]]
        url = answer.json().get("@odata.nextLink")
        pages += 1
    assert pages == 3 and len(set(seen)) == 5
