"""Command-level operations: one function per command, each with its run record and summary.

The CLI parses options and renders what these return; everything that decides lives in the
pipeline steps these call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from woo2d365.errors import RUN_OUTCOME_OF_EXIT, ExitCode, LockHeld, OrderDataError, UsageError
from woo2d365.model import OrderState
from woo2d365.pipeline import retry as retry_step
from woo2d365.pipeline.context import RunContext
from woo2d365.pipeline.followup import FollowUpOptions, FollowUpResult, is_enabled, step_function
from woo2d365.pipeline.pull import PullResult, not_taken_reason, pull, window_start
from woo2d365.pipeline.push import PushResult, push
from woo2d365.pipeline.reconcile import ReconcileReport, reconcile
from woo2d365.pipeline.resolve import (
    Resolved,
    acknowledge,
    force_retry,
    resolve_document,
    resolve_skip,
)
from woo2d365.pipeline.sync import LOCK_NAME, SyncResult, run_lock, sync
from woo2d365.pipeline.validate import (
    ValidateResult,
    problems_of,
    refresh_item_mirror,
    validate,
)
from woo2d365.runtime import Runtime
from woo2d365.shop.mapping import order_from_shop


def parse_since(value: str | None, *, option: str = "--since") -> datetime | None:
    """``--since`` → aware UTC datetime (a value without offset is read as UTC)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option} {value!r} is not an ISO date-time (2026-11-01T00:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def run_pull(
    runtime: Runtime, *, since: datetime | None = None, order_ids: list[int] | None = None
) -> PullResult:
    """``pull``: new and changed shop orders into the store."""
    shop = runtime.shop()
    with runtime.recorded_run("pull") as (ctx, record):
        result = pull(ctx, shop, since=since, order_ids=order_ids)
        record.update(outcome="ok", counts=result.counts())
    return result


def run_validate(runtime: Runtime, *, order_ids: list[int] | None = None) -> ValidateResult:
    """``validate``: new and held orders become ready or held."""
    erp = runtime.erp()
    try:
        with runtime.recorded_run("validate") as (ctx, record):
            result = validate(ctx, erp, order_ids=order_ids)
            record.update(
                outcome="attention" if result.needs_attention else "ok",
                counts={"ready": len(result.ready), "held": len(result.held)},
            )
    finally:
        erp.close()
    return result


def run_push(
    runtime: Runtime,
    *,
    order_ids: list[int] | None = None,
    dry_run: bool = False,
    limit: int | None = None,
) -> PushResult:
    """``push``: ready orders into Dynamics under the run lock (a dry run records nothing).

    While a ``sync`` or another pusher holds the run lock this raises :class:`LockHeld` before
    anything is written or sent.
    """
    if dry_run:
        erp = runtime.erp()
        try:
            return push(runtime.context(), erp, order_ids=order_ids, dry_run=True, limit=limit)
        finally:
            erp.close()
    ctx = runtime.context()
    with _run_lock(ctx, "push") as lost:
        return _push(runtime, ctx, lost, order_ids=order_ids, limit=limit)


def _push(
    runtime: Runtime,
    ctx: RunContext,
    lost: threading.Event,
    *,
    order_ids: list[int] | None,
    limit: int | None,
) -> PushResult:
    """The recorded push of ``push`` and ``retry --now``, under the run lock whose loss is
    ``lost``: a push that lost its lease is an error, never a success."""
    erp = runtime.erp()
    try:
        writer = runtime.shop() if runtime.settings.woocommerce.write_back else None
        with runtime.recorded_run("push", ctx) as (ctx, record):
            result = push(ctx, erp, shop_writer=writer, order_ids=order_ids, limit=limit)
            record.update(
                outcome=RUN_OUTCOME_OF_EXIT[result.exit_code].value,
                counts={
                    "pushed": len(result.pushed),
                    "failed": len(result.failed),
                    "in_doubt": len(result.in_doubt),
                },
            )
            if lost.is_set():  # the lease was not renewed in time: not a success
                record["outcome"] = "error"
                ctx.event("push", "the run lock was lost while this push ran", level="error")
        return result
    finally:
        erp.close()


@contextmanager
def _run_lock(ctx: RunContext, command: str) -> Iterator[threading.Event]:
    """The run lock of ``sync``, for another command that writes to Dynamics or the shop.

    Refused at once (:class:`LockHeld`, exit 4, nothing written) while a sync or another pusher
    holds it; yields the event set when the lease is lost.
    """
    with ExitStack() as stack:
        try:
            lease = stack.enter_context(run_lock(ctx))
        except LockHeld:
            holder = ctx.store.lock_holder(LOCK_NAME)
            by = f" ({holder})" if holder else ""
            raise LockHeld(
                f"another run{by} holds the run lock; {command} did nothing, try again later"
            ) from None
        yield lease.lost


def run_follow_up(runtime: Runtime, name: str, options: FollowUpOptions) -> FollowUpResult:
    """``shipments``, ``refunds`` or ``stock`` on its own: under the run lock, with a run record.

    A dry run takes no lock and records nothing. A step switched off in its settings section does
    nothing and says so (exit 0): it changes what customers or the books receive, so only the
    configuration turns it on.
    """
    if not is_enabled(runtime.settings, name):
        result = FollowUpResult(step=name, dry_run=options.dry_run)
        result.lines.append(f"{name}: off ([{name}] enabled = false); nothing done")
        return result
    step = step_function(name)
    shop, erp = runtime.shop(), runtime.erp()
    try:
        if options.dry_run:
            return step(runtime.context(), shop, erp, options)
        ctx = runtime.context()
        with _run_lock(ctx, name) as lost, runtime.recorded_run(name, ctx) as (ctx, record):
            result = step(ctx, shop, erp, options)
            record.update(
                outcome=RUN_OUTCOME_OF_EXIT[result.exit_code].value,
                counts={**result.counts, "attention": len(result.attention)},
            )
            if lost.is_set():
                result.lease_lost = True
                record["outcome"] = "error"
                ctx.event(name, "the run lock was lost while this step ran", level="error")
        return result
    finally:
        erp.close()
        shop.close()


def run_sync(
    runtime: Runtime, *, limit: int | None = None, on_step: Callable[[str], Any] | None = None
) -> SyncResult:
    """``sync``: the whole job under the run lock."""
    return sync(runtime.context(), runtime.shop, runtime.erp, limit=limit, on_step=on_step)


@dataclass
class RetryOutcome:
    """What ``retry`` did, and the push it ran with ``--now``."""

    retried: list[int]
    refused: list[tuple[int, str]]
    validated: ValidateResult | None = None
    pushed: PushResult | None = None

    @property
    def exit_code(self) -> ExitCode:
        """1 when an order could not be retried or was held/failed again."""
        if self.pushed is not None and self.pushed.exit_code != ExitCode.OK:
            return self.pushed.exit_code
        if self.refused or (self.validated is not None and self.validated.needs_attention):
            return ExitCode.ATTENTION
        return ExitCode.OK


def run_retry(
    runtime: Runtime,
    *,
    ids: list[int],
    failed: bool,
    held: bool,
    everything: bool,
    now: bool,
    force: bool = False,
) -> RetryOutcome:
    """``retry``: reset attempts; with ``now``, validate and push those orders at once; with
    ``force``, send again orders whose Dynamics document was deleted (checked first).

    ``--now`` takes the run lock first: while a sync or a pusher holds it, :class:`LockHeld` is
    raised before any order is reset.
    """
    if force and (failed or held or everything or not ids):
        raise UsageError("--force takes order ids (orders whose Dynamics document was deleted)")

    def reset() -> RetryOutcome:
        if force:
            return _force(runtime, ids)
        return _retry(runtime, ids=ids, failed=failed, held=held, everything=everything)

    if not now:
        return reset()
    ctx = runtime.context()
    with _run_lock(ctx, "retry --now") as lost:
        outcome = reset()
        if outcome.retried:
            outcome.validated = run_validate(runtime, order_ids=outcome.retried)
            outcome.pushed = _push(runtime, ctx, lost, order_ids=outcome.retried, limit=None)
    return outcome


def _retry(
    runtime: Runtime, *, ids: list[int], failed: bool, held: bool, everything: bool
) -> RetryOutcome:
    store = runtime.store
    wanted = retry_step.select_for_retry(
        store, ids=ids, failed=failed, held=held, everything=everything
    )
    with runtime.recorded_run("retry") as (ctx, record):
        result = retry_step.retry(store, wanted, run_id=ctx.run_id)
        record.update(
            outcome="attention" if result.refused else "ok",
            counts={"retried": len(result.retried), "refused": len(result.refused)},
        )
    return RetryOutcome(result.retried, result.refused)


def _force(runtime: Runtime, ids: list[int]) -> RetryOutcome:
    erp = runtime.erp()
    outcome = RetryOutcome([], [])
    try:
        with runtime.recorded_run("retry") as (ctx, record):
            for woo_id in dict.fromkeys(ids):
                try:
                    force_retry(ctx, erp, woo_id)
                    outcome.retried.append(woo_id)
                except UsageError as exc:
                    outcome.refused.append((woo_id, exc.message))
            record.update(
                outcome="attention" if outcome.refused else "ok",
                counts={"retried": len(outcome.retried), "refused": len(outcome.refused)},
            )
    finally:
        erp.close()
    return outcome


def run_resolve(
    runtime: Runtime, woo_id: int, *, document: str | None, skip: bool, reason: str | None
) -> Resolved:
    """``resolve``: close an order by hand (``--document NUMBER`` or ``--skip --reason TEXT``)."""
    if (document is None) == (not skip):
        raise UsageError("give either --document NUMBER or --skip --reason TEXT")
    if document is None and not (reason or "").strip():
        raise UsageError("--skip needs --reason TEXT (why the order is not to be sent)")
    if document is not None and reason:
        raise UsageError("--reason goes with --skip; --document records the document itself")
    if document is None:
        with runtime.recorded_run("resolve") as (ctx, record):
            done = resolve_skip(ctx, woo_id, reason or "")
            record.update(outcome="ok", counts={"resolved": 1})
        return done
    erp = runtime.erp()
    try:
        with runtime.recorded_run("resolve") as (ctx, record):
            done = resolve_document(ctx, erp, woo_id, document)
            record.update(outcome="ok", counts={"resolved": 1})
        return done
    finally:
        erp.close()


def run_reconcile(
    runtime: Runtime, *, since: datetime | None = None, fix: bool = False
) -> ReconcileReport:
    """``reconcile``: store vs Dynamics vs shop; ``fix`` adopts and queues write-backs."""
    erp = runtime.erp()
    try:
        with runtime.recorded_run("reconcile") as (ctx, record):
            report = reconcile(ctx, erp, since=since, fix=fix)
            record.update(
                outcome=RUN_OUTCOME_OF_EXIT[report.exit_code].value,
                counts={name: len(items) for name, items in report.found.items()},
            )
        return report
    finally:
        erp.close()


def run_ack(runtime: Runtime, woo_id: int) -> Resolved:
    """``ack``: a change in the shop after the push has been seen."""
    with runtime.recorded_run("ack") as (ctx, record):
        done = acknowledge(ctx, woo_id)
        record.update(outcome="ok", counts={"acknowledged": 1})
    return done


def reconcile_summary(report: ReconcileReport) -> list[str]:
    """What reconcile found, a line per finding and one in all."""
    lines = [
        f"{name}: order {f.woo_id if f.woo_id is not None else '-'} "
        f"{f.external_document_number} {', '.join(f.d365_numbers) or '-'}: {f.detail}"
        for name, items in report.found.items()
        for f in items
    ]
    counts = ", ".join(
        f"{len(items)} {name.replace('_', ' ')}" for name, items in report.found.items()
    )
    lines.append(
        f"reconcile: {report.orders_compared} orders, {report.documents_read} documents; {counts}"
        + (
            f"; fixed: {len(report.adopted)} adopted, {len(report.write_backs_queued)} write-backs "
            "queued"
            if report.adopted or report.write_backs_queued
            else ""
        )
    )
    return lines


@dataclass
class Preview:
    """What ``sync --dry-run`` would do, one line per order."""

    lines: list[str] = field(default_factory=list)
    would_create: int = 0
    would_hold: int = 0

    @property
    def exit_code(self) -> ExitCode:
        """1 when an order would be held."""
        return ExitCode.ATTENTION if self.would_hold else ExitCode.OK


def preview(runtime: Runtime, *, limit: int | None = None) -> Preview:
    """Read both systems, write nothing: which sales orders a sync would create, which it holds."""
    ctx = runtime.context()
    settings = runtime.settings
    shop, erp = runtime.shop(), runtime.erp()
    result = Preview()
    try:
        refresh = refresh_item_mirror(ctx, erp, [], dry_run=True)
        items = refresh.items if refresh is not None else None
        after = window_start(ctx)
        candidates: dict[int, dict[str, Any]] = {}
        for record in ctx.store.list_orders(
            states=[OrderState.NEW, OrderState.READY, OrderState.HELD], with_raw=True
        ):
            candidates[record.woo_id] = record.raw or {}
        for page in shop.iter_orders_modified_after(after):
            for raw in page.orders:
                known = ctx.store.get_order(int(raw.get("id", 0)))
                if known is None and not_taken_reason(settings.woocommerce, raw) is not None:
                    continue  # a real pull would not take it either
                if known is None or known.state in (
                    OrderState.NEW,
                    OrderState.READY,
                    OrderState.HELD,
                    OrderState.FAILED,
                ):
                    candidates[int(raw["id"])] = raw
        for woo_id in sorted(candidates):
            if limit is not None and result.would_create >= limit:
                break
            raw = candidates[woo_id]
            if not settings.woocommerce.takes(str(raw.get("status", ""))):
                continue
            try:
                order = order_from_shop(raw)
                number = erp.external_number(order)
            except OrderDataError as exc:
                result.would_hold += 1
                result.lines.append(f"order {woo_id}: would be held: {exc.message}")
                continue
            resolution = problems_of(ctx, erp, order, items=items)
            if resolution.problems:
                result.would_hold += 1
                result.lines.append(
                    f"order {woo_id}: would be held: {'; '.join(resolution.problems)}"
                )
                continue
            result.would_create += 1
            result.lines.append(
                f"would create sales order {number} (order {woo_id}, {len(order.lines)} lines, "
                f"total {order.total} {order.currency})"
            )
    finally:
        erp.close()
    result.lines.append(
        f"dry run: {result.would_create} sales orders would be created, "
        f"{result.would_hold} orders held; nothing was written"
    )
    return result


def pull_summary(result: PullResult) -> str:
    """One line about a pull."""
    return (
        f"pull: {result.fetched} fetched, {result.new} new, {result.updated} updated, "
        f"{result.skipped} skipped, {result.changed_after_push} changed after push"
    )


def validate_summary(result: ValidateResult) -> str:
    """One line about a validate."""
    return (
        f"validate: {len(result.ready)} ready, {len(result.held)} held "
        f"({len(result.released)} released)"
    )


def push_summary(result: PushResult) -> str:
    """One line about a push."""
    adopted = f" ({len(result.adopted)} already in Dynamics)" if result.adopted else ""
    line = (
        f"push: {result.in_dynamics} pushed{adopted}, {len(result.failed)} failed, "
        f"{len(result.held)} held, {len(result.in_doubt)} in doubt, "
        f"{len(result.retry_later)} to retry"
    )
    if result.unreachable:
        line += f"; Dynamics unreachable: {result.unreachable}"
    return line


def sync_summary(result: SyncResult) -> str:
    """The one line cron mails: what each step did, and what needs attention."""
    parts = [f"sync run {result.run_id}:"]
    if result.pull is not None:
        parts.append(f"pulled {result.pull.new} new, {result.pull.updated} updated;")
    if result.validate is not None:
        parts.append(f"{len(result.validate.ready)} ready, {len(result.validate.held)} held;")
    if result.push is not None:
        parts.append(f"{result.push.in_dynamics} pushed, {len(result.push.failed)} failed;")
    for problem in (result.shop_problem, result.dynamics_problem):
        if problem:
            parts.append(problem + ";")
    if result.config_problem is not None:
        parts.append(f"{result.config_problem};")
    parts.append(f"outcome {result.outcome}")
    line = " ".join(parts)
    # Each result keeps the first orders of a kind and counts them all (pipeline/kept.py).
    problems: dict[str, list[Mapping[int, str]]] = {"held": [], "failed": []}
    if result.validate is not None:
        problems["held"].append(result.validate.held)
    if result.push is not None:
        problems["held"].append(result.push.held)
        problems["failed"].append(result.push.failed)
    for name, kinds in problems.items():
        count = sum(len(orders) for orders in kinds)
        if count:
            named = {woo_id: why for orders in kinds for woo_id, why in orders.items()}
            line += "\n" + named_orders(name, named, count=count)
    for step in result.follow_ups.values():
        line += "\n" + step.summary()
        for item in step.attention[:SUMMARY_NAMES]:
            line += f"\n  {item}"
        if len(step.attention) > SUMMARY_NAMES:
            line += f"\n  and {len(step.attention) - SUMMARY_NAMES} more"
    return line


SUMMARY_NAMES = 5  # orders named in a summary, then "and N more"


def named_orders(what: str, orders: Mapping[int, str], *, count: int | None = None) -> str:
    """``held: 7 orders (woo2d365 status --state held)`` and one line per order, up to
    :data:`SUMMARY_NAMES`, then ``and N more``; ``count`` when ``orders`` names only some."""
    count = len(orders) if count is None else count
    lines = [f"{what}: {count} order{'s' if count != 1 else ''} (woo2d365 status --state {what})"]
    shown = sorted(orders.items())[:SUMMARY_NAMES]
    lines += [f"  order {woo_id}: {reason}" for woo_id, reason in shown]
    if count > len(shown):
        lines.append(f"  and {count - len(shown)} more")
    return "\n".join(lines)


def retry_summary(outcome: RetryOutcome) -> str:
    """One line about a retry."""
    line = f"retry: {len(outcome.retried)} reset, {len(outcome.refused)} not retried"
    validated = outcome.validated
    if validated is not None:
        line += f"; validated: {len(validated.ready)} ready, {len(validated.held)} still held"
    if outcome.pushed is not None:
        line += "; " + push_summary(outcome.pushed)
    if validated is not None and validated.held:
        line += "\n" + named_orders("held", validated.held)
    return line
