"""The SKU map: shop SKU → Dynamics item number, kept by operators with ``map-sku``."""

from __future__ import annotations

import csv
import getpass
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from woo2d365.errors import UsageError
from woo2d365.store.base import SkuMapping, StateStore, UpsertOutcome

if TYPE_CHECKING:
    from _csv import Reader

ITEM_NUMBER_MAX = 20  # Business Central Item "No." is Code[20]
SKU_MAX = 191
NOTE_MAX = 255
CSV_HEADER = ("sku", "item_number", "note")


def current_operator() -> str:
    """Who is making the change: the invoking user (through sudo too)."""
    try:
        return os.environ.get("SUDO_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def check_mapping(sku: str, item_number: str, note: str = "") -> str | None:
    """Return why a mapping is invalid, or ``None``. Values are never silently trimmed."""
    for label, value in (("SKU", sku), ("item number", item_number)):
        if not value or not value.strip():
            return f"{label} is empty"
        if value != value.strip():
            return f"{label} {value!r} has leading or trailing whitespace"
        if any(ch in value for ch in "\r\n\t"):
            return f"{label} {value!r} contains a line break or tab"
    if len(sku) > SKU_MAX:
        return f"SKU is {len(sku)} characters; at most {SKU_MAX}"
    if len(item_number) > ITEM_NUMBER_MAX:
        return (
            f"item number {item_number!r} is {len(item_number)} characters; Business Central "
            f"item numbers have at most {ITEM_NUMBER_MAX}"
        )
    if len(note) > NOTE_MAX:
        return f"note is {len(note)} characters; at most {NOTE_MAX}"
    return None


def normalise_item_number(item_number: str) -> str:
    """Business Central stores Code fields upper-case; so do we, to compare like Dynamics."""
    return item_number.upper()


def add_mapping(
    store: StateStore,
    sku: str,
    item_number: str,
    note: str,
    now: datetime,
    *,
    strict: bool = False,
) -> tuple[UpsertOutcome, str | None]:
    """Add or update one mapping after validating it; the second value is a warning when the
    item is not in the mirror of Dynamics items (``strict``: refused instead)."""
    problem = check_mapping(sku, item_number, note)
    if problem:
        raise UsageError(problem)
    doubt = unknown_item(store, item_number)
    if doubt and strict:
        raise UsageError(f"{doubt}; nothing was changed (--strict)")
    number = normalise_item_number(item_number)
    return store.map_sku(sku, number, note, current_operator(), now), doubt


def unknown_item(store: StateStore, item_number: str) -> str | None:
    """Why ``item_number`` looks wrong: not in the mirror of Dynamics items (None when it is
    there, or when no item has been mirrored yet, so nothing can be said)."""
    number = normalise_item_number(item_number)
    if store.item_count() == 0 or store.items_by_number([number]):
        return None
    return (
        f"item {number} is not among the items mirrored from Dynamics; orders with this SKU stay "
        "held until Dynamics has it (check the number, or run a sync to refresh the mirror)"
    )


@dataclass
class ImportReport:
    """What ``map-sku import`` did, line by line."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Data lines read."""
        return self.added + self.updated + self.unchanged + len(self.rejected)


def import_csv(store: StateStore, path: Path, now: datetime) -> ImportReport:
    """Import ``sku,item_number[,note]`` lines; bad lines are reported and never stop good ones."""
    report = ImportReport()
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    rows: list[tuple[str, str, str]] = []
    with handle:
        reader = csv.reader(handle)
        fields = len(_read_header(reader, path))
        first_line_of: dict[str, tuple[int, str]] = {}
        for line, row in _data_rows(reader, report):
            mapping = _mapping_of(line, row, fields, first_line_of, report)
            if mapping is not None:
                first_line_of[mapping[0]] = (line, mapping[1])
                rows.append(mapping)
    for outcome in store.map_skus(rows, current_operator(), now) if rows else []:
        if outcome == "added":
            report.added += 1
        elif outcome == "updated":
            report.updated += 1
        else:
            report.unchanged += 1
    return report


def _read_header(reader: Reader, path: Path) -> tuple[str, ...]:
    """The header's column names; :class:`UsageError` unless it is ``sku,item_number[,note]``."""
    try:
        header = next(reader, None)
    except (csv.Error, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} line 1: {exc}") from None
    if header is None:
        raise UsageError(f"{path} is empty; expected the header sku,item_number[,note]")
    names = tuple(h.strip().lower() for h in header)
    if names not in (CSV_HEADER[:2], CSV_HEADER):
        raise UsageError(
            f"{path} line 1: header must be sku,item_number or sku,item_number,note "
            f"(found {','.join(header)})"
        )
    return names


def _data_rows(reader: Reader, report: ImportReport) -> Iterator[tuple[int, list[str]]]:
    """``(line number, row)`` of each line that is not blank; unreadable ones are rejected."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            report.rejected.append((reader.line_num, f"unreadable line: {exc}"))
            continue
        if row and any(cell.strip() for cell in row):
            yield reader.line_num, row


def _mapping_of(
    line: int,
    row: list[str],
    fields: int,
    first_line_of: dict[str, tuple[int, str]],
    report: ImportReport,
) -> tuple[str, str, str] | None:
    """``(sku, item number, note)`` of a line to import; None when it is rejected or repeats
    an earlier line (counted in ``report``)."""
    if len(row) not in (2, 3) or (len(row) == 3 and fields == 2):
        report.rejected.append((line, f"expected {fields} fields, found {len(row)}"))
        return None
    sku, item = row[0], row[1]
    note = row[2] if len(row) == 3 else ""
    problem = check_mapping(sku, item, note)
    if problem:
        report.rejected.append((line, problem))
        return None
    item = normalise_item_number(item)
    earlier = first_line_of.get(sku)
    if earlier is None:
        return sku, item, note
    if earlier[1] != item:
        report.rejected.append(
            (line, f"SKU {sku} already mapped to {earlier[1]} on line {earlier[0]}")
        )
    else:
        report.unchanged += 1
    return None


def export_csv(store: StateStore, path: Path) -> int:
    """Write every mapping as ``sku,item_number,note``; return the number written."""
    mappings = store.sku_mappings()
    try:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_HEADER)
            for m in mappings:
                writer.writerow((m.sku, m.item_number, m.note))
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    return len(mappings)


def mapping_as_json(mapping: SkuMapping) -> dict[str, str]:
    """A mapping as a JSON object."""
    return {
        "sku": mapping.sku,
        "item_number": mapping.item_number,
        "note": mapping.note,
        "updated_by": mapping.updated_by,
        "updated_at": mapping.updated_at.isoformat(),
    }
