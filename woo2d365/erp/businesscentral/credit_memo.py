"""Canonical refund → the deep-insert body of ``POST salesCreditMemos``. Pure functions, no I/O.

The order's payload rules apply (:mod:`woo2d365.erp.businesscentral.payload`): line prices to
the cent by :func:`line_price`, the shop's VAT per line and the rounding line by
:func:`with_shop_vat`. What differs (docs/systems.md B6):

* ``externalDocumentNumber`` = ``orders.document_prefix`` + shop number + ``-R`` + refund id;
* ``pricesIncludeTax`` cannot be set: it is the customer card's, so every amount is sent in the
  basis the caller found for the customer;
* refunded shipping and fees, money refunded on an item line without a quantity (WooCommerce's
  "refund total" of a line alone), and the part of the refund amount no refunded line explains
  (an amount-only refund), are ``Account`` lines on ``refunds.account``: no goods come back. The
  unallocated part carries the order's VAT: it is split over the order's VAT rates in proportion
  to the order's lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from woo2d365.erp.businesscentral.normalize import FieldNormalizer
from woo2d365.erp.businesscentral.payload import (
    ROUNDING_DESCRIPTION,
    Draft,
    amount_precision,
    external_document_number,
    item_entry,
    json_number,
    line_basis,
    line_price,
    line_tax_rate,
    rounding_entry,
    tax_codes_of,
    with_shop_vat,
)
from woo2d365.errors import OrderDataError
from woo2d365.model import ZERO, Line, LineKind, Order, Refund
from woo2d365.settings import OrdersSettings

UNALLOCATED_DESCRIPTION = "Refund"
_RATE_KEY = "_taxCode"  # an unallocated part's own tax code, until the shop VAT rules ran


def credit_memo_number(prefix: str, order_number: str, refund_id: int) -> str:
    """``prefix + order number + "-R" + refund id``, upper-case, at most 35 characters."""
    if not order_number.strip():
        raise OrderDataError("the order has no number to build externalDocumentNumber from")
    return external_document_number(prefix, f"{order_number.strip()}-R{refund_id}")


def build_credit_memo(
    refund: Refund,
    order: Order,
    *,
    item_numbers: Mapping[int, str | None],
    customer_number: str,
    prices_include_tax: bool,
    orders: OrdersSettings,
    account: str,
    external_number: str,
) -> Draft:
    """The body of ``POST salesCreditMemos`` with its lines.

    ``item_numbers`` maps the order's line ids to Business Central item numbers. Raises
    :class:`OrderDataError` when the refund cannot be expressed (an item line without item, a
    shipping, fee or amount line without ``refunds.account``, a VAT rate not in the table).
    """
    norm = FieldNormalizer()
    account = account.strip().upper()
    unallocated = _unallocated_lines(refund, order, orders, prices_include_tax)
    lines = [*refund.lines, *(line for line, _ in unallocated)]
    codes = tax_codes_of(orders)
    # The unallocated parts carry the rate they were split by: a cent or two of VAT on a small
    # part would fit several rates.
    rates = {len(refund.lines) + index: rate for index, (_, rate) in enumerate(unallocated)}
    built: list[tuple[Line, dict[str, object]]] = []
    for position, line in enumerate(lines, 1):
        label = f'refund line {position} "{line.name or line.kind.value}"'
        after = line_basis(line, prices_include_tax)[1]
        if line.kind is LineKind.ITEM and line.quantity != ZERO:
            entry = _item_entry(line, label, after, item_numbers.get(line.shop_line_id), norm)
        else:
            rate = rates.get(position - 1)
            code = codes.get(rate) if rate is not None else None
            entry = _account_entry(line, label, after, account, code, norm)
        if entry is not None:
            built.append((line, entry))
    if not built:
        raise OrderDataError("the refund has nothing to credit")
    body: dict[str, object] = {
        "customerNumber": customer_number,
        "externalDocumentNumber": external_number,
        "creditMemoDate": refund.created_at.date().isoformat(),
    }
    if order.currency.strip():
        body["currencyCode"] = norm.code("currencyCode", order.currency, 10)
    heading = f"Shop refund {refund.refund_id} of order {order.number}"
    if refund.reason:
        heading += f": {refund.reason}"
    # The order's VAT rules see the refund as a small order in the customer's price basis.
    priced = with_shop_vat(_as_order(refund, order, lines, prices_include_tax), built, orders)
    for entry in priced:
        tax_code = entry.pop(_RATE_KEY, None)
        if tax_code is not None:
            entry["taxCode"] = tax_code
    if not prices_include_tax:
        _settle_rounding(priced, refund.amount, orders, amount_precision(order.currency))
    body["salesCreditMemoLines"] = [
        {"lineType": "Comment", "description": norm.text("refund reason", heading, 100)},
        *priced,
    ]
    return Draft(body, tuple(norm.warnings))


def _item_entry(
    line: Line, label: str, after: Decimal, number: str | None, norm: FieldNormalizer
) -> dict[str, object] | None:
    """An ``Item`` line of the credit memo; None for a line refunded without money."""
    if not number:
        raise OrderDataError(
            f"{label}: order line {line.shop_line_id} has no Business Central item "
            f"(SKU {line.sku!r})"
        )
    if line.quantity <= 0:
        raise OrderDataError(f"{label}: quantity {line.quantity}")
    if after == ZERO:
        return None  # a line refunded without money (WooCommerce allows it): nothing to book
    return item_entry(label, line, number, line_price(line.quantity, after, after), norm)


def _account_entry(
    line: Line,
    label: str,
    after: Decimal,
    account: str,
    tax_code: str | None,
    norm: FieldNormalizer,
) -> dict[str, object] | None:
    """An ``Account`` line on ``refunds.account`` (shipping, a fee, an item line's money without
    a quantity, an unallocated amount with the tax code of the rate it was split by); None for
    nothing to book."""
    if after == ZERO:
        return None
    if not account:
        if not line.shop_line_id:
            what = "amount"
        elif line.kind is LineKind.ITEM:
            what = "money without a quantity"
        else:
            what = line.kind.value
        raise OrderDataError(f"{label}: refunded {what} needs refunds.account")
    entry: dict[str, object] = {
        "lineType": "Account",
        "lineObjectNumber": account,
        "description": norm.text(f"{label} description", line.name, 100) or UNALLOCATED_DESCRIPTION,
        "quantity": 1,
        "unitPrice": json_number(after),
    }
    if tax_code is not None:
        entry[_RATE_KEY] = tax_code
    return entry


def _as_order(refund: Refund, order: Order, lines: list[Line], prices_include_tax: bool) -> Order:
    """The refund as a small order of ``lines``, for the order's VAT rules."""
    return Order(
        woo_id=order.woo_id,
        number=order.number,
        status=order.status,
        currency=order.currency,
        prices_include_tax=prices_include_tax,
        created_at=order.created_at,
        modified_at=order.modified_at,
        total=refund.amount,
        total_tax=sum((line.total_tax for line in lines), ZERO),
        lines=tuple(lines),
    )


def _settle_rounding(
    entries: list[dict[str, Any]], amount: Decimal, orders: OrdersSettings, precision: Decimal
) -> None:
    """Make Business Central's total the refund amount with prices excl. VAT: it rounds VAT once
    per rate over the document, so the cent the lines cannot reach goes on
    ``orders.rounding_account`` (the rounding line the order rules may have added, else a new
    one), as for orders. Nothing changes when a line's rate is unknown or no account is set."""
    account = orders.rounding_account.strip().upper()
    codes = tax_codes_of(orders)
    rate_of = {code: rate for rate, code in codes.items()}
    if not account:
        return
    net = ZERO
    per_rate: dict[Decimal, Decimal] = {}
    for entry in entries:
        rate = rate_of.get(str(entry.get("taxCode", "")))
        if rate is None:
            return
        quantity = Decimal(str(entry["quantity"]))
        amount_of_line = (quantity * Decimal(str(entry["unitPrice"]))).quantize(
            precision, rounding=ROUND_HALF_UP
        ) - Decimal(str(entry.get("discountAmount", 0)))
        net += amount_of_line
        per_rate[rate] = per_rate.get(rate, ZERO) + amount_of_line
    predicted = net + sum(
        ((value * rate / 100).quantize(precision, rounding=ROUND_HALF_UP)
         for rate, value in per_rate.items()),
        ZERO,
    )  # fmt: skip
    difference = amount - predicted
    if difference == ZERO or abs(difference) > precision * len(entries):
        return  # nothing to settle, or more than rounding: left to the total check
    for entry in entries:
        if (
            entry.get("description") == ROUNDING_DESCRIPTION
            and entry["lineObjectNumber"] == account
        ):
            entry["unitPrice"] = json_number(Decimal(str(entry["unitPrice"])) + difference)
            return
    entries.append(rounding_entry(account, difference, codes))


def _unallocated_lines(
    refund: Refund, order: Order, orders: OrdersSettings, prices_include_tax: bool
) -> list[tuple[Line, Decimal | None]]:
    """What the refund amount holds beyond its lines, as fee-like lines with the order's VAT.

    Split over the order's VAT rates (``orders.tax_codes``) in proportion to the order's lines
    including tax; each part's VAT is what the shop would charge on it. Without the table (or
    with an order whose lines match none of its rates) one line without VAT information. In the
    price basis excl. VAT each part's net is what Business Central turns back into the part to
    the cent, the cent a part cannot reach carried to the next part.
    """
    rest = refund.unallocated
    if rest == ZERO:
        return []
    precision = amount_precision(order.currency)
    codes = tax_codes_of(orders)
    per_rate: dict[Decimal, Decimal] = {}
    for line in order.lines:
        rate = line_tax_rate(line, codes, precision) if codes else None
        if rate is not None and line.gross_total > ZERO:
            per_rate[rate] = per_rate.get(rate, ZERO) + line.gross_total
    whole = sum(per_rate.values(), ZERO)
    if whole <= ZERO:
        return [(_amount_line(rest, ZERO), None)]
    parts: list[tuple[Line, Decimal | None]] = []
    left = rest
    carried = ZERO
    for index, (rate, gross) in enumerate(sorted(per_rate.items(), reverse=True)):
        last = index == len(per_rate) - 1
        part = left if last else (rest * gross / whole).quantize(precision)
        left -= part
        wanted = part + carried
        if prices_include_tax:
            tax = (wanted * rate / (100 + rate)).quantize(precision, rounding=ROUND_HALF_UP)
            net = wanted - tax
        else:
            net = (wanted * 100 / (100 + rate)).quantize(precision, rounding=ROUND_HALF_UP)
            tax = (net * rate / 100).quantize(precision, rounding=ROUND_HALF_UP)
        carried = wanted - (net + tax)
        parts.append((_amount_line(net, tax), rate))
    return [(line, rate) for line, rate in parts if line.gross_total != ZERO]


def _amount_line(net: Decimal, tax: Decimal) -> Line:
    return Line(
        kind=LineKind.FEE,
        shop_line_id=0,
        name=UNALLOCATED_DESCRIPTION,
        quantity=Decimal(1),
        subtotal=net,
        subtotal_tax=tax,
        total=net,
        total_tax=tax,
    )
