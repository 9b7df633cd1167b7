"""The F&O emulator answers as ``docs/systems.md`` F1–F4 says F&O does (raw HTTP, no woo2d365
client in between), so the tool's tests against it mean something."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests

from woo2d365.erp.financeoperations.client import (
    BatchOperation,
    build_changeset,
    parse_batch_response,
)
from woo2d365.sandbox.financeoperations import FinanceOperationsEmulator
from woo2d365.sandbox.tls import SandboxCA

AREA = "wcnl"


class Api:
    """Raw requests with a token from the emulator's identity provider."""

    def __init__(self, fo: FinanceOperationsEmulator, ca: SandboxCA) -> None:
        self.fo = fo
        self.verify = str(ca.ca_path)
        self.headers = {"Authorization": f"Bearer {self.token()}"}

    def token(self) -> str:
        answer = requests.post(
            f"{self.fo.url}/{self.fo.tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.fo.client_id,
                "client_secret": self.fo.client_secret,
                "scope": self.fo.scope,
            },
            verify=self.verify,
            timeout=10,
        )
        return str(answer.json()["access_token"])

    def get(self, path: str) -> requests.Response:
        return requests.get(
            f"{self.fo.url}/data/{path}", headers=self.headers, verify=self.verify, timeout=10
        )

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return requests.post(
            f"{self.fo.url}/data/{path}",
            headers=self.headers,
            json=body,
            verify=self.verify,
            timeout=10,
        )

    def batch(self, operations: list[BatchOperation]) -> requests.Response:
        content_type, body = build_changeset(f"{self.fo.url}/data", operations)
        return requests.post(
            f"{self.fo.url}/data/$batch",
            headers={**self.headers, "Content-Type": content_type},
            data=body,
            verify=self.verify,
            timeout=10,
        )


@pytest.fixture
def api() -> Iterator[Api]:
    ca = SandboxCA()
    fo = FinanceOperationsEmulator(ca=ca, legal_entities=((AREA, "Sandbox NL"),)).start()
    fo.add_product("MUG-1", "Mug", price=Decimal("12.95"))
    fo.add_product("OLD-1", "Old mug", sales_stopped=True)
    try:
        yield Api(fo, ca)
    finally:
        fo.stop()
        ca.cleanup()


def _customer(api: Api) -> str:
    created = api.post(
        "CustomersV3",
        {
            "dataAreaId": AREA,
            "CustomerGroupId": "WEB",
            "SalesCurrencyCode": "EUR",
            "PartyType": "Person",
            "PersonFirstName": "Jan",
            "PrimaryContactEmail": "jan@example.nl",
        },
    )
    assert created.status_code == 201, created.text
    return str(created.json()["CustomerAccount"])


def test_reads_see_the_default_company_only_unless_cross_company(api: Api) -> None:
    assert api.get("ReleasedProductsV2").json()["value"] == []
    found = api.get(
        f"ReleasedProductsV2?cross-company=true&$filter=dataAreaId eq '{AREA}'&$select=ItemNumber"
    ).json()["value"]
    assert {row["ItemNumber"] for row in found} == {"MUG-1", "OLD-1"}


def test_filters_refuse_functions_in_and_plain_strings_for_enums_but_know_wildcards(
    api: Api,
) -> None:
    for query in (
        "startswith(ItemNumber,'M')",
        "ItemNumber in ('MUG-1')",
        "IsSalesProcessingStopped eq 'Yes'",
    ):
        answer = api.get(f"ProductDefaultOrderSettings?cross-company=true&$filter={query}")
        assert answer.status_code == 400, query
        assert answer.json()["error"]["code"] == ""
    stopped = api.get(
        "ProductDefaultOrderSettings?cross-company=true&$filter=IsSalesProcessingStopped eq "
        "Microsoft.Dynamics.DataEntities.NoYes'Yes'"
    ).json()["value"]
    assert [row["ItemNumber"] for row in stopped] == ["OLD-1"]
    wild = api.get("ReleasedProductsV2?cross-company=true&$filter=ItemNumber eq 'mug*'")
    assert [row["ItemNumber"] for row in wild.json()["value"]] == ["MUG-1"], "case-insensitive"


def test_a_changeset_is_atomic_and_its_failure_is_one_part_of_a_200_answer(api: Api) -> None:
    account = _customer(api)
    header = {
        "dataAreaId": AREA,
        "SalesOrderNumber": "WC-1",
        "OrderingCustomerAccountNumber": account,
        "CustomersOrderReference": "WC-1",
    }
    line = {"dataAreaId": AREA, "SalesOrderNumber": "WC-1", "OrderedSalesQuantity": 2}
    failed = api.batch(
        [
            BatchOperation("SalesOrderHeadersV2", header),
            BatchOperation("SalesOrderLines", {**line, "ItemNumber": "MUG-1"}),
            BatchOperation("SalesOrderLines", {**line, "ItemNumber": "OLD-1"}),
        ]
    )
    assert failed.status_code == 200
    parts = parse_batch_response(failed.headers["Content-Type"], failed.text)
    assert len(parts) == 1 and len(parts[0]) == 1
    error = json.loads(parts[0][0].text)["error"]
    assert parts[0][0].status == 500 and error["code"] == ""
    assert "AxODataWriteException" in error["innererror"]["type"]
    assert "OLD-1 is stopped for sales" in error["innererror"]["message"]
    assert api.fo.sales_orders() == [], "nothing of the changeset was applied"

    done = api.batch(
        [
            BatchOperation("SalesOrderHeadersV2", header),
            BatchOperation("SalesOrderLines", {**line, "ItemNumber": "MUG-1"}),
        ]
    )
    created = parse_batch_response(done.headers["Content-Type"], done.text)[0]
    assert [part.status for part in created] == [201, 201]
    assert json.loads(created[1].text)["LineAmount"] == 25.9
    again = api.batch([BatchOperation("SalesOrderHeadersV2", header)])
    duplicate = parse_batch_response(again.headers["Content-Type"], again.text)[0][0]
    assert (
        "The record already exists" in json.loads(duplicate.text)["error"]["innererror"]["message"]
    )


def test_own_numbers_need_a_sequence_that_allows_them(api: Api) -> None:
    account = _customer(api)
    api.fo.set_manual_numbers(False)
    refused = api.post(
        "SalesOrderHeadersV2",
        {"dataAreaId": AREA, "SalesOrderNumber": "WC-2", "OrderingCustomerAccountNumber": account},
    )
    assert refused.status_code == 400
    numbered = api.post(
        "SalesOrderHeadersV2", {"dataAreaId": AREA, "OrderingCustomerAccountNumber": account}
    )
    assert numbered.status_code == 201
    assert numbered.json()["SalesOrderNumber"].startswith("WCNL-")
    assert numbered.json()["AreTotalsCalculated"] == "No"


def test_an_app_f_and_o_does_not_know_gets_401_without_a_body(api: Api) -> None:
    api.fo.unregister_app()
    answer = api.get("LegalEntities")
    assert answer.status_code == 401 and answer.content == b""


def test_throttling_is_429_with_retry_after_in_seconds(api: Api) -> None:
    api.fo.throttle_next(1, retry_after=7)
    answer = api.get("LegalEntities")
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "7"
    assert api.get("LegalEntities").status_code == 200


def test_pages_follow_next_links_verbatim(api: Api) -> None:
    for number in range(5):
        api.fo.add_product(f"P-{number}", f"Product {number}")
    api.fo.page_size = 3
    seen: list[str] = []
    link: str | None = f"{api.fo.url}/data/ReleasedProductsV2?cross-company=true&$select=ItemNumber"
    while link:
        page = requests.get(link, headers=api.headers, verify=api.verify, timeout=10).json()
        seen.extend(row["ItemNumber"] for row in page["value"])
        link = page.get("@odata.nextLink")
    assert len(seen) == 7 and len(set(seen)) == 7


def test_an_unknown_entity_set_is_the_routing_layers_404(api: Api) -> None:
    answer = api.get("SalesOrderLinesV2")
    assert answer.status_code == 404
    assert "No HTTP resource was found" in answer.json()["Message"]
