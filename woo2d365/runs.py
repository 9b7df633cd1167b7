"""Command-level operations: one function per command, each with its run record.

The CLI parses options and renders what these return; everything that decides lives in the
pipeline steps these call. The lines printed afterwards are in :mod:`woo2d365.summaries`, the dry
run of ``sync`` in :mod:`woo2d365.preview` (both re-exported here).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from woo2d365.errors import RUN_OUTCOME_OF_EXIT, ExitCode, LockHeld, RunOutcome, UsageError
from woo2d365.pipeline import retry as retry_step
from woo2d365.pipeline.context import RunContext
from woo2d365.pipeline.followup import FollowUpOptions, FollowUpResult, is_enabled, step_function
from woo2d365.pipeline.pull import PullResult, pull
from woo2d365.pipeline.push import PushResult, push
from woo2d365.pipeline.reconcile import ReconcileReport, reconcile
from woo2d365.pipeline.resolve import (
    Resolved,
    acknowledge,
    force_retry,
    resolve_document,
    resolve_skip,
)
from woo2d365.pipeline.sync import LOCK_NAME, SyncResult, note_lost_lease, run_lock, sync
from woo2d365.pipeline.validate import ValidateResult, validate
from woo2d365.preview import Preview, preview
from woo2d365.runtime import Runtime
from woo2d365.summaries import (
    SUMMARY_NAMES,
    named_orders,
    pull_summary,
    push_summary,
    reconcile_summary,
    retry_summary,
    sync_summary,
    validate_summary,
)

__all__ = [
    "SUMMARY_NAMES",
    "Preview",
    "RetryOutcome",
    "named_orders",
    "parse_since",
    "preview",
    "pull_summary",
    "push_summary",
    "reconcile_summary",
    "retry_summary",
    "run_ack",
    "run_follow_up",
    "run_pull",
    "run_push",
    "run_reconcile",
    "run_resolve",
    "run_retry",
    "run_sync",
    "run_validate",
    "sync_summary",
    "validate_summary",
]


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
    with closing(runtime.shop()) as shop, runtime.recorded_run("pull") as (ctx, record):
        result = pull(ctx, shop, since=since, order_ids=order_ids)
        record.update(outcome="ok", counts=result.counts())
    return result


def run_validate(runtime: Runtime, *, order_ids: list[int] | None = None) -> ValidateResult:
    """``validate``: new and held orders become ready or held."""
    with closing(runtime.erp()) as erp, runtime.recorded_run("validate") as (ctx, record):
        result = validate(ctx, erp, order_ids=order_ids)
        record.update(
            outcome=_attention_if(result.needs_attention),
            counts={"ready": len(result.ready), "held": len(result.held)},
        )
    return result


def _attention_if(needs_a_person: bool) -> str:
    """The run outcome of a command that ended normally: ``attention`` when orders of the run
    need a person, else ``ok``."""
    return (RunOutcome.ATTENTION if needs_a_person else RunOutcome.OK).value


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
        with closing(runtime.erp()) as erp:
            return push(runtime.context(), erp, order_ids=order_ids, dry_run=True, limit=limit)
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
    with closing(runtime.erp()) as erp, ExitStack() as stack:
        writer = None
        if runtime.settings.woocommerce.write_back:
            writer = stack.enter_context(closing(runtime.shop()))
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
            result.lease_lost = _lease_lost(lost, ctx, record, "push", "push")
        return result


def _lease_lost(
    lost: threading.Event, ctx: RunContext, record: dict[str, Any], step: str, what: str
) -> bool:
    """True when the run lock's lease was not renewed in time while ``what`` ran: the run is then
    recorded as an error, never a success, with an error event of ``step``."""
    if not lost.is_set():
        return False
    record["outcome"] = RunOutcome.ERROR.value
    note_lost_lease(ctx, step, what)
    return True


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
    configuration turns it on. Switched off or not, it exits 4 while another run holds the lock,
    as the contract says of these commands.
    """
    if not is_enabled(runtime.settings, name):
        if not options.dry_run:
            with _run_lock(runtime.context(), name):
                pass
        result = FollowUpResult(step=name, dry_run=options.dry_run)
        result.lines.append(f"{name}: off ([{name}] enabled = false); nothing done")
        return result
    step = step_function(name)
    with closing(runtime.shop()) as shop, closing(runtime.erp()) as erp:
        if options.dry_run:
            return step(runtime.context(), shop, erp, options)
        ctx = runtime.context()
        with _run_lock(ctx, name) as lost, runtime.recorded_run(name, ctx) as (ctx, record):
            result = step(ctx, shop, erp, options)
            record.update(
                outcome=RUN_OUTCOME_OF_EXIT[result.exit_code].value,
                counts={**result.counts, "attention": len(result.attention)},
            )
            result.lease_lost = _lease_lost(lost, ctx, record, name, "step")
        return result


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
            outcome=_attention_if(bool(result.refused)),
            counts={"retried": len(result.retried), "refused": len(result.refused)},
        )
    return RetryOutcome(result.retried, result.refused)


def _force(runtime: Runtime, ids: list[int]) -> RetryOutcome:
    outcome = RetryOutcome([], [])
    with closing(runtime.erp()) as erp, runtime.recorded_run("retry") as (ctx, record):
        for woo_id in dict.fromkeys(ids):
            try:
                force_retry(ctx, erp, woo_id)
                outcome.retried.append(woo_id)
            except UsageError as exc:
                outcome.refused.append((woo_id, exc.message))
        record.update(
            outcome=_attention_if(bool(outcome.refused)),
            counts={"retried": len(outcome.retried), "refused": len(outcome.refused)},
        )
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
    with closing(runtime.erp()) as erp:
        with runtime.recorded_run("resolve") as (ctx, record):
            done = resolve_document(ctx, erp, woo_id, document)
            record.update(outcome="ok", counts={"resolved": 1})
        return done


def run_reconcile(
    runtime: Runtime, *, since: datetime | None = None, fix: bool = False
) -> ReconcileReport:
    """``reconcile``: store vs Dynamics vs shop; ``fix`` adopts and queues write-backs."""
    with closing(runtime.erp()) as erp:
        with runtime.recorded_run("reconcile") as (ctx, record):
            report = reconcile(ctx, erp, since=since, fix=fix)
            record.update(
                outcome=RUN_OUTCOME_OF_EXIT[report.exit_code].value,
                counts={name: len(items) for name, items in report.found.items()},
            )
        return report


def run_ack(runtime: Runtime, woo_id: int) -> Resolved:
    """``ack``: a change in the shop after the push has been seen."""
    with runtime.recorded_run("ack") as (ctx, record):
        done = acknowledge(ctx, woo_id)
        record.update(outcome="ok", counts={"acknowledged": 1})
    return done
