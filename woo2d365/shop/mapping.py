"""WooCommerce order JSON → the canonical :class:`~woo2d365.model.Order`.

Rules (``docs/systems.md`` W3):

* Money comes from the JSON strings as :class:`~decimal.Decimal`; ``line_items[].price`` (a float
  computed by PHP) is never read. Amounts that cannot be read raise :class:`OrderDataError`.
* Dates come from the ``*_gmt`` fields (naive UTC in the API) and become aware UTC.
* Text fields may be ``null`` in the wild: they become ``""``. HTML character references that
  WordPress stored (``&amp;``, ``&#8211;``) are decoded; a bare ``&`` (``AT&T``) is left alone.
* Anything the mapper cannot read raises :class:`OrderDataError` with a sentence a shop manager
  understands, never another exception.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from woo2d365.errors import OrderDataError
from woo2d365.model import Address, Line, LineKind, Order

SKIP_STATUSES = frozenset({"cancelled", "refunded", "failed", "trash"})
"""Shop statuses that make an order not yet pushed ``skipped``."""

OWN_META_PREFIX = "_woo2d365_"
SALES_ORDER_META_KEY = OWN_META_PREFIX + "sales_order"
"""Order meta key holding the Dynamics sales order number after write-back."""
"""Prefix of the order meta keys woo2d365 writes back to the shop."""

# Parts of an order that change without the order changing for us: the modification stamps
# (our own meta write bumps them under HPOS), our own meta and the hypermedia links.
_VOLATILE_KEYS = frozenset({"date_modified", "date_modified_gmt", "_links"})

# Bounds of what a sales order can carry exactly: amounts are sent as JSON numbers (doubles, 15
# significant digits) and Business Central keeps quantities to 5 decimals.
MAX_AMOUNT_DIGITS = 9
MAX_AMOUNT_DECIMALS = 6
MAX_QUANTITY_DECIMALS = 5
MAX_ID = 2**63 - 1
"""The largest id the state store keeps (a signed BIGINT column): a larger one is bad data."""
EARLIEST_DATE = datetime(1000, 1, 1, tzinfo=UTC)
LATEST_DATE = datetime(9999, 1, 1, tzinfo=UTC)
"""Shop dates the store can keep: four-digit years (its timestamps are text of fixed width, and
MySQL's DATETIME starts at 1000), with a year to spare for the windows reckoned from them."""

_CHAR_REF = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_SKU_PARTS = re.compile(r"[^0-9A-Za-z]+")


def order_from_shop(raw: Mapping[str, Any]) -> Order:
    """Map one order object of ``GET /wc/v3/orders`` to an :class:`Order`.

    Raises :class:`OrderDataError` when the order cannot be mapped (no id, an amount that is not a
    number, a date that is not a date, a line that is not an object).
    """
    if not isinstance(raw, Mapping):
        raise OrderDataError("the shop sent an order that is not a JSON object")
    woo_id = order_id_of(raw)
    where = f"order {woo_id}"
    items = _objects(raw.get("line_items"), f"{where}: line_items")
    lines = [_item_line(item, f"{where}: line item {i + 1}") for i, item in enumerate(items)]
    lines = _flag_inherited_skus(lines, items)
    for i, shipping in enumerate(_objects(raw.get("shipping_lines"), f"{where}: shipping_lines")):
        lines.append(
            _flat_line(LineKind.SHIPPING, shipping, "method_title", f"{where}: shipping {i + 1}")
        )
    for i, fee in enumerate(_objects(raw.get("fee_lines"), f"{where}: fee_lines")):
        lines.append(_flat_line(LineKind.FEE, fee, "name", f"{where}: fee {i + 1}"))
    coupons = tuple(
        _text(coupon.get("code"))
        for coupon in _objects(raw.get("coupon_lines"), f"{where}: coupon_lines")
        if _text(coupon.get("code"))
    )
    return Order(
        woo_id=woo_id,
        number=number_of(raw),
        status=_text(raw.get("status")),
        currency=_text(raw.get("currency")).upper(),
        prices_include_tax=raw.get("prices_include_tax") is True,
        created_at=_gmt(raw, "date_created_gmt", where),
        modified_at=modified_at_of(raw),
        total=_money(raw.get("total"), f"{where}: total"),
        total_tax=_money(raw.get("total_tax", "0"), f"{where}: total_tax"),
        customer_id=_int(raw.get("customer_id", 0), f"{where}: customer_id"),
        billing=_address(raw.get("billing"), f"{where}: billing"),
        shipping=_address(raw.get("shipping"), f"{where}: shipping"),
        lines=tuple(lines),
        customer_note=_text(raw.get("customer_note")),
        payment_method=_text(raw.get("payment_method")),
        coupon_codes=coupons,
        recorded_document=_recorded_document(raw.get("meta_data")),
    )


def email_of(raw: Mapping[str, Any]) -> str:
    """``order_from_shop(raw).email`` without mapping the whole order (``""`` when none)."""
    billing = raw.get("billing") if isinstance(raw, Mapping) else None
    if not isinstance(billing, Mapping):
        return ""
    return _email(billing).strip()  # as Order.email


def _email(address: Mapping[str, Any]) -> str:
    return decode_text(_text(address.get("email")))


def _recorded_document(meta: Any) -> str:
    """The sales order number our write-back left in the order's meta, or ``""``."""
    if not isinstance(meta, list):
        return ""
    for entry in meta:
        if isinstance(entry, Mapping) and entry.get("key") == SALES_ORDER_META_KEY:
            value = entry.get("value")
            return value.strip() if isinstance(value, str) else ""
    return ""


def order_id_of(raw: Mapping[str, Any]) -> int:
    """The shop's order id; :class:`OrderDataError` when missing or no integer in 1 … MAX_ID."""
    value = raw.get("id")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise OrderDataError(f"the shop sent an order without a valid id (id = {value!r:.40})")
    return value


def number_of(raw: Mapping[str, Any]) -> str:
    """The display number (a string that may differ from the id); the id when it is missing."""
    number = _text(raw.get("number")).strip()
    return number or str(raw.get("id", ""))


def modified_at_of(raw: Mapping[str, Any]) -> datetime:
    """``date_modified_gmt`` as aware UTC; :class:`OrderDataError` if absent or unreadable."""
    return _gmt(raw, "date_modified_gmt", f"order {raw.get('id')!r:.40}")


def created_at_of(raw: Mapping[str, Any]) -> datetime:
    """``date_created_gmt`` as aware UTC; :class:`OrderDataError` if absent or unreadable."""
    return _gmt(raw, "date_created_gmt", f"order {raw.get('id')!r:.40}")


PRUNED_MARK = "_woo2d365_pruned"
"""Key of the note ``prune`` leaves in a scrubbed shop copy: when, and the original fingerprint."""


def content_fingerprint(raw: Mapping[str, Any]) -> str:
    """A hash of what the order says, blind to what changes without the order changing.

    Ignores ``date_modified*``, ``_links`` and meta entries whose key starts with
    :data:`OWN_META_PREFIX`, so our own write-back (which bumps ``date_modified`` under HPOS) or a
    merely opened order gives the same fingerprint as before.
    """
    pruned = raw.get(PRUNED_MARK)
    if isinstance(pruned, Mapping) and isinstance(pruned.get("fingerprint"), str):
        # A copy scrubbed by `prune` stands for the original it was made from.
        return str(pruned["fingerprint"])
    content: dict[str, Any] = {k: v for k, v in raw.items() if k not in _VOLATILE_KEYS}
    meta = content.get("meta_data")
    if isinstance(meta, list):
        content["meta_data"] = [
            entry
            for entry in meta
            if not (
                isinstance(entry, Mapping) and str(entry.get("key", "")).startswith(OWN_META_PREFIX)
            )
        ]
    encoded = json.dumps(content, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def decode_text(value: str) -> str:
    """Decode HTML character references WordPress stored (``&amp;`` → ``&``); leave bare ``&``."""
    if "&" not in value:
        return value
    return _CHAR_REF.sub(lambda match: html.unescape(match.group(0)), value)


# -- lines ---------------------------------------------------------------------------------------


def _item_line(item: Mapping[str, Any], where: str) -> Line:
    sku = _text(item.get("sku")).strip()
    subtotal = _money(item.get("subtotal"), f"{where}: subtotal")
    total = _money(item.get("total"), f"{where}: total")
    return Line(
        kind=LineKind.ITEM,
        shop_line_id=_int(item.get("id", 0), f"{where}: id"),
        name=decode_text(_text(item.get("name"))),
        quantity=_quantity(item.get("quantity"), f"{where}: quantity"),
        subtotal=subtotal,
        subtotal_tax=_money(item.get("subtotal_tax", "0"), f"{where}: subtotal_tax"),
        total=total,
        total_tax=_money(item.get("total_tax", "0"), f"{where}: total_tax"),
        sku=sku or None,
        product_id=_int(item.get("product_id", 0), f"{where}: product_id"),
        variation_id=_int(item.get("variation_id", 0), f"{where}: variation_id"),
    )


def _flat_line(kind: LineKind, raw: Mapping[str, Any], name_key: str, where: str) -> Line:
    total = _money(raw.get("total"), f"{where}: total")
    tax = _money(raw.get("total_tax", "0"), f"{where}: total_tax")
    name = decode_text(_text(raw.get(name_key))).strip()
    if not name and kind is LineKind.SHIPPING:
        name = _text(raw.get("method_id")) or "Shipping"
    return Line(
        kind=kind,
        shop_line_id=_int(raw.get("id", 0), f"{where}: id"),
        name=name or "Fee",
        quantity=Decimal(1),
        subtotal=total,
        subtotal_tax=tax,
        total=total,
        total_tax=tax,
    )


def _flag_inherited_skus(lines: list[Line], items: list[Mapping[str, Any]]) -> list[Line]:
    """Mark variation lines whose SKU is probably their parent product's.

    The order JSON does not carry the parent's SKU (WooCommerce reports it for a variation
    without its own, ``docs/systems.md`` W3), so this is a heuristic. A variation line is flagged
    when its SKU

    1. is also the SKU of another variation of the same product in this order, or
    2. is the start of the SKU of another variation of that product (``SHIRT`` beside
       ``SHIRT-L``), or
    3. contains none of the line's attribute values as one of its parts (``SHIRT`` for size M,
       whereas ``SHIRT-M`` or ``shirt_m_blue`` is taken as the variation's own).

    Rule 3 also flags own variation SKUs that do not spell the attributes (``10234`` for size M);
    the flag says "may be the parent's", and validate decides what that costs.
    """
    flagged: list[Line] = []
    for line, item in zip(lines, items, strict=True):
        if line.variation_id and line.sku and _looks_inherited(line, item, lines):
            line = replace(line, parent_sku_inherited=True)
        flagged.append(line)
    return flagged


def _looks_inherited(line: Line, item: Mapping[str, Any], lines: list[Line]) -> bool:
    assert line.sku is not None
    sku = line.sku.casefold()
    for other in lines:
        if other is line or other.product_id != line.product_id or not other.sku:
            continue
        if other.variation_id == line.variation_id:
            continue
        other_sku = other.sku.casefold()
        if other_sku == sku or (
            other_sku.startswith(sku) and _SKU_PARTS.match(other_sku, len(sku)) is not None
        ):
            return True
    values = _attribute_values(item)
    if not values:
        return False
    parts = {part for part in _SKU_PARTS.split(sku) if part}
    return not parts & values


def _attribute_values(item: Mapping[str, Any]) -> set[str]:
    """Variation attribute values from the line's meta (``size: M``), lower-cased, as SKU parts."""
    values: set[str] = set()
    meta = item.get("meta_data")
    if not isinstance(meta, list):
        return values
    for entry in meta:
        if not isinstance(entry, Mapping) or str(entry.get("key", "")).startswith("_"):
            continue
        for field in ("value", "display_value"):
            value = entry.get(field)
            if isinstance(value, str) and 0 < len(value) <= 40:
                values.update(p for p in _SKU_PARTS.split(decode_text(value).casefold()) if p)
    return values


# -- fields --------------------------------------------------------------------------------------


def _address(raw: Any, where: str) -> Address:
    if raw is None or raw == []:  # PHP serialises an empty array as [] rather than {}
        return Address()
    if not isinstance(raw, Mapping):
        raise OrderDataError(f"{where} is not an address object")

    def field(name: str) -> str:
        return decode_text(_text(raw.get(name)))

    return Address(
        first_name=field("first_name"),
        last_name=field("last_name"),
        company=field("company"),
        line1=field("address_1"),
        line2=field("address_2"),
        city=field("city"),
        state=field("state"),
        postcode=field("postcode"),
        country=field("country").strip().upper(),
        email=_email(raw),
        phone=field("phone"),
    )


def _objects(raw: Any, where: str) -> list[Mapping[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(entry, Mapping) for entry in raw):
        raise OrderDataError(f"{where} is not a list of objects")
    return raw


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, int | float | Decimal):
        return str(value)
    return ""


def _money(value: Any, where: str) -> Decimal:
    """A money string (``"58.38"``) as Decimal; a number is read through its text, not as float."""
    return _bookable(value, where, ("an amount", "an amount"), MAX_AMOUNT_DECIMALS)


def _quantity(value: Any, where: str) -> Decimal:
    return _bookable(value, where, ("a number", "a quantity"), MAX_QUANTITY_DECIMALS)


def _bookable(value: Any, where: str, names: tuple[str, str], decimals: int) -> Decimal:
    """``value`` as Decimal, or OrderDataError when it is no number or too long to book.

    ``names`` says what the value is when unreadable and what Dynamics books, for the message.
    """
    unreadable, what = names
    number = _decimal(value)
    if number is None:
        raise OrderDataError(f"{where} is not {unreadable}: {value!r:.40}")
    if not _fits(number, MAX_AMOUNT_DIGITS, decimals):
        raise OrderDataError(
            f"{where} is not {what} Business Central can book: {value!r:.40} (more than "
            f"{MAX_AMOUNT_DIGITS} digits before or {decimals} after the point)"
        )
    return number


def _fits(value: Decimal, digits: int, decimals: int) -> bool:
    """True when ``value`` has at most ``digits`` before and ``decimals`` after the point.

    Judged on the exact digits, not through the decimal context: ``normalize()`` would round to
    28 digits (``1.0000000000000000000000000001`` would pass) and overflow on ``1e1000000``.
    """
    _, figures, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite: _decimal returns finite values only
    significant = len(figures)
    while significant > 1 and figures[significant - 1] == 0:  # trailing zeros say nothing
        significant -= 1
        exponent += 1
    if figures[:significant] == (0,):
        return True  # zero, whatever its exponent
    return significant + exponent - 1 < digits and -exponent <= decimals


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        value = repr(value)  # shortest text of the number: 19.99, not 19.989999…
    if not isinstance(value, str):
        return None
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def _int(value: Any, where: str) -> int:
    number = _whole(value)
    if number is None or abs(number) > MAX_ID:
        raise OrderDataError(f"{where} is not a whole number: {value!r:.40}")
    return number


def _whole(value: Any) -> int | None:
    """An id as the shop sends it (a number or its digits; none is 0), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if value is None or value == "":
        return 0
    digits = value.strip() if isinstance(value, str) else ""
    # ASCII only: "²" is a digit to str.isdigit, not to int(). Twenty digits are past MAX_ID
    # already, and int() refuses more than 4,300 (leading zeros counted) with a ValueError.
    if not (digits.isascii() and digits.isdigit()):
        return None
    significant = digits.lstrip("0") or "0"
    return int(significant) if len(significant) <= 20 else None


def _gmt(raw: Mapping[str, Any], key: str, where: str) -> datetime:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise OrderDataError(f"{where}: {key} is missing")
    try:
        parsed = datetime.fromisoformat(value.strip())
        # The *_gmt fields are UTC without an offset; with one, year 1 or 9999 may overflow.
        moment = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise OrderDataError(f"{where}: {key} is not a date: {value!r:.40}") from None
    if not EARLIEST_DATE <= moment < LATEST_DATE:
        raise OrderDataError(
            f"{where}: {key} is not a date between the years 1000 and 9998: {value!r:.40}"
        )
    return moment
