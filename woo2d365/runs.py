"""Command-level operations: one function per command, each with its run record and summary.

The CLI parses options and renders what these return; everything that decides lives in the
pipeline steps these call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from woo2d365.errors import ExitCode, OrderDataError, UsageError, Woo2D365Error
from woo2d365.model import OrderState
from woo2d365.pipeline import retry as retry_step
from woo2d365.pipeline.pull import PullResult, pull, read_cursor
from woo2d365.pipeline.push import PushResult, push
from woo2d365.pipeline.sync import SyncResult, sync
from woo2d365.pipeline.validate import (
    ValidateResult,
    problems_of,
    refresh_item_mirror,
    validate,
)
from woo2d365.runtime import Runtime
from woo2d365.shop.mapping import order_from_shop


def parse_since(value: str | None) -> datetime | None:
    """``--since`` → aware UTC datetime (a value without offset is read as UTC)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--since {value!r} is not an ISO date-time (2026-11-01T00:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, Woo2D365Error) and exc.exit_code == ExitCode.UNREACHABLE:
        return "unreachable"
    return "error"


def run_pull(
    runtime: Runtime, *, since: datetime | None = None, order_ids: list[int] | None = None
) -> PullResult:
    """``pull``: new and changed shop orders into the store."""
    shop = runtime.shop()
    with runtime.recorded_run("pull") as (ctx, record):
        try:
            result = pull(ctx, shop, since=since, order_ids=order_ids)
        except BaseException as exc:
            record["outcome"] = _outcome(exc)
            raise
        record.update(outcome="ok", counts=result.counts())
    return result


def run_validate(runtime: Runtime, *, order_ids: list[int] | None = None) -> ValidateResult:
    """``validate``: new and held orders become ready or held."""
    erp = runtime.erp()
    try:
        with runtime.recorded_run("validate") as (ctx, record):
            try:
                result = validate(ctx, erp, order_ids=order_ids)
            except BaseException as exc:
                record["outcome"] = _outcome(exc)
                raise
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
    """``push``: ready orders into Dynamics (a dry run records nothing)."""
    erp = runtime.erp()
    writer = runtime.shop() if runtime.settings.woocommerce.write_back and not dry_run else None
    try:
        if dry_run:
            return push(runtime.context(), erp, order_ids=order_ids, dry_run=True, limit=limit)
        with runtime.recorded_run("push") as (ctx, record):
            try:
                result = push(ctx, erp, shop_writer=writer, order_ids=order_ids, limit=limit)
            except BaseException as exc:
                record["outcome"] = _outcome(exc)
                raise
            record.update(
                outcome={0: "ok", 1: "attention", 3: "unreachable"}.get(result.exit_code, "error"),
                counts={
                    "pushed": len(result.pushed),
                    "failed": len(result.failed),
                    "in_doubt": len(result.in_doubt),
                },
            )
        return result
    finally:
        erp.close()


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
) -> RetryOutcome:
    """``retry``: reset attempts; with ``now``, validate and push those orders at once."""
    store = runtime.store
    wanted = retry_step.select_for_retry(
        store, ids=ids, failed=failed, held=held, everything=everything
    )
    with runtime.recorded_run("retry") as (_ctx, record):
        result = retry_step.retry(store, wanted, run_id=_ctx.run_id)
        record.update(
            outcome="attention" if result.refused else "ok",
            counts={"retried": len(result.retried), "refused": len(result.refused)},
        )
    outcome = RetryOutcome(result.retried, result.refused)
    if now and result.retried:
        outcome.validated = run_validate(runtime, order_ids=result.retried)
        outcome.pushed = run_push(runtime, order_ids=result.retried)
    return outcome


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
        cursor = read_cursor(ctx)
        if cursor is not None:
            after: datetime | None = cursor - timedelta(
                minutes=settings.woocommerce.overlap_minutes
            )
        else:
            after = settings.woocommerce.start_date
        candidates: dict[int, dict[str, Any]] = {}
        for record in ctx.store.list_orders(
            states=[OrderState.NEW, OrderState.READY, OrderState.HELD], with_raw=True
        ):
            candidates[record.woo_id] = record.raw or {}
        for page in shop.iter_orders_modified_after(after):
            for raw in page.orders:
                known = ctx.store.get_order(int(raw.get("id", 0)))
                if known is None or known.state in (
                    OrderState.NEW,
                    OrderState.READY,
                    OrderState.HELD,
                    OrderState.FAILED,
                ):
                    candidates[int(raw["id"])] = raw
        taken = {s.strip().lower() for s in settings.woocommerce.statuses}
        for woo_id in sorted(candidates):
            if limit is not None and result.would_create >= limit:
                break
            raw = candidates[woo_id]
            if str(raw.get("status", "")).lower() not in taken:
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
    line = (
        f"push: {len(result.pushed) + len(result.resolved)} pushed, {len(result.failed)} failed, "
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
        pushed = len(result.push.pushed) + len(result.push.resolved)
        parts.append(f"{pushed} pushed, {len(result.push.failed)} failed;")
    for problem in (result.shop_problem, result.dynamics_problem):
        if problem:
            parts.append(problem + ";")
    if result.config_problem is not None:
        parts.append(f"{result.config_problem};")
    parts.append(f"outcome {result.outcome}")
    return " ".join(parts)


def retry_summary(outcome: RetryOutcome) -> str:
    """One line about a retry."""
    line = f"retry: {len(outcome.retried)} reset, {len(outcome.refused)} not retried"
    if outcome.pushed is not None:
        line += "; " + push_summary(outcome.pushed)
    return line
