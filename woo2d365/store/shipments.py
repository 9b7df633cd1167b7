"""The fulfilment room of the store: the ledgers of ``woo2d365 shipments`` (docs/architecture.md,
"Shipments").

``shipment_reports`` (one row per posted Dynamics shipment), ``invoice_records`` (one per posted
invoice) and ``fulfilments`` (one per order with a shipment) make each shop note and the status
change happen once: a row is claimed before the shop write and recorded after it. The SQL is in
:mod:`woo2d365.store.shipments_sql`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class ShipmentReport:
    """A posted Dynamics shipment of a pushed order and what the shop was told about it.

    ``note_state``: ``pending`` (not reported), ``claimed`` (the note was sent, its answer not
    recorded: look in the shop's notes before sending again), ``noted``, ``skipped`` (never
    reported: the order was cancelled in the shop). ``tracking_noted`` is the tracking number the
    shop has been told, ``tracking_claim`` one whose note was sent without a recorded answer.
    """

    shipment_id: str
    woo_id: int
    number: str
    posted_on: str  # YYYY-MM-DD
    lines: dict[int, str]  # line sequence -> quantity shipped by this shipment (decimal text)
    agent: str = ""
    tracking: str = ""
    note_state: str = "pending"
    tracking_noted: str = ""
    tracking_claim: str = ""
    modified: str = ""  # Dynamics' lastModifiedDateTime, verbatim


@dataclass(frozen=True)
class InvoiceRecord:
    """A posted Dynamics invoice of a pushed order, as last read, and what the shop was told."""

    invoice_id: str
    woo_id: int
    number: str
    status: str  # Open, Paid, Canceled, Corrective...
    currency: str
    total_including_tax: str
    total_excluding_tax: str
    remaining: str
    posted_on: str
    note_state: str = "pending"  # pending | claimed | noted
    meta_status: str = ""  # the status the shop's meta entry shows ('' none yet)
    modified: str = ""


@dataclass(frozen=True)
class Fulfilment:
    """How far a pushed order is shipped and whether its shop status was set.

    ``shipped``: ``partly`` or ``shipped``; ``complete_state``: ``""`` (not yet), ``claimed``
    (the status write was sent, its answer not recorded), ``done`` or ``skipped``.
    """

    woo_id: int
    shipped: str
    complete_state: str = ""
    status_set: str = ""


class FulfilmentStore(Protocol):
    """Shipments, invoices and how far each pushed order is shipped."""

    def observe_shipments(self, reports: list[ShipmentReport]) -> None:
        """Record shipments as read: new ones as given, known ones get the read fields
        (lines, agent, tracking, modified) and keep what the shop was told."""
        ...

    def shipment_reports(
        self, woo_ids: list[int] | None = None, *, open_only: bool = False
    ) -> list[ShipmentReport]:
        """Recorded shipments (of these orders), by number; ``open_only``: those with a note,
        a tracking note or their order's status change still to write."""
        ...

    def set_shipment_note_state(self, shipment_id: str, state: str, *, expect: list[str]) -> bool:
        """Move a shipment's note state, only from ``expect``; True if moved."""
        ...

    def set_tracking_note(self, shipment_id: str, *, claim: str, noted: str | None = None) -> None:
        """Record a tracking note claimed (``claim``) or written (``noted``, claim cleared)."""
        ...

    def observe_invoices(self, records: list[InvoiceRecord]) -> None:
        """Record invoices as read: new ones as given, known ones get status, amounts, modified."""
        ...

    def invoice_records(
        self, woo_ids: list[int] | None = None, *, open_only: bool = False
    ) -> list[InvoiceRecord]:
        """Recorded invoices (of these orders), by number; ``open_only``: with a note or a meta
        entry still to write."""
        ...

    def set_invoice_note_state(self, invoice_id: str, state: str, *, expect: list[str]) -> bool:
        """Move an invoice's note state, only from ``expect``; True if moved."""
        ...

    def set_invoice_meta_status(self, invoice_id: str, status: str) -> None:
        """The shop's meta entry now shows this status."""
        ...

    def fulfilments(self, woo_ids: list[int]) -> dict[int, Fulfilment]:
        """How far these orders are shipped (orders without a shipment are absent)."""
        ...

    def save_fulfilment(
        self, record: Fulfilment, *, expect_complete: list[str] | None = None
    ) -> bool:
        """Store an order's fulfilment; with ``expect_complete`` only while its complete state
        is one of those (absent counts as ``""``). True if stored."""
        ...

    def fulfilment_counts(self) -> dict[str, int]:
        """``shipped``, ``partly_shipped`` and ``invoiced`` pushed orders."""
        ...

    def unshipped_pushed_before(
        self, moment: datetime, *, limit: int = 20
    ) -> tuple[int, list[int]]:
        """Pushed orders pushed before ``moment`` with nothing shipped: how many, and some ids."""
        ...


def __getattr__(name: str) -> Any:
    """``ShipmentLedgers``: the former name of :mod:`woo2d365.store.shipments_sql`'s class."""
    if name == "ShipmentLedgers":
        from woo2d365.store.shipments_sql import SqlFulfilment

        return SqlFulfilment
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
