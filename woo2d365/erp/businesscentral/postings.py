"""Posted shipments and invoices read from Business Central (docs/systems.md B4).

Each read is one paged ``GET`` of the whole change set: ``lastModifiedDateTime gt {since}`` and
``startswith(externalDocumentNumber, prefix)`` (only this tool's documents), shipments with
``$expand=salesShipmentLines``, so the cost grows with the number of changes, never with the
number of pushed orders. API v2.0 hides the shipping agent and tracking number; with
``[shipments] tracking_api`` they come from a custom API page with the same filters.
:func:`posted_from` finds what was posted from given orders whose sales order is gone
(docs/architecture.md, "Is the order still in Dynamics?"); :func:`posted_keys` reads which of this
tool's keys have anything posted, for push (docs/architecture.md, "Exactly once", step 2).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from woo2d365.erp.base import (
    DocumentRef,
    PostedDocument,
    PostedInvoice,
    PostedShipment,
    ShipmentTracking,
)
from woo2d365.erp.businesscentral.client import BusinessCentralClient
from woo2d365.erp.odata_query import odata_datetime, odata_string
from woo2d365.errors import ConfigError, DynamicsError
from woo2d365.model import Line, LineKind, Order

LINE_STEP = 10000  # Business Central numbers the lines of a deep insert 10000, 20000, ...
_GUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def _filter(prefix: str, since: datetime | None) -> str:
    parts = [f"startswith(externalDocumentNumber,{odata_string(prefix)})"]
    if since is not None:
        parts.insert(0, f"lastModifiedDateTime gt {odata_datetime(since)}")
    return " and ".join(parts)


def _text(row: dict[str, Any], field: str) -> str:
    """A field of an API row as text, "" when absent or null."""
    return str(row.get(field) or "")


NOT_POSTED = frozenset({"", "Draft", "In Review"})
"""Statuses of a sales invoice or credit memo not posted yet; "In Review" waits for an approval
(docs/systems.md B6)."""


def document_status(row: dict[str, Any]) -> str:
    """A document's ``status`` as Business Central shows it (``In_x0020_Review`` is
    "In Review")."""
    return _text(row, "status").replace("_x0020_", " ").strip()


def _document_keys(row: dict[str, Any]) -> dict[str, str]:
    """The keys every posted document carries: its id, number, and the order's numbers."""
    return {
        "id": _text(row, "id"),
        "number": _text(row, "number"),
        "external_number": _text(row, "externalDocumentNumber"),
        "order_number": _text(row, "orderNumber"),
    }


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)


def posted_shipments(
    client: BusinessCentralClient, prefix: str, since: datetime | None
) -> list[PostedShipment]:
    """Shipments of this tool's orders changed after ``since``, with their lines."""
    params = {"$filter": _filter(prefix, since), "$expand": "salesShipmentLines"}
    found = []
    for row in client.get_all(client.company_path("salesShipments"), params):
        lines: dict[int, Decimal] = {}
        for line in row.get("salesShipmentLines") or []:
            if not isinstance(line, dict) or not isinstance(line.get("sequence"), int):
                continue
            quantity = _decimal(line.get("quantity"))
            if quantity:
                lines[line["sequence"]] = lines.get(line["sequence"], Decimal(0)) + quantity
        found.append(
            PostedShipment(
                **_document_keys(row),
                posted_on=_text(row, "postingDate"),
                modified=_text(row, "lastModifiedDateTime"),
                lines=lines,
            )
        )
    return found


def shipment_tracking(
    client: BusinessCentralClient, tracking_api: str, prefix: str, since: datetime | None
) -> list[ShipmentTracking] | None:
    """Agent and tracking number from the custom API page ``publisher/group/version/entitySet``."""
    if not tracking_api.strip():
        return None
    parts = [p for p in tracking_api.strip().strip("/").split("/") if p]
    if len(parts) != 4:
        raise ConfigError(
            f"shipments.tracking_api {tracking_api!r} is not publisher/group/version/entitySet"
        )
    url = client.custom_api_url(*parts)
    try:
        rows = list(client.get_all_at(url, {"$filter": _filter(prefix, since)}))
    except DynamicsError as exc:
        if exc.status == 404 and not exc.retryable:
            raise ConfigError(
                f"shipments.tracking_api {tracking_api!r}: Business Central has no such API page "
                f"({exc.message}); is the extension installed?"
            ) from None
        raise
    found = []
    for row in rows:
        found.append(
            ShipmentTracking(
                **_document_keys(row),
                agent=_text(row, "shippingAgentCode").strip(),
                tracking=_text(row, "packageTrackingNumber").strip(),
                modified=_text(row, "lastModifiedDateTime"),
            )
        )
    return found


def posted_invoices(
    client: BusinessCentralClient, prefix: str, since: datetime | None
) -> list[PostedInvoice]:
    """Posted invoices of this tool's orders changed after ``since`` (drafts left out)."""
    params = {
        "$filter": _filter(prefix, since),
        "$select": "id,number,externalDocumentNumber,orderId,orderNumber,status,currencyCode,"
        "totalAmountIncludingTax,totalAmountExcludingTax,remainingAmount,postingDate,"
        "lastModifiedDateTime",
    }
    found = []
    for row in client.get_all(client.company_path("salesInvoices"), params):
        status = document_status(row)
        if status in NOT_POSTED:
            continue
        found.append(
            PostedInvoice(
                **_document_keys(row),
                order_id=_text(row, "orderId").lower(),
                status=status,
                currency=_text(row, "currencyCode"),
                total_including_tax=_decimal(row.get("totalAmountIncludingTax")),
                total_excluding_tax=_decimal(row.get("totalAmountExcludingTax")),
                remaining=_decimal(row.get("remainingAmount")),
                posted_on=_text(row, "postingDate"),
                modified=_text(row, "lastModifiedDateTime"),
            )
        )
    return found


def posted_keys(client: BusinessCentralClient, prefix: str, since: datetime) -> set[str]:
    """The upper-cased ``externalDocumentNumber`` of every posted invoice and shipment of this
    tool's orders changed after ``since``: one paged read of the keys alone per entity set."""
    keys: set[str] = set()
    for entity_set, select in (
        ("salesInvoices", "externalDocumentNumber,status"),
        ("salesShipments", "externalDocumentNumber"),
    ):
        params = {"$filter": _filter(prefix, since), "$select": select}
        for row in client.get_all(client.company_path(entity_set), params):
            if entity_set == "salesInvoices" and document_status(row) in NOT_POSTED:
                continue
            if key := _text(row, "externalDocumentNumber").upper():
                keys.add(key)
    return keys


def posted_from(
    client: BusinessCentralClient, refs: Sequence[DocumentRef]
) -> dict[DocumentRef, tuple[PostedDocument, ...]]:
    """The posted invoices of these orders, else their posted shipments (docs/systems.md B4, B5).

    They outlive a sales order that Business Central deleted once it was fully invoiced: an
    invoice carries the order's ``externalDocumentNumber`` and ``orderId`` (the id stored at
    push), a shipment its ``externalDocumentNumber`` and ``orderNumber``. Looked up by one field
    at a time (one request per 50 orders), each only for the orders not found yet. Each posted
    document names the sales order it was posted from as far as it carries it.
    """
    found: dict[DocumentRef, tuple[PostedDocument, ...]] = {}
    lookups = (
        ("invoice", "salesInvoices", "externalDocumentNumber", ref_key),
        ("invoice", "salesInvoices", "orderId", _order_id),
        ("shipment", "salesShipments", "externalDocumentNumber", ref_key),
        ("shipment", "salesShipments", "orderNumber", ref_number),
    )
    for kind, entity_set, name, value in lookups:
        wanted = refs_by(refs, value, skip=found)
        if not wanted:
            continue
        # A posted shipment has no orderId and no status.
        fields = ("number", "orderNumber") + (("status", "orderId") if kind == "invoice" else ())
        rows = client.find_where(
            entity_set,
            name,
            list(wanted),
            ",".join(dict.fromkeys((*fields, name))),
            literal=str if name == "orderId" else odata_string,
        )
        posted: dict[DocumentRef, dict[str, PostedDocument]] = {}
        for row in rows:
            if kind == "invoice" and document_status(row) in NOT_POSTED:
                continue
            document = PostedDocument(
                kind,
                _text(row, "number"),
                order_number=_text(row, "orderNumber"),
                order_id=_text(row, "orderId").lower(),
            )
            for ref in wanted.get(_text(row, name).upper(), []):
                posted.setdefault(ref, {})[document.number] = document
        for ref, documents in posted.items():
            found[ref] = tuple(documents[number] for number in sorted(documents))
    return found


def refs_by(
    refs: Sequence[DocumentRef],
    value: Callable[[DocumentRef], str],
    *,
    skip: Container[DocumentRef],
) -> dict[str, list[DocumentRef]]:
    """The refs not in ``skip`` by their upper-cased ``value`` (blank ones left out): Business
    Central keeps codes upper-case, GUIDs come in either case."""
    wanted: dict[str, list[DocumentRef]] = {}
    for ref in refs:
        if ref not in skip and value(ref):
            wanted.setdefault(value(ref).upper(), []).append(ref)
    return wanted


def ref_key(ref: DocumentRef) -> str:
    """The order's key as Business Central stores it (upper-case)."""
    return ref.external_number.upper()


def _order_id(ref: DocumentRef) -> str:
    """The sales order's id as an unquoted GUID literal; blank unless it is one."""
    return ref.id.lower() if _GUID.fullmatch(ref.id) else ""


def ref_number(ref: DocumentRef) -> str:
    """The recorded sales order number as Business Central stores it (upper-case)."""
    return ref.number.strip().upper()


def goods_lines(order: Order) -> dict[int, Line]:
    """Sequence → the item lines as the push sent them.

    The push sends the item lines first, in the shop's order, leaving out only those without a
    quantity (see payload.build_sales_order); Business Central numbers deep-inserted lines
    10000, 20000, ... in the order sent.
    """
    items = [
        line for line in order.lines if line.kind is LineKind.ITEM and line.quantity > Decimal(0)
    ]
    return {LINE_STEP * (index + 1): line for index, line in enumerate(items)}
