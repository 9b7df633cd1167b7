"""Realistic WooCommerce 9.9 order JSON for the shop emulator, the demo and tests.

Orders are shaped exactly like a real ``GET /wp-json/wc/v3/orders/{id}`` answer of a WooCommerce
9.9.5 shop with HPOS (``tests/shop/samples/order-hpos-wc9.9.5.json``): money as strings
with ``dp`` decimals (``line_items[].price`` and ``coupon_lines[].nominal_amount`` are numbers),
naive date strings in the site's timezone next to ``*_gmt`` ones in UTC, ``_links``.

Money follows WooCommerce's own arithmetic (``docs/systems.md`` W3): per-line tax rounding, coupon
discounts worked out in minor units (percent coupons floored per line with the remainder handed
out one cent per unit, ``fixed_cart`` coupons spread evenly per unit), prices entered with or
without VAT, shipping and fees always without VAT, negative fees taxed in proportion to the cart.
The lines (items, shipping, fees) add up to the order ``total`` to the cent; the order-level
``discount_total``/``discount_tax`` come from unrounded amounts and may differ from the lines by a
cent, as in a real shop.
"""

from __future__ import annotations

import hashlib
import json
import random
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_DOWN, ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

WC_VERSION = "9.9.5"
DEFAULT_SITE_URL = "https://shop.example.com"
SHIRT_PARENT_SKU = "SHIRT"

_D = Decimal
_ZERO = Decimal("0")
_HUNDRED = Decimal("100")
VAT_HIGH = Decimal("21")
VAT_LOW = Decimal("9")
_DEFAULT_PRICE = Decimal("9.95")

BILLING_FIELDS = (
    "first_name", "last_name", "company", "address_1", "address_2",
    "city", "state", "postcode", "country", "email", "phone",
)  # fmt: skip
SHIPPING_FIELDS = (
    "first_name", "last_name", "company", "address_1", "address_2",
    "city", "state", "postcode", "country", "phone",
)  # fmt: skip

CURRENCY_SYMBOLS = {
    "EUR": "€", "USD": "$", "GBP": "£", "CHF": "CHF", "JPY": "¥", "SEK": "kr", "DKK": "kr.",
    "NOK": "kr", "PLN": "zł",
}  # fmt: skip


@dataclass(frozen=True)
class Product:
    """A product or variation as an order line reports it.

    ``sku`` is what ``line_items[].sku`` shows: a variation without its own SKU reports its
    parent's, a product without SKU reports ``""`` and a deleted product ``None``.
    ``product_id == 0`` marks a deleted product. ``attributes`` are ``(key, display_key, value)``
    triples that appear in the line's ``meta_data`` (variation attributes).
    """

    sku: str | None
    name: str
    # The shelf price as entered in the shop: incl. or excl. VAT, see prices_include_tax.
    price: Decimal
    tax_rate: Decimal  # percent, e.g. 21 or 9
    product_id: int
    variation_id: int = 0
    parent_name: str | None = None
    attributes: tuple[tuple[str, str, str], ...] = ()
    image_id: int | None = None  # None: the product has no image

    @property
    def is_deleted(self) -> bool:
        """True when the product no longer exists in the shop."""
        return self.product_id == 0


def _size(value: str) -> tuple[tuple[str, str, str], ...]:
    return (("size", "Size", value),)


CATALOGUE: list[Product] = [
    Product("WIDGET-001", "Blue Widget", _D("19.99"), _D("21"), 10),
    Product("SHIRT-S", "T-Shirt - S", _D("13.50"), _D("21"), 11, 12, "T-Shirt", _size("S")),
    Product("SHIRT-M", "T-Shirt - M", _D("13.50"), _D("21"), 11, 13, "T-Shirt", _size("M")),
    # Variation L has no SKU of its own: WooCommerce reports the parent's SKU "SHIRT".
    Product(SHIRT_PARENT_SKU, "T-Shirt - L", _D("13.50"), _D("21"), 11, 15, "T-Shirt", _size("L")),
    Product("BELL-DINGDONG", "Fietsbel Ding-Dong", _D("7.95"), _D("21"), 20, image_id=201),
    Product("GRINDER-ELG", "Koffiemolen Élégance", _D("89.00"), _D("21"), 21, image_id=202),
    Product("TORCH-CB", "Crème-brûlée-brander", _D("24.95"), _D("21"), 22),
    Product("UMBRELLA-XL", "Paraplu ☂ Groot", _D("29.95"), _D("21"), 23),
    Product("SOCKS-3P", "Sokken 🧦 3-pack", _D("12.49"), _D("21"), 24, image_id=204),
    Product("PUMP-DLX", "Fietspomp Deluxe", _D("34.90"), _D("21"), 25),
    Product("STROOP-8", "Stroopwafels (8 st.)", _D("3.49"), _D("9"), 30, image_id=301),
    Product("DROP-ZOUT-500", "Drop Zoute Mix 500 g", _D("4.29"), _D("9"), 31),
    Product("GOUDA-OUD-1KG", "Gouda Oud 1 kg — Boerenkaas", _D("17.85"), _D("9"), 32),
    Product("KOFFIE-ESP-1KG", "Koffiebonen Espresso 1 kg", _D("22.50"), _D("9"), 33),
    Product("BOEK-HOLL-POT", "Kookboek „Hollandse Pot“", _D("27.99"), _D("9"), 34),
    Product("THEE-EG-100", "Thee Earl Grey 100 g", _D("5.75"), _D("9"), 35),
]

#: A product that exists but has no SKU at all (``line_items[].sku`` is ``""``); not in CATALOGUE.
NO_SKU_PRODUCT = Product("", "Handgeschreven kaartje", _D("2.50"), _D("21"), 40)


def product_by_sku(sku: str) -> Product:
    """The first catalogue product that reports ``sku`` (the parent SKU gives variation L)."""
    for product in CATALOGUE:
        if product.sku == sku:
            return product
    raise KeyError(sku)


def unmapped_product(
    sku: str,
    *,
    name: str | None = None,
    price: Decimal = _DEFAULT_PRICE,
    tax_rate: Decimal = VAT_HIGH,
) -> Product:
    """A product with a SKU that is deliberately in no ERP (ids stable per SKU, 9000-9999)."""
    return Product(
        sku, name or f"Nieuw artikel {sku}", price, tax_rate, 9000 + zlib.crc32(sku.encode()) % 1000
    )


def deleted_product(name: str, price: Decimal, tax_rate: Decimal = VAT_HIGH) -> Product:
    """A line whose product was deleted after the sale: ``product_id`` 0, ``sku`` null."""
    return Product(None, name, price, tax_rate, 0)


# --- money helpers --------------------------------------------------------------------------


def _unit(dp: int) -> Decimal:
    return Decimal(1).scaleb(-dp)


def _round(value: Decimal, dp: int) -> Decimal:
    """PHP ``round()``: half away from zero (Decimal's ROUND_HALF_UP)."""
    return value.quantize(_unit(dp), rounding=ROUND_HALF_UP)


def format_money(value: Decimal, dp: int) -> str:
    """``wc_format_decimal(value, dp)``: plain decimal, ``dp`` decimals, no ``-0``."""
    rounded = _round(value, dp)
    if rounded == 0:
        rounded = abs(rounded)
    return format(rounded, "f")


def _raw(value: Decimal) -> str:
    """An unrounded amount as WooCommerce stores it in ``taxes[]`` (no trailing zeros)."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def _number(value: Decimal) -> int | float:
    """A PHP number in JSON: integer when whole (``14``), else a float (``12.5``)."""
    if value == value.to_integral_value():
        return int(value)
    return float(value)


_TAX_RATES: dict[Decimal, tuple[int, str, str]] = {
    _D("21"): (1, "BTW 21%", ""),
    _D("9"): (2, "BTW 9%", "reduced-rate"),
    _D("0"): (3, "BTW 0%", "zero-rate"),
}


def _tax_rate(rate: Decimal) -> tuple[int, str, str]:
    """(rate id, label, tax class) of a VAT percentage; unknown rates get a stable id."""
    rate = Decimal(rate).normalize()
    for known, info in _TAX_RATES.items():
        if known == rate:
            return info
    rate_id = 100 + int(rate * 100)
    return rate_id, f"VAT {format(rate, 'f')}%", f"rate-{format(rate, 'f').replace('.', '-')}"


class _CouponSplit:
    """A coupon's discount per line in minor units, handed out as ``WC_Discounts`` does.

    ``lines`` are ``(line price in minor units, quantity)``; lines are served most expensive
    first (``sort_by_price``).
    """

    def __init__(self, lines: Sequence[tuple[int, int]]) -> None:
        self.lines = lines
        self.order = sorted(range(len(lines)), key=lambda i: -lines[i][0])
        self.discount = [0] * len(lines)

    def remaining(self, i: int) -> int:
        """What is left of line ``i`` to discount."""
        return self.lines[i][0] - self.discount[i]

    def remainder(self, amount_left: int) -> int:
        """Hand out up to ``amount_left`` one minor unit per unit of quantity; what was given."""
        given = 0
        for i in self.order:
            for _ in range(self.lines[i][1]):
                if given >= amount_left:
                    return given
                step = min(self.remaining(i), 1)
                self.discount[i] += step
                given += step
        return given


def _percent_discounts(split: _CouponSplit, amount: Decimal, dp: int) -> None:
    """A percent coupon: floored per line, the remainder one minor unit at a time."""
    total = cart_total = 0
    for i in split.order:
        price = split.lines[i][0]
        part = int((Decimal(price) * amount / _HUNDRED).to_integral_value(rounding=ROUND_FLOOR))
        part = min(part, split.remaining(i))
        split.discount[i] += part
        total += part
        cart_total += price
    whole = int((Decimal(cart_total) * amount / _HUNDRED).quantize(_D(1), rounding=ROUND_HALF_DOWN))
    if total < whole:
        split.remainder(whole - total)


def _fixed_cart_discounts(split: _CouponSplit, amount: Decimal, dp: int) -> None:
    """A fixed_cart coupon: spread evenly per unit over the lines with something left."""
    left = int(_round(amount, dp) * 10**dp)
    while left > 0:
        live = [i for i in split.order if split.remaining(i) > 0]
        units = sum(split.lines[i][1] for i in live)
        if not units:
            break
        per_unit = left // units
        if per_unit == 0:
            left -= split.remainder(left)
            break
        given = 0
        for i in live:
            part = min(per_unit * split.lines[i][1], split.remaining(i))
            split.discount[i] += part
            given += part
        left -= given


_COUPON_KINDS: dict[str, Callable[[_CouponSplit, Decimal, int], None]] = {
    "percent": _percent_discounts,
    "fixed_cart": _fixed_cart_discounts,
}


def _coupon_discounts(
    kind: str, amount: Decimal, lines: Sequence[tuple[int, int]], dp: int
) -> list[int]:
    """Discount per line in minor units, as ``WC_Discounts`` hands it out.

    ``lines`` are ``(line price in minor units, quantity)`` on the basis prices are entered in.
    Lines are served most expensive first (``sort_by_price``).
    """
    hand_out = _COUPON_KINDS.get(kind)
    if hand_out is None:
        raise ValueError(f"unsupported coupon type {kind!r} (percent or fixed_cart)")
    split = _CouponSplit(lines)
    hand_out(split, amount, dp)
    return split.discount


# --- the order builder ------------------------------------------------------------------------

DEFAULT_BILLING: dict[str, Any] = {
    "first_name": "Sanne",
    "last_name": "de Vries",
    "company": "",
    "address_1": "Oudegracht 231",
    "address_2": "",
    "city": "Utrecht",
    "state": "",
    "postcode": "3511 NK",
    "country": "NL",
    "email": "sanne.devries@example.nl",
    "phone": "+31 30 123 4567",
}

_PAYMENT_DEFAULTS = {
    "on-hold": ("bacs", "Direct bank transfer"),
    "pending": ("mollie_wc_gateway_ideal", "iDEAL"),
}
_STATUS_LABELS = {
    "pending": "Pending payment",
    "processing": "Processing",
    "on-hold": "On hold",
    "completed": "Completed",
    "cancelled": "Cancelled",
    "refunded": "Refunded",
    "failed": "Failed",
    "checkout-draft": "Draft",
    "trash": "Trash",
}
_PAID_STATUSES = ("processing", "completed", "refunded")


def status_label(status: str) -> str:
    """The label WooCommerce uses in "Order status changed from X to Y." notes."""
    return _STATUS_LABELS.get(status, status)


def _wc_date(moment: datetime | None, tz: ZoneInfo) -> tuple[str | None, str | None]:
    """(site-local, GMT) naive date strings, as ``wc_rest_prepare_date_response`` writes them."""
    if moment is None:
        return None, None
    moment = moment.replace(microsecond=0)
    local = moment.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S")
    gmt = moment.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%S")
    return local, gmt


def _hash(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _order_key(order_id: int) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    number = int(_hash(f"order-key-{order_id}", 24), 16)
    chars = []
    for _ in range(13):
        number, index = divmod(number, len(alphabet))
        chars.append(alphabet[index])
    return "wc_order_" + "".join(chars)


def order_links(
    order_id: int, customer_id: int, site_url: str, parent_id: int = 0
) -> dict[str, Any]:
    """``_links`` of an order as WooCommerce 9.9 builds them from the site's home URL."""
    base = f"{site_url}/wp-json/wc/v3"
    links: dict[str, Any] = {
        "self": [
            {
                "href": f"{base}/orders/{order_id}",
                "targetHints": {"allow": ["GET", "POST", "PUT", "PATCH", "DELETE"]},
            }
        ],
        "collection": [{"href": f"{base}/orders"}],
    }
    if customer_id:
        links["customer"] = [{"href": f"{base}/customers/{customer_id}"}]
    if parent_id:
        links["up"] = [{"href": f"{base}/orders/{parent_id}"}]
    links["email_templates"] = [
        {"embeddable": True, "href": f"{base}/orders/{order_id}/actions/email_templates"}
    ]
    return links


def _address(
    given: Mapping[str, Any] | None, fields: Sequence[str], fallback: Mapping[str, Any]
) -> dict[str, Any]:
    source = fallback if given is None else given
    return {name: source.get(name, "") for name in fields}


class _ItemIds:
    """Item and item-meta ids of one order, handed out in the order WooCommerce stores lines."""

    def __init__(self, order_id: int) -> None:
        self._item = order_id * 100
        self._meta = order_id * 1000

    def item(self) -> int:
        """The next ``line_items``/``shipping_lines``/... id."""
        self._item += 1
        return self._item

    def meta(self) -> int:
        """The next id of an item's ``meta_data`` entry."""
        self._meta += 1
        return self._meta


@dataclass
class _Totals:
    """Tax and money of an order, summed while its lines are built."""

    tax_by_rate: dict[int, Decimal] = field(default_factory=dict)
    shipping_tax_by_rate: dict[int, Decimal] = field(default_factory=dict)
    rate_percent: dict[int, Decimal] = field(default_factory=dict)
    rate_labels: dict[int, str] = field(default_factory=dict)
    exact_total_by_rate: dict[int, Decimal] = field(default_factory=dict)
    discount_exact: Decimal = _ZERO
    discount_tax_exact: Decimal = _ZERO
    shown_sum: Decimal = _ZERO

    def use_rate(self, rate: Decimal) -> tuple[int, str]:
        """Note a VAT rate the order uses; its (rate id, tax class)."""
        rate_id, label, tax_class = _tax_rate(rate)
        self.rate_percent[rate_id] = rate
        self.rate_labels[rate_id] = label
        return rate_id, tax_class

    def add_tax(self, rate_id: int, amount: Decimal) -> None:
        """Add rounded cart (not shipping) tax of one rate."""
        self.tax_by_rate[rate_id] = self.tax_by_rate.get(rate_id, _ZERO) + amount


@dataclass(frozen=True)
class _LineAmounts:
    """The money of one item line: shown (rounded) and unrounded amounts."""

    subtotal: Decimal
    total: Decimal
    total_exact: Decimal
    subtotal_tax: Decimal
    total_tax: Decimal
    subtotal_tax_exact: Decimal
    total_tax_exact: Decimal
    discount_exact: Decimal
    discount_tax_exact: Decimal


def _line_amounts(
    base_sub: Decimal, base_total: Decimal, rate: Decimal, *, prices_include_tax: bool, dp: int
) -> _LineAmounts:
    """Amounts of a line from its price before and after the coupon, on the entered basis."""
    if prices_include_tax:
        tiny = _unit(dp + 5)  # WooCommerce keeps unrounded amounts to about 5 decimals of a cent
        sub_tax_exact = (base_sub * rate / (_HUNDRED + rate)).quantize(tiny, ROUND_HALF_UP)
        tot_tax_exact = (base_total * rate / (_HUNDRED + rate)).quantize(tiny, ROUND_HALF_UP)
        sub_tax, tot_tax = _round(sub_tax_exact, dp), _round(tot_tax_exact, dp)
        # The excl. amounts are unrounded internally; shown with dp decimals they are
        # exactly "gross - rounded tax" (a tax share of 21/121 or 9/109 is never a half cent).
        total_exact = base_total - tot_tax_exact
        return _LineAmounts(
            subtotal=base_sub - sub_tax,
            total=base_total - tot_tax,
            total_exact=total_exact,
            subtotal_tax=sub_tax,
            total_tax=tot_tax,
            subtotal_tax_exact=sub_tax_exact,
            total_tax_exact=tot_tax_exact,
            discount_exact=(base_sub - sub_tax_exact) - total_exact,
            discount_tax_exact=sub_tax_exact - tot_tax_exact,
        )
    sub_tax_exact = base_sub * rate / _HUNDRED
    tot_tax_exact = base_total * rate / _HUNDRED
    return _LineAmounts(
        subtotal=base_sub,
        total=base_total,
        total_exact=base_total,
        subtotal_tax=_round(sub_tax_exact, dp),
        total_tax=_round(tot_tax_exact, dp),
        subtotal_tax_exact=sub_tax_exact,
        total_tax_exact=tot_tax_exact,
        discount_exact=base_sub - base_total,
        discount_tax_exact=sub_tax_exact - tot_tax_exact,
    )


def _line_image(product: Product, site_url: str) -> dict[str, Any]:
    """``line_items[].image``: none for a deleted product, ``id: ""`` for a simple one."""
    if product.is_deleted:
        return {"id": 0, "src": ""}
    if product.image_id:
        slug = _slug(product.parent_name or product.name)
        return {"id": product.image_id, "src": f"{site_url}/wp-content/uploads/2026/10/{slug}.jpg"}
    return {"id": 0 if product.variation_id else "", "src": ""}


def _meta_entry(ids: _ItemIds, key: str, display_key: str, value: Any) -> dict[str, Any]:
    """One entry of a line's ``meta_data``."""
    return {
        "id": ids.meta(),
        "key": key,
        "value": value,
        "display_key": display_key,
        "display_value": value,
    }


def _line_item(
    product: Product,
    quantity: int,
    money: _LineAmounts,
    rate_id: int,
    tax_class: str,
    ids: _ItemIds,
    dp: int,
    site_url: str,
) -> dict[str, Any]:
    """One ``line_items[]`` entry."""
    deleted = product.is_deleted
    image = _line_image(product, site_url)
    return {
        "id": ids.item(),
        "name": product.name,
        "product_id": product.product_id,
        "variation_id": 0 if deleted else product.variation_id,
        "quantity": quantity,
        "tax_class": tax_class,
        "subtotal": format_money(money.subtotal, dp),
        "subtotal_tax": format_money(money.subtotal_tax, dp),
        "total": format_money(money.total, dp),
        "total_tax": format_money(money.total_tax, dp),
        "taxes": [
            {
                "id": rate_id,
                "total": _raw(money.total_tax_exact),
                "subtotal": _raw(money.subtotal_tax_exact),
            }
        ],
        "meta_data": [
            _meta_entry(ids, key, display_key, value)
            for key, display_key, value in product.attributes
        ],
        "sku": None if deleted else product.sku,
        "price": _number(money.total_exact / quantity),
        "image": image,
        "parent_name": None if deleted else product.parent_name,
    }


def _line_items(
    products: Sequence[tuple[Product, int]],
    bases: Sequence[Decimal],
    discounts_minor: Sequence[int],
    totals: _Totals,
    ids: _ItemIds,
    *,
    prices_include_tax: bool,
    dp: int,
    site_url: str,
) -> list[dict[str, Any]]:
    """``line_items``, adding their tax and money to ``totals``."""
    minor = 10**dp
    lines: list[dict[str, Any]] = []
    for (product, quantity), base_sub, disc_minor in zip(
        products, bases, discounts_minor, strict=True
    ):
        rate = Decimal(product.tax_rate)
        rate_id, tax_class = totals.use_rate(rate)
        base_total = base_sub - Decimal(disc_minor) / minor
        money = _line_amounts(
            base_sub, base_total, rate, prices_include_tax=prices_include_tax, dp=dp
        )
        totals.discount_exact += money.discount_exact
        totals.discount_tax_exact += money.discount_tax_exact
        totals.add_tax(rate_id, money.total_tax)
        totals.exact_total_by_rate[rate_id] = (
            totals.exact_total_by_rate.get(rate_id, _ZERO) + money.total_exact
        )
        totals.shown_sum += money.total + money.total_tax
        lines.append(_line_item(product, quantity, money, rate_id, tax_class, ids, dp, site_url))
    return lines


def _shipping_line(
    shipping: Decimal,
    shipping_tax_rate: Decimal,
    line_items: Sequence[Mapping[str, Any]],
    totals: _Totals,
    ids: _ItemIds,
    dp: int,
) -> dict[str, Any]:
    """The one ``shipping_lines[]`` entry (flat rate, or free shipping at 0)."""
    ship_total = _round(Decimal(shipping), dp)
    ship_rate = Decimal(shipping_tax_rate)
    ship_rate_id, _ = totals.use_rate(ship_rate)
    ship_tax_exact = ship_total * ship_rate / _HUNDRED
    ship_tax = _round(ship_tax_exact, dp)
    totals.shipping_tax_by_rate[ship_rate_id] = ship_tax
    totals.shown_sum += ship_total + ship_tax
    free = ship_total == 0
    summary = ", ".join(f"{line['name']} &times; {line['quantity']}" for line in line_items)
    return {
        "id": ids.item(),
        "method_title": "Gratis verzending" if free else "PostNL",
        "method_id": "free_shipping" if free else "flat_rate",
        "instance_id": "2" if free else "1",
        "total": format_money(ship_total, dp),
        "total_tax": format_money(ship_tax, dp),
        "taxes": [{"id": ship_rate_id, "total": _raw(ship_tax_exact), "subtotal": ""}],
        "tax_status": "taxable",
        "meta_data": [_meta_entry(ids, "Items", "Items", summary)],
    }


def _fee_taxes(
    fee_total: Decimal, totals: _Totals, items_exact_total: Decimal, dp: int
) -> dict[int, Decimal]:
    """Unrounded tax of a fee per rate id."""
    if fee_total >= 0:
        standard_id, _ = totals.use_rate(_D("21"))
        return {standard_id: fee_total * _D("21") / _HUNDRED}
    # Negative fees are taxed in proportion to the cart's item totals per tax rate
    # (WC_Cart_Totals::get_negative_fee_tax_allocation).
    tiny = _unit(dp + 5)
    fee_taxes: dict[int, Decimal] = {}
    for rid, part in totals.exact_total_by_rate.items():
        if items_exact_total > 0 and part > 0:
            share = fee_total * part / items_exact_total
            fee_taxes[rid] = (share * totals.rate_percent[rid] / _HUNDRED).quantize(
                tiny, ROUND_HALF_UP
            )
    return fee_taxes


def _fee_line(
    fee_name: str,
    fee_amount: Decimal,
    items_exact_total: Decimal,
    totals: _Totals,
    ids: _ItemIds,
    dp: int,
) -> dict[str, Any]:
    """One ``fee_lines[]`` entry (a negative fee is a discount)."""
    fee_total = _round(Decimal(fee_amount), dp)
    fee_taxes = _fee_taxes(fee_total, totals, items_exact_total, dp)
    fee_tax = _ZERO
    for rid, exact in fee_taxes.items():
        rounded = _round(exact, dp)
        fee_tax += rounded
        totals.add_tax(rid, rounded)
    totals.shown_sum += fee_total + fee_tax
    return {
        "id": ids.item(),
        "name": fee_name,
        "tax_class": "",
        "tax_status": "taxable",
        "total": format_money(fee_total, dp),
        "total_tax": format_money(fee_tax, dp),
        "taxes": [
            {"id": rid, "total": _raw(exact), "subtotal": ""} for rid, exact in fee_taxes.items()
        ],
        "meta_data": [],
    }


def _coupon_line(
    coupon: tuple[str, str, Decimal],
    discount_total: Decimal,
    discount_tax: Decimal,
    ids: _ItemIds,
    dp: int,
) -> dict[str, Any]:
    """The one ``coupon_lines[]`` entry."""
    code, kind, amount = coupon
    coupon_id = 500 + zlib.crc32(code.encode()) % 400
    info = json.dumps([coupon_id, code, kind, _number(Decimal(amount))], separators=(",", ":"))
    return {
        "id": ids.item(),
        "code": code,
        "discount": format_money(discount_total, dp),
        "discount_tax": format_money(discount_tax, dp),
        "discount_type": kind,
        "nominal_amount": float(amount),
        "free_shipping": False,
        "meta_data": [_meta_entry(ids, "coupon_info", "coupon_info", info)],
    }


def _tax_lines(totals: _Totals, ids: _ItemIds, dp: int) -> list[dict[str, Any]]:
    """``tax_lines``: one per rate used by items, fees or shipping, by rate id."""
    lines: list[dict[str, Any]] = []
    for rid in sorted(set(totals.tax_by_rate) | set(totals.shipping_tax_by_rate)):
        label = totals.rate_labels[rid]
        lines.append(
            {
                "id": ids.item(),
                "rate_code": f"NL-{label}-1",
                "rate_id": rid,
                "label": label,
                "compound": False,
                "tax_total": format_money(totals.tax_by_rate.get(rid, _ZERO), dp),
                "shipping_tax_total": format_money(totals.shipping_tax_by_rate.get(rid, _ZERO), dp),
                "rate_percent": float(totals.rate_percent[rid]),
                "meta_data": [],
            }
        )
    return lines


def _coupon_discounts_minor(
    coupon: tuple[str, str, Decimal] | None,
    products: Sequence[tuple[Product, int]],
    bases: Sequence[Decimal],
    dp: int,
) -> list[int]:
    """Coupon discount per item line in minor units (zeros without a coupon)."""
    if coupon is None:
        return [0] * len(products)
    _, kind, amount = coupon
    minor = 10**dp
    return _coupon_discounts(
        kind,
        Decimal(amount),
        [(int(b * minor), q) for b, (_, q) in zip(bases, products, strict=True)],
        dp,
    )


def _order_dates(
    created_gmt: datetime, status: str, modified_gmt: datetime | None
) -> tuple[datetime, datetime | None, datetime | None, datetime]:
    """(created, paid, completed, modified): paid at checkout, completed a little later,
    modified by the last of these."""
    created = created_gmt.replace(microsecond=0)
    paid = created if status in _PAID_STATUSES else None
    completed = (
        created + timedelta(minutes=7, seconds=13) if status in ("completed", "refunded") else None
    )
    if modified_gmt is not None:
        modified = modified_gmt.replace(microsecond=0)
    elif status == "cancelled":
        modified = created + timedelta(minutes=61)
    else:
        modified = max(d for d in (created, paid, completed) if d is not None)
    return created, paid, completed, modified


def _customer_of(guest: bool, customer_id: int | None, billing: Mapping[str, Any]) -> int:
    """``customer_id``: 0 for a guest, else the given id or one stable per e-mail address."""
    if guest:
        return 0
    if customer_id is not None:
        return customer_id
    return 100 + zlib.crc32(str(billing.get("email") or "").encode()) % 900


def _checked_products(
    items: Sequence[tuple[Product, int]], deleted_product_lines: bool
) -> list[tuple[Product, int]]:
    """The ordered ``(product, quantity)`` pairs; refuses an empty order or a quantity <= 0."""
    if not items:
        raise ValueError("an order needs at least one line item")
    products = [(_as_deleted(p) if deleted_product_lines else p, int(q)) for p, q in items]
    for _, quantity in products:
        if quantity <= 0:
            raise ValueError("quantities must be positive")
    return products


def build_order(
    order_id: int,
    *,
    items: Sequence[tuple[Product, int]],
    created_gmt: datetime,
    status: str = "processing",
    number: str | None = None,
    prices_include_tax: bool = False,
    shipping: Decimal | None = None,
    shipping_tax_rate: Decimal = VAT_HIGH,
    fees: Iterable[tuple[str, Decimal]] = (),
    coupon: tuple[str, str, Decimal] | None = None,
    billing: Mapping[str, Any] | None = None,
    shipping_address: Mapping[str, Any] | None = None,
    guest: bool = False,
    currency: str = "EUR",
    dp: int = 2,
    site_tz: str = "Europe/Berlin",
    deleted_product_lines: bool = False,
    customer_id: int | None = None,
    payment_method: tuple[str, str] | None = None,
    customer_note: str | None = "",
    meta_data: Iterable[tuple[str, Any]] = (),
    refunds: Iterable[tuple[int, str, Decimal]] = (),
    created_via: str = "checkout",
    modified_gmt: datetime | None = None,
    site_url: str = DEFAULT_SITE_URL,
) -> dict[str, Any]:
    """One order exactly as ``GET /wp-json/wc/v3/orders/{id}`` returns it.

    ``items`` are ``(product, quantity)``; prices are taken incl. VAT when ``prices_include_tax``
    and excl. VAT otherwise. ``shipping`` and ``fees`` amounts are excl. VAT (a negative fee is a
    discount). ``coupon`` is ``(code, "percent" | "fixed_cart", amount)``; a fixed amount is on
    the same basis as the prices. ``shipping_address=None`` copies the billing address, ``{}``
    gives an empty one. ``deleted_product_lines`` makes every line a deleted product's.
    ``refunds`` are ``(refund id, reason, amount)``. ``created_gmt`` must be timezone-aware.
    """
    if created_gmt.tzinfo is None:
        raise ValueError("created_gmt must be timezone-aware")
    if not items:
        raise ValueError("an order needs at least one line item")
    tz = ZoneInfo(site_tz)
    products = _checked_products(items, deleted_product_lines)
    bases = [_round(p.price, dp) * q for p, q in products]  # on the entered basis
    discounts_minor = _coupon_discounts_minor(coupon, products, bases, dp)

    ids = _ItemIds(order_id)
    totals = _Totals()
    line_items = _line_items(
        products,
        bases,
        discounts_minor,
        totals,
        ids,
        prices_include_tax=prices_include_tax,
        dp=dp,
        site_url=site_url,
    )
    shipping_lines = (
        []
        if shipping is None
        else [_shipping_line(shipping, shipping_tax_rate, line_items, totals, ids, dp)]
    )
    items_exact_total = sum(totals.exact_total_by_rate.values(), _ZERO)
    fee_lines = [
        _fee_line(fee_name, fee_amount, items_exact_total, totals, ids, dp)
        for fee_name, fee_amount in fees
    ]
    discount_total = _round(totals.discount_exact, dp)
    discount_tax = _round(totals.discount_tax_exact, dp)
    coupon_lines = (
        [] if coupon is None else [_coupon_line(coupon, discount_total, discount_tax, ids, dp)]
    )
    tax_lines = _tax_lines(totals, ids, dp)

    cart_tax = sum(totals.tax_by_rate.values(), _ZERO)
    shipping_tax = sum(totals.shipping_tax_by_rate.values(), _ZERO)
    shipping_total = sum((Decimal(line["total"]) for line in shipping_lines), _ZERO)
    order_total = totals.shown_sum

    created, paid, completed, modified = _order_dates(created_gmt, status, modified_gmt)
    created_local, created_utc = _wc_date(created, tz)
    modified_local, modified_utc = _wc_date(modified, tz)
    paid_local, paid_utc = _wc_date(paid, tz)
    completed_local, completed_utc = _wc_date(completed, tz)

    billing_out = _address(billing, BILLING_FIELDS, DEFAULT_BILLING)
    shipping_out = _address(shipping_address, SHIPPING_FIELDS, billing_out)
    customer = _customer_of(guest, customer_id, billing_out)
    method_id, method_title = payment_method or _PAYMENT_DEFAULTS.get(
        status, ("mollie_wc_gateway_ideal", "iDEAL")
    )
    key = _order_key(order_id)
    checkout = created_via == "checkout"
    meta = [
        {"id": order_id * 100 + index, "key": meta_key, "value": value}
        for index, (meta_key, value) in enumerate(meta_data, start=1)
    ]
    refund_list = [
        {"id": refund_id, "reason": reason, "total": "-" + format_money(Decimal(value), dp)}
        for refund_id, reason, value in refunds
    ]

    return {
        "id": order_id,
        "parent_id": 0,
        "status": status,
        "currency": currency,
        "version": WC_VERSION,
        "prices_include_tax": prices_include_tax,
        "date_created": created_local,
        "date_modified": modified_local,
        "discount_total": format_money(discount_total, dp),
        "discount_tax": format_money(discount_tax, dp),
        "shipping_total": format_money(shipping_total, dp),
        "shipping_tax": format_money(shipping_tax, dp),
        "cart_tax": format_money(cart_tax, dp),
        "total": format_money(order_total, dp),
        "total_tax": format_money(cart_tax + shipping_tax, dp),
        "customer_id": customer,
        "order_key": key,
        "billing": billing_out,
        "shipping": shipping_out,
        "payment_method": method_id,
        "payment_method_title": method_title,
        "transaction_id": f"tr_{_hash(f'tx-{order_id}', 10)}"
        if paid and method_id != "bacs"
        else "",
        "customer_ip_address": f"203.0.113.{order_id % 250 + 1}" if checkout else "",
        "customer_user_agent": (
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
            if checkout
            else ""
        ),
        "created_via": created_via,
        "customer_note": customer_note,
        "date_completed": completed_local,
        "date_paid": paid_local,
        "cart_hash": _hash(f"cart-{order_id}", 32) if checkout else "",
        "number": number if number is not None else str(order_id),
        "meta_data": meta,
        "line_items": line_items,
        "tax_lines": tax_lines,
        "shipping_lines": shipping_lines,
        "fee_lines": fee_lines,
        "coupon_lines": coupon_lines,
        "refunds": refund_list,
        "payment_url": f"{site_url}/checkout/order-pay/{order_id}/?pay_for_order=true&key={key}",
        "is_editable": status in ("pending", "on-hold", "auto-draft"),
        "needs_payment": status in ("pending", "failed") and order_total > 0,
        "needs_processing": True,
        "date_created_gmt": created_utc,
        "date_modified_gmt": modified_utc,
        "date_completed_gmt": completed_utc,
        "date_paid_gmt": paid_utc,
        "currency_symbol": CURRENCY_SYMBOLS.get(currency, currency),
        "_links": order_links(order_id, customer, site_url),
    }


def _as_deleted(product: Product) -> Product:
    return Product(None, product.name, product.price, product.tax_rate, 0)


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "-".join("".join(c if c.isalnum() else " " for c in ascii_text.lower()).split())


# --- a realistic mixture ---------------------------------------------------------------------

_REGISTERED: list[tuple[int, dict[str, Any]]] = [
    (2, dict(DEFAULT_BILLING)),
    (
        3,
        {
            "first_name": "Jürgen",
            "last_name": "Müller",
            "company": "",
            "address_1": "Königsallee 12",
            "address_2": "",
            "city": "Düsseldorf",
            "state": "DE-NW",
            "postcode": "40212",
            "country": "DE",
            "email": "juergen.mueller@example.de",
            "phone": "+49 211 555 0123",
        },
    ),
    (
        4,
        {
            "first_name": "Pieter",
            "last_name": "van der Berg",
            "company": "Van der Berg B.V.",
            "address_1": "Industrieweg 8",
            "address_2": "Unit 3",
            "city": "Eindhoven",
            "state": "",
            "postcode": "5651 GG",
            "country": "NL",
            "email": "inkoop@vanderberg.example.nl",
            "phone": "+31 40 555 0199",
        },
    ),
    (
        5,
        {
            "first_name": "Zoë",
            "last_name": "Janssens",
            "company": "",
            "address_1": "Rue de l'Église 5",
            "address_2": "",
            "city": "Bruxelles",
            "state": "",
            "postcode": "1000",
            "country": "BE",
            "email": "zoe.janssens@example.be",
            "phone": "",
        },
    ),
    (
        6,
        {
            "first_name": "IJsbrand",
            "last_name": "van 't Hoff",
            "company": "",
            "address_1": "Grote Markt 1",
            "address_2": "",
            "city": "Groningen",
            "state": "",
            "postcode": "9711 LM",
            "country": "NL",
            "email": "ijsbrand@example.nl",
            "phone": "06-12345678",
        },
    ),
    (
        7,
        {
            "first_name": "Émilie",
            "last_name": "Dubois",
            "company": "Café Zoete Inval 🍰",
            "address_1": "Prinsengracht 263-267",
            "address_2": "",
            "city": "Amsterdam",
            "state": "",
            "postcode": "1016 GV",
            "country": "NL",
            "email": "emilie@zoete-inval.example.nl",
            "phone": "+31 20 555 0042",
        },
    ),
]

_GUEST_FIRST = [
    "Lotte",
    "Daan",
    "Fenna",
    "Sem",
    "Maëlle",
    "Björn",
    "Chloé",
    "Noor",
    "Thijs",
    "Jörg",
]
_GUEST_LAST = [
    "Bakker",
    "Visser",
    "Smit",
    "Meijer",
    "de Boer",
    "Müller",
    "Öztürk",
    "van Dijk",
    "Mulder",
]
_GUEST_STREETS = [
    ("Damstraat", "Amsterdam", "1012 JM", "NL", ""),
    ("Coolsingel", "Rotterdam", "3011 AD", "NL", ""),
    ("Lange Voorhout", "Den Haag", "2514 EE", "NL", ""),
    ("Schloßstraße", "Berlin", "12163", "DE", "DE-BE"),
    ("Meir", "Antwerpen", "2000", "BE", ""),
]
_SHIPPING = _D("4.09")  # 4.95 incl. 21 % VAT
_SHIPPING_FOOD = _D("4.54")  # 4.95 incl. 9 % VAT


def _guest_billing(rng: random.Random) -> dict[str, Any]:
    first, last = rng.choice(_GUEST_FIRST), rng.choice(_GUEST_LAST)
    street, city, postcode, country, state = rng.choice(_GUEST_STREETS)
    local = _slug(f"{first} {last}").replace("-", ".")
    return {
        "first_name": first,
        "last_name": last,
        "company": "",
        "address_1": f"{street} {rng.randint(1, 180)}",
        "address_2": "",
        "city": city,
        "state": state,
        "postcode": postcode,
        "country": country,
        "email": f"{local}@example.com",
        "phone": f"+31 6 {rng.randint(10000000, 99999999)}",
    }


def _pick_items(
    rng: random.Random, pool: Sequence[Product] | None = None, most: int = 4
) -> list[tuple[Product, int]]:
    chosen = rng.sample(list(pool or CATALOGUE), rng.randint(1, most))
    return [(p, rng.choices([1, 2, 3, 5], weights=[60, 25, 10, 5])[0]) for p in chosen]


def _meta(rng: random.Random) -> list[tuple[str, Any]]:
    return [
        ("is_vat_exempt", "no"),
        ("_wc_order_attribution_source_type", rng.choice(["typein", "organic", "referral"])),
        ("_wc_order_attribution_device_type", rng.choice(["Desktop", "Mobile"])),
    ]


_Spec = dict[str, Any]
_FOOD = [p for p in CATALOGUE if p.tax_rate == 9]
_SHIRTS = [p for p in CATALOGUE if p.parent_name == "T-Shirt"]


def _s_guest_de(rng: random.Random) -> _Spec:
    billing = dict(_REGISTERED[1][1], email=f"j.mueller.{rng.randint(1, 99)}@example.de")
    return {
        "items": _pick_items(rng, most=2),
        "guest": True,
        "billing": billing,
        "shipping": _SHIPPING,
    }


def _s_percent_incl(rng: random.Random) -> _Spec:
    items = [(rng.choice(_FOOD), rng.randint(1, 3)), (product_by_sku("GRINDER-ELG"), 1)]
    return {
        "items": items,
        "prices_include_tax": True,
        "coupon": ("welkom10", "percent", _D("10")),
        "customer_id": 2,
        "billing": _REGISTERED[0][1],
        "shipping": _SHIPPING,
        "status": "completed",
    }


def _s_fixed_cart(rng: random.Random) -> _Spec:
    items = [(product_by_sku("BELL-DINGDONG"), 2), (product_by_sku("SOCKS-3P"), 3)]
    return {
        "items": items,
        "coupon": ("vijfeuro", "fixed_cart", _D("5")),
        "guest": True,
        "billing": _guest_billing(rng),
        "shipping": _SHIPPING,
    }


def _s_variations(rng: random.Random) -> _Spec:
    items = [(product_by_sku(SHIRT_PARENT_SKU), 2), (product_by_sku("SHIRT-M"), 1)]
    return {
        "items": items,
        "customer_id": 6,
        "billing": _REGISTERED[4][1],
        "shipping": _SHIPPING,
        "status": "completed",
    }


def _s_fees(rng: random.Random) -> _Spec:
    return {
        "items": [(product_by_sku("PUMP-DLX"), 1), (rng.choice(_FOOD), 2)],
        "fees": [("Cadeauverpakking", _D("2.50")), ("Korting vaste klant", _D("-5.00"))],
        "customer_id": 5,
        "billing": _REGISTERED[3][1],
        "shipping": _SHIPPING,
    }


def _s_deleted(rng: random.Random) -> _Spec:
    gone = deleted_product("Mok Koningsdag 2026 (uitverkocht)", _D("12.50"))
    return {
        "items": [(gone, 1), (rng.choice(CATALOGUE), 1)],
        "guest": True,
        "billing": _guest_billing(rng),
        "shipping": _SHIPPING,
        "status": "completed",
    }


def _s_company(rng: random.Random) -> _Spec:
    return {
        "items": [(product_by_sku("GRINDER-ELG"), 3), (product_by_sku("KOFFIE-ESP-1KG"), 10)],
        "customer_id": 4,
        "billing": _REGISTERED[2][1],
        "shipping": _SHIPPING,
        "status": "on-hold",
        "customer_note": "Graag leveren aan de achterzijde (laadperron).",
    }


def _s_pending(rng: random.Random) -> _Spec:
    return {
        "items": _pick_items(rng),
        "prices_include_tax": True,
        "guest": True,
        "billing": _guest_billing(rng),
        "shipping": _SHIPPING,
        "status": "pending",
    }


def _s_cancelled(rng: random.Random) -> _Spec:
    return {
        "items": _pick_items(rng),
        "customer_id": 3,
        "billing": _REGISTERED[1][1],
        "status": "cancelled",
        "shipping": _SHIPPING,
    }


def _s_emoji_incl_fixed(rng: random.Random) -> _Spec:
    return {
        "items": [(product_by_sku("SOCKS-3P"), 2), (product_by_sku("STROOP-8"), 3)],
        "prices_include_tax": True,
        "coupon": ("sokken-actie", "fixed_cart", _D("7.50")),
        "customer_id": 7,
        "billing": _REGISTERED[5][1],
        "shipping": _SHIPPING,
        "customer_note": "Voor mijn oma 👵 — graag met een kaartje 🎁",
    }


def _s_partly_refunded(rng: random.Random) -> _Spec:
    return {
        "items": [(product_by_sku("SHIRT-S"), 1), (product_by_sku("UMBRELLA-XL"), 1)],
        "customer_id": 2,
        "billing": _REGISTERED[0][1],
        "shipping": _SHIPPING,
        "status": "completed",
        "_refund": True,
    }


def _s_nulls(rng: random.Random) -> _Spec:
    billing = _guest_billing(rng)
    billing.update(company=None, address_2=None, state=None, phone=None)
    return {
        "items": _pick_items(rng, most=2),
        "guest": True,
        "billing": billing,
        "customer_note": None,
        "shipping_address": dict(billing),
        "shipping": _SHIPPING,
    }


def _s_food_free_shipping(rng: random.Random) -> _Spec:
    return {
        "items": _pick_items(rng, _FOOD, most=3),
        "shipping": _D("0"),
        "shipping_tax_rate": _D("9"),
        "customer_id": 6,
        "billing": _REGISTERED[4][1],
        "status": "completed",
    }


def _s_food_shipping_no_address(rng: random.Random) -> _Spec:
    return {
        "items": _pick_items(rng, _FOOD, most=2),
        "shipping": _SHIPPING_FOOD,
        "shipping_tax_rate": _D("9"),
        "guest": True,
        "billing": _guest_billing(rng),
        "shipping_address": {},
    }


def _s_admin_created(rng: random.Random) -> _Spec:
    return {
        "items": _pick_items(rng, _SHIRTS, most=3),
        "customer_id": 4,
        "billing": _REGISTERED[2][1],
        "created_via": "admin",
        "payment_method": ("bacs", "Direct bank transfer"),
        "status": "processing",
        "shipping": _SHIPPING,
    }


_SCENARIOS: list[Callable[[random.Random], _Spec]] = [
    _s_guest_de,
    _s_percent_incl,
    _s_fixed_cart,
    _s_variations,
    _s_fees,
    _s_deleted,
    _s_company,
    _s_pending,
    _s_cancelled,
    _s_emoji_incl_fixed,
    _s_partly_refunded,
    _s_nulls,
    _s_food_free_shipping,
    _s_food_shipping_no_address,
    _s_admin_created,
]

#: How many orders ``realistic_orders`` needs to show every scenario at least once.
SCENARIO_COUNT = len(_SCENARIOS)


def _random_spec(rng: random.Random) -> _Spec:
    status = rng.choices(
        ["processing", "completed", "on-hold", "pending", "cancelled"], weights=[46, 40, 5, 5, 4]
    )[0]
    spec: _Spec = {
        "items": _pick_items(rng),
        "status": status,
        "prices_include_tax": rng.random() < 0.3,
    }
    if rng.random() < 0.4:
        spec.update(guest=True, billing=_guest_billing(rng))
    else:
        customer_id, billing = rng.choice(_REGISTERED)
        spec.update(customer_id=customer_id, billing=billing)
    if rng.random() < 0.85:
        spec["shipping"] = _SHIPPING
    if rng.random() < 0.15:
        spec["coupon"] = rng.choice(
            [
                ("welkom10", "percent", _D("10")),
                ("zomer15", "percent", _D("15")),
                ("vijfeuro", "fixed_cart", _D("5")),
                ("tientje", "fixed_cart", _D("10")),
            ]
        )
    if rng.random() < 0.1:
        spec["fees"] = [
            rng.choice([("Cadeauverpakking", _D("2.50")), ("Korting vaste klant", _D("-3.00"))])
        ]
    return spec


def realistic_orders(
    count: int,
    *,
    seed: int = 1,
    start_gmt: datetime,
    first_id: int = 1000,
    site_tz: str = "Europe/Berlin",
    site_url: str = DEFAULT_SITE_URL,
) -> list[dict[str, Any]]:
    """``count`` orders with ids ``first_id, first_id + 1, ...`` created from ``start_gmt`` on.

    The first ``SCENARIO_COUNT`` orders cover, in this order: a guest order from Germany, a
    percent coupon in an incl.-VAT order, a fixed_cart coupon, variations (one reporting the
    parent SKU), fees (one negative), a deleted product's line, a company order on hold, a
    pending order, a cancelled one, emoji with a fixed_cart coupon incl. VAT, a partly refunded
    completed order, ``null`` address fields, free shipping on food, food with 9 % shipping and no
    shipping address, an admin-created order. Later orders are a seeded random mixture, mostly
    processing/completed. Deterministic for a given ``seed``; creation times ascend by 3-97 min.
    """
    if start_gmt.tzinfo is None:
        raise ValueError("start_gmt must be timezone-aware")
    rng = random.Random(seed)
    orders: list[dict[str, Any]] = []
    created = start_gmt.replace(microsecond=0)
    for index in range(count):
        if index:
            created += timedelta(minutes=rng.randint(3, 97), seconds=rng.randint(0, 59))
        order_id = first_id + index
        spec = _SCENARIOS[index](rng) if index < len(_SCENARIOS) else _random_spec(rng)
        refund = spec.pop("_refund", False)
        spec.setdefault("meta_data", _meta(rng))
        order = build_order(
            order_id, created_gmt=created, site_tz=site_tz, site_url=site_url, **spec
        )
        if refund:
            line = order["line_items"][0]
            amount = Decimal(line["total"]) + Decimal(line["total_tax"])
            refund_id = first_id + count + 50 + index  # refunds share the order id sequence
            spec["refunds"] = [(refund_id, f"Retour: {line['name']}", amount)]
            spec["modified_gmt"] = created + timedelta(hours=2, minutes=3)
            order = build_order(
                order_id, created_gmt=created, site_tz=site_tz, site_url=site_url, **spec
            )
        orders.append(order)
    return orders
