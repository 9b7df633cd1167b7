"""Canonical order → Business Central API v2.0 request bodies. Pure functions, no I/O.

The sales order is one deep insert (``reference/dynamics-365.md`` §3.1, §8.2–8.6):

* ``externalDocumentNumber`` = ``orders.document_prefix`` + shop number, upper-case (a Code[35]
  field). It is the idempotency key, so a longer one is an error of the order, never cut.
* ``orderDate`` is the order's creation date in UTC (BC's Document Date).
* ``currencyCode`` is always the shop order's currency: Business Central stores the company's own
  currency code as blank, and a foreign currency it does not know is refused, which is what we
  want rather than booking the amounts in the wrong currency.
* ``pricesIncludeTax`` follows the shop, and every amount is sent in that basis.
* Line amounts reproduce the shop's line totals to the cent: BC computes a line as
  ``round(quantity × unitPrice, 0.01) − discountAmount``; ``unitPrice`` is the shop price before
  the coupon and ``discountAmount`` the coupon share (see :func:`line_price`).
* Shipping and fees are ``Account`` lines on the configured G/L accounts; free ones are left out.
* No ``sequence`` on lines (BC 22 deep-insert bug), no read-only fields, no ``null``: a field
  without a value is omitted. Decimals are JSON numbers.
"""

from __future__ import annotations

import textwrap
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any

from woo2d365.erp.businesscentral.normalize import FieldNormalizer
from woo2d365.errors import OrderDataError
from woo2d365.model import ZERO, Address, Line, LineKind, Order
from woo2d365.settings import OrdersSettings

EXTERNAL_NUMBER_LENGTH = 35
COMMENT_LENGTH = 100
CENT = Decimal("0.01")
UNIT_PRICE_PRECISION = Decimal("0.00001")  # BC's default unit-amount rounding precision

# Field lengths of the API pages (reference §2.3–2.5).
SALES_ORDER_LIMITS: dict[str, int] = {
    "shipToName": 100,
    "shipToContact": 100,
    "AddressLine1": 100,
    "AddressLine2": 50,
    "City": 30,
    "State": 30,
    "Country": 10,
    "PostCode": 20,
    "phoneNumber": 30,
    "email": 80,
    "description": 100,
}
CUSTOMER_LIMITS: dict[str, int] = {
    "displayName": 100,
    "addressLine1": 100,
    "addressLine2": 50,
    "city": 30,
    "state": 30,
    "country": 10,
    "postalCode": 20,
    "phoneNumber": 30,
    "email": 80,
}


@dataclass(frozen=True)
class Draft:
    """A request body and the warnings building it produced."""

    payload: dict[str, Any]
    warnings: tuple[str, ...] = ()


def json_number(value: Decimal) -> int | float:
    """A Decimal as a JSON number with the same digits (``19.99``, ``2``), never a string."""
    if value == value.to_integral_value():
        return int(value)
    number = float(value)
    if Decimal(repr(number)) != value.normalize():
        raise ValueError(f"{value} cannot be sent as an exact JSON number")
    return number


def external_document_number(prefix: str, number: str) -> str:
    """``prefix + number`` upper-cased; :class:`OrderDataError` if longer than 35 characters."""
    value = f"{prefix}{number}".strip().upper()
    if not number.strip():
        raise OrderDataError("the order has no number to build externalDocumentNumber from")
    if len(value) > EXTERNAL_NUMBER_LENGTH:
        raise OrderDataError(
            f"externalDocumentNumber {value!r} has {len(value)} characters; Business Central "
            f"allows {EXTERNAL_NUMBER_LENGTH} (shorten orders.document_prefix)"
        )
    return value


def line_price(
    quantity: Decimal, before_discount: Decimal, after_discount: Decimal
) -> tuple[Decimal, Decimal]:
    """``(unitPrice, discountAmount)`` so that BC's line amount equals ``after_discount``.

    BC computes ``round(quantity × unitPrice, 0.01) − discountAmount``. The unit price is the shop
    price before the discount, to the cent when it divides evenly, else to BC's unit-amount
    precision (0.00001); it is raised where needed so that the discount is never negative (a shop
    line dearer after its discount than before). The discount is then exact to the cent.
    """
    if quantity <= 0:
        raise ValueError("quantity must be positive")
    base = max(before_discount, after_discount)
    unit = (base / quantity).quantize(CENT, rounding=ROUND_HALF_UP)
    if unit * quantity != base:
        unit = (base / quantity).quantize(UNIT_PRICE_PRECISION, rounding=ROUND_HALF_UP)
    gross = (unit * quantity).quantize(CENT, rounding=ROUND_HALF_UP)
    if gross < after_discount:
        unit = (after_discount / quantity).quantize(UNIT_PRICE_PRECISION, rounding=ROUND_CEILING)
        gross = (unit * quantity).quantize(CENT, rounding=ROUND_HALF_UP)
    return unit, gross - after_discount


def line_basis(line: Line, prices_include_tax: bool) -> tuple[Decimal, Decimal]:
    """The shop line before and after discount in the document's tax basis."""
    if prices_include_tax:
        return line.subtotal + line.subtotal_tax, line.total + line.total_tax
    return line.subtotal, line.total


def countries_of(order: Order) -> list[tuple[str, str]]:
    """``(label, code)`` of every country the sales order would carry."""
    found: list[tuple[str, str]] = []
    if order.billing.country.strip():
        found.append(("billing address", order.billing.country.strip().upper()))
    ship = ship_to_address(order)
    if ship is not order.billing and ship.country.strip():
        found.append(("shipping address", ship.country.strip().upper()))
    return found


def country_problems(order: Order, known: Collection[str] | None) -> list[str]:
    """Reasons for every country code Business Central does not know (``known`` None: unchecked)."""
    if known is None:
        return []
    unknown: dict[str, list[str]] = {}
    for label, code in countries_of(order):
        if code not in known:
            unknown.setdefault(code, []).append(label)
    return [
        f"country code {code!r} of the {' and '.join(labels)} is not known in Business Central "
        "(add it under Countries/Regions, or correct the order)"
        for code, labels in unknown.items()
    ]


def ship_to_address(order: Order) -> Address:
    """The shipping address, or the billing address when the order has none (virtual goods)."""
    return order.billing if order.shipping.is_empty else order.shipping


def build_customer(order: Order) -> Draft:
    """The body of ``POST customers`` for the order's buyer (billing address)."""
    norm = FieldNormalizer()
    billing = order.billing
    name = billing.company.strip() or billing.name or order.email
    body: dict[str, Any] = {
        "displayName": norm.text("customer displayName", name, CUSTOMER_LIMITS["displayName"]),
        "type": "Company" if billing.company.strip() else "Person",
    }
    _put(body, "addressLine1", norm.text("customer addressLine1", billing.line1, 100))
    _put(body, "addressLine2", norm.text("customer addressLine2", billing.line2, 50))
    _put(body, "city", norm.text("customer city", billing.city, 30))
    _put(body, "state", norm.text("customer state", billing.state, 30))
    _put(body, "country", norm.code("customer country", billing.country, 10))
    _put(body, "postalCode", norm.code("customer postalCode", billing.postcode, 20))
    _put(body, "phoneNumber", norm.phone("customer phoneNumber", billing.phone, 30))
    _put(body, "email", norm.email("customer email", order.email, 80))
    if not body["displayName"]:
        raise OrderDataError("the order has neither a name, a company nor an e-mail address")
    return Draft(body, tuple(norm.warnings))


def build_sales_order(
    order: Order,
    *,
    item_numbers: Sequence[str | None],
    customer_number: str,
    orders: OrdersSettings,
) -> Draft:
    """The deep-insert body of ``POST salesOrders`` (header and every line).

    ``item_numbers`` aligns with ``order.lines``: the Business Central item number of each item
    line (shipping and fee lines take the configured accounts). Raises :class:`OrderDataError`
    when the order cannot be expressed (no item number, missing account, over-long number).
    """
    if len(item_numbers) != len(order.lines):
        raise ValueError("item_numbers must have one entry per order line")
    norm = FieldNormalizer()
    body: dict[str, Any] = {
        "customerNumber": customer_number,
        "externalDocumentNumber": external_document_number(orders.document_prefix, order.number),
        "orderDate": order.created_at.astimezone(UTC).date().isoformat(),
    }
    billing = order.billing
    ship = ship_to_address(order)
    if ship.company.strip() and ship.name != ship.company.strip():
        _put(body, "shipToName", norm.text("shipToName", ship.company, 100))
        _put(body, "shipToContact", norm.text("shipToContact", ship.name, 100))
    else:
        _put(body, "shipToName", norm.text("shipToName", ship.name, 100))
    _put_address(body, "sellTo", billing, norm)
    _put_address(body, "shipTo", ship, norm)
    if order.currency.strip():
        body["currencyCode"] = norm.code("currencyCode", order.currency, 10)
    body["pricesIncludeTax"] = order.prices_include_tax
    _put(body, "phoneNumber", norm.phone("phoneNumber", billing.phone or ship.phone, 30))
    _put(body, "email", norm.email("email", order.email, 80))

    lines: list[dict[str, Any]] = []
    for position, (line, number) in enumerate(zip(order.lines, item_numbers, strict=True), 1):
        built = _line(order, position, line, number, orders, norm)
        if built is not None:
            lines.append(built)
    if not lines:
        raise OrderDataError("the order has no lines to send")
    lines.extend(_comment_lines(norm.truncated))
    body["salesOrderLines"] = lines
    return Draft(body, tuple(norm.warnings))


def _line(
    order: Order,
    position: int,
    line: Line,
    number: str | None,
    orders: OrdersSettings,
    norm: FieldNormalizer,
) -> dict[str, Any] | None:
    label = f'line {position} "{line.name}"'
    before, after = line_basis(line, order.prices_include_tax)
    if line.kind is LineKind.ITEM:
        if not number:
            raise OrderDataError(f"{label}: no Business Central item for SKU {line.sku!r}")
        if line.quantity <= 0:
            if after == ZERO:
                norm.warnings.append(f"{label}: quantity {line.quantity} and no amount; left out")
                return None
            raise OrderDataError(f"{label}: quantity {line.quantity} with an amount of {after}")
        unit, discount = line_price(line.quantity, before, after)
        entry: dict[str, Any] = {
            "lineType": "Item",
            "lineObjectNumber": number,
            "description": norm.text(f"{label} description", line.name, 100),
            "quantity": json_number(line.quantity),
            "unitPrice": json_number(unit),
        }
        if discount:
            entry["discountAmount"] = json_number(discount)
        if not entry["description"]:
            del entry["description"]
        return entry
    if after == ZERO:
        return None  # free shipping or a zero fee: nothing to book
    account = orders.shipping_account if line.kind is LineKind.SHIPPING else orders.fee_account
    if not account.strip():
        key = "shipping_account" if line.kind is LineKind.SHIPPING else "fee_account"
        raise OrderDataError(f"{label}: {line.kind.value} needs orders.{key}")
    entry = {
        "lineType": "Account",
        "lineObjectNumber": account.strip().upper(),
        "description": norm.text(f"{label} description", line.name, 100) or line.kind.value.title(),
        "quantity": 1,
        "unitPrice": json_number(after),
    }
    return entry


def _comment_lines(truncated: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Comment lines keeping the full text of every address or contact value that was cut."""
    labels: dict[str, list[str]] = {}
    for label, original in truncated:
        if label.startswith("line "):
            continue  # a line's own description: the shop keeps the full name
        labels.setdefault(original, []).append(label)
    comments: list[dict[str, Any]] = []
    for original, names in labels.items():
        text = f"{'/'.join(names)}: {original}"
        for chunk in textwrap.wrap(text, COMMENT_LENGTH, break_long_words=True):
            comments.append({"lineType": "Comment", "description": chunk})
    return comments


def _put_address(
    body: dict[str, Any], prefix: str, address: Address, norm: FieldNormalizer
) -> None:
    limits = SALES_ORDER_LIMITS
    _put(
        body,
        f"{prefix}AddressLine1",
        norm.text(f"{prefix}AddressLine1", address.line1, limits["AddressLine1"]),
    )
    _put(
        body,
        f"{prefix}AddressLine2",
        norm.text(f"{prefix}AddressLine2", address.line2, limits["AddressLine2"]),
    )
    _put(body, f"{prefix}City", norm.text(f"{prefix}City", address.city, limits["City"]))
    _put(
        body, f"{prefix}Country", norm.code(f"{prefix}Country", address.country, limits["Country"])
    )
    _put(body, f"{prefix}State", norm.text(f"{prefix}State", address.state, limits["State"]))
    _put(
        body,
        f"{prefix}PostCode",
        norm.code(f"{prefix}PostCode", address.postcode, limits["PostCode"]),
    )


def _put(body: dict[str, Any], key: str, value: str) -> None:
    """Set ``key`` only when there is a value (BC wants fields omitted, not null or blank)."""
    if value:
        body[key] = value
