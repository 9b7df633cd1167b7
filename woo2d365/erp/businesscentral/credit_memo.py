"""Canonical refund → the deep-insert body of ``POST salesCreditMemos``. Pure functions, no I/O.

The order's payload rules apply (:mod:`woo2d365.erp.businesscentral.payload`): line prices to
the cent by :func:`line_price`, the shop's VAT per line and the rounding line by
:func:`with_shop_vat`. What differs (docs/systems.md B5):

* ``externalDocumentNumber`` = ``orders.document_prefix`` + shop number + ``-R`` + refund id;
* ``pricesIncludeTax`` cannot be set: it is the customer card's, so every amount is sent in the
  basis the caller found for the customer;
* refunded shipping and fees, and the part of the refund amount no refunded line explains (an
  amount-only refund), are ``Account`` lines on ``refunds.account``. That unallocated part carries
  the order's VAT: it is split over the order's VAT rates in proportion to the order's lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from woo2d365.erp.businesscentral.normalize import FieldNormalizer
from woo2d365.erp.businesscentral.payload import (
    Draft,
    amount_precision,
    external_document_number,
    json_number,
    line_basis,
    line_price,
    line_tax_rate,
    tax_codes_of,
    with_shop_vat,
)
from woo2d365.errors import OrderDataError
from woo2d365.model import ZERO, Line, LineKind, Order, Refund
from woo2d365.settings import OrdersSettings

UNALLOCATED_DESCRIPTION = "Refund"


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
    lines = [*refund.lines, *_unallocated_lines(refund, order, orders)]
    built: list[tuple[Line, dict[str, object]]] = []
    for position, line in enumerate(lines, 1):
        label = f'refund line {position} "{line.name or line.kind.value}"'
        after = line_basis(line, prices_include_tax)[1]
        if line.kind is LineKind.ITEM:
            number = item_numbers.get(line.shop_line_id)
            if not number:
                raise OrderDataError(
                    f"{label}: order line {line.shop_line_id} has no Business Central item "
                    f"(SKU {line.sku!r})"
                )
            if line.quantity <= 0:
                raise OrderDataError(f"{label}: quantity {line.quantity}")
            if after == ZERO:
                continue  # a line refunded without money (WooCommerce allows it): nothing to book
            unit, discount = line_price(line.quantity, after, after)
            entry: dict[str, object] = {
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
        else:
            if after == ZERO:
                continue
            if not account:
                raise OrderDataError(
                    f"{label}: refunded {line.kind.value if line.shop_line_id else 'amount'} "
                    "needs refunds.account"
                )
            entry = {
                "lineType": "Account",
                "lineObjectNumber": account,
                "description": norm.text(f"{label} description", line.name, 100)
                or UNALLOCATED_DESCRIPTION,
                "quantity": 1,
                "unitPrice": json_number(after),
            }
        built.append((line, entry))
    if not built:
        raise OrderDataError("the refund has nothing to credit")
    total_tax = sum((line.total_tax for line in lines), ZERO)
    # The order's VAT rules see the refund as a small order in the customer's price basis.
    as_order = Order(
        woo_id=order.woo_id,
        number=order.number,
        status=order.status,
        currency=order.currency,
        prices_include_tax=prices_include_tax,
        created_at=order.created_at,
        modified_at=order.modified_at,
        total=refund.amount,
        total_tax=total_tax,
        lines=tuple(lines),
    )
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
    body["salesCreditMemoLines"] = [
        {"lineType": "Comment", "description": norm.text("refund reason", heading, 100)},
        *with_shop_vat(as_order, built, orders),
    ]
    return Draft(body, tuple(norm.warnings))


def _unallocated_lines(refund: Refund, order: Order, orders: OrdersSettings) -> list[Line]:
    """What the refund amount holds beyond its lines, as fee-like lines with the order's VAT.

    Split over the order's VAT rates (``orders.tax_codes``) in proportion to the order's lines
    including tax; each part's VAT is what the shop would charge on it. Without the table (or
    with an order whose lines match none of its rates) one line without VAT information.
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
        return [_amount_line(rest, ZERO)]
    parts: list[Line] = []
    left = rest
    for index, (rate, gross) in enumerate(sorted(per_rate.items(), reverse=True)):
        last = index == len(per_rate) - 1
        part = left if last else (rest * gross / whole).quantize(precision)
        left -= part
        tax = (part * rate / (100 + rate)).quantize(precision)
        parts.append(_amount_line(part - tax, tax))
    return [line for line in parts if line.gross_total != ZERO]


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
