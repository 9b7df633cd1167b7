"""``reconcile``: the state store, Dynamics and the shop compared, order by order.

Dynamics is read once, every document of this tool (``externalDocumentNumber`` starting with
``orders.document_prefix``, paged, not one request per order); the shop side is the copy of each
order the last pull stored (its ``_woo2d365_sales_order`` meta). Reported, each as
``{woo_id, number, external_document_number, d365_numbers, detail}``:

* ``adoptable``: a document exists for an order the store does not record as pushed;
* ``duplicated``: two or more documents carry one order's key (listed, never deleted);
* ``missing_in_dynamics``: the store says pushed, and Dynamics has neither its sales order nor
  an invoice or shipment posted from it (:meth:`ErpTarget.find_traces`, asked in batches for
  the pushed orders the read did not find: Business Central deletes a fully invoiced sales
  order, which is then not missing);
* ``write_back_missing``: pushed, but the write-back to the shop is not done (or the shop's meta
  names another document);
* ``total_mismatch``: Dynamics' total differs from the shop's beyond ``orders.total_tolerance``.

``fix=True`` adopts the adoptable and queues the missing write-backs for the next push; it never
creates or deletes a Dynamics document.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from woo2d365.erp.base import CreatedDocument, DocumentRef, DocumentTrace, ErpTarget
from woo2d365.errors import ExitCode, OrderDataError
from woo2d365.model import OrderState
from woo2d365.pipeline.context import RunContext
from woo2d365.pipeline.in_dynamics import order_key
from woo2d365.pipeline.resolve import OPEN_STATES
from woo2d365.shop.mapping import order_from_shop
from woo2d365.store.base import OrderRecord

STEP = "reconcile"
LISTS = (
    "adoptable",
    "duplicated",
    "missing_in_dynamics",
    "write_back_missing",
    "total_mismatch",
)


@dataclass(frozen=True)
class Finding:
    """One order (or document) that needs a look."""

    woo_id: int | None
    number: str | None
    external_document_number: str
    d365_numbers: list[str]
    detail: str


@dataclass
class ReconcileReport:
    """Every finding, by list; what ``--fix`` did."""

    found: dict[str, list[Finding]] = field(default_factory=lambda: {n: [] for n in LISTS})
    adopted: list[int] = field(default_factory=list)
    write_backs_queued: list[int] = field(default_factory=list)
    orders_compared: int = 0
    documents_read: int = 0

    @property
    def exit_code(self) -> ExitCode:
        """1 while something is left that needs a person (what ``--fix`` fixed is not)."""
        fixed = set(self.adopted) | set(self.write_backs_queued)
        left = [f for items in self.found.values() for f in items if f.woo_id not in fixed]
        return ExitCode.ATTENTION if left else ExitCode.OK

    def as_json(self) -> dict[str, Any]:
        """The contract's JSON: one list per kind of finding."""
        data: dict[str, Any] = {
            name: [asdict(f) for f in items] for name, items in self.found.items()
        }
        data["fixed"] = {"adopted": self.adopted, "write_backs_queued": self.write_backs_queued}
        return data


def reconcile(
    ctx: RunContext, erp: ErpTarget, *, since: datetime | None = None, fix: bool = False
) -> ReconcileReport:
    """Compare the store's orders (created in the store since ``since``) with Dynamics and the
    shop copy; with ``fix`` adopt and queue write-backs."""
    report = ReconcileReport()
    erp.connect()
    documents: dict[str, list[CreatedDocument]] = defaultdict(list)
    for document in erp.documents_with_prefix(ctx.settings.orders.document_prefix):
        documents[document.external_number.upper()].append(document)
    report.documents_read = sum(len(docs) for docs in documents.values())
    tolerance = Decimal(str(ctx.settings.orders.total_tolerance))
    known: set[str] = set()
    unseen: list[tuple[int, str, DocumentRef]] = []  # pushed, no sales order read: id, number
    for record in ctx.store.list_orders(with_raw=True):
        if since is not None and record.created_at < since:
            continue
        key = _key(erp, record)
        if key is None:
            continue
        known.add(key)
        report.orders_compared += 1
        docs = documents.get(key, [])
        if record.state is OrderState.PUSHED and not docs:
            ref = DocumentRef(key, record.d365_number or "", record.d365_id or "")
            unseen.append((record.woo_id, record.number, ref))
        _compare(ctx, report, record, key, docs, tolerance, fix=fix)
    _missing(report, erp, unseen)
    for key, docs in sorted(documents.items()):
        if key not in known and since is None:
            report.found["adoptable"].append(
                Finding(
                    None,
                    None,
                    key,
                    _numbers(docs),
                    "no order in the state store has this key: pull it "
                    "(`woo2d365 pull --order ID`), then reconcile --fix adopts it",
                )
            )
    return report


def _compare(
    ctx: RunContext,
    report: ReconcileReport,
    record: OrderRecord,
    key: str,
    docs: list[CreatedDocument],
    tolerance: Decimal,
    *,
    fix: bool,
) -> None:
    def finding(kind: str, detail: str) -> None:
        report.found[kind].append(
            Finding(record.woo_id, record.number, key, _numbers(docs), detail)
        )

    if len(docs) > 1:
        finding("duplicated", f"{len(docs)} documents carry {key}; none is deleted by the tool")
    if record.state is OrderState.PUSHED:
        if not docs:
            return  # missing unless posted from (see _missing)
        recorded = _recorded_document(record)
        # The store's copy of the shop order gets our meta only with the next pull: a finished
        # write-back counts, and so does a meta that names another document.
        if record.write_back_pending or (recorded and recorded != record.d365_number):
            finding(
                "write_back_missing",
                f"the shop order does not name sales order {record.d365_number} yet",
            )
            if fix and ctx.store.set_write_back_pending(record.woo_id):
                report.write_backs_queued.append(record.woo_id)
                ctx.event(STEP, "write-back queued again by reconcile --fix", woo_id=record.woo_id)
        mine = next((d for d in docs if d.number == record.d365_number), docs[0])
        difference = _difference(mine, record.total)
        if difference is not None and abs(difference) > tolerance:
            finding(
                "total_mismatch",
                f"Dynamics total {mine.total_including_tax} differs from the shop total "
                f"{record.total} by {difference:+}",
            )
    elif docs and record.state in OPEN_STATES:
        first = min(docs, key=lambda d: d.number)
        finding("adoptable", f"in Dynamics as sales order {first.number}; the store says "
                             f"{record.state.value}")  # fmt: skip
        if fix and ctx.store.mark_pushed(
            record.woo_id,
            d365_id=first.id,
            d365_number=first.number,
            external_number=key,
            now=ctx.clock(),
            expect=OPEN_STATES,
        ):
            report.adopted.append(record.woo_id)
            ctx.event(
                STEP,
                f"adopted by reconcile --fix: in Dynamics as sales order {first.number} ({key})",
                woo_id=record.woo_id,
            )


def _missing(
    report: ReconcileReport, erp: ErpTarget, unseen: list[tuple[int, str, DocumentRef]]
) -> None:
    """Pushed orders whose sales order the read did not show: missing only when Dynamics has no
    trace of them either (an invoiced order's sales order is deleted, its invoice stays)."""
    traces = erp.find_traces([ref for _, _, ref in unseen]) if unseen else {}
    for woo_id, number, ref in unseen:
        if traces.get(ref, DocumentTrace()).exists:
            continue
        report.found["missing_in_dynamics"].append(
            Finding(
                woo_id,
                number,
                ref.external_number,
                [],
                f"recorded as sales order {ref.number}; Dynamics has neither it nor an invoice or "
                f"shipment posted from it (if it was deleted by mistake: `woo2d365 retry {woo_id} "
                "--force`)",
            )
        )


def _key(erp: ErpTarget, record: OrderRecord) -> str | None:
    key = order_key(erp, record)
    return key.upper() if key else None


def _recorded_document(record: OrderRecord) -> str:
    try:
        return order_from_shop(record.raw or {}).recorded_document
    except OrderDataError:
        return ""


def _numbers(docs: list[CreatedDocument]) -> list[str]:
    return sorted(d.number for d in docs)


def _difference(document: CreatedDocument, total: str) -> Decimal | None:
    if document.total_including_tax is None:
        return None
    try:
        return document.total_including_tax - Decimal(total)
    except InvalidOperation:
        return None
