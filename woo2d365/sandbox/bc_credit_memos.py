"""Sales credit memos for the Business Central emulator (docs/systems.md B6).

``POST salesCreditMemos`` with deep-inserted ``salesCreditMemoLines`` (atomic, like sales
orders); the customer is required; ``pricesIncludeTax`` is read-only and comes from the
customer card (set with :meth:`BusinessCentralEmulator.set_customer_prices_include_tax`);
lines are Item, Account or Comment lines priced and taxed as on a sales order; ``Microsoft.NAV
.post`` posts a draft, which renames it (the number changes, the id stays) and needs at least one
line and a quantity on every line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from woo2d365.sandbox import bc_model as m
from woo2d365.sandbox import bc_sales_orders as so
from woo2d365.sandbox.bc_odata import ODataError, Schema

_f = m._f

CREDIT_MEMO_STATUS = ("Draft", "In_x0020_Review", "Open", "Canceled", "Corrective", "Paid")
CREDIT_MEMO_SCHEMA: Schema = {
    "id": _f("guid", ro=True),
    "number": _f("code", 20, ro=True),
    "externalDocumentNumber": _f("code", 35),
    "creditMemoDate": _f("date"),
    "postingDate": _f("date"),
    "dueDate": _f("date"),
    **m.DOCUMENT_PARTIES,
    **m.SELL_TO_AND_BILL_TO_ADDRESS,
    **m.DIMENSIONS_AND_CURRENCY,
    "paymentTermsId": _f("guid"),
    "shipmentMethodId": _f("guid"),
    "salesperson": _f("code", 20),
    "pricesIncludeTax": _f("bool", ro=True),
    **m.DOCUMENT_TOTALS,
    "status": _f("enum", ro=True, enum=CREDIT_MEMO_STATUS),
    "lastModifiedDateTime": _f("datetime", ro=True),
    "invoiceId": _f("guid"),
    "invoiceNumber": _f("code", 20),
    "customerReturnReasonId": _f("guid"),
    **m.DOCUMENT_CONTACT,
}
_NOT_ON_CREDIT_MEMO_LINES = (
    "shipmentDate",
    "shippedQuantity",
    "invoicedQuantity",
    "invoiceQuantity",
    "shipQuantity",
)
CREDIT_MEMO_LINE_SCHEMA: Schema = {
    name: spec for name, spec in m.LINE_SCHEMA.items() if name not in _NOT_ON_CREDIT_MEMO_LINES
}
LINES = "salesCreditMemoLines"


@dataclass
class CreditMemoBook:
    """One company's credit memos (drafts and posted ones, as the API shows both)."""

    memos: dict[str, dict[str, Any]] = field(default_factory=dict)
    lines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # memo id -> lines
    next_draft_no: int = 1001
    next_posted_no: int = 103001

    def by_external_number(self, value: str) -> list[dict[str, Any]]:
        """The credit memos with this ``externalDocumentNumber``."""
        return [memo for memo in self.memos.values() if memo["externalDocumentNumber"] == value]


def _new_memo() -> dict[str, Any]:
    today = datetime.now(UTC).date()
    memo: dict[str, Any] = {
        name: "" for name, spec in CREDIT_MEMO_SCHEMA.items() if spec.type in ("string", "code")
    }
    memo.update(
        {
            "id": m.new_guid(),
            "creditMemoDate": today,
            "postingDate": today,
            "dueDate": today,
            "orderDate": today,  # what the shared line rules read (not on the page)
            "customerId": m.ZERO_GUID,
            "billToCustomerId": m.ZERO_GUID,
            "currencyId": m.ZERO_GUID,
            "currencyCode": m.LCY_CODE,
            "_currency": "",
            "paymentTermsId": m.ZERO_GUID,
            "shipmentMethodId": m.ZERO_GUID,
            "invoiceId": m.ZERO_GUID,
            "customerReturnReasonId": m.ZERO_GUID,
            "pricesIncludeTax": False,
            "discountAmount": Decimal("0"),
            "discountAppliedBeforeTax": True,
            "totalAmountExcludingTax": Decimal("0"),
            "totalTaxAmount": Decimal("0"),
            "totalAmountIncludingTax": Decimal("0"),
            "status": "Draft",
        }
    )
    return memo


def _reject_invoice(name: str, value: Any) -> None:
    """The sandbox has no posted invoices: a credit memo cannot name one."""
    if name in ("invoiceId", "invoiceNumber") and value not in ("", m.ZERO_GUID):
        raise m.app_error(
            f'The "{name}" does not match to a specific Invoice.'
            if name == "invoiceNumber"
            else 'The "invoiceId" does not match to a specific Invoice.'
        )


def _memo_parties(
    company: m.Company, memo: dict[str, Any], values: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Validate and set the header fields in page order; the sell-to and bill-to customers."""
    sell_to: dict[str, Any] | None = None
    bill_to: dict[str, Any] | None = None
    for name, spec in CREDIT_MEMO_SCHEMA.items():
        if name not in values:
            continue
        m.check_read_only(name, spec)
        value = m.normalised(name, spec, values[name])
        if name in ("customerId", "customerNumber"):
            sell_to = so.find_party(company, sell_to, name == "customerId", value, "sell-to")
        elif name in ("billToCustomerId", "billToCustomerNumber"):
            bill_to = so.find_party(company, bill_to, name == "billToCustomerId", value, "bill-to")
        elif name == "sellToCountry" and value and value not in company.countries:
            raise m.table_relation_error(
                "Sell-to Country/Region Code", "Sales Header", value, "Country/Region"
            )
        elif name not in ("currencyId", "currencyCode"):  # after the customer (page triggers)
            _reject_invoice(name, value)
            memo[name] = value
    if sell_to is None:
        raise m.app_error('A "customerNumber" or a "customerId" must be provided.')
    return sell_to, bill_to


def _apply_memo_customers(
    company: m.Company,
    memo: dict[str, Any],
    values: Mapping[str, Any],
    sell_to: Mapping[str, Any],
    bill_to: Mapping[str, Any] | None,
) -> None:
    """What validating the customers copies into the header (set fields stay)."""
    so.check_customer_not_blocked(sell_to)
    memo["customerId"], memo["customerNumber"] = sell_to["id"], sell_to["number"]
    for target, source in so.SELL_TO_FROM_CUSTOMER.items():
        if target not in values:
            memo[target] = sell_to[source]
    # Prices Including VAT comes from the customer card: the page cannot set it.
    memo["pricesIncludeTax"] = bool(sell_to.get("_pricesIncludeTax", False))
    memo["_currency"] = sell_to["_currency"]
    memo["currencyCode"] = sell_to["currencyCode"]
    memo["currencyId"] = sell_to["currencyId"]
    m.resolve_currency(company, values, memo)
    bill = bill_to or sell_to
    memo["billToCustomerId"], memo["billToCustomerNumber"] = bill["id"], bill["number"]
    memo["billToName"] = bill["displayName"]
    for target, source in so.BILL_TO_FROM_CUSTOMER.items():
        memo[target] = bill[source]


def create_credit_memo(
    company: m.Company, book: CreditMemoBook, body: Mapping[str, Any], ieee754: bool
) -> dict[str, Any]:
    """``POST salesCreditMemos`` with or without deep-inserted lines; all or nothing."""
    values, line_values = so.bind_document_body(
        body, CREDIT_MEMO_SCHEMA, "salesCreditMemo", LINES, CREDIT_MEMO_LINE_SCHEMA, ieee754
    )
    memo = _new_memo()
    sell_to, bill_to = _memo_parties(company, memo, values)
    _apply_memo_customers(company, memo, values, sell_to, bill_to)
    memo["number"] = f"S-CR{book.next_draft_no}"
    lines = [
        so.build_line(company, memo, lv, (index + 1) * 10000)
        for index, lv in enumerate(line_values)
    ]
    so.recalculate(company, memo, lines)
    book.next_draft_no += 1
    m.touch(memo)
    for line in lines:
        m.touch(line)
    book.memos[memo["id"]] = memo
    book.lines[memo["id"]] = lines
    return memo


def set_draft_status(memo: dict[str, Any], status: str) -> None:
    """A draft sent for approval, released (``Open``) or reopened; a posted memo cannot be."""
    if memo.get("_posted"):
        raise ValueError(f"credit memo {memo['number']} is posted")
    memo["status"] = status
    m.touch(memo)


def post_credit_memo(book: CreditMemoBook, memo: dict[str, Any]) -> None:
    """``Microsoft.NAV.post``: the draft (open or released) becomes a posted credit memo under a
    new number; one waiting for an approval, or posted, cannot be posted."""
    if memo.get("_posted") or memo["status"] not in ("Draft", "Open"):
        raise m.app_error(
            f"The Sales Credit Memo does not exist. Identification fields and values: Document "
            f"Type='Credit Memo',No.='{memo['number']}'"
        )
    lines = book.lines.get(memo["id"], [])
    priced = [line for line in lines if line["lineType"] != "Comment"]
    if not priced:
        raise m.app_error("Please add at least one line item to the credit memo.")
    for line in priced:
        if line["quantity"] == 0:
            raise ODataError(
                400,
                "Application_FieldValidationException",
                f"Quantity must have a value in Sales Line: Document Type=Credit Memo, "
                f"Document No.={memo['number']}, Line No.={line['sequence']}. It cannot be zero "
                "or empty.",
            )
    memo["number"] = f"PS-CR{book.next_posted_no}"
    book.next_posted_no += 1
    memo["status"] = "Open"
    memo["_posted"] = True
    m.touch(memo)
