"""The lines a command prints when it is done: one per step, and the orders that need a person."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from woo2d365.pipeline.pull import PullResult
from woo2d365.pipeline.push import PushResult
from woo2d365.pipeline.reconcile import ReconcileReport
from woo2d365.pipeline.sync import SyncResult
from woo2d365.pipeline.validate import ValidateResult

if TYPE_CHECKING:
    from woo2d365.runs import RetryOutcome


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
    return "\n".join([_sync_line(result), *_held_and_failed(result), *_follow_up_lines(result)])


def _sync_line(result: SyncResult) -> str:
    parts = [f"sync run {result.run_id}:"]
    if result.pull is not None:
        parts.append(f"pulled {result.pull.new} new, {result.pull.updated} updated;")
    if result.validate is not None:
        parts.append(f"{len(result.validate.ready)} ready, {len(result.validate.held)} held;")
    if result.push is not None:
        parts.append(f"{result.push.in_dynamics} pushed, {len(result.push.failed)} failed;")
    problems = (result.shop_problem, result.dynamics_problem, result.config_problem)
    parts += [f"{problem};" for problem in problems if problem]
    parts.append(f"outcome {result.outcome}")
    return " ".join(parts)


def _held_and_failed(result: SyncResult) -> list[str]:
    # Each result keeps the first orders of a kind and counts them all (pipeline/kept.py).
    problems: dict[str, list[Mapping[int, str]]] = {"held": [], "failed": []}
    if result.validate is not None:
        problems["held"].append(result.validate.held)
    if result.push is not None:
        problems["held"].append(result.push.held)
        problems["failed"].append(result.push.failed)
    lines = []
    for name, kinds in problems.items():
        count = sum(len(orders) for orders in kinds)
        if count:
            named = {woo_id: why for orders in kinds for woo_id, why in orders.items()}
            lines.append(named_orders(name, named, count=count))
    return lines


def _follow_up_lines(result: SyncResult) -> list[str]:
    lines: list[str] = []
    for step in result.follow_ups.values():
        lines.append(step.summary())
        lines += [f"  {item}" for item in step.attention[:SUMMARY_NAMES]]
        if len(step.attention) > SUMMARY_NAMES:
            lines.append(f"  and {len(step.attention) - SUMMARY_NAMES} more")
    return lines


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
