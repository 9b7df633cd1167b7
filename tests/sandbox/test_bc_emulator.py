"""The Business Central emulator behaves like BC online, strictly (``docs/systems.md`` B1–B3).

Everything goes over real HTTPS on 127.0.0.1, verified with the sandbox CA; tokens come from the
emulator's identity provider, once through real msal.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import msal
import pytest
import requests

from woo2d365.sandbox.businesscentral import BusinessCentralEmulator
from woo2d365.sandbox.tls import SandboxCA

TIMEOUT = 5


@pytest.fixture(scope="module")
def ca() -> Iterator[SandboxCA]:
    authority = SandboxCA()
    yield authority
    authority.cleanup()


@pytest.fixture(autouse=True)
def _trust_sandbox_ca(ca: SandboxCA, monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override Session.verify (and msal's
    # verify=), so the bundle variables must name the sandbox CA, as the tool documents.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.ca_path))
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.delenv("MSAL_FORCE_REGION", raising=False)


def _seed(bc: BusinessCentralEmulator) -> None:
    bc.add_item("1000", "Bicycle", unit_price=Decimal("100"))
    bc.add_item("2000", "Coffee beans", unit_price=Decimal("8.50"), vat_percent=Decimal("9"))
    bc.add_item("OLD-1", "Retired", blocked=True)
    bc.add_account("8400", "Shipping", vat_percent=Decimal("21"))
    bc.add_customer(
        "Jane Doe",
        email="Jane+Shop@Example.com",
        city="Amsterdam",
        country="NL",
        addressLine1="Damrak 1",
        postalCode="1012 LG",
    )


class Api:
    """A client with a bearer token from the emulator's token endpoint."""

    def __init__(self, bc: BusinessCentralEmulator) -> None:
        self.bc = bc
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {fetch_token(bc)}"

    @property
    def company(self) -> str:
        return f"{self.bc.api_base()}/companies({self.bc.company_id()})"

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self.session.get(url, timeout=TIMEOUT, **kwargs)

    def post(self, url: str, body: Any, **kwargs: Any) -> requests.Response:
        return self.session.post(url, json=body, timeout=TIMEOUT, **kwargs)


def fetch_token(bc: BusinessCentralEmulator, **overrides: str) -> str:
    response = _token_request(bc, **overrides)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _token_request(
    bc: BusinessCentralEmulator, tenant: str | None = None, **overrides: str
) -> requests.Response:
    form = {
        "grant_type": "client_credentials",
        "client_id": bc.client_id,
        "client_secret": bc.client_secret,
        "scope": bc.scope,
        **overrides,
    }
    return requests.post(
        f"{bc.authority_host}/{tenant or bc.tenant_id}/oauth2/v2.0/token",
        data=form,
        timeout=TIMEOUT,
    )


@pytest.fixture
def bc(ca: SandboxCA) -> Iterator[BusinessCentralEmulator]:
    with BusinessCentralEmulator(ca=ca) as emulator:
        _seed(emulator)
        yield emulator


@pytest.fixture
def api(bc: BusinessCentralEmulator) -> Api:
    return Api(bc)


def _order(**header: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customerNumber": "C00010",
        "externalDocumentNumber": "WC-1",
        "orderDate": "2025-03-01",
    }
    body.update(header)
    body.setdefault(
        "salesOrderLines",
        [
            {"lineType": "Item", "lineObjectNumber": "1000", "quantity": 1, "unitPrice": 10},
        ],
    )
    return body


def _error(response: requests.Response) -> tuple[int, str, str]:
    error = response.json()["error"]
    return response.status_code, error["code"], error["message"]


# --------------------------------------------------------------------------- identity provider


def test_msal_gets_a_token_by_discovery_and_serves_the_second_from_its_cache(
    bc: BusinessCentralEmulator, ca: SandboxCA
) -> None:
    app = msal.ConfidentialClientApplication(
        bc.client_id,
        client_credential=bc.client_secret,
        authority=f"{bc.authority_host}/{bc.tenant_id}",
        instance_discovery=False,
        verify=str(ca.ca_path),
    )
    first = app.acquire_token_for_client(scopes=[bc.scope])
    second = app.acquire_token_for_client(scopes=[bc.scope])

    assert first["token_source"] == "identity_provider"
    assert first["token_type"] == "Bearer" and first["expires_in"] > 0
    assert second["token_source"] == "cache"
    assert bc.token_requests == 1
    answer = requests.get(
        f"{bc.api_base()}/companies",
        timeout=TIMEOUT,
        headers={"Authorization": f"Bearer {second['access_token']}"},
    )
    assert answer.status_code == 200
    assert [c["name"] for c in answer.json()["value"]] == ["CRONUS NL"]


def test_msal_reports_a_wrong_secret_as_invalid_client(
    bc: BusinessCentralEmulator, ca: SandboxCA
) -> None:
    app = msal.ConfidentialClientApplication(
        bc.client_id,
        client_credential="not-the-secret",
        authority=f"{bc.authority_host}/{bc.tenant_id}",
        instance_discovery=False,
        verify=str(ca.ca_path),
    )
    result = app.acquire_token_for_client(scopes=[bc.scope])
    assert result["error"] == "invalid_client"
    assert "AADSTS7000215" in result["error_description"]
    assert "access_token" not in result


@pytest.mark.parametrize(
    ("overrides", "tenant", "status", "error", "aadsts"),
    [
        ({"client_secret": "wrong"}, None, 401, "invalid_client", 7000215),
        ({"client_secret": ""}, None, 401, "invalid_client", 7000216),
        ({"client_id": "someone-else"}, None, 400, "unauthorized_client", 700016),
        ({"scope": "https://graph.microsoft.com/.default"}, None, 400, "invalid_scope", 500011),
        (
            {"scope": "https://api.businesscentral.dynamics.com/user_impersonation"},
            None,
            400,
            "invalid_scope",
            1002012,
        ),
        ({"grant_type": "password"}, None, 400, "unsupported_grant_type", 70003),
        ({}, "other-tenant.example", 400, "invalid_request", 90002),
    ],
)
def test_token_endpoint_refuses_bad_requests_like_entra_id(
    bc: BusinessCentralEmulator,
    overrides: dict[str, str],
    tenant: str | None,
    status: int,
    error: str,
    aadsts: int,
) -> None:
    response = _token_request(bc, tenant=tenant, **overrides)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == error
    assert body["error_codes"] == [aadsts]
    assert body["error_description"].startswith(f"AADSTS{aadsts}:")
    assert "access_token" not in body
    assert bc.token_requests == 1


def test_discovery_of_an_unknown_tenant_fails(bc: BusinessCentralEmulator) -> None:
    response = requests.get(
        f"{bc.authority_host}/nobody.example/v2.0/.well-known/openid-configuration",
        timeout=TIMEOUT,
    )
    assert response.status_code == 400
    assert "AADSTS90002" in response.json()["error_description"]


# --------------------------------------------------------------------------- authentication


def test_api_answers_401_without_a_token_and_after_revocation(
    bc: BusinessCentralEmulator,
) -> None:
    url = f"{bc.api_base()}/companies"
    anonymous = requests.get(url, timeout=TIMEOUT)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer ")
    _, code, message = _error(anonymous)
    assert code == "Authentication_InvalidCredentials"
    assert message.startswith("The server has rejected the client credentials.  CorrelationId:")

    token = fetch_token(bc)
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(url, headers=headers, timeout=TIMEOUT).status_code == 200
    bc.revoke_tokens()
    assert requests.get(url, headers=headers, timeout=TIMEOUT).status_code == 401
    fresh = {"Authorization": f"Bearer {fetch_token(bc)}"}
    assert requests.get(url, headers=fresh, timeout=TIMEOUT).status_code == 200
    assert all(token not in f"{r.path}?{r.query}" for r in bc.requests)


def test_expired_and_made_up_tokens_are_rejected(ca: SandboxCA) -> None:
    with BusinessCentralEmulator(ca=ca, token_lifetime_seconds=0) as bc:
        expired = fetch_token(bc)
        for token in (expired, "made-up-token"):
            response = requests.get(
                f"{bc.api_base()}/companies",
                timeout=TIMEOUT,
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status_code == 401


def test_tenantless_base_url_and_company_query_option_work(
    bc: BusinessCentralEmulator, api: Api
) -> None:
    tenantless = f"{bc.url}/v2.0/{bc.environment}/api/v2.0/items"
    response = api.get(tenantless, params={"company": bc.company_id()})
    assert response.status_code == 200
    assert [i["number"] for i in response.json()["value"]] == ["1000", "2000", "OLD-1"]
    without_company = api.get(tenantless)
    assert _error(without_company)[:2] == (400, "Internal_CompanyNotFound")


def test_unknown_segments_environments_and_methods_are_refused(
    bc: BusinessCentralEmulator, api: Api
) -> None:
    assert _error(api.get(f"{api.company}/widgets"))[:2] == (404, "BadRequest_ResourceNotFound")
    other_env = bc.api_base().replace("/production/", "/sandbox/")
    assert api.get(f"{other_env}/companies").status_code == 404
    refused = api.post(f"{bc.api_base()}/companies", {"name": "X"})
    assert _error(refused)[:2] == (405, "BadRequest_MethodNotAllowed")


# --------------------------------------------------------------------------- deep insert and totals


def test_deep_insert_stores_order_and_lines_with_bc_numbers_and_totals(api: Api) -> None:
    body = _order(
        salesOrderLines=[
            {
                "lineType": "Item",
                "lineObjectNumber": "1000",
                "quantity": 2,
                "unitPrice": 19.99,
                "discountAmount": 2.00,
            },
            {"lineType": "Item", "lineObjectNumber": "2000", "quantity": 3},
            {
                "lineType": "Account",
                "lineObjectNumber": "8400",
                "description": "Shipping",
                "quantity": 1,
                "unitPrice": 4.95,
            },
            {"lineType": "Comment", "description": "Gift wrap please"},
        ]
    )
    response = api.post(f"{api.company}/salesOrders?$expand=salesOrderLines", body)

    assert response.status_code == 201, response.text
    order = response.json()
    assert order["number"] == "S-ORD101001"
    assert order["status"] == "Draft"
    assert order["@odata.etag"].startswith('W/"')
    assert response.headers["Location"].endswith(f"/salesOrders({order['id']})")
    lines = order["salesOrderLines"]
    assert [line["sequence"] for line in lines] == [10000, 20000, 30000, 40000]
    assert [line["description"] for line in lines] == [
        "Bicycle",
        "Coffee beans",
        "Shipping",
        "Gift wrap please",
    ]
    # 21 %: 37.98 + 4.95 = 42.93 -> VAT 9.02; 9 %: 3 x 8.50 = 25.50 -> VAT 2.30
    assert [line["taxPercent"] for line in lines] == [21, 9, 21, 0]
    assert [line["amountIncludingTax"] for line in lines] == [45.96, 27.8, 5.99, 0]
    assert order["totalAmountExcludingTax"] == 68.43
    assert order["totalTaxAmount"] == 11.32
    assert order["totalAmountIncludingTax"] == 79.75
    fetched = api.get(
        f"{api.company}/salesOrders({order['id']})", params={"$expand": "salesOrderLines"}
    ).json()
    assert fetched["salesOrderLines"] == lines
    assert fetched["totalAmountIncludingTax"] == 79.75


def test_prices_including_vat_take_the_vat_out_of_the_unit_price(api: Api) -> None:
    body = _order(
        pricesIncludeTax=True,
        salesOrderLines=[
            {"lineType": "Item", "lineObjectNumber": "1000", "quantity": 1, "unitPrice": 121},
            {"lineType": "Item", "lineObjectNumber": "2000", "quantity": 1, "unitPrice": 10.90},
        ],
    )
    order = api.post(f"{api.company}/salesOrders", body).json()
    assert order["totalAmountIncludingTax"] == 131.9
    assert order["totalAmountExcludingTax"] == 110.0
    assert order["totalTaxAmount"] == 21.9


def test_vat_is_rounded_once_per_document_and_rate_not_per_line(api: Api) -> None:
    # per line: 0.50 x 21 % = 0.105 -> 0.11, twice = 0.22; BC: 1.00 x 21 % = 0.21
    lines = [{"lineType": "Item", "lineObjectNumber": "1000", "quantity": 1, "unitPrice": 0.5}] * 2
    order = api.post(
        f"{api.company}/salesOrders?$expand=salesOrderLines", _order(salesOrderLines=lines)
    ).json()
    assert order["totalTaxAmount"] == 0.21
    assert order["totalAmountIncludingTax"] == 1.21
    assert [line["totalTaxAmount"] for line in order["salesOrderLines"]] == [0.11, 0.1]

    # incl. VAT: per line 1.00 / 1.21 = 0.83 twice = 1.66; BC: 2.00 / 1.21 = 1.65
    gross = [{"lineType": "Item", "lineObjectNumber": "1000", "quantity": 1, "unitPrice": 1}] * 2
    incl = api.post(
        f"{api.company}/salesOrders", _order(pricesIncludeTax=True, salesOrderLines=gross)
    ).json()
    assert incl["totalAmountExcludingTax"] == 1.65
    assert incl["totalTaxAmount"] == 0.35


def test_line_discount_percent_and_item_defaults_apply(api: Api) -> None:
    body = _order(
        salesOrderLines=[
            {"lineType": "Item", "lineObjectNumber": "1000", "quantity": 3, "discountPercent": 10},
        ]
    )
    order = api.post(f"{api.company}/salesOrders?$expand=salesOrderLines", body).json()
    line = order["salesOrderLines"][0]
    assert line["unitPrice"] == 100  # from the item card
    assert line["discountAmount"] == 30
    assert line["amountExcludingTax"] == 270
    assert line["unitOfMeasureCode"] == "PCS"
    assert order["totalAmountIncludingTax"] == 326.7


def test_code_fields_are_trimmed_upper_cased_and_lcy_is_stored_blank(
    bc: BusinessCentralEmulator, api: Api
) -> None:
    order = api.post(
        f"{api.company}/salesOrders",
        _order(externalDocumentNumber="  wc-1001 ", currencyCode="EUR", shipToCountry="de"),
    ).json()
    assert order["externalDocumentNumber"] == "WC-1001"
    assert order["shipToCountry"] == "DE"
    assert order["currencyCode"] == "EUR"
    assert order["currencyId"] == "00000000-0000-0000-0000-000000000000"
    usd = api.post(f"{api.company}/salesOrders", _order(currencyCode="USD")).json()
    assert usd["currencyCode"] == "USD"
    assert usd["currencyId"] != "00000000-0000-0000-0000-000000000000"
    assert [o["externalDocumentNumber"] for o in bc.sales_orders()] == ["WC-1001", "WC-1"]


def test_external_document_number_is_not_unique(bc: BusinessCentralEmulator, api: Api) -> None:
    for _ in range(2):
        assert api.post(f"{api.company}/salesOrders", _order()).status_code == 201
    found = api.get(
        f"{api.company}/salesOrders",
        params={"$filter": "externalDocumentNumber eq 'WC-1'", "$select": "id,number"},
    ).json()["value"]
    assert [o["number"] for o in found] == ["S-ORD101001", "S-ORD101002"]
    assert set(found[0]) == {"@odata.etag", "id", "number"}
    assert len(bc.sales_orders()) == 2


# --------------------------------------------------------------------------- validation families

_LONG_CITY = "Sankt Peter-Ording an der Nordsee Kreis"  # 39 > Text[30]


@pytest.mark.parametrize(
    ("header", "lines", "status", "code", "fragment"),
    [
        (
            {"number": "S-ORD999"},
            None,
            400,
            "BadRequest_InvalidOperation",
            "Control 'number' is read-only.",
        ),
        (
            {"totalAmountIncludingTax": 10},
            None,
            400,
            "BadRequest_InvalidOperation",
            "Control 'totalAmountIncludingTax' is read-only.",
        ),
        (
            {"billToCity": "X"},
            None,
            400,
            "BadRequest_InvalidOperation",
            "Control 'billToCity' is read-only.",
        ),
        (
            {},
            [
                {
                    "lineType": "Item",
                    "lineObjectNumber": "1000",
                    "quantity": 1,
                    "amountIncludingTax": 5,
                }
            ],
            400,
            "BadRequest_InvalidOperation",
            "Control 'amountIncludingTax' is read-only.",
        ),
        ({"shopOrderId": 5}, None, 400, "BadRequest", "Invalid Request Body"),
        (
            {},
            [{"lineType": "Item", "lineObjectNumber": "1000", "quantity": "1"}],
            400,
            "BadRequest",
            "Cannot convert a primitive value to the expected type 'Edm.Decimal'",
        ),
        ({"email": None}, None, 400, "BadRequest", "A null value was found"),
        ({"orderDate": "01-03-2025"}, None, 400, "BadRequest", "'Edm.Date'"),
        ({"orderDate": "2025-03-01T10:00:00Z"}, None, 400, "BadRequest", "'Edm.Date'"),
        (
            {},
            [{"lineType": "Item", "lineObjectNumber": "1000", "quantity": 1, "sequence": 10000}],
            500,
            "Internal_ServerError",
            "You cannot change the value of the SystemId field",
        ),
        (
            {"externalDocumentNumber": "WC-" + "1" * 33},
            None,
            400,
            "Application_StringExceededLength",
            "The length of the string is 36, but it must be less than or equal to 35 characters. "
            "Value: WC-111",
        ),
        (
            {"shipToCity": _LONG_CITY},
            None,
            400,
            "Application_StringExceededLength",
            f"The length of the string is 39, but it must be less than or equal to 30 characters. "
            f"Value: {_LONG_CITY}",
        ),
        (
            {"phoneNumber": "+31 20 CALL ME"},
            None,
            400,
            "Application_FieldValidationException",
            "Sell-to Phone No. must not contain letters",
        ),
        (
            {"email": "jane@@example"},
            None,
            400,
            "Application_DialogException",
            'The email address "jane@@example" is not valid.',
        ),
        (
            {"shipToCountry": "XX"},
            None,
            400,
            "Internal_InvalidTableRelation",
            "contains a value (XX) that cannot be found in the related table (Country/Region)",
        ),
        (
            {"currencyCode": "XYZ"},
            None,
            400,
            "Application_DialogException",
            'The "currencyCode" does not match to a Currency.',
        ),
        (
            {"customerNumber": "C99999"},
            None,
            400,
            "Application_DialogException",
            "The sell-to customer cannot be found.",
        ),
        (
            {},
            [{"lineType": "Item", "lineObjectNumber": "9999", "quantity": 1}],
            400,
            "Application_DialogException",
            "Item does not exist.",
        ),
        (
            {},
            [{"lineType": "Account", "lineObjectNumber": "9999", "quantity": 1}],
            400,
            "Application_DialogException",
            "Account does not exist.",
        ),
        (
            {},
            [{"lineObjectNumber": "1000", "quantity": 1}],
            400,
            "Internal_RecordNotFound",
            "The Standard Text does not exist.",
        ),
        (
            {},
            [{"lineType": "Item", "lineObjectNumber": "old-1", "quantity": 1}],
            400,
            "Application_FieldValidationException",
            "Blocked must be equal to 'No'",
        ),
        (
            {},
            [
                {"lineType": "Item", "lineObjectNumber": "1000", "quantity": 1},
                {
                    "lineType": "Item",
                    "lineObjectNumber": "1000",
                    "quantity": 1,
                    "description": "D" * 101,
                },
            ],
            400,
            "Application_StringExceededLength",
            "The length of the string is 101, but it must be less than or equal to 100",
        ),
    ],
)
def test_invalid_sales_orders_are_refused_and_nothing_is_stored(
    bc: BusinessCentralEmulator,
    api: Api,
    header: dict[str, Any],
    lines: list[dict[str, Any]] | None,
    status: int,
    code: str,
    fragment: str,
) -> None:
    body = _order(**header) if lines is None else _order(**header, salesOrderLines=lines)
    response = api.post(f"{api.company}/salesOrders?$expand=salesOrderLines", body)

    got_status, got_code, message = _error(response)
    assert (got_status, got_code) == (status, code)
    assert fragment in message
    assert "CorrelationId:" in message
    assert bc.sales_orders() == []


def test_sales_order_without_customer_is_refused(bc: BusinessCentralEmulator, api: Api) -> None:
    body = _order()
    del body["customerNumber"]
    status, code, message = _error(api.post(f"{api.company}/salesOrders", body))
    assert (status, code) == (400, "Application_DialogException")
    assert message.startswith('A "customerNumber" or a "customerId" must be provided.')
    assert bc.sales_orders() == []


def test_a_customer_id_and_number_that_disagree_are_refused(
    bc: BusinessCentralEmulator, api: Api
) -> None:
    other = bc.add_customer("Someone else", email="else@example.com")
    body = _order(customerId=other["id"])  # _order names its own customerNumber
    status, code, message = _error(api.post(f"{api.company}/salesOrders", body))
    assert (status, code) == (400, "Application_DialogException")
    assert "sell-to customer values do not match" in message
    assert bc.sales_orders() == []


def test_decimal_strings_are_accepted_only_with_ieee754_compatible(api: Api) -> None:
    body = _order(
        salesOrderLines=[
            {"lineType": "Item", "lineObjectNumber": "1000", "quantity": "2", "unitPrice": "1.5"}
        ]
    )
    response = api.session.post(
        f"{api.company}/salesOrders",
        data=json.dumps(body),
        timeout=TIMEOUT,
        headers={"Content-Type": "application/json;IEEE754Compatible=true"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["totalAmountExcludingTax"] == 3


def test_customers_are_validated_and_numbered_by_the_series(
    bc: BusinessCentralEmulator, api: Api
) -> None:
    url = f"{api.company}/customers"
    cases = [
        (
            {"email": "x@example.com"},
            "Application_DialogException",
            'A "displayName" must be provided.',
        ),
        (
            {"displayName": "A", "email": "not an email"},
            "Application_DialogException",
            "is not valid",
        ),
        (
            {"displayName": "A", "phoneNumber": "06-CALLME"},
            "Application_FieldValidationException",
            "Phone No. must not contain letters",
        ),
        ({"displayName": "A", "country": "ZZ"}, "Internal_InvalidTableRelation", "(ZZ)"),
        (
            {"displayName": "A", "city": "C" * 31},
            "Application_StringExceededLength",
            "The length of the string is 31",
        ),
        ({"displayName": "A", "balanceDue": 0}, "BadRequest", "Invalid Request Body"),
        (
            {"displayName": "A", "number": "c00010"},
            "Internal_EntityWithSameKeyExists",
            "No.='C00010'",
        ),
    ]
    for body, code, fragment in cases:
        status, got_code, message = _error(api.post(url, body))
        assert (status, got_code) == (400, code), body
        assert fragment in message, body
    created = api.post(
        url,
        {
            "displayName": "Piet Jansen",
            "email": "piet@example.nl",
            "country": "nl",
            "type": "Person",
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["number"] == "C00020"
    assert created.json()["country"] == "NL"
    assert [c["number"] for c in bc.customers()] == ["C00010", "C00020"]


# --------------------------------------------------------------------------- queries


def test_filters_decode_quotes_and_plus_signs_like_a_real_server(
    bc: BusinessCentralEmulator, api: Api
) -> None:
    api.post(f"{api.company}/salesOrders", _order(externalDocumentNumber="O'BRIEN+1"))
    url = f"{api.company}/salesOrders"
    encoded = quote("externalDocumentNumber eq 'O''BRIEN+1'", safe="")
    assert len(api.get(f"{url}?$filter={encoded}").json()["value"]) == 1
    # an unencoded '+' arrives as a space, so nothing matches
    raw_plus = "externalDocumentNumber%20eq%20'O''BRIEN+1'"
    assert api.get(f"{url}?$filter={raw_plus}").json()["value"] == []

    customers = f"{api.company}/customers"
    exact = api.get(customers, params={"$filter": "email eq 'jane+shop@example.com'"})
    assert exact.json()["value"] == []  # plain comparisons are case-sensitive
    lowered = api.get(customers, params={"$filter": "tolower(email) eq 'jane+shop@example.com'"})
    assert [c["number"] for c in lowered.json()["value"]] == ["C00010"]


def test_last_modified_filter_returns_only_newer_items(
    bc: BusinessCentralEmulator, api: Api
) -> None:
    cutoff = datetime.now(UTC)
    time.sleep(0.01)
    bc.set_item("2000", blocked=True)
    stamp = cutoff.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    newer = api.get(
        f"{api.company}/items", params={"$filter": f"lastModifiedDateTime gt {stamp}"}
    ).json()["value"]
    assert [(i["number"], i["blocked"]) for i in newer] == [("2000", True)]
    # the same instant written with an offset (its '+' URL-encoded) finds the same item
    changed = datetime.fromisoformat(newer[0]["lastModifiedDateTime"].replace("Z", "+00:00"))
    local = changed.astimezone(timezone(timedelta(hours=1))).isoformat(timespec="milliseconds")
    encoded = quote(f"lastModifiedDateTime ge {local}", safe="")
    again = api.get(f"{api.company}/items?$filter={encoded}").json()["value"]
    assert [i["number"] for i in again] == ["2000"]


@pytest.mark.parametrize(
    "expression",
    [
        "number eq",
        "number eq 'unterminated",
        "nosuchfield eq 'x'",
        "number eq 1000",
        "lastModifiedDateTime gt '2025-01-01T00:00:00Z'",
        "lastModifiedDateTime gt 2025-01-01T00:00:00 01:00",  # a '+' that was not encoded
        "number EQ '1000'",
        "number eq '1000' or displayName eq 'Bicycle'",
        "number in ('1000','2000')",
    ],
)
def test_filters_the_server_cannot_apply_are_400_not_a_match_all(api: Api, expression: str) -> None:
    response = api.get(f"{api.company}/items", params={"$filter": expression})
    assert response.status_code == 400
    assert response.json()["error"]["code"].startswith("BadRequest_")


def test_in_operator_needs_schemaversion_2_1(api: Api) -> None:
    response = api.get(
        f"{api.company}/items",
        params={"$filter": "number in ('1000','2000')", "$schemaversion": "2.1"},
    )
    assert [i["number"] for i in response.json()["value"]] == ["1000", "2000"]


def test_server_driven_paging_follows_prefer_maxpagesize_and_next_links(
    bc: BusinessCentralEmulator, api: Api
) -> None:
    for n in range(3, 8):
        bc.add_item(f"{n}000", f"Item {n}")
    headers = {"Prefer": "odata.maxpagesize=3"}
    url: str | None = f"{api.company}/items?$select=number"
    pages: list[list[str]] = []
    while url:
        page = api.get(url, headers=headers)
        assert page.status_code == 200
        assert page.headers["Preference-Applied"] == "odata.maxpagesize=3"
        pages.append([i["number"] for i in page.json()["value"]])
        url = page.json().get("@odata.nextLink")
    assert pages == [["1000", "2000", "3000"], ["4000", "5000", "6000"], ["7000", "OLD-1"]]

    limited = api.get(f"{api.company}/items?$top=4", headers=headers).json()
    rest = api.get(limited["@odata.nextLink"], headers=headers).json()
    assert len(limited["value"]) + len(rest["value"]) == 4
    assert "@odata.nextLink" not in rest
    assert "@odata.nextLink" not in api.get(f"{api.company}/items").json()


def test_sales_order_lines_need_a_document_id(api: Api) -> None:
    order = api.post(f"{api.company}/salesOrders", _order()).json()
    status, code, message = _error(api.get(f"{api.company}/salesOrderLines"))
    assert (status, code) == (400, "Application_DialogException")
    assert message.startswith("You must specify an Id or a Document Id to get the lines.")
    by_filter = api.get(
        f"{api.company}/salesOrderLines", params={"$filter": f"documentId eq {order['id']}"}
    ).json()["value"]
    nested = api.get(f"{api.company}/salesOrders({order['id']})/salesOrderLines").json()["value"]
    assert by_filter == nested and len(nested) == 1


def test_accounts_and_countries_are_served(api: Api) -> None:
    accounts = api.get(f"{api.company}/accounts").json()["value"]
    assert [(a["number"], a["displayName"], a["blocked"]) for a in accounts] == [
        ("8400", "Shipping", False)
    ]
    countries = api.get(
        f"{api.company}/countriesRegions", params={"$filter": "code eq 'DE'"}
    ).json()["value"]
    assert [(c["code"], c["displayName"]) for c in countries] == [("DE", "Germany")]


# --------------------------------------------------------------------------- limits and faults


def test_rate_limit_answers_429_with_retry_after(ca: SandboxCA) -> None:
    with BusinessCentralEmulator(ca=ca, rate_limit=3, rate_window_seconds=60) as bc:
        api = Api(bc)
        statuses = [api.get(f"{bc.api_base()}/companies").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        throttled = api.get(f"{bc.api_base()}/companies")
        assert 1 <= int(throttled.headers["Retry-After"]) <= 60
        assert throttled.json()["error"]["code"] == "Application_TooManyRequests"


def test_at_most_five_requests_run_at_once_and_the_rest_wait(ca: SandboxCA) -> None:
    with BusinessCentralEmulator(ca=ca, latency=0.3) as bc:
        token = fetch_token(bc)
        statuses: list[int] = []

        def call() -> None:
            answer = requests.get(
                f"{bc.api_base()}/companies",
                timeout=TIMEOUT,
                headers={"Authorization": f"Bearer {token}"},
            )
            statuses.append(answer.status_code)

        threads = [threading.Thread(target=call) for _ in range(8)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT)
        elapsed = time.monotonic() - started
        assert statuses == [200] * 8  # queued, not rejected
        assert bc.max_in_flight_seen == 5
        assert elapsed >= 0.55  # two waves of 0.3 s


def test_dropped_answer_after_commit_leaves_exactly_one_order(
    bc: BusinessCentralEmulator, api: Api
) -> None:
    bc.drop_after_commit_next()
    with pytest.raises(requests.ConnectionError):
        api.post(f"{api.company}/salesOrders", _order(externalDocumentNumber="WC-77"))
    assert [o["externalDocumentNumber"] for o in bc.sales_orders()] == ["WC-77"]
    assert bc.requests[-1].status == 0
    found = api.get(
        f"{api.company}/salesOrders", params={"$filter": "externalDocumentNumber eq 'WC-77'"}
    ).json()["value"]
    assert len(found) == 1
    assert api.post(f"{api.company}/salesOrders", _order()).status_code == 201


def test_dropped_connection_before_processing_stores_nothing(
    bc: BusinessCentralEmulator, api: Api
) -> None:
    bc.drop_next(method="POST", path_contains="salesOrders")
    with pytest.raises(requests.ConnectionError):
        api.post(f"{api.company}/salesOrders", _order())
    assert bc.sales_orders() == []


def test_injected_failures_carry_status_code_and_retry_after(
    bc: BusinessCentralEmulator, api: Api
) -> None:
    bc.fail_next(
        2,
        status=503,
        code="Internal_ServiceUnavailable",
        message="Busy.",
        retry_after=7,
        path_contains="/items",
    )
    assert api.get(f"{bc.api_base()}/companies").status_code == 200  # does not match
    for _ in range(2):
        failed = api.get(f"{api.company}/items")
        assert failed.status_code == 503
        assert failed.headers["Retry-After"] == "7"
        assert failed.json()["error"]["code"] == "Internal_ServiceUnavailable"
    assert api.get(f"{api.company}/items").status_code == 200
    assert [r.status for r in bc.requests[-4:]] == [200, 503, 503, 200]
