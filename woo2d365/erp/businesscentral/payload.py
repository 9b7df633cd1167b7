"""Canonical order → Business Central API v2.0 request bodies. Pure functions, no I/O.

The sales order is one deep insert (``docs/systems.md`` B2):

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
* With ``orders.tax_codes`` every line carries the shop's VAT as ``taxCode`` (see
  :func:`with_shop_vat`), and with ``orders.rounding_account`` an order with prices excl. tax
  gets a line for the difference between the shop's per-line VAT rounding and Business
  Central's per-document rounding, so the totals agree to the cent.
"""

from __future__ import annotations

import textwrap
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any

from woo2d365.erp.businesscentral.normalize import FieldNormalizer, bc_length, cut_to
from woo2d365.errors import OrderDataError
from woo2d365.model import ZERO, Address, Line, LineKind, Order
from woo2d365.settings import OrdersSettings

EXTERNAL_NUMBER_LENGTH = 35
COMMENT_LENGTH = 100
CENT = Decimal("0.01")
UNIT_PRICE_PRECISION = Decimal("0.00001")  # BC's default unit-amount rounding precision

# Field lengths of the API pages (``docs/systems.md`` B2).
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
        # An order problem, not a crash: the order is held and the others go on.
        raise OrderDataError(f"the amount {value} has too many digits to be sent exactly")
    return number


def external_document_number(prefix: str, number: str) -> str:
    """``prefix + number`` upper-cased; :class:`OrderDataError` if longer than 35 characters."""
    value = f"{prefix}{number}".strip().upper()
    if not number.strip():
        raise OrderDataError("the order has no number to build externalDocumentNumber from")
    if bc_length(value) > EXTERNAL_NUMBER_LENGTH:
        raise OrderDataError(
            f"externalDocumentNumber {value!r} has {bc_length(value)} characters; Business Central "
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
    # BC's line amounts are in cents: a shop with 3 or 4 decimals is matched to the cent.
    target = after_discount.quantize(CENT, rounding=ROUND_HALF_UP)
    base = max(before_discount, after_discount)
    unit = (base / quantity).quantize(CENT, rounding=ROUND_HALF_UP)
    if unit * quantity != base:
        unit = (base / quantity).quantize(UNIT_PRICE_PRECISION, rounding=ROUND_HALF_UP)
    gross = (unit * quantity).quantize(CENT, rounding=ROUND_HALF_UP)
    if gross < target:
        unit = (target / quantity).quantize(UNIT_PRICE_PRECISION, rounding=ROUND_CEILING)
        gross = (unit * quantity).quantize(CENT, rounding=ROUND_HALF_UP)
    return unit, gross - target


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


def unknown_countries(order: Order, known: Collection[str]) -> dict[str, list[str]]:
    """Country code → the addresses of the order that carry it, for codes not in ``known``."""
    unknown: dict[str, list[str]] = {}
    for label, code in countries_of(order):
        if code not in known:
            unknown.setdefault(code, []).append(label)
    return unknown


def unknown_country_reasons(order: Order, known: Collection[str] | None, remedy: str) -> list[str]:
    """A reason for every country code of the order not in ``known`` (None: unchecked), each
    ending in the product's ``remedy`` (both Dynamics products hold an order this way)."""
    if known is None:
        return []
    return [
        f"country code {code!r} of the {' and '.join(labels)} {remedy}"
        for code, labels in unknown_countries(order, known).items()
    ]


def country_problems(order: Order, known: Collection[str] | None) -> list[str]:
    """Reasons for every country code Business Central does not know (``known`` None: unchecked)."""
    return unknown_country_reasons(
        order,
        known,
        "is not known in Business Central (add it under Countries/Regions, or correct the order)",
    )


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

    lines: list[tuple[Line, dict[str, Any]]] = []
    for position, (line, number) in enumerate(zip(order.lines, item_numbers, strict=True), 1):
        built = _line(order, position, line, number, orders, norm)
        if built is not None:
            lines.append((line, built))
    if not lines:
        raise OrderDataError("the order has no lines to send")
    body["salesOrderLines"] = [
        *with_shop_vat(order, lines, orders),
        *_comment_lines(norm.truncated),
    ]
    return Draft(body, tuple(norm.warnings))


def item_entry(
    label: str,
    line: Line,
    number: str,
    price: tuple[Decimal, Decimal],
    norm: FieldNormalizer,
) -> dict[str, Any]:
    """An ``Item`` line of a document: item ``number``, the line's quantity, ``price`` as
    :func:`line_price` gives it (unit price, discount) and its name when it has one."""
    unit, discount = price
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


def item_line_sent(
    label: str, line: Line, number: str | None, after: Decimal, norm: FieldNormalizer, *, erp: str
) -> bool:
    """Whether an item line is sent (``after``: its amount after discount): False, with a
    warning, for one with neither quantity nor amount; :class:`OrderDataError` for one without
    an ``erp`` item or with an amount but no quantity."""
    if not number:
        raise OrderDataError(f"{label}: no {erp} item for SKU {line.sku!r}")
    if line.quantity > 0:
        return True
    if after == ZERO:
        norm.warnings.append(f"{label}: quantity {line.quantity} and no amount; left out")
        return False
    raise OrderDataError(f"{label}: quantity {line.quantity} with an amount of {after}")


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
        if not item_line_sent(label, line, number, after, norm, erp="Business Central"):
            return None
        assert number is not None  # item_line_sent raised without one
        entry = item_entry(label, line, number, line_price(line.quantity, before, after), norm)
        if line.parent_sku_inherited:
            norm.warnings.append(
                f"{label}: a variation that may report its parent's SKU {line.sku}; sent as "
                f"item {number} (give the variation its own SKU in the shop)"
            )
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
            while chunk:  # textwrap counts code points; an emoji takes two positions in BC
                piece = cut_to(chunk, COMMENT_LENGTH)
                comments.append({"lineType": "Comment", "description": piece.strip()})
                chunk = chunk[len(piece) :]
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


# -- the shop's VAT on each line (orders.tax_codes) and the rounding line ---------------------

ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "KRW", "ISK", "CLP", "VND", "PYG", "UGX", "XAF", "XOF"})
"""Currencies whose amounts Business Central rounds to whole units (else to the cent)."""
ROUNDING_DESCRIPTION = "VAT rounding difference"


def tax_codes_of(orders: OrdersSettings) -> dict[Decimal, str]:
    """``orders.tax_codes`` as VAT rate → Business Central tax code; empty when not configured.

    Keys are the shop's rates in percent (``"21"``, ``"9"``, ``"0"``), values the VAT product
    posting groups (``taxCode`` of a sales order line).
    """
    configured = orders.tax_codes
    return {
        Decimal(str(rate).strip()): str(code).strip().upper()
        for rate, code in configured.items()
        if str(code).strip()
    }


def amount_precision(currency: str) -> Decimal:
    """The rounding precision Business Central uses for amounts in ``currency``."""
    return Decimal("1") if currency.strip().upper() in ZERO_DECIMAL_CURRENCIES else CENT


def line_tax_rate(line: Line, rates: Collection[Decimal], precision: Decimal) -> Decimal | None:
    """The rate among ``rates`` the shop taxed ``line`` at, or None.

    The shop rounds each line's tax: ``tax = round(net × rate)``, or with prices incl. tax
    ``tax = round(gross × rate / (100 + rate))`` and ``net = gross − tax``. Either way a rate
    explains a line when ``|net × rate − tax| ≤ half the precision × (1 + rate)``; the closest
    such rate wins. None for a line without amount, or one no rate explains (a rate missing from
    the table, or a negative fee taxed in proportion to items at several rates).
    """
    if line.total == ZERO and line.total_tax == ZERO:
        return None
    best: tuple[Decimal, Decimal] | None = None
    for rate in rates:
        miss = abs(line.total * rate / 100 - line.total_tax)
        if miss <= precision / 2 * (1 + rate / 100) and (best is None or miss < best[0]):
            best = (miss, rate)
    return None if best is None else best[1]


def negative_fee_parts(
    fee: Line, item_rates: Sequence[tuple[Line, Decimal | None]], precision: Decimal
) -> list[tuple[Decimal, Decimal, Decimal]] | None:
    """``(rate, net, tax)`` of a negative fee split over the rates of the order's items.

    WooCommerce taxes a negative fee (a discount) in proportion to the item totals per rate and
    rounds each rate's tax; the nets are rounded here, the last rate taking the remainder. None
    when the split does not reproduce the fee's tax (then it was not taxed that way) or the
    items are at fewer than two rates.
    """
    per_rate: dict[Decimal, Decimal] = {}
    for line, rate in item_rates:
        if rate is not None and line.total > ZERO:
            per_rate[rate] = per_rate.get(rate, ZERO) + line.total
    items_total = sum(per_rate.values(), ZERO)
    if fee.total >= ZERO or items_total <= ZERO or len(per_rate) < 2:
        return None
    parts: list[tuple[Decimal, Decimal, Decimal]] = []
    net_left = fee.total
    for index, (rate, part) in enumerate(sorted(per_rate.items())):
        share = fee.total * part / items_total
        net = net_left if index == len(per_rate) - 1 else _round(share, precision)
        net_left -= net
        parts.append((rate, net, _round(share * rate / 100, precision)))
    # The shop weighs the items by unrounded totals; this split by the shown ones may land a
    # cent away on a rate, but a fee taxed some other way misses by more.
    if abs(sum((tax for _, _, tax in parts), ZERO) - fee.total_tax) > precision * (len(parts) - 1):
        return None
    return parts


def tax_rate_problems(order: Order, orders: OrdersSettings) -> list[str]:
    """Lines whose VAT matches no rate of ``orders.tax_codes`` (none when it is not set)."""
    codes = tax_codes_of(orders)
    if not codes:
        return []
    precision = amount_precision(order.currency)
    rates = [line_tax_rate(line, codes, precision) for line in order.lines]
    items = [(line, rate) for line, rate in zip(order.lines, rates, strict=True) if _is_item(line)]
    problems: list[str] = []
    for position, (line, rate) in enumerate(zip(order.lines, rates, strict=True), 1):
        if rate is not None or (line.total == ZERO and line.total_tax == ZERO):
            continue
        if line.kind is LineKind.FEE and negative_fee_parts(line, items, precision):
            continue
        shown = ", ".join(f"{r:f} %" for r in sorted(codes))
        effective = (
            (line.total_tax / line.total * 100).quantize(Decimal("0.1")) if line.total else "?"
        )
        problems.append(
            f'line {position} "{line.name}": its VAT ({line.total_tax} on {line.total}, about '
            f"{effective} %) is none of the rates in orders.tax_codes ({shown})"
        )
    return problems


def with_shop_vat(
    order: Order,
    lines: Sequence[tuple[Line, dict[str, Any]]],
    orders: OrdersSettings,
) -> list[dict[str, Any]]:
    """The priced lines with the shop's VAT: ``taxCode`` per line, and the rounding line.

    Without ``orders.tax_codes`` the lines are returned as built: Business Central then applies
    the VAT of each item and G/L account, which may not be the shop's (shipping of food at 9 %
    on an account with 21 %, a negative fee taxed at the items' rates). With it:

    * every line with an amount carries the ``taxCode`` of the rate the shop charged;
    * a negative fee over items at several rates becomes one line per rate, as the shop split it;
    * with prices excl. tax and ``orders.rounding_account``, Business Central's total is
      predicted (VAT rounded once per rate over the document, where the shop rounds per line)
      and the difference, at most half a cent per line, is booked on that account without VAT
      (``taxCode`` of rate 0 when the table has one), so the totals agree exactly. A larger
      difference is not the rounding's and is left to the total check after creation.

    Raises :class:`OrderDataError` for a line whose rate is not in the table.
    """
    codes = tax_codes_of(orders)
    if not codes:
        return [entry for _, entry in lines]
    problems = tax_rate_problems(order, orders)
    if problems:
        raise OrderDataError("; ".join(problems))
    precision = amount_precision(order.currency)
    items = [
        (line, line_tax_rate(line, codes, precision)) for line in order.lines if _is_item(line)
    ]
    priced: list[tuple[Decimal | None, Decimal, dict[str, Any]]] = []  # rate, amount, line
    for line, entry in lines:
        rate = line_tax_rate(line, codes, precision)
        parts = None
        if rate is None and line.kind is LineKind.FEE:
            parts = negative_fee_parts(line, items, precision)
        if parts is None:
            if rate is not None:
                entry = {**entry, "taxCode": codes[rate]}
            priced.append((rate, _sent_amount(line, order.prices_include_tax), entry))
            continue
        gross_left = line.total + line.total_tax
        for index, (part_rate, net, tax) in enumerate(parts):
            if order.prices_include_tax:
                amount = gross_left if index == len(parts) - 1 else net + tax
                gross_left -= amount
            else:
                amount = net
            split = {**entry, "unitPrice": json_number(amount), "taxCode": codes[part_rate]}
            priced.append((part_rate, amount, split))
    result = [entry for _, _, entry in priced]
    rounding = _rounding_line(order, priced, orders, codes, precision)
    if rounding is not None:
        # What the operator configured, visible on the document's own line: no warning.
        result.append(rounding)
    return result


def _rounding_line(
    order: Order,
    priced: Sequence[tuple[Decimal | None, Decimal, dict[str, Any]]],
    orders: OrdersSettings,
    codes: dict[Decimal, str],
    precision: Decimal,
) -> dict[str, Any] | None:
    account = orders.rounding_account.strip().upper()
    if not account or order.prices_include_tax:
        return None  # with prices incl. tax the total is the sum of the lines: exact already
    per_rate: dict[Decimal, Decimal] = {}
    net = ZERO
    for rate, amount, _ in priced:
        net += amount
        if rate is not None:
            per_rate[rate] = per_rate.get(rate, ZERO) + amount
    predicted = net + sum(
        (_round(amount * rate / 100, precision) for rate, amount in per_rate.items()), ZERO
    )
    difference = order.total - predicted
    if difference == ZERO or abs(difference) > precision / 2 * (len(priced) + 1):
        return None
    return rounding_entry(account, difference, codes)


def rounding_entry(
    account: str, difference: Decimal, codes: Mapping[Decimal, str]
) -> dict[str, Any]:
    """The account line that books a rounding ``difference`` (with the 0 % tax code if any)."""
    entry: dict[str, Any] = {
        "lineType": "Account",
        "lineObjectNumber": account,
        "description": ROUNDING_DESCRIPTION,
        "quantity": 1,
        "unitPrice": json_number(difference),
    }
    if ZERO in codes:
        entry["taxCode"] = codes[ZERO]
    return entry


def _sent_amount(line: Line, prices_include_tax: bool) -> Decimal:
    """The line amount Business Central computes from what is sent: the shop's line total."""
    return line_basis(line, prices_include_tax)[1]


def _is_item(line: Line) -> bool:
    return line.kind is LineKind.ITEM


def _round(value: Decimal, precision: Decimal) -> Decimal:
    return value.quantize(precision, rounding=ROUND_HALF_UP)
