"""Posted sales shipments and invoices in the Business Central emulator (``docs/systems.md`` B4).

What a person does in Business Central after the sales order exists, and what the API then shows:

* ship (part of) an order: one posted ``salesShipments`` row per posting, with
  ``salesShipmentLines`` whose ``sequence`` is the order line's and whose ``quantity`` is what this
  posting shipped; the order stays, its lines' ``shippedQuantity`` grow, ``fullyShipped`` once all
  are shipped;
* invoice (or ship and invoice in one go): a posted ``salesInvoices`` row with ``orderId``,
  ``orderNumber`` and the order's ``externalDocumentNumber``, status ``Open``; once everything is
  invoiced the sales order is **deleted**;
* a payment applied: the invoice becomes ``Paid`` and its ``lastModifiedDateTime`` moves;
* a tracking number typed on the posted shipment afterwards ("Update Document"): API v2.0 does not
  show it, but the shipment's ``lastModifiedDateTime`` moves; a custom API page (installed per
  tenant) shows shipping agent and package tracking number.

The entity sets are read-only here (GET only), filterable and paged like the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from woo2d365.sandbox import bc_model as m
from woo2d365.sandbox.bc_odata import FieldSpec, Schema


def _f(type_: str, length: int | None = None, *, enum: tuple[str, ...] = ()) -> FieldSpec:
    return FieldSpec(type_, length, True, enum)


# The head of a posted shipment and a posted invoice (the API pages share it).
_POSTED_HEADER: Schema = {
    "id": _f("guid"),
    "number": _f("code", 20),
    "externalDocumentNumber": _f("code", 35),
    "invoiceDate": _f("date"),
    "postingDate": _f("date"),
    "dueDate": _f("date"),
    "customerPurchaseOrderReference": _f("string", 35),
    "customerId": _f("guid"),
    "customerNumber": _f("code", 20),
    "customerName": _f("string", 100),
    "billToName": _f("string", 100),
    "billToCustomerId": _f("guid"),
    "billToCustomerNumber": _f("code", 20),
    "shipToName": _f("string", 100),
    "shipToContact": _f("string", 100),
}
SHIPMENT_SCHEMA: Schema = {
    **_POSTED_HEADER,
    "sellToAddressLine1": _f("string", 100),
    "sellToCity": _f("string", 30),
    "sellToCountry": _f("code", 10),
    "sellToPostCode": _f("code", 20),
    "shipToAddressLine1": _f("string", 100),
    "shipToAddressLine2": _f("string", 50),
    "shipToCity": _f("string", 30),
    "shipToCountry": _f("code", 10),
    "shipToState": _f("string", 30),
    "shipToPostCode": _f("code", 20),
    "currencyCode": _f("code", 10),
    "orderNumber": _f("code", 20),
    "paymentTermsCode": _f("code", 10),
    "shipmentMethodCode": _f("code", 10),
    "salesperson": _f("code", 20),
    "pricesIncludeTax": _f("bool"),
    "lastModifiedDateTime": _f("datetime"),
    "phoneNumber": _f("string", 30),
    "email": _f("string", 80),
}
# The Sales Line Type enum as OData spells it (blank, G/L Account... are escaped).
SHIPMENT_LINE_TYPES = (
    "_x0020_",
    "G_x002F_L_x0020_Account",
    "Item",
    "Resource",
    "Fixed_x0020_Asset",
    "Charge_x0020__x0028_Item_x0029_",
)
_LINE_TYPE_OF_ORDER_LINE = {
    "Comment": "_x0020_",
    "Account": "G_x002F_L_x0020_Account",
    "Item": "Item",
    "Resource": "Resource",
    "Fixed_x0020_Asset": "Fixed_x0020_Asset",
    "Charge": "Charge_x0020__x0028_Item_x0029_",
}
SHIPMENT_LINE_SCHEMA: Schema = {
    "id": _f("guid"),
    "documentId": _f("guid"),
    "documentNo": _f("code", 20),
    "sequence": _f("int"),
    "lineType": _f("enum", enum=SHIPMENT_LINE_TYPES),
    "lineObjectNumber": _f("code", 20),
    "description": _f("string", 100),
    "description2": _f("string", 50),
    "unitOfMeasureCode": _f("code", 10),
    "unitPrice": _f("decimal"),
    "quantity": _f("decimal"),
    "discountPercent": _f("decimal"),
    "taxPercent": _f("decimal"),
    "shipmentDate": _f("date"),
}
INVOICE_STATUS = ("_x0020_", "Draft", "In_x0020_Review", "Open", "Paid", "Canceled", "Corrective")
INVOICE_SCHEMA: Schema = {
    **_POSTED_HEADER,
    "currencyId": _f("guid"),
    "currencyCode": _f("code", 10),
    "orderId": _f("guid"),
    "orderNumber": _f("code", 20),
    "paymentTermsId": _f("guid"),
    "shipmentMethodId": _f("guid"),
    "salesperson": _f("code", 20),
    "pricesIncludeTax": _f("bool"),
    "remainingAmount": _f("decimal"),
    "discountAmount": _f("decimal"),
    "discountAppliedBeforeTax": _f("bool"),
    "totalAmountExcludingTax": _f("decimal"),
    "totalTaxAmount": _f("decimal"),
    "totalAmountIncludingTax": _f("decimal"),
    "status": _f("enum", enum=INVOICE_STATUS),
    "lastModifiedDateTime": _f("datetime"),
    "phoneNumber": _f("string", 30),
    "email": _f("string", 80),
}
TRACKING_SCHEMA: Schema = {
    "id": _f("guid"),
    "number": _f("code", 20),
    "externalDocumentNumber": _f("code", 35),
    "orderNumber": _f("code", 20),
    "postingDate": _f("date"),
    "shippingAgentCode": _f("code", 10),
    "shippingAgentServiceCode": _f("code", 10),
    "packageTrackingNumber": _f("string", 50),
    "lastModifiedDateTime": _f("datetime"),
}
NAVIGATIONS: dict[str, tuple[str, ...]] = {
    "salesShipment": m.DOCUMENT_NAVIGATIONS,
    "salesShipmentLine": ("dimensionSetLines",),
    "salesInvoice": ("salesInvoiceLines", *m.DOCUMENT_NAVIGATIONS),
    "postedShipmentTracking": (),
}


@dataclass
class Postings:
    """The posted documents of one company."""

    shipments: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> header
    shipment_lines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # header id
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> invoice
    next_shipment_no: int = 102001
    next_invoice_no: int = 103001

    def shipment_by_number(self, number: str) -> dict[str, Any]:
        """A posted shipment by its number."""
        for shipment in self.shipments.values():
            if shipment["number"] == number:
                return shipment
        raise KeyError(f"no posted shipment {number!r}")

    def invoice_by_number(self, number: str) -> dict[str, Any]:
        """A posted invoice by its number."""
        for invoice in self.invoices.values():
            if invoice["number"] == number:
                return invoice
        raise KeyError(f"no posted invoice {number!r}")

    def all_shipment_lines(self) -> list[dict[str, Any]]:
        """Every posted shipment line."""
        return [line for lines in self.shipment_lines.values() for line in lines]


def _copy(order: dict[str, Any], schema: Schema) -> dict[str, Any]:
    """The header fields a posted document copies from the order (``TransferFields``)."""
    return {name: order[name] for name in schema if name in order}


def post(
    company: m.Company,
    postings: Postings,
    order_number: str,
    *,
    ship: dict[int, Decimal] | None,
    invoice: bool,
    posting_date: date | None = None,
    everything: bool = False,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Post the sales order ``order_number``: ship the quantities ``ship`` (line sequence →
    quantity; with ``everything`` all that is left) and/or invoice what is shipped and not yet
    invoiced. Returns ``(shipment, invoice)`` entities (None for what was not posted)."""
    order_id = company.order_by_number.get(order_number)
    if order_id is None:
        raise KeyError(f"no sales order {order_number!r}")
    order = company.orders[order_id]
    lines = company.lines.get(order_id, [])
    when = posting_date or datetime.now(UTC).date()
    shipment = None
    wanted: dict[int, Decimal] = {}
    for line in lines:
        left = line["quantity"] - line["shippedQuantity"]
        if line["lineType"] == "Comment" or left <= 0:
            continue
        quantity = left if everything else Decimal(str((ship or {}).get(line["sequence"], 0)))
        if quantity > left:
            raise ValueError(f"line {line['sequence']}: only {left} left to ship")
        if quantity > 0:
            wanted[line["sequence"]] = quantity
    if wanted:
        shipment = _post_shipment(company, postings, order, lines, wanted, when)
    posted_invoice = _post_invoice(company, postings, order, lines, when) if invoice else None
    if posted_invoice is not None and all(
        line["invoicedQuantity"] >= line["quantity"]
        for line in lines
        if line["lineType"] != "Comment"
    ):
        _delete_order(company, order)  # DeleteAfterPosting: fully invoiced
    elif wanted or posted_invoice is not None:
        m.touch(order)
    return shipment, posted_invoice


def _post_shipment(
    company: m.Company,
    postings: Postings,
    order: dict[str, Any],
    lines: list[dict[str, Any]],
    wanted: dict[int, Decimal],
    when: date,
) -> dict[str, Any]:
    header = _copy(order, SHIPMENT_SCHEMA)
    header.update(
        id=m.new_guid(),
        number=str(postings.next_shipment_no),
        orderNumber=order["number"],
        invoiceDate=when,
        postingDate=when,
        dueDate=when,
        customerPurchaseOrderReference="",
        paymentTermsCode="",
        shipmentMethodCode="",
        _shippingAgentCode="",
        _shippingAgentServiceCode="",
        _packageTrackingNumber="",
    )
    postings.next_shipment_no += 1
    posted: list[dict[str, Any]] = []
    for line in lines:
        quantity = wanted.get(line["sequence"])
        if quantity is None:
            continue
        line["shippedQuantity"] += quantity
        if line["lineType"] == "Item":  # a posted shipment lowers inventory (docs/systems.md B4)
            item_id = company.item_by_number.get(str(line["lineObjectNumber"]).upper())
            if item_id is not None:
                item = company.items[item_id]
                item["inventory"] = Decimal(str(item.get("inventory") or 0)) - quantity
        posted.append(
            {
                "id": m.new_guid(),
                "documentId": header["id"],
                "documentNo": header["number"],
                "sequence": line["sequence"],
                "lineType": _LINE_TYPE_OF_ORDER_LINE.get(line["lineType"], "_x0020_"),
                "lineObjectNumber": line["lineObjectNumber"],
                "description": line["description"],
                "description2": line["description2"],
                "unitOfMeasureCode": line["unitOfMeasureCode"],
                "unitPrice": line["unitPrice"],
                "quantity": quantity,
                "discountPercent": line["discountPercent"],
                "taxPercent": line["taxPercent"],
                "shipmentDate": when,
                "_version": 1,
            }
        )
    order["fullyShipped"] = all(
        line["shippedQuantity"] >= line["quantity"]
        for line in lines
        if line["lineType"] != "Comment"
    )
    m.touch(header)
    postings.shipments[header["id"]] = header
    postings.shipment_lines[header["id"]] = posted
    return header


def _post_invoice(
    company: m.Company,
    postings: Postings,
    order: dict[str, Any],
    lines: list[dict[str, Any]],
    when: date,
) -> dict[str, Any] | None:
    net = tax = Decimal("0")
    invoiced_any = False
    for line in lines:
        quantity = line["shippedQuantity"] - line["invoicedQuantity"]
        if line["lineType"] == "Comment" or quantity <= 0:
            continue
        invoiced_any = True
        share = quantity / line["quantity"]
        net += m.round_amount(Decimal(line.get("amountExcludingTax") or 0) * share)
        tax += m.round_amount(Decimal(line.get("totalTaxAmount") or 0) * share)
        line["invoicedQuantity"] += quantity
    if not invoiced_any:
        return None
    invoice = _copy(order, INVOICE_SCHEMA)
    invoice.update(
        id=m.new_guid(),
        number=str(postings.next_invoice_no),
        invoiceDate=when,
        postingDate=when,
        dueDate=when,
        customerPurchaseOrderReference="",
        orderId=order["id"],
        orderNumber=order["number"],
        discountAmount=Decimal("0"),
        totalAmountExcludingTax=net,
        totalTaxAmount=tax,
        totalAmountIncludingTax=net + tax,
        remainingAmount=net + tax,
        status="Open",
    )
    postings.next_invoice_no += 1
    m.touch(invoice)
    postings.invoices[invoice["id"]] = invoice
    return invoice


def _delete_order(company: m.Company, order: dict[str, Any]) -> None:
    order_id = order["id"]
    company.order_by_number.pop(order["number"], None)
    company.orders.pop(order_id, None)
    for line in company.lines.pop(order_id, []):
        company.line_index.pop(line["id"], None)
    ids = company.order_by_ext.get(str(order.get("externalDocumentNumber") or ""), [])
    if order_id in ids:
        ids.remove(order_id)


def set_tracking(
    postings: Postings,
    shipment_number: str,
    *,
    agent: str,
    tracking_number: str,
    service: str = "",
) -> dict[str, Any]:
    """ "Update Document" on a posted shipment: agent, service and tracking number; the header is
    modified, so its ``lastModifiedDateTime`` moves."""
    shipment = postings.shipment_by_number(shipment_number)
    shipment["_shippingAgentCode"] = agent.upper()[:10]
    shipment["_shippingAgentServiceCode"] = service.upper()[:10]
    shipment["_packageTrackingNumber"] = tracking_number[:50]
    m.touch(shipment)
    return shipment


def set_invoice_status(postings: Postings, invoice_number: str, status: str) -> dict[str, Any]:
    """A payment applied (``Paid``, nothing remaining) or another status change."""
    if status not in INVOICE_STATUS:
        raise ValueError(f"unknown invoice status {status!r}")
    invoice = postings.invoice_by_number(invoice_number)
    invoice["status"] = status
    if status == "Paid":
        invoice["remainingAmount"] = Decimal("0")
    m.touch(invoice)
    return invoice


def tracking_row(shipment: dict[str, Any]) -> dict[str, Any]:
    """The custom API page's row for a posted shipment."""
    return {
        "id": shipment["id"],
        "number": shipment["number"],
        "externalDocumentNumber": shipment["externalDocumentNumber"],
        "orderNumber": shipment["orderNumber"],
        "postingDate": shipment["postingDate"],
        "shippingAgentCode": shipment["_shippingAgentCode"],
        "shippingAgentServiceCode": shipment["_shippingAgentServiceCode"],
        "packageTrackingNumber": shipment["_packageTrackingNumber"],
        "lastModifiedDateTime": shipment["lastModifiedDateTime"],
        "_version": shipment.get("_version", 0),
    }
