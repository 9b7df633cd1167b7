"""``sync --dry-run``: the real steps over a throwaway copy of the store, nothing written.

Pull, validate and push run as in ``sync`` (:func:`~woo2d365.pipeline.sync.dry_sync`), over a
scratch copy of the state store (``StateStore.scratch_copy``) and reading both systems only: push
prepares each sales order without sending it. What the steps left in the copy says which sales
orders a sync would create and which orders it would hold (docs/architecture.md, "Dry run").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from woo2d365.errors import ExitCode
from woo2d365.model import OrderState
from woo2d365.pipeline.push import DryRunDocument, PushedOrder, already_as
from woo2d365.pipeline.sync import SyncResult, dry_sync
from woo2d365.runtime import Runtime
from woo2d365.store.base import StateStore


@dataclass
class Preview:
    """What ``sync --dry-run`` would do, one line per order, then a summary line."""

    lines: list[str] = field(default_factory=list)
    would_create: int = 0
    would_hold: int = 0
    sync: SyncResult | None = None  # the dry run of the steps

    @property
    def exit_code(self) -> ExitCode:
        """The sync's own: 1 when this run would hold an order (not one held before), 3 when a
        system is away."""
        return self.sync.exit_code if self.sync is not None else ExitCode.OK


def preview(runtime: Runtime, *, limit: int | None = None) -> Preview:
    """Run the sync's steps over a scratch copy of the store: which sales orders a sync would
    create (at most ``limit``), which orders it would hold."""
    with runtime.store.scratch_copy() as scratch:
        view = replace(runtime, store=scratch, progress=None)
        result = dry_sync(view.context(), view.shop, view.erp, limit=limit)
        return _preview_of(result, scratch)


def _preview_of(result: SyncResult, scratch: StateStore) -> Preview:
    """One line per order to be created or held, by order id; the counts; the summary line."""
    preview = Preview(sync=result)
    documents = result.push.documents if result.push is not None else []
    held_records = scratch.list_orders(states=[OrderState.HELD])
    held = {record.woo_id: record.reason or "" for record in held_records}
    if result.push is not None:
        held.update(result.push.held.items())  # found by push's own checks
    adopted = result.push.adopted if result.push is not None else []
    lines = [(d.woo_id, _created(d)) for d in documents]
    lines += [(a.woo_id, _adopted(a)) for a in adopted]
    lines += [(woo_id, f"order {woo_id}: would be held: {why}") for woo_id, why in held.items()]
    preview.lines = [line for _, line in sorted(lines)]
    preview.would_create, preview.would_hold = len(documents), len(held)
    preview.lines.append(
        f"dry run: {preview.would_create} sales orders would be created, "
        f"{preview.would_hold} orders held; nothing was written"
    )
    return preview


def _adopted(adopted: PushedOrder) -> str:
    return (
        f"order {adopted.woo_id}: already in Dynamics as {already_as(adopted)} "
        f"({adopted.external_number}): would be recorded as pushed, not created"
    )


def _created(document: DryRunDocument) -> str:
    return (
        f"would create sales order {document.external_number} (order {document.woo_id}, "
        f"{document.lines} lines, total {document.total} {document.currency})"
    )
