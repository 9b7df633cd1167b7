"""Canonical order → F&O request bodies (``SalesOrderHeadersV2``, ``SalesOrderLines``,
``CustomersV3``). Pure functions, no I/O.

* ``CustomersOrderReference`` = ``orders.document_prefix`` + shop number, upper-case: the
  idempotency key in both number modes. In mode ``own`` the same value is the
  ``SalesOrderNumber`` (the primary key makes a second create impossible). Field lengths are
  F&O's extended data types (UNCONFIRMED in the reference: SalesOrderNumber 20,
  CustomersOrderReference 60); a key never fits by being cut, so a longer one is an order error.
  A ``*`` is refused in a key: F&O reads it as a wildcard in ``eq`` filters.
* Every body names ``dataAreaId``; only fields with a value are sent (F&O defaults the rest).
* Prices: ``ArePricesIncludingSalesTax`` follows the shop and every price is in that basis.
  Each line's ``LineAmount`` (F&O: quantity × ``SalesPrice`` / ``SalesPriceQuantity``) is the
  shop's line total after discount, to the cent: ``SalesPrice`` is the unit price when it
  divides evenly, else the line total with ``SalesPriceQuantity`` = quantity. The coupon
  discount is folded into the price: F&O's ``LineDiscountAmount`` semantics (per unit or per
  line) are UNCONFIRMED, so it is never sent.
* Shipping and fees are lines on the service items named by ``orders.shipping_account`` and
  ``orders.fee_account``; free ones are left out.
* Countries are F&O's own ids (``AddressCountryRegions``), mapped from the shop's ISO-2 codes.
* Decimals are JSON numbers with the exact digits, never through a float's rounding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from woo2d365.erp.businesscentral.normalize import FieldNormalizer
from woo2d365.erp.businesscentral.payload import (
    Draft,
    item_line_sent,
    json_number,
    line_basis,
    ship_to_address,
    unknown_country_reasons,
)
from woo2d365.errors import OrderDataError
from woo2d365.model import ZERO, Address, Line, LineKind, Order
from woo2d365.settings import DynamicsSettings, OrdersSettings

ORDER_NUMBER_LENGTH = 20
REFERENCE_LENGTH = 60
CENT = Decimal("0.01")


def order_reference(prefix: str, number: str, *, own_numbers: bool) -> str:
    """``prefix + number`` upper-cased; :class:`OrderDataError` when F&O cannot take it."""
    if not number.strip():
        raise OrderDataError("the order has no number to build CustomersOrderReference from")
    value = f"{prefix}{number}".strip().upper()
    if "*" in value:
        raise OrderDataError(
            f"{value!r} contains '*', which F&O reads as a wildcard: it cannot be a key"
        )
    limit = ORDER_NUMBER_LENGTH if own_numbers else REFERENCE_LENGTH
    field_name = "SalesOrderNumber" if own_numbers else "CustomersOrderReference"
    if len(value) > limit:
        raise OrderDataError(
            f"{field_name} {value!r} has {len(value)} characters; F&O allows {limit} "
            "(shorten orders.document_prefix)"
        )
    return value


def country_problems(order: Order, known: Mapping[str, str] | None) -> list[str]:
    """Reasons for every ISO country code with no F&O country/region (``known`` None: unchecked)."""
    return unknown_country_reasons(
        order,
        known,
        "has no country/region in Dynamics (AddressCountryRegions.ISOcode; add it, or correct "
        "the order)",
    )


def build_customer(order: Order, dynamics: DynamicsSettings, countries: Mapping[str, str]) -> Draft:
    """The body of ``POST CustomersV3`` for the order's buyer (billing address)."""
    norm = FieldNormalizer()
    billing = order.billing
    body: dict[str, Any] = {
        "dataAreaId": dynamics.legal_entity,
        "CustomerGroupId": dynamics.customer_group.strip(),
        "SalesCurrencyCode": norm.code("customer currency", order.currency, 3),
    }
    if billing.company.strip():
        body["PartyType"] = "Organization"
        body["OrganizationName"] = norm.text("customer name", billing.company, 100)
    elif billing.first_name.strip() or billing.last_name.strip():
        body["PartyType"] = "Person"
        _put(body, "PersonFirstName", norm.text("customer first name", billing.first_name, 25))
        _put(body, "PersonLastName", norm.text("customer last name", billing.last_name, 25))
    elif order.email:
        body["PartyType"] = "Organization"
        body["OrganizationName"] = norm.text("customer name", order.email, 100)
    else:
        raise OrderDataError("the order has neither a name, a company nor an e-mail address")
    _put(body, "PrimaryContactEmail", norm.email("customer e-mail", order.email, 255))
    _put(body, "PrimaryContactPhone", norm.phone("customer phone", billing.phone, 255))
    country = countries.get(billing.country.strip().upper(), "")
    if country:
        body["AddressDescription"] = norm.text("customer address name", billing.name, 60) or "Web"
        _put_address(body, "Address", billing, norm)
        body["AddressCountryRegionId"] = country
    return Draft(body, tuple(norm.warnings))


def build_sales_order(
    order: Order,
    *,
    reference: str,
    own_numbers: bool,
    item_numbers: Sequence[str | None],
    customer_account: str,
    dynamics: DynamicsSettings,
    orders: OrdersSettings,
    countries: Mapping[str, str],
) -> Draft:
    """``{"header": …, "lines": […]}``: the bodies of the header POST and the line POSTs."""
    if len(item_numbers) != len(order.lines):
        raise ValueError("item_numbers must have one entry per order line")
    norm = FieldNormalizer()
    header = _header(order, reference, own_numbers, customer_account, dynamics, countries, norm)
    lines: list[dict[str, Any]] = []
    for position, (line, number) in enumerate(zip(order.lines, item_numbers, strict=True), 1):
        label = f'line {position} "{line.name}"'
        priced = _priced_line(label, line, number, order, orders, norm)
        if priced is None:
            continue
        item, quantity, amount = priced
        entry: dict[str, Any] = {
            "dataAreaId": dynamics.legal_entity,
            "LineNumber": len(lines) + 1,
            "ItemNumber": item,
            "OrderedSalesQuantity": json_number(quantity),
            **_price(quantity, amount),
        }
        _put(entry, "LineDescription", norm.text(f"{label} description", line.name, 1000))
        lines.append(entry)
    if not lines:
        raise OrderDataError("the order has no lines to send")
    return Draft({"header": header, "lines": lines}, tuple(norm.warnings))


def _header(
    order: Order,
    reference: str,
    own_numbers: bool,
    customer_account: str,
    dynamics: DynamicsSettings,
    countries: Mapping[str, str],
    norm: FieldNormalizer,
) -> dict[str, Any]:
    """The body of the ``SalesOrderHeadersV2`` POST (delivery address when F&O knows its
    country)."""
    header: dict[str, Any] = {
        "dataAreaId": dynamics.legal_entity,
        "OrderingCustomerAccountNumber": customer_account,
        "CustomersOrderReference": reference,
        "ArePricesIncludingSalesTax": "Yes" if order.prices_include_tax else "No",
    }
    if own_numbers:
        header["SalesOrderNumber"] = reference
    if order.currency.strip():
        header["CurrencyCode"] = norm.code("currency", order.currency, 3)
    _put(header, "Email", norm.email("e-mail", order.email, 255))
    ship = ship_to_address(order)
    country = countries.get(ship.country.strip().upper(), "")
    if country:
        header["IsDeliveryAddressOrderSpecific"] = "Yes"
        name = ship.company.strip() or ship.name
        _put(header, "DeliveryAddressName", norm.text("ship-to name", name, 100))
        header["DeliveryAddressDescription"] = f"Web order {order.number}"[:60]
        _put_address(header, "DeliveryAddress", ship, norm)
        header["DeliveryAddressCountryRegionId"] = country
    return header


def _priced_line(
    label: str,
    line: Line,
    number: str | None,
    order: Order,
    orders: OrdersSettings,
    norm: FieldNormalizer,
) -> tuple[str, Decimal, Decimal] | None:
    """``(item number, quantity, line amount)`` of one shop line; None when it is left out
    (free shipping or fee, an item line with neither quantity nor amount)."""
    _before, after = line_basis(line, order.prices_include_tax)
    amount = after.quantize(CENT, rounding=ROUND_HALF_UP)
    if line.kind is LineKind.ITEM:
        if not item_line_sent(label, line, number, after, norm, erp="Dynamics"):
            return None
        return str(number), line.quantity, amount
    if after == ZERO:
        return None
    key = "shipping_account" if line.kind is LineKind.SHIPPING else "fee_account"
    item = getattr(orders, key).strip()
    if not item:
        raise OrderDataError(f"{label}: {line.kind.value} needs orders.{key} (a service item)")
    return item, Decimal(1), amount


def _price(quantity: Decimal, amount: Decimal) -> dict[str, Any]:
    """``SalesPrice`` (and ``SalesPriceQuantity``) so that F&O's line amount is ``amount``."""
    unit = amount / quantity
    if unit == unit.quantize(CENT):
        return {"SalesPrice": json_number(unit.quantize(CENT))}
    return {"SalesPrice": json_number(amount), "SalesPriceQuantity": json_number(quantity)}


def line_total(lines: Sequence[Mapping[str, Any]]) -> Decimal:
    """The sum of ``LineAmount`` of created lines."""
    return sum((Decimal(str(line.get("LineAmount", 0))) for line in lines), ZERO)


def _put_address(
    body: dict[str, Any], prefix: str, address: Address, norm: FieldNormalizer
) -> None:
    street = "\n".join(p for p in (address.line1.strip(), address.line2.strip()) if p)
    _put(body, f"{prefix}Street", norm.text(f"{prefix} street", street, 250) if street else "")
    if street and "\n" in street and len(street) <= 250:
        body[f"{prefix}Street"] = street  # F&O streets are multi-line
    _put(body, f"{prefix}City", norm.text(f"{prefix} city", address.city, 60))
    _put(body, f"{prefix}ZipCode", norm.code(f"{prefix} zip code", address.postcode, 10))


def _put(body: dict[str, Any], key: str, value: str) -> None:
    if value:
        body[key] = value
