"""The canonical order between the shop and the ERP. No I/O here.

Money is :class:`~decimal.Decimal`, never float; texts are kept as the shop gave them (the ERP side
normalises them to its own field rules). Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

ZERO = Decimal("0")


class OrderState(StrEnum):
    """Where an order is on its way to Dynamics (README, "How an order travels")."""

    NEW = "new"
    READY = "ready"
    HELD = "held"
    PUSHING = "pushing"
    PUSHED = "pushed"
    FAILED = "failed"
    SKIPPED = "skipped"


class LineKind(StrEnum):
    """What a line of the order stands for."""

    ITEM = "item"
    SHIPPING = "shipping"
    FEE = "fee"


@dataclass(frozen=True)
class Address:
    """A postal address with contact data as the shop gave it ("" for missing values)."""

    first_name: str = ""
    last_name: str = ""
    company: str = ""
    line1: str = ""
    line2: str = ""
    city: str = ""
    state: str = ""
    postcode: str = ""
    country: str = ""
    email: str = ""
    phone: str = ""

    @property
    def name(self) -> str:
        """First and last name joined, or the company when there is no person."""
        person = " ".join(p for p in (self.first_name.strip(), self.last_name.strip()) if p)
        return person or self.company.strip()

    @property
    def is_empty(self) -> bool:
        """True when no postal part is filled in."""
        return not any(
            v.strip() for v in (self.line1, self.line2, self.city, self.postcode, self.country)
        )


@dataclass(frozen=True)
class Line:
    """One order line: an article, a shipping charge or a fee.

    ``subtotal`` is before discounts and ``total`` after, both excluding tax, as WooCommerce
    reports them; ``discount`` is therefore ``subtotal - total``. Shipping and fee lines have
    ``subtotal == total``.
    """

    kind: LineKind
    shop_line_id: int
    name: str
    quantity: Decimal
    subtotal: Decimal
    subtotal_tax: Decimal
    total: Decimal
    total_tax: Decimal
    sku: str | None = None
    product_id: int = 0
    variation_id: int = 0
    parent_sku_inherited: bool = False  # a variation that reports its parent's SKU

    @property
    def discount(self) -> Decimal:
        """Discount on this line excluding tax (coupon share)."""
        return self.subtotal - self.total

    @property
    def discount_tax(self) -> Decimal:
        """Tax part of the discount."""
        return self.subtotal_tax - self.total_tax

    @property
    def gross_total(self) -> Decimal:
        """Line total including tax, after discounts."""
        return self.total + self.total_tax


@dataclass(frozen=True)
class Order:
    """A shop order in the shape the ERP side builds its documents from."""

    woo_id: int
    number: str
    status: str
    currency: str
    prices_include_tax: bool
    created_at: datetime
    modified_at: datetime
    total: Decimal
    total_tax: Decimal
    customer_id: int = 0
    billing: Address = field(default_factory=Address)
    shipping: Address = field(default_factory=Address)
    lines: tuple[Line, ...] = ()
    customer_note: str = ""
    payment_method: str = ""
    coupon_codes: tuple[str, ...] = ()
    recorded_document: str = ""  # the Dynamics document this tool wrote on the shop order, if any

    @property
    def is_guest(self) -> bool:
        """True for an order placed without a shop account."""
        return self.customer_id == 0

    @property
    def email(self) -> str:
        """The customer's e-mail address (billing), stripped."""
        return self.billing.email.strip()

    @property
    def item_lines(self) -> tuple[Line, ...]:
        """Article lines only."""
        return tuple(line for line in self.lines if line.kind is LineKind.ITEM)

    @property
    def lines_gross_total(self) -> Decimal:
        """Sum of every line including tax; equals ``total`` for a consistent shop order."""
        return sum((line.gross_total for line in self.lines), ZERO)


# -- refunds ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refund:
    """A shop refund of an order, in positive amounts (docs/architecture.md, "Refunds").

    ``lines`` are the refunded order lines: ``shop_line_id`` is the order line they refund,
    ``quantity`` and amounts are positive, ``subtotal == total`` (refunds carry no discount).
    ``amount`` is the money refunded; it wins over the lines, and what the lines do not explain
    (an amount-only refund, or a refund above its lines) is :attr:`unallocated`.
    """

    refund_id: int
    woo_id: int
    amount: Decimal
    reason: str
    created_at: datetime
    lines: tuple[Line, ...] = ()

    @property
    def lines_gross_total(self) -> Decimal:
        """What the refunded lines are worth, tax included."""
        return sum((line.gross_total for line in self.lines), ZERO)

    @property
    def unallocated(self) -> Decimal:
        """The part of the amount no refunded line explains."""
        return self.amount - self.lines_gross_total
