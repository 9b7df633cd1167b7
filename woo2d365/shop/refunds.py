"""Shop refunds → canonical :class:`~woo2d365.model.Refund` (docs/systems.md W7).

WooCommerce copies each refunded order line into the refund with its quantity and amounts
negated and the meta ``_refunded_item_id`` naming the order line; the refund's ``amount`` is
positive and wins over its lines. Here everything is made positive again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from woo2d365.errors import OrderDataError
from woo2d365.model import Line, LineKind, Refund
from woo2d365.shop.mapping import (
    _gmt,
    _int,
    _money,
    _objects,
    _quantity,
    _text,
    decode_text,
)

REFUNDED_ITEM_KEY = "_refunded_item_id"
_GROUPS = (
    ("line_items", LineKind.ITEM, "name"),
    ("shipping_lines", LineKind.SHIPPING, "method_title"),
    ("fee_lines", LineKind.FEE, "name"),
)


def refund_from_shop(raw: Mapping[str, Any], woo_id: int) -> Refund:
    """The canonical refund of order ``woo_id``; :class:`OrderDataError` if it cannot be read."""
    refund_id = _int(raw.get("id"), "refund id")
    where = f"refund {refund_id}"
    amount = _money(raw.get("amount"), f"{where} amount")
    if amount < 0:
        raise OrderDataError(f"{where}: a negative amount {amount}")
    lines: list[Line] = []
    for group, kind, name_key in _GROUPS:
        for index, entry in enumerate(_objects(raw.get(group), f"{where} {group}"), 1):
            lines.append(_refund_line(entry, kind, name_key, f"{where} {group}[{index}]"))
    return Refund(
        refund_id=refund_id,
        woo_id=woo_id,
        amount=amount,
        reason=decode_text(_text(raw.get("reason"))).strip(),
        created_at=_gmt(raw, "date_created_gmt", where),
        lines=tuple(lines),
    )


def refunded_line_id(entry: Mapping[str, Any]) -> int:
    """The order line a refund line refunds (meta ``_refunded_item_id``), 0 if not named."""
    meta_data = entry.get("meta_data")
    for meta in meta_data if isinstance(meta_data, list) else []:
        if isinstance(meta, Mapping) and meta.get("key") == REFUNDED_ITEM_KEY:
            return id_or_zero(meta.get("value"))
    return 0


def id_or_zero(value: Any) -> int:
    """An id the shop sent, by the order mapping's rule for ids; 0 when it is none."""
    try:
        return _int(value, "id")
    except OrderDataError:
        return 0


def _refund_line(entry: Mapping[str, Any], kind: LineKind, name_key: str, where: str) -> Line:
    line_id = refunded_line_id(entry)
    if not line_id:
        raise OrderDataError(f"{where}: no {REFUNDED_ITEM_KEY} names the refunded order line")
    total = -_money(entry.get("total"), f"{where} total")
    tax = -_money(entry.get("total_tax") or "0", f"{where} total_tax")
    quantity = (
        -_quantity(entry.get("quantity"), f"{where} quantity")
        if kind is LineKind.ITEM
        else _quantity(1, where)
    )
    return Line(
        kind=kind,
        shop_line_id=line_id,
        name=decode_text(_text(entry.get(name_key))).strip(),
        quantity=quantity,
        subtotal=total,
        subtotal_tax=tax,
        total=total,
        total_tax=tax,
        sku=_text(entry.get("sku")).strip() or None,
        product_id=_int(entry.get("product_id"), f"{where} product_id"),
        variation_id=_int(entry.get("variation_id"), f"{where} variation_id"),
    )
