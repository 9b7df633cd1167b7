"""The fulfilment room in SQL: ``shipment_reports``, ``invoice_records`` and ``fulfilments``
(see :mod:`woo2d365.store.shipments`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from operator import attrgetter
from typing import Any

from woo2d365.model import OrderState
from woo2d365.store.connection import (
    SqlRoom,
    chunks,
    marks,
    to_db_time,
)
from woo2d365.store.shipments import Fulfilment, InvoiceRecord, ShipmentReport


@dataclass(frozen=True)
class _Ledger:
    """A ledger table of posted documents: its columns in the record's field order, the ones a
    new read refreshes, the ones whose change makes it refresh, and what "open" means."""

    table: str
    key: str
    columns: tuple[str, ...]
    read: tuple[str, ...]
    compared: tuple[str, ...]
    open: str


_SHIPMENTS = _Ledger(
    table="shipment_reports",
    key="shipment_id",
    columns=(
        "shipment_id",
        "woo_id",
        "number",
        "posted_on",
        "lines_json",
        "agent",
        "tracking",
        "note_state",
        "tracking_noted",
        "tracking_claim",
        "modified",
    ),
    read=("lines_json", "agent", "tracking", "modified"),
    compared=("lines_json", "agent", "tracking", "modified"),
    open=(
        "(note_state IN ('pending', 'claimed') OR (note_state = 'noted' AND "
        "tracking <> '' AND tracking <> tracking_noted) OR woo_id IN (SELECT woo_id FROM "
        "fulfilments WHERE complete_state = 'claimed'))"
    ),
)
_INVOICES = _Ledger(
    table="invoice_records",
    key="invoice_id",
    columns=(
        "invoice_id",
        "woo_id",
        "number",
        "status",
        "currency",
        "total_including_tax",
        "total_excluding_tax",
        "remaining",
        "posted_on",
        "note_state",
        "meta_status",
        "modified",
    ),
    read=("status", "total_including_tax", "total_excluding_tax", "remaining", "modified"),
    compared=("status", "remaining", "modified"),
    open="(note_state IN ('pending', 'claimed') OR meta_status <> status)",
)


class SqlFulfilment(SqlRoom):
    """:class:`~woo2d365.store.shipments.FulfilmentStore` in SQL."""

    def observe_shipments(self, reports: list[ShipmentReport]) -> None:
        """Record shipments as read; what the shop was told is kept for known ones."""
        self._observe(_SHIPMENTS, reports)

    def shipment_reports(
        self, woo_ids: list[int] | None = None, *, open_only: bool = False
    ) -> list[ShipmentReport]:
        """Recorded shipments (of these orders), by number."""
        reports = [_shipment(row) for row in self._ledger_rows(_SHIPMENTS, woo_ids, open_only)]
        return sorted(reports, key=lambda r: (r.woo_id, r.number))

    def set_shipment_note_state(self, shipment_id: str, state: str, *, expect: list[str]) -> bool:
        """Move a shipment's note state, only from ``expect``."""
        return self._move_note_state(_SHIPMENTS, shipment_id, state, expect)

    def set_tracking_note(self, shipment_id: str, *, claim: str, noted: str | None = None) -> None:
        """A tracking note claimed, or written (``noted``) with the claim cleared."""
        with self._tx() as cur:
            if noted is None:
                self._exec(
                    cur,
                    "UPDATE shipment_reports SET tracking_claim = ?, updated_at = ? "
                    "WHERE shipment_id = ?",
                    (claim, self._now(), shipment_id),
                )
            else:
                self._exec(
                    cur,
                    "UPDATE shipment_reports SET tracking_claim = ?, tracking_noted = ?, "
                    "updated_at = ? WHERE shipment_id = ?",
                    (claim, noted, self._now(), shipment_id),
                )

    def observe_invoices(self, records: list[InvoiceRecord]) -> None:
        """Record invoices as read; what the shop was told is kept for known ones."""
        self._observe(_INVOICES, records)

    def invoice_records(
        self, woo_ids: list[int] | None = None, *, open_only: bool = False
    ) -> list[InvoiceRecord]:
        """Recorded invoices (of these orders), by number."""
        records = [_invoice(row) for row in self._ledger_rows(_INVOICES, woo_ids, open_only)]
        return sorted(records, key=lambda r: (r.woo_id, r.number))

    def set_invoice_note_state(self, invoice_id: str, state: str, *, expect: list[str]) -> bool:
        """Move an invoice's note state, only from ``expect``."""
        return self._move_note_state(_INVOICES, invoice_id, state, expect)

    # -- one ledger's rows, for shipments and invoices alike -------------------------------
    def _observe(self, ledger: _Ledger, records: Sequence[ShipmentReport | InvoiceRecord]) -> None:
        """New documents as given; known ones get the ``read`` columns, but only when one of
        the ``compared`` columns differs (what the shop was told is kept)."""
        if not records:
            return
        now = self._now()
        insert = self.dialect.insert_ignore(ledger.table, [*ledger.columns, "updated_at"])
        sets = ", ".join(f"{column} = ?" for column in ledger.read)
        changed = " OR ".join(f"{column} <> ?" for column in ledger.compared)
        update = (
            f"UPDATE {ledger.table} SET {sets}, updated_at = ? "
            f"WHERE {ledger.key} = ? AND ({changed})"
        )
        values = attrgetter(*(f.name for f in fields(records[0])))
        read = [ledger.columns.index(column) for column in ledger.read]
        compared = [ledger.columns.index(column) for column in ledger.compared]
        key = ledger.columns.index(ledger.key)
        with self._tx() as cur:
            for record in records:
                # The record's fields are the columns, in order; the shipped lines go as JSON.
                row = [
                    json.dumps(v, sort_keys=True) if isinstance(v, dict) else v
                    for v in values(record)
                ]
                self._exec(cur, insert, [*row, now])
                self._exec(
                    cur,
                    update,
                    [*(row[i] for i in read), now, row[key], *(row[i] for i in compared)],
                )

    def _ledger_rows(
        self, ledger: _Ledger, woo_ids: list[int] | None, open_only: bool
    ) -> list[Any]:
        """The ledger's rows (of these orders; ``open_only``: with something still to write)."""
        where = [ledger.open] if open_only else []
        select = f"SELECT {', '.join(ledger.columns)} FROM {ledger.table}"
        rows: list[Any] = []
        with self._tx() as cur:
            if woo_ids is None:
                clause = f" WHERE {' AND '.join(where)}" if where else ""
                self._exec(cur, select + clause)
                rows = list(cur.fetchall())
            else:
                for chunk in chunks(sorted(set(woo_ids))):
                    clause = " AND ".join([f"woo_id IN ({marks(chunk)})", *where])
                    self._exec(cur, f"{select} WHERE {clause}", chunk)
                    rows += cur.fetchall()
        return rows

    def _move_note_state(self, ledger: _Ledger, key: str, state: str, expect: list[str]) -> bool:
        return self._changes_one(
            f"UPDATE {ledger.table} SET note_state = ?, updated_at = ? WHERE {ledger.key} = ? "
            f"AND note_state IN ({marks(expect)})",
            (state, self._now(), key, *expect),
        )

    def set_invoice_meta_status(self, invoice_id: str, status: str) -> None:
        """The shop's meta entry now shows this status."""
        with self._tx() as cur:
            self._exec(
                cur,
                "UPDATE invoice_records SET meta_status = ?, updated_at = ? WHERE invoice_id = ?",
                (status, self._now(), invoice_id),
            )

    def fulfilments(self, woo_ids: list[int]) -> dict[int, Fulfilment]:
        """How far these orders are shipped."""
        found: dict[int, Fulfilment] = {}
        with self._tx() as cur:
            for chunk in chunks(sorted(set(woo_ids))):
                self._exec(
                    cur,
                    "SELECT woo_id, shipped, complete_state, status_set FROM fulfilments "
                    f"WHERE woo_id IN ({marks(chunk)})",
                    chunk,
                )
                for row in cur.fetchall():
                    found[int(row[0])] = Fulfilment(
                        int(row[0]), str(row[1]), str(row[2]), str(row[3])
                    )
        return found

    def save_fulfilment(
        self, record: Fulfilment, *, expect_complete: list[str] | None = None
    ) -> bool:
        """Store an order's fulfilment (conditionally on its complete state)."""
        now = self._now()
        with self._tx() as cur:
            self._exec(
                cur,
                "SELECT complete_state FROM fulfilments WHERE woo_id = ?",
                (record.woo_id,),
            )
            row = cur.fetchone()
            current = "" if row is None else str(row[0])
            if expect_complete is not None and current not in expect_complete:
                return False
            if row is None:
                self._exec(
                    cur,
                    "INSERT INTO fulfilments (woo_id, shipped, complete_state, status_set, "
                    "updated_at) VALUES (?, ?, ?, ?, ?)",
                    (record.woo_id, record.shipped, record.complete_state, record.status_set, now),
                )
            else:
                self._exec(
                    cur,
                    "UPDATE fulfilments SET shipped = ?, complete_state = ?, status_set = ?, "
                    "updated_at = ? WHERE woo_id = ? AND complete_state = ?",
                    (
                        record.shipped,
                        record.complete_state,
                        record.status_set,
                        now,
                        record.woo_id,
                        current,
                    ),
                )
        return True

    def fulfilment_counts(self) -> dict[str, int]:
        """``shipped``, ``partly_shipped`` and ``invoiced`` pushed orders."""
        with self._tx() as cur:
            self._exec(cur, "SELECT shipped, COUNT(*) FROM fulfilments GROUP BY shipped")
            per = {str(row[0]): int(row[1]) for row in cur.fetchall()}
            self._exec(cur, "SELECT COUNT(DISTINCT woo_id) FROM invoice_records")
            row = cur.fetchone()
        return {
            "shipped": per.get("shipped", 0),
            "partly_shipped": per.get("partly", 0),
            "invoiced": int(row[0]) if row else 0,
        }

    def unshipped_pushed_before(
        self, moment: datetime, *, limit: int = 20
    ) -> tuple[int, list[int]]:
        """Pushed orders pushed before ``moment`` with nothing shipped."""
        where = (
            "FROM orders o WHERE o.state = ? AND o.pushed_at < ? AND NOT EXISTS "
            "(SELECT 1 FROM fulfilments f WHERE f.woo_id = o.woo_id)"
        )
        params = (OrderState.PUSHED.value, to_db_time(moment))
        with self._tx() as cur:
            self._exec(cur, f"SELECT COUNT(*) {where}", params)
            row = cur.fetchone()
            self._exec(
                cur, f"SELECT o.woo_id {where} ORDER BY o.pushed_at LIMIT {int(limit)}", params
            )
            ids = [int(r[0]) for r in cur.fetchall()]
        return (int(row[0]) if row else 0), ids


def _shipment(row: Sequence[Any]) -> ShipmentReport:
    lines = {int(k): str(v) for k, v in json.loads(str(row[4]) or "{}").items()}
    return ShipmentReport(
        shipment_id=str(row[0]),
        woo_id=int(row[1]),
        number=str(row[2]),
        posted_on=str(row[3]),
        lines=lines,
        agent=str(row[5]),
        tracking=str(row[6]),
        note_state=str(row[7]),
        tracking_noted=str(row[8]),
        tracking_claim=str(row[9]),
        modified=str(row[10]),
    )


def _invoice(row: Sequence[Any]) -> InvoiceRecord:
    return InvoiceRecord(
        invoice_id=str(row[0]),
        woo_id=int(row[1]),
        number=str(row[2]),
        status=str(row[3]),
        currency=str(row[4]),
        total_including_tax=str(row[5]),
        total_excluding_tax=str(row[6]),
        remaining=str(row[7]),
        posted_on=str(row[8]),
        note_state=str(row[9]),
        meta_status=str(row[10]),
        modified=str(row[11]),
    )
