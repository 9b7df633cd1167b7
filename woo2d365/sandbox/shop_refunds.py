"""Refunds as WooCommerce 9.9 builds them (docs/systems.md W7), for the shop emulator.

``wc_create_refund()`` copies each refunded order line (line items, shipping, fees) with its
quantity and amounts negated and the meta ``_refunded_item_id`` naming the order's line; the
refund's ``amount`` is positive and wins over the lines; a refund without lines is normal; refunds
have no ``date_modified``. ``parent_id`` is only shown by ``GET /refunds`` (WooCommerce ≥ 9.0).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from woo2d365.sandbox.shop_data import format_money

FULLY_REFUNDED_REASON = "Order fully refunded."
_GROUPS = ("line_items", "shipping_lines", "fee_lines")


def _dec(value: Any) -> Decimal:
    try:
        return Decimal(str(value or "0"))
    except ArithmeticError:
        return Decimal("0")


def _round(value: Decimal, dp: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-dp), rounding=ROUND_HALF_UP)


def refunded_so_far(order: Mapping[str, Any]) -> Decimal:
    """What the order's refunds add up to (their ``total`` strings are negative)."""
    return -sum((_dec(entry.get("total")) for entry in order.get("refunds") or []), Decimal("0"))


def build_refund(
    order: Mapping[str, Any],
    refund_id: int,
    *,
    stamps: tuple[str, str],
    first_item_id: int,
    first_meta_id: int,
    amount: Decimal | None,
    reason: str,
    quantities: Mapping[int, int],
    whole_lines: tuple[int, ...],
    dp: int,
    line_money: Mapping[int, Decimal] | None = None,
) -> dict[str, Any]:
    """One refund object as ``GET /orders/{id}/refunds/{rid}`` shows it (without ``_links``).

    ``quantities`` refunds that many of an order line item (its value per unit, tax included);
    ``whole_lines`` refunds whole shipping or fee lines (or line items) by order line id;
    ``line_money`` refunds money (tax included) on a line item without a quantity, as the admin's
    "refund total" and "refund tax" boxes of a line do alone: the copy's quantity is 0. Without
    ``amount`` the refund is worth what its lines are; a refund with no lines needs ``amount``.
    """
    lines: dict[str, list[dict[str, Any]]] = {group: [] for group in _GROUPS}
    item_id, meta_id = first_item_id, first_meta_id
    line_sum = Decimal("0")
    wanted: dict[int, int | None] = {**{line: None for line in whole_lines}, **quantities}
    money = dict(line_money or {})
    wanted.update({line: 0 for line in money})
    for group in _GROUPS:
        for line in order.get(group) or []:
            line_id = int(line["id"])
            if line_id not in wanted:
                continue
            copied = copy.deepcopy(dict(line))
            qty, total, tax = _refunded(line, group, wanted[line_id], money.get(line_id), dp)
            line_sum += total + tax
            copied["id"] = item_id
            item_id += 1
            copied["total"] = format_money(-total, dp)
            copied["total_tax"] = format_money(-tax, dp)
            copied["taxes"] = [
                {"id": t.get("id"), "total": format_money(-tax, dp), "subtotal": ""}
                for t in (line.get("taxes") or [])[:1]
            ]
            if group == "line_items":
                copied["quantity"] = -qty
                copied["subtotal"] = copied["total"]  # refunds carry no discount
                copied["subtotal_tax"] = copied["total_tax"]
                copied["taxes"] = [{**t, "subtotal": t["total"]} for t in copied["taxes"]]
                copied["parent_name"] = None
                copied["image"] = {"id": "", "src": ""}
            copied["meta_data"] = [
                {
                    "id": meta_id,
                    "key": "_refunded_item_id",
                    "value": str(line_id),
                    "display_key": "_refunded_item_id",
                    "display_value": str(line_id),
                }
            ]
            meta_id += 1
            lines[group].append(copied)
            del wanted[line_id]
    if wanted:
        raise ValueError(f"order {order['id']} has no lines {sorted(wanted)}")
    value = line_sum if amount is None else Decimal(amount)
    if value < 0:
        raise ValueError("Invalid refund amount.")
    if value > _dec(order.get("total")) - refunded_so_far(order):
        raise ValueError("Invalid refund amount.")  # woocommerce_rest_cannot_create_order_refund
    local, gmt = stamps
    return {
        "id": refund_id,
        "date_created": local,
        "date_created_gmt": gmt,
        "amount": format_money(value, dp),
        "reason": reason,
        "refunded_by": 1,
        "refunded_payment": False,
        "meta_data": [],
        "line_items": lines["line_items"],
        "shipping_lines": lines["shipping_lines"],
        "tax_lines": [],
        "fee_lines": lines["fee_lines"],
    }


def _refunded(
    line: Mapping[str, Any], group: str, asked: int | None, money: Decimal | None, dp: int
) -> tuple[int, Decimal, Decimal]:
    """``(quantity, total, tax)`` refunded of an order line: ``asked`` of its quantity (None:
    all of it) at its price, or ``money`` (tax included) without a quantity."""
    line_id = line.get("id")
    if money is not None:
        gross = _dec(line.get("total")) + _dec(line.get("total_tax"))
        if group != "line_items" or not 0 < money <= gross:
            raise ValueError(f"order line {line_id}: cannot refund {money}")
        total = _round(_dec(line.get("total")) * money / gross, dp)
        return 0, total, money - total
    ordered_qty = int(line.get("quantity") or 1)
    qty = ordered_qty if asked is None else int(asked)
    if group == "line_items" and not 0 < qty <= ordered_qty:
        raise ValueError(f"order line {line_id}: cannot refund {qty} of {ordered_qty}")
    share = Decimal(qty) / Decimal(ordered_qty)
    return (
        qty,
        _round(_dec(line.get("total")) * share, dp),
        _round(_dec(line.get("total_tax")) * share, dp),
    )


def refund_links(site_url: str, order_id: int, refund_id: int) -> dict[str, Any]:
    """``_links`` of a refund."""
    base = f"{site_url}/wp-json/wc/v3/orders/{order_id}"
    return {
        "self": [
            {"href": f"{base}/refunds/{refund_id}", "targetHints": {"allow": ["GET", "DELETE"]}}
        ],
        "collection": [{"href": f"{base}/refunds"}],
        "up": [{"href": base}],
    }


def present_refund(
    refund: Mapping[str, Any], site_url: str, *, with_parent: bool, fields: list[str] | None
) -> dict[str, Any]:
    """A stored refund as the API shows it (``parent_id`` only from ``GET /refunds``)."""
    out = copy.deepcopy(dict(refund))
    parent = int(out.pop("parent_id"))
    if with_parent:
        out = {"id": out["id"], "parent_id": parent, **{k: v for k, v in out.items() if k != "id"}}
    out["_links"] = refund_links(site_url, parent, int(refund["id"]))
    if fields is not None:
        out = {name: value for name, value in out.items() if name in fields}
    return out
