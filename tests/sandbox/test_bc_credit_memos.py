"""The Business Central emulator's sales credit memos (docs/systems.md, "Credit memos")."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.sandbox import test_bc_emulator as base
from tests.sandbox.test_bc_emulator import Api, _error
from woo2d365.sandbox.businesscentral import BusinessCentralEmulator

# The emulator module's fixtures: a CA, a seeded emulator, an authorised client.
ca, bc, api, _trust_sandbox_ca = base.ca, base.bc, base.api, base._trust_sandbox_ca


def _memo(**header: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"customerNumber": "C00010", "externalDocumentNumber": "WC-1-R2"}
    body.update(header)
    body.setdefault(
        "salesCreditMemoLines",
        [
            {"lineType": "Item", "lineObjectNumber": "1000", "quantity": 1, "unitPrice": 10},
            {"lineType": "Account", "lineObjectNumber": "8400", "quantity": 1, "unitPrice": 5},
        ],
    )
    return body


def test_a_deep_insert_creates_the_credit_memo_and_its_lines_at_once(api: Api) -> None:
    created = api.post(f"{api.company}/salesCreditMemos?$expand=salesCreditMemoLines", _memo())
    assert created.status_code == 201, created.text
    memo = created.json()
    assert memo["status"] == "Draft" and memo["pricesIncludeTax"] is False
    assert Decimal(str(memo["totalAmountIncludingTax"])) == Decimal("18.15")
    assert [line["lineType"] for line in memo["salesCreditMemoLines"]] == ["Item", "Account"]
    found = api.get(
        f"{api.company}/salesCreditMemos",
        params={"$filter": "externalDocumentNumber eq 'WC-1-R2'", "$select": "id,number"},
    ).json()["value"]
    assert [entry["id"] for entry in found] == [memo["id"]]


def test_prices_include_tax_is_read_only_and_comes_from_the_customer_card(
    api: Api, bc: BusinessCentralEmulator
) -> None:
    refused = api.post(f"{api.company}/salesCreditMemos", _memo(pricesIncludeTax=True))
    status, code, message = _error(refused)
    assert (status, code) == (400, "BadRequest_InvalidOperation")
    assert message.startswith("Control 'pricesIncludeTax' is read-only.")
    bc.set_customer_prices_include_tax("C00010", True)
    memo = api.post(f"{api.company}/salesCreditMemos", _memo()).json()
    assert memo["pricesIncludeTax"] is True
    assert Decimal(str(memo["totalAmountIncludingTax"])) == Decimal("15")


def test_a_credit_memo_needs_a_customer_and_nothing_is_stored_when_a_line_fails(
    api: Api, bc: BusinessCentralEmulator
) -> None:
    body = _memo()
    del body["customerNumber"]
    missing = api.post(f"{api.company}/salesCreditMemos", body)
    assert _error(missing)[2].startswith('A "customerNumber" or a "customerId" must be provided.')
    bad_line = _memo(salesCreditMemoLines=[{"lineType": "Item", "lineObjectNumber": "NOPE"}])
    assert api.post(f"{api.company}/salesCreditMemos", bad_line).status_code == 400
    assert bc.credit_memos() == []
    lines = api.get(f"{api.company}/salesCreditMemoLines")
    assert _error(lines)[2].startswith("You must specify an id or a Document Id to get the lines.")


def test_posting_renames_the_credit_memo_keeps_its_id_and_happens_once(
    api: Api, bc: BusinessCentralEmulator
) -> None:
    memo = api.post(f"{api.company}/salesCreditMemos", _memo()).json()
    url = f"{api.company}/salesCreditMemos({memo['id']})"
    posted = api.post(f"{url}/Microsoft.NAV.post", None)
    assert posted.status_code == 204, posted.text
    after = api.get(url).json()
    assert after["id"] == memo["id"] and after["number"] != memo["number"]
    assert after["status"] == "Open"
    assert api.post(f"{url}/Microsoft.NAV.post", None).status_code == 400
    empty = api.post(f"{api.company}/salesCreditMemos", _memo(salesCreditMemoLines=[])).json()
    refused = api.post(f"{api.company}/salesCreditMemos({empty['id']})/Microsoft.NAV.post", None)
    assert _error(refused)[2].startswith("Please add at least one line item to the credit memo.")
