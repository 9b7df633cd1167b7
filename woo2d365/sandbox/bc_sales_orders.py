"""Business Central sales orders for the emulator: the deep-insert POST of ``salesOrders``, the
POST of one more line, and BC's line amounts, invoice discount and VAT.

Follows ``docs/systems.md`` (B2, B3) and the API pages ``APIV2 - Sales Orders`` (30028) and
``APIV2 - Sales Order Lines`` (30044): fields are validated in page order, the deep insert is
atomic, and VAT is computed per VAT rate over the document (BC's cumulative rounding).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from woo2d365.sandbox.bc_model import (
    BLANK_DATE,
    LCY_CODE,
    LINE_SCHEMA,
    ORDER_SCHEMA,
    QUANTITY_PRECISION,
    UNIT_AMOUNT_PRECISION,
    ZERO_GUID,
    Company,
    app_error,
    bad_request,
    bind_body,
    check_email,
    check_phone,
    check_read_only,
    new_guid,
    normalised,
    record_not_found,
    reject_unknown_id,
    resolve_currency,
    round_amount,
    table_relation_error,
    touch,
)
from woo2d365.sandbox.bc_odata import ODataError, Schema


def _new_order(company: Company) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    return {
        "id": new_guid(),
        "number": "",
        "externalDocumentNumber": "",
        "orderDate": today,
        "postingDate": today,
        "customerId": ZERO_GUID,
        "customerNumber": "",
        "customerName": "",
        "billToName": "",
        "billToCustomerId": ZERO_GUID,
        "billToCustomerNumber": "",
        "shipToName": "",
        "shipToContact": "",
        "sellToAddressLine1": "",
        "sellToAddressLine2": "",
        "sellToCity": "",
        "sellToCountry": "",
        "sellToState": "",
        "sellToPostCode": "",
        "billToAddressLine1": "",
        "billToAddressLine2": "",
        "billToCity": "",
        "billToCountry": "",
        "billToState": "",
        "billToPostCode": "",
        "shipToAddressLine1": "",
        "shipToAddressLine2": "",
        "shipToCity": "",
        "shipToCountry": "",
        "shipToState": "",
        "shipToPostCode": "",
        "shortcutDimension1Code": "",
        "shortcutDimension2Code": "",
        "currencyId": ZERO_GUID,
        "currencyCode": LCY_CODE,
        "_currency": "",
        "pricesIncludeTax": False,
        "paymentTermsId": ZERO_GUID,
        "shipmentMethodId": ZERO_GUID,
        "salesperson": "",
        "partialShipping": True,
        "requestedDeliveryDate": BLANK_DATE,
        "discountAmount": Decimal("0"),
        "discountAppliedBeforeTax": True,
        "totalAmountExcludingTax": Decimal("0"),
        "totalTaxAmount": Decimal("0"),
        "totalAmountIncludingTax": Decimal("0"),
        "fullyShipped": False,
        "status": "Draft",
        "phoneNumber": "",
        "email": "",
    }


SELL_TO_FROM_CUSTOMER = {
    "customerName": "displayName",
    "sellToAddressLine1": "addressLine1",
    "sellToAddressLine2": "addressLine2",
    "sellToCity": "city",
    "sellToCountry": "country",
    "sellToState": "state",
    "sellToPostCode": "postalCode",
    "phoneNumber": "phoneNumber",
    "email": "email",
}
_SHIP_TO_FROM_CUSTOMER = {
    "shipToName": "displayName",
    "shipToAddressLine1": "addressLine1",
    "shipToAddressLine2": "addressLine2",
    "shipToCity": "city",
    "shipToCountry": "country",
    "shipToState": "state",
    "shipToPostCode": "postalCode",
}
_BILL_TO_FROM_SELL_TO = {
    "billToAddressLine1": "sellToAddressLine1",
    "billToAddressLine2": "sellToAddressLine2",
    "billToCity": "sellToCity",
    "billToCountry": "sellToCountry",
    "billToState": "sellToState",
    "billToPostCode": "sellToPostCode",
}
_HEADER_RELATIONS = {
    "sellToCountry": ("Sell-to Country/Region Code", "Country/Region"),
    "shipToCountry": ("Ship-to Country/Region Code", "Country/Region"),
    "shortcutDimension1Code": ("Shortcut Dimension 1 Code", "Dimension Value"),
    "shortcutDimension2Code": ("Shortcut Dimension 2 Code", "Dimension Value"),
    "salesperson": ("Salesperson Code", "Salesperson/Purchaser"),
}


def check_customer_not_blocked(customer: Mapping[str, Any]) -> None:
    # Ship and Invoice block orders too (Customer.CheckBlockedCustOnDocs).
    if customer["blocked"] in ("Ship", "Invoice", "All"):
        raise app_error(
            f"You cannot create this type of document when Customer {customer['number']} is "
            f"blocked with type {customer['blocked']}"
        )


def find_party(
    company: Company, known: dict[str, Any] | None, by_id: bool, value: Any, role: str
) -> dict[str, Any]:
    """The sell-to or bill-to customer named by id or number; both given must agree."""
    if by_id:
        found = company.customers.get(value)
    elif known is not None:
        if known["number"] != value:
            raise app_error(f"The {role} customer values do not match to a specific Customer.")
        return known
    else:
        found = company.customer_by_no(value)
    if found is None:
        raise app_error(f"The {role} customer cannot be found.")
    return found


def bind_document_body(
    body: Mapping[str, Any],
    schema: Schema,
    entity: str,
    lines_key: str,
    line_schema: Schema,
    ieee754: bool,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The bound header values of a document and the bound values of each deep-inserted line
    (``lines_key``; each line's entity type is ``entity + "Line"``)."""
    values = bind_body(body, schema, entity, ieee754, (lines_key,))
    raw_lines = values.pop(lines_key, [])
    if not isinstance(raw_lines, list) or any(not isinstance(x, dict) for x in raw_lines):
        raise bad_request(f"Invalid Request Body: '{lines_key}' must be an array of objects.")
    line_entity = entity + "Line"
    return values, [bind_body(raw, line_schema, line_entity, ieee754) for raw in raw_lines]


def _check_header_field(company: Company, values: Mapping[str, Any], name: str, value: Any) -> None:
    """Table relations and unknown ids of one header field (page order)."""
    if name in _HEADER_RELATIONS and value:
        caption, related = _HEADER_RELATIONS[name]
        if related != "Country/Region" or value not in company.countries:
            raise table_relation_error(caption, "Sales Header", value, related)
    elif name in ("paymentTermsId", "shipmentMethodId"):
        reject_unknown_id(values, name)


def _order_parties(
    company: Company, values: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Validate the header fields in page order; the sell-to and the bill-to customer (if any)."""
    sell_to: dict[str, Any] | None = None
    bill_to: dict[str, Any] | None = None
    for name, spec in ORDER_SCHEMA.items():
        if name not in values:
            continue
        check_read_only(name, spec)
        value = normalised(name, spec, values[name])
        if name in ("customerId", "customerNumber"):
            sell_to = find_party(company, sell_to, name == "customerId", value, "sell-to")
        elif name in ("billToCustomerId", "billToCustomerNumber"):
            bill_to = find_party(company, bill_to, name == "billToCustomerId", value, "bill-to")
        else:
            _check_header_field(company, values, name, value)
    if sell_to is None:
        raise app_error('A "customerNumber" or a "customerId" must be provided.')
    return sell_to, bill_to


def _apply_customers(
    order: dict[str, Any], sell_to: Mapping[str, Any], bill_to: Mapping[str, Any] | None
) -> None:
    """Validating the sell-to (and bill-to) customer copies its data into the header."""
    check_customer_not_blocked(sell_to)
    order["customerId"] = sell_to["id"]
    order["customerNumber"] = sell_to["number"]
    for target, source in SELL_TO_FROM_CUSTOMER.items():
        order[target] = sell_to[source]
    for target, source in _SHIP_TO_FROM_CUSTOMER.items():
        order[target] = sell_to[source]
    order["_currency"] = sell_to["_currency"]
    order["currencyCode"] = sell_to["currencyCode"]
    order["currencyId"] = sell_to["currencyId"]
    bill = bill_to or sell_to
    if bill_to is not None:
        check_customer_not_blocked(bill_to)
    order["billToCustomerId"] = bill["id"]
    order["billToCustomerNumber"] = bill["number"]
    order["billToName"] = bill["displayName"]


_PARTY_AND_CURRENCY_FIELDS = (
    "customerId",
    "customerNumber",
    "billToCustomerId",
    "billToCustomerNumber",
    "currencyId",
    "currencyCode",
)


def _apply_header_values(order: dict[str, Any], values: Mapping[str, Any]) -> None:
    """The fields the client set, on top of the customer's (TransferFieldsWithValidate)."""
    for name, spec in ORDER_SCHEMA.items():
        if name not in values or name in _PARTY_AND_CURRENCY_FIELDS:
            continue
        value = normalised(name, spec, values[name])
        if name == "phoneNumber":
            check_phone(value, "Sell-to Phone No.", "Sales Header Document Type='Order',No.=''")
        if name == "email":
            check_email(value)
        order[name] = value


BILL_TO_FROM_CUSTOMER = {
    "billToAddressLine1": "addressLine1",
    "billToAddressLine2": "addressLine2",
    "billToCity": "city",
    "billToCountry": "country",
    "billToState": "state",
    "billToPostCode": "postalCode",
}


def _apply_bill_to_address(order: dict[str, Any], bill_to: Mapping[str, Any] | None) -> None:
    """The bill-to address: the bill-to customer's, else the sell-to address of the header."""
    if bill_to is None:
        for target, source in _BILL_TO_FROM_SELL_TO.items():
            order[target] = order[source]
    else:
        for target, source in BILL_TO_FROM_CUSTOMER.items():
            order[target] = bill_to[source]


def _build_deep_lines(
    company: Company, order: dict[str, Any], line_values: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The deep-inserted lines, numbered 10000, 20000, ..."""
    lines: list[dict[str, Any]] = []
    for index, lv in enumerate(line_values):
        if "sequence" in lv:
            # BC 22 deep-insert regression (``docs/systems.md`` B2): lines with "sequence" fail.
            raise ODataError(
                500,
                "Internal_ServerError",
                "You cannot change the value of the SystemId field. Table: Sales Line, "
                f"Document Type='Order', Document No.='{order['number']}', "
                f"Line No.='{(index + 1) * 10000}'",
            )
        lines.append(build_line(company, order, lv, (index + 1) * 10000))
    return lines


def _store_order(company: Company, order: dict[str, Any], lines: list[dict[str, Any]]) -> None:
    """Commit a new order with its lines."""
    company.next_order_no += 1
    touch(order)
    for line in lines:
        touch(line)
    company.orders[order["id"]] = order
    company.order_by_number[order["number"]] = order["id"]
    company.order_by_ext.setdefault(order["externalDocumentNumber"], []).append(order["id"])
    company.lines[order["id"]] = lines
    for line in lines:
        company.line_index[line["id"]] = order["id"]


def create_sales_order(
    company: Company, body: Mapping[str, Any], ieee754: bool
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """POST salesOrders, with or without a deep-inserted ``salesOrderLines`` array.

    Nothing is stored unless the header and every line pass (one transaction).
    """
    values, line_values = bind_document_body(
        body, ORDER_SCHEMA, "salesOrder", "salesOrderLines", LINE_SCHEMA, ieee754
    )
    order = _new_order(company)
    sell_to, bill_to = _order_parties(company, values)
    # Sales Header: validating the sell-to customer copies its data, then the fields the
    # client set are applied on top (TransferFieldsWithValidate, in registration order).
    _apply_customers(order, sell_to, bill_to)
    _apply_header_values(order, values)
    resolve_currency(company, values, order)
    _apply_bill_to_address(order, bill_to)
    order["number"] = f"S-ORD{company.next_order_no}"
    lines = _build_deep_lines(company, order, line_values)
    recalculate(company, order, lines)
    _store_order(company, order, lines)
    return order, lines


def add_sales_order_line(
    company: Company, order: dict[str, Any], body: Mapping[str, Any], ieee754: bool
) -> dict[str, Any]:
    """POST salesOrders({id})/salesOrderLines: one more line (``sequence`` allowed here)."""
    values = bind_body(body, LINE_SCHEMA, "salesOrderLine", ieee754)
    if order["status"] != "Draft":
        raise app_error(
            f"Status must be equal to 'Open'  in Sales Header: Document Type=Order, "
            f"No.={order['number']}. Current value is 'Released'.",
            "Application_FieldValidationException",
        )
    existing = company.lines.setdefault(order["id"], [])
    if "sequence" in values:
        line_no = values["sequence"]
        if line_no <= 0:
            raise app_error("The value for sequence must be greater than 0.")
        if any(line["sequence"] == line_no for line in existing):
            raise ODataError(
                400,
                "Internal_EntityWithSameKeyExists",
                "The record in table Sales Line already exists. Identification fields and "
                f"values: Document Type='Order',Document No.='{order['number']}',"
                f"Line No.='{line_no}'",
            )
    else:
        line_no = (max((line["sequence"] for line in existing), default=0) // 10000 + 1) * 10000
    line = build_line(company, order, values, line_no)
    candidate = sorted([*existing, line], key=lambda x: x["sequence"])
    recalculate(company, order, candidate)
    existing[:] = candidate
    touch(line)
    touch(order)
    company.line_index[line["id"]] = order["id"]
    return line


def _line_key(order: Mapping[str, Any], line_no: int) -> str:
    return f"Sales Line Document Type='Order',Document No.='{order['number']}',Line No.='{line_no}'"


def _new_line(order: Mapping[str, Any], line_no: int) -> dict[str, Any]:
    return {
        "id": new_guid(),
        "documentId": order["id"],
        "sequence": line_no,
        "itemId": ZERO_GUID,
        "accountId": ZERO_GUID,
        "lineType": "Comment",
        "lineObjectNumber": "",
        "description": "",
        "description2": "",
        "unitOfMeasureId": ZERO_GUID,
        "unitOfMeasureCode": "",
        "quantity": Decimal("0"),
        "unitPrice": Decimal("0"),
        "discountAmount": Decimal("0"),
        "discountPercent": Decimal("0"),
        "discountAppliedBeforeTax": True,
        "taxCode": "",
        "taxPercent": Decimal("0"),
        "shipmentDate": order["orderDate"],
        "shippedQuantity": Decimal("0"),
        "invoicedQuantity": Decimal("0"),
        "itemVariantId": ZERO_GUID,
        "locationId": ZERO_GUID,
    }


@dataclass
class _LineFields:
    """A sales line while the page validates its fields, with the item or G/L account chosen
    so far (by line type)."""

    company: Company
    line: dict[str, Any]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class _NumberedTable:
    """The table a line of type Item or Account takes its No. from."""

    caption: str  # as BC names the table in messages
    id_field: str  # the line's field that links the record
    missing: str  # the page's error for an unknown id or No.
    by_number: Callable[[Company], Mapping[str, str]]
    rows: Callable[[Company], Mapping[str, dict[str, Any]]]


_NUMBERED_TABLES = {
    "Item": _NumberedTable(
        "Item", "itemId", "Item does not exist.", lambda c: c.item_by_number, lambda c: c.items
    ),
    "Account": _NumberedTable(
        "G/L Account",
        "accountId",
        "Account does not exist.",
        lambda c: c.account_by_number,
        lambda c: c.accounts,
    ),
}


def _keep_parent_field(fields: _LineFields, name: str, value: Any) -> None:
    """documentId and sequence are set by the parent (SubPageLink) / by the caller."""


def _choose_by_id(fields: _LineFields, line_type: str, value: Any) -> None:
    table = _NUMBERED_TABLES[line_type]
    record = table.rows(fields.company).get(value)
    if record is None:
        raise app_error(table.missing)
    fields.records[line_type] = record
    fields.line["lineType"] = line_type
    fields.line["lineObjectNumber"] = record["number"]


def _set_item_id(fields: _LineFields, name: str, value: Any) -> None:
    _choose_by_id(fields, "Item", value)


def _set_account_id(fields: _LineFields, name: str, value: Any) -> None:
    if "Item" in fields.records and value != ZERO_GUID:
        raise app_error('Both "itemId" and "accountId" are specified. Specify only one of them.')
    _choose_by_id(fields, "Account", value)


def _set_line_object_number(fields: _LineFields, name: str, value: Any) -> None:
    line_type = fields.line["lineType"]
    table = _NUMBERED_TABLES.get(line_type)
    if table is not None:
        record_id = table.by_number(fields.company).get(value)
        if record_id is None:
            raise app_error(table.missing)
        fields.records[line_type] = table.rows(fields.company)[record_id]
    fields.line["lineObjectNumber"] = value


def _set_unit_of_measure(fields: _LineFields, name: str, value: Any) -> None:
    if fields.line["lineType"] != "Item":
        raise app_error("Unit of Measure can be set only for lines with type Item.")
    code = value
    if name == "unitOfMeasureId":
        match = [c for c, uid in fields.company.units.items() if uid == value]
        if not match:
            raise table_relation_error("Unit of Measure Id", "Sales Line", value, "Unit of Measure")
        code = match[0]
    fields.line["unitOfMeasureCode"] = code


def _set_tax_code(fields: _LineFields, name: str, value: Any) -> None:
    if value and value not in fields.company.vat_groups:
        raise table_relation_error(
            "VAT Prod. Posting Group", "Sales Line", value, "VAT Product Posting Group"
        )
    fields.line["taxCode"] = value


_LINE_UNSUPPORTED_RELATIONS = {
    "itemVariantId": ("Variant Code", "Item Variant"),
    "locationId": ("Location Code", "Location"),
}


def _reject_variant_or_location(fields: _LineFields, name: str, value: Any) -> None:
    """The sandbox has no item variants or locations: only the blank GUID is accepted."""
    if value != ZERO_GUID:
        caption, related = _LINE_UNSUPPORTED_RELATIONS[name]
        raise table_relation_error(caption, "Sales Line", value, related)


def _set_line_field(fields: _LineFields, name: str, value: Any) -> None:
    fields.line[name] = value


# The OnValidate triggers of the sales line page, per field (others are stored as given).
_LINE_FIELD_SETTERS: dict[str, Callable[[_LineFields, str, Any], None]] = {
    "documentId": _keep_parent_field,
    "sequence": _keep_parent_field,
    "itemId": _set_item_id,
    "accountId": _set_account_id,
    "lineObjectNumber": _set_line_object_number,
    "unitOfMeasureId": _set_unit_of_measure,
    "unitOfMeasureCode": _set_unit_of_measure,
    "taxCode": _set_tax_code,
    "itemVariantId": _reject_variant_or_location,
    "locationId": _reject_variant_or_location,
}


_UNSUPPORTED_LINE_TABLES = {
    "Resource": "Resource",
    "Fixed_x0020_Asset": "Fixed Asset",
    "Charge": "Item Charge",
}


def _validate_numbered_line(
    fields: _LineFields,
    table: _NumberedTable,
    order: Mapping[str, Any],
    values: Mapping[str, Any],
    line_no: int,
) -> None:
    """Sales Line "No." of an Item or G/L Account line, then the defaults it copies."""
    company, line = fields.company, fields.line
    number = line["lineObjectNumber"]
    record = fields.records.get(line["lineType"])
    if record is None or record["number"] != number:
        if not number:
            raise _no_must_have_value(order, line_no)
        record_id = table.by_number(company).get(number)
        if record_id is None:
            raise record_not_found(table.caption, "No.", number)
        record = table.rows(company)[record_id]
    if record["blocked"]:
        raise app_error(
            f"Blocked must be equal to 'No'  in {table.caption}: No.={record['number']}. "
            "Current value is 'Yes'.",
            "Application_FieldValidationException",
        )
    line[table.id_field] = record["id"]
    _apply_defaults(company, order, line, values, record)


def _validate_comment_line(
    line: Mapping[str, Any], order: Mapping[str, Any], values: Mapping[str, Any], line_no: int
) -> None:
    """A comment line has no No. and no amounts."""
    number = line["lineObjectNumber"]
    if number:
        raise record_not_found("Standard Text", "Code", number)
    for name in ("quantity", "unitPrice", "discountAmount", "discountPercent"):
        if values.get(name, Decimal("0")) != 0:
            raise app_error(
                f"Type must not be   in {_line_key(order, line_no)}.",
                "Application_FieldValidationException",
            )


def _validate_line_number(
    fields: _LineFields, order: Mapping[str, Any], values: Mapping[str, Any], line_no: int
) -> None:
    """Sales Line: No. validation against the table of the line type."""
    line_type = fields.line["lineType"]
    table = _NUMBERED_TABLES.get(line_type)
    if table is not None:
        _validate_numbered_line(fields, table, order, values, line_no)
        return
    if line_type == "Comment":
        _validate_comment_line(fields.line, order, values, line_no)
        return
    caption = _UNSUPPORTED_LINE_TABLES[line_type]
    number = fields.line["lineObjectNumber"]
    if not number:
        raise _no_must_have_value(order, line_no)
    raise record_not_found(caption, "No.", number)


def _check_line_discount(line: Mapping[str, Any], values: Mapping[str, Any]) -> None:
    if "discountPercent" in values:
        pct = values["discountPercent"]
        if pct < 0:
            raise app_error("Line discount percentage must be positive.")
        if pct > 100:
            raise app_error("Line discount percentage must be below 100.")
    elif line["discountAmount"] < 0:
        raise app_error("Line discount amount must be positive.")


def build_line(
    company: Company, order: dict[str, Any], values: Mapping[str, Any], line_no: int
) -> dict[str, Any]:
    """Validate one line in page order, then as the Sales Line table does."""
    fields = _LineFields(company, _new_line(order, line_no))
    for name, spec in LINE_SCHEMA.items():
        if name not in values:
            continue
        check_read_only(name, spec)
        value = normalised(name, spec, values[name])
        _LINE_FIELD_SETTERS.get(name, _set_line_field)(fields, name, value)
    _validate_line_number(fields, order, values, line_no)

    line = fields.line
    line["quantity"] = round_amount(line["quantity"], QUANTITY_PRECISION)
    line["unitPrice"] = round_amount(line["unitPrice"], UNIT_AMOUNT_PRECISION)
    _check_line_discount(line, values)
    line["shipQuantity"] = values.get("shipQuantity", line["quantity"])
    line["invoiceQuantity"] = values.get("invoiceQuantity", line["quantity"])
    line["_has_pct"] = "discountPercent" in values
    return line


def _no_must_have_value(order: Mapping[str, Any], line_no: int) -> ODataError:
    return app_error(
        f"No. must have a value in Sales Line: Document Type=Order, Document No.="
        f"{order['number']}, Line No.={line_no}. It cannot be zero or empty.",
        "Application_FieldValidationException",
    )


def _apply_defaults(
    company: Company,
    order: Mapping[str, Any],
    line: dict[str, Any],
    values: Mapping[str, Any],
    source: Mapping[str, Any],
) -> None:
    """What validating Sales Line "No." copies from the item or G/L account."""
    if "description" not in values:
        line["description"] = source["displayName"]
    vat_group = line["taxCode"] if "taxCode" in values and line["taxCode"] else source["_vat_group"]
    line["taxCode"] = vat_group
    line["taxPercent"] = company.vat_groups[vat_group]
    if "baseUnitOfMeasureCode" in source:
        if not line["unitOfMeasureCode"]:
            line["unitOfMeasureCode"] = source["baseUnitOfMeasureCode"]
        elif line["unitOfMeasureCode"] != source["baseUnitOfMeasureCode"]:
            raise table_relation_error(
                "Unit of Measure Code",
                "Sales Line",
                line["unitOfMeasureCode"],
                "Item Unit of Measure",
            )
        line["unitOfMeasureId"] = company.units.get(line["unitOfMeasureCode"], ZERO_GUID)
    if "unitPrice" not in values and "unitPrice" in source:
        price = source["unitPrice"]
        if order["pricesIncludeTax"] and not source.get("priceIncludesTax"):
            price = round_amount(price * (1 + line["taxPercent"] / 100), UNIT_AMOUNT_PRECISION)
        line["unitPrice"] = price


_LINE_AMOUNT_FIELDS = (
    "amountExcludingTax",
    "totalTaxAmount",
    "amountIncludingTax",
    "invoiceDiscountAllocation",
    "netAmount",
    "netTaxAmount",
    "netAmountIncludingTax",
)


def _price_line(line: dict[str, Any], precision: Decimal) -> None:
    """Line Amount = Round(Quantity x Unit Price) - Line Discount Amount."""
    gross = round_amount(line["quantity"] * line["unitPrice"], precision)
    if line["_has_pct"]:
        line["discountAmount"] = round_amount(gross * line["discountPercent"] / 100, precision)
    else:
        line["discountAmount"] = round_amount(line["discountAmount"], precision)
        line["discountPercent"] = (
            round_amount(line["discountAmount"] / gross * 100, Decimal("0.00001"))
            if gross
            else Decimal("0")
        )
    if line["discountPercent"] > 100:
        raise app_error("Line discount percentage must be below 100.")
    line["_line_amount"] = gross - line["discountAmount"]


def _allocate_invoice_discount(
    order: Mapping[str, Any], priced: Sequence[dict[str, Any]], precision: Decimal
) -> None:
    """The header ``discountAmount`` spread over the item lines by amount."""
    discount = order["discountAmount"]
    eligible = [line for line in priced if line["lineType"] == "Item"]
    base = sum((line["_line_amount"] for line in eligible), Decimal("0"))
    for line in priced:
        line["_inv_disc"] = Decimal("0")
    if not discount:
        return
    if discount < 0 or discount > base:
        raise app_error(
            f"The discount amount {discount} must be between 0 and the amount of the lines "
            f"that allow an invoice discount ({base})."
        )
    running = Decimal("0")
    allocated = Decimal("0")
    for line in eligible:
        running += line["_line_amount"]
        share = round_amount(discount * running / base, precision) - allocated
        line["_inv_disc"] = share
        allocated += share


def _vat_pass(
    priced: Sequence[Mapping[str, Any]], *, incl: bool, precision: Decimal, net: bool
) -> dict[str, tuple[Decimal, Decimal]]:
    """(amount excl. VAT, amount incl. VAT) per line id, VAT rounded over each rate's total."""
    # per VAT rate: running [basis, amount excl. VAT, amount incl. VAT]
    totals: dict[Decimal, list[Decimal]] = {}
    result: dict[str, tuple[Decimal, Decimal]] = {}
    for line in priced:
        rate = line["taxPercent"]
        acc = totals.setdefault(rate, [Decimal("0"), Decimal("0"), Decimal("0")])
        basis = line["_line_amount"] - (line["_inv_disc"] if net else Decimal("0"))
        acc[0] += basis
        if incl:
            excl = round_amount(acc[0] / (1 + rate / 100), precision) - acc[1]
            inc = basis
        else:
            excl = basis
            inc = acc[0] + round_amount(acc[0] * rate / 100, precision) - acc[2]
        acc[1] += excl
        acc[2] += inc
        result[line["id"]] = (excl, inc)
    return result


def recalculate(company: Company, order: dict[str, Any], lines: list[dict[str, Any]]) -> None:
    """Line amounts, invoice discount and VAT the way BC's Sales Line does it.

    Line Amount = Round(Quantity x Unit Price) - Line Discount Amount. VAT is calculated per VAT
    rate over the running total of the document and each line gets the difference, so the
    document's VAT is rounded once per rate (``SalesLine.UpdateVATAmounts``).
    """
    precision = company.currency_rounding(order["_currency"])
    incl = order["pricesIncludeTax"]
    priced: list[dict[str, Any]] = []
    for line in lines:
        if line["lineType"] == "Comment":
            for name in _LINE_AMOUNT_FIELDS:
                line[name] = Decimal("0")
            continue
        _price_line(line, precision)
        priced.append(line)
    _allocate_invoice_discount(order, priced, precision)

    before = _vat_pass(priced, incl=incl, precision=precision, net=False)
    after = _vat_pass(priced, incl=incl, precision=precision, net=True)
    total_excl = total_incl = Decimal("0")
    for line in priced:
        excl, inc = before[line["id"]]
        line["amountExcludingTax"] = excl
        line["amountIncludingTax"] = inc
        line["totalTaxAmount"] = inc - excl
        net_excl, net_inc = after[line["id"]]
        line["netAmount"] = net_excl
        line["netAmountIncludingTax"] = net_inc
        line["netTaxAmount"] = net_inc - net_excl
        # the allocation is shown excluding VAT
        line["invoiceDiscountAllocation"] = excl - net_excl
        total_excl += net_excl
        total_incl += net_inc
    order["totalAmountExcludingTax"] = total_excl
    order["totalAmountIncludingTax"] = total_incl
    order["totalTaxAmount"] = total_incl - total_excl
