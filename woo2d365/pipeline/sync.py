"""``sync``: pull, validate and push in one run, under the run lock.

The lock is a lease row in the state store, renewed while the run lasts, so a run killed with
SIGKILL stops blocking others once its lease expires (well within the contract's 5 minutes).
Pull, validate and push run at once, joined by hand-overs (``pipeline/handover.py``), so the
first create leaves as soon as the first page is validated. Each step's outage is contained: with
the shop down, orders already pulled are still pushed; with Dynamics down, pulling still happens.
The run record keeps the counts of every step.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from woo2d365.alerts import AlertCenter, DigestOutcome
from woo2d365.erp.base import ErpTarget
from woo2d365.errors import (
    RUN_OUTCOME_OF_EXIT,
    ConfigError,
    DynamicsError,
    ExitCode,
    LockHeld,
    RunOutcome,
    ShopError,
    Woo2D365Error,
)
from woo2d365.pipeline.context import RunContext
from woo2d365.pipeline.followup import (
    FollowUpOptions,
    FollowUpResult,
    enabled_steps,
    step_function,
)
from woo2d365.pipeline.handover import Handover
from woo2d365.pipeline.heartbeat import Heartbeat
from woo2d365.pipeline.pull import PullResult, pull
from woo2d365.pipeline.push import PushResult, process_has_ended, push
from woo2d365.pipeline.validate import ValidateResult, validate
from woo2d365.shop.client import WooClient
from woo2d365.store.base import StateStore

LOCK_NAME = "sync"


@dataclass
class SyncResult:
    """What one sync run did."""

    run_id: int
    pull: PullResult | None = None
    validate: ValidateResult | None = None
    push: PushResult | None = None
    shop_problem: str | None = None
    dynamics_problem: str | None = None
    config_problem: Woo2D365Error | None = None
    lease_lost: bool = False
    crashed: bool = False  # an unexpected exception (a bug) ended the run
    follow_ups: dict[str, FollowUpResult] = field(default_factory=dict)
    alerts: DigestOutcome | None = None

    @property
    def shop_reachable(self) -> bool | None:
        """False when the shop could not be reached in this run; None when not tried."""
        if self.shop_problem:
            return False
        return True if self.pull is not None else None

    @property
    def dynamics_reachable(self) -> bool | None:
        """False when Dynamics could not be reached in this run, or left orders of it for a later
        run (``PushResult.dynamics_away``); None when not tried."""
        if self.dynamics_problem or (self.push is not None and self.push.dynamics_away):
            return False
        return True if (self.push is not None or self.validate is not None) else None

    @property
    def held(self) -> int:
        """Orders held by this run."""
        return len(self.validate.newly_held) if self.validate else 0

    @property
    def failed(self) -> int:
        """Orders failed in this run."""
        return len(self.push.failed) if self.push else 0

    @property
    def exit_code(self) -> ExitCode:
        """The contract's exit code: a person is needed (2), a system was away (3), orders (1)."""
        if self.crashed:
            return ExitCode.INTERNAL
        if self.config_problem is not None:
            return self.config_problem.exit_code
        if self.lease_lost:
            return ExitCode.UNREACHABLE
        if self.shop_reachable is False or self.dynamics_reachable is False:
            return ExitCode.UNREACHABLE
        if self.held or self.failed or (self.push is not None and self.push.held):
            return ExitCode.ATTENTION
        if any(step.attention for step in self.follow_ups.values()):
            return ExitCode.ATTENTION
        return ExitCode.OK

    @property
    def outcome(self) -> str:
        """The run record's outcome word; a run that crashed or lost its lease is an ``error``."""
        if self.crashed or self.lease_lost:
            return RunOutcome.ERROR.value
        return RUN_OUTCOME_OF_EXIT[self.exit_code].value

    def counts(self) -> dict[str, int]:
        """Counts per step for the run record."""
        counts: dict[str, int] = {}
        if self.pull is not None:
            counts.update({f"pull_{k}": v for k, v in self.pull.counts().items()})
        if self.validate is not None:
            counts["validate_ready"] = len(self.validate.ready)
            counts["validate_held"] = len(self.validate.held)
            counts["validate_newly_held"] = len(self.validate.newly_held)
            counts["validate_released"] = len(self.validate.released)
        if self.push is not None:
            counts["push_pushed"] = len(self.push.pushed)
            counts["push_resolved"] = len(self.push.resolved)
            counts["push_adopted"] = len(self.push.adopted)
            counts["push_failed"] = len(self.push.failed)
            counts["push_held"] = len(self.push.held)
            counts["push_retry_later"] = len(self.push.retry_later)
            counts["push_in_doubt"] = len(self.push.in_doubt)
            counts["push_total_mismatches"] = len(self.push.total_mismatches)
        for name, step in self.follow_ups.items():
            counts.update({f"{name}_{key}": value for key, value in step.counts.items()})
            counts[f"{name}_attention"] = len(step.attention)
        return counts


def _acquire_run_lock(ctx: RunContext, ttl: float) -> bool:
    """Take the run lock; a lock left by an ended process of this host is taken over at once.

    Releasing "as" the holder removes the lease only while that holder still has it, so a live
    process's lock is never freed. A refused run writes nothing.
    """
    store = ctx.store
    if store.acquire_lock(LOCK_NAME, ctx.worker, ctx.clock(), ttl):
        return True
    holder = store.lock_holder(LOCK_NAME)
    if holder and holder != ctx.worker and process_has_ended(holder):
        store.release_lock(LOCK_NAME, holder)
        if store.acquire_lock(LOCK_NAME, ctx.worker, ctx.clock(), ttl):
            ctx.log.warning(
                "took over the run lock of %s, a process that has ended",
                holder,
                extra={"step": "sync"},
            )
            return True
    return False


@contextmanager
def run_lock(ctx: RunContext, ttl: float | None = None) -> Iterator[Heartbeat]:
    """Hold the run lock for the block, or raise :class:`LockHeld` at once.

    The lease is renewed every third of ``ttl`` by a heartbeat; when a renewal fails the lease
    counts as lost and ``ctx.lease_lost`` tells the steps to stop claiming work. A lock of a
    process that died (kill -9) stops blocking at once when that process ran on this host, else
    when its lease expires.
    """
    lease = ttl or ctx.settings.state.lease_seconds
    if not _acquire_run_lock(ctx, lease):
        raise LockHeld("another sync holds the run lock; this run did nothing")

    def renew(store: StateStore) -> bool:
        return store.renew_lock(LOCK_NAME, ctx.worker, ctx.clock(), lease)

    try:
        heartbeat = Heartbeat("lease", ctx.store, lease / 3, renew, fatal=True)
        ctx.lease_lost = heartbeat.lost
        with heartbeat:
            yield heartbeat
    finally:
        ctx.store.release_lock(LOCK_NAME, ctx.worker)


def note_lost_lease(ctx: RunContext, step: str, what: str) -> None:
    """The error event of a run whose lease was lost while ``what`` ran (nothing more was
    claimed or sent from then on)."""
    ctx.event(step, f"the run lock was lost while this {what} ran", level="error")


def sync(
    ctx: RunContext,
    shop_factory: Callable[[], WooClient],
    erp_factory: Callable[[], ErpTarget],
    *,
    limit: int | None = None,
    on_step: Callable[[str], Any] | None = None,
    lease_seconds: float | None = None,
) -> SyncResult:
    """One full run under the lock: pull, validate, push, then the enabled follow-up steps
    (shipments, refunds, stock); the run record keeps what happened."""
    with run_lock(ctx, lease_seconds) as lease:
        run_id = ctx.store.start_run("sync", ctx.clock(), worker=ctx.worker)
        ctx.run_id = run_id
        result = SyncResult(run_id=run_id)
        try:
            _steps(ctx, shop_factory, erp_factory, result, limit=limit, on_step=on_step)
        except BaseException:
            result.crashed = True  # a bug (or Ctrl-C): never recorded as a good run
            raise
        finally:
            ctx.log_repeats()
            result.lease_lost = lease.lost.is_set()
            if result.lease_lost:
                note_lost_lease(ctx, "sync", "sync")
            ctx.store.finish_run(run_id, result.outcome, result.counts(), ctx.clock())
        _alert(ctx, result)
    return result


def dry_sync(
    ctx: RunContext,
    shop_factory: Callable[[], WooClient],
    erp_factory: Callable[[], ErpTarget],
    *,
    limit: int | None = None,
) -> SyncResult:
    """``sync --dry-run``: the same steps as :func:`sync`, over a throwaway copy of the store
    (``ctx.store``), with push only preparing its documents (:attr:`PushResult.documents`) and
    no write-back, follow-up step, run lock, run record or alert (docs/architecture.md, "Dry
    run")."""
    result = SyncResult(run_id=0)
    try:
        _steps(ctx, shop_factory, erp_factory, result, limit=limit, on_step=None, dry_run=True)
    except BaseException:
        result.crashed = True
        raise
    finally:
        ctx.log_repeats()
    return result


def _alert(ctx: RunContext, result: SyncResult) -> None:
    """One digest for the run; a failing channel is logged by the alert center, never raised."""
    center = AlertCenter(ctx.store, ctx.settings.alerts, clock=ctx.clock)
    try:
        result.alerts = center.process_run(
            result.run_id,
            shop_reachable=result.shop_reachable,
            dynamics_reachable=result.dynamics_reachable,
            total_mismatches=result.push.total_mismatches if result.push else None,
        )
    except Woo2D365Error as exc:
        ctx.log.warning("alerts not processed: %s", exc, extra={"step": "alerts"})


def _steps(
    ctx: RunContext,
    shop_factory: Callable[[], WooClient],
    erp_factory: Callable[[], ErpTarget],
    result: SyncResult,
    *,
    limit: int | None,
    on_step: Callable[[str], Any] | None,
    dry_run: bool = False,
) -> None:
    """Pull, validate and push at once, each in its own thread, joined by hand-overs: validate
    takes each page as soon as pull has stored it, push each order as soon as it is ready
    (docs/architecture.md, "Memory"). A step's failure is contained as if they ran in turn.
    A dry run's push only prepares its documents, and no follow-up step runs."""
    notify = on_step or (lambda _step: None)
    notify("pull")
    pulled, validated = Handover(), Handover()
    pulling = _Background("pull", lambda: _pull(ctx, shop_factory, pulled), pulled)
    validating: _Background[ValidateResult] | None = None
    try:
        shop = _shop(ctx, shop_factory, result, pulling)
        notify("validate")
        try:
            erp = erp_factory()
        except (DynamicsError, ConfigError) as exc:
            _finish_pull(ctx, result, pulling)
            _contain(ctx, result, "validate", exc, shop=False)
            return
        try:
            validating = _Background(
                "validate", lambda: validate(ctx, erp, after=pulled, hand_over=validated), validated
            )
            validated.wait_started()  # the item mirror is refreshed: push may begin
            if validating.error is None:
                notify("push")
                writer = None if dry_run else shop
                _push(
                    ctx,
                    erp,
                    writer,
                    result,
                    limit=limit,
                    after=validated,
                    pulling=pulling,
                    dry_run=dry_run,
                )
            _finish_pull(ctx, result, pulling)
            if not _finish_validate(ctx, result, validating):
                return  # validate raises only when Dynamics is away with no item mirror yet
            if shop is not None and not dry_run:
                _follow_ups(ctx, shop, erp, result, notify)
        except BaseException:
            _cancel(pulled, validated, pulling, validating)  # before the ERP client is closed
            raise
        finally:
            erp.close()
    except BaseException:
        _cancel(pulled, validated, pulling, validating)
        raise


def _cancel(
    pulled: Handover,
    validated: Handover,
    pulling: _Background[PullResult],
    validating: _Background[ValidateResult] | None,
) -> None:
    """A crash or Ctrl-C: pull and validate stop at their next page; wait for them to end."""
    pulled.cancel()
    validated.cancel()
    pulling.join()
    if validating is not None:
        validating.join()


T = TypeVar("T")


class _Background(Generic[T]):
    """One step run in a thread of its own; its hand-over is finished however it ends."""

    def __init__(self, name: str, work: Callable[[], T], done: Handover) -> None:
        self.value: T | None = None
        self.error: BaseException | None = None
        self.recorded = False  # its result or failure is in the SyncResult
        self._work, self._done = work, done
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.value = self._work()
        except BaseException as exc:  # read by the run's thread after join()
            self.error = exc
        finally:
            self._done.finish()

    def join(self) -> None:
        """Wait for the step to end."""
        self._thread.join()


def _pull(ctx: RunContext, shop_factory: Callable[[], WooClient], pulled: Handover) -> PullResult:
    """Pull with a shop client of its own (its request count is the pull's alone)."""
    return pull(ctx, shop_factory(), handover=pulled)


def _shop(
    ctx: RunContext,
    shop_factory: Callable[[], WooClient],
    result: SyncResult,
    pulling: _Background[PullResult],
) -> WooClient | None:
    """The shop client for write-back and follow-ups; when it cannot be built, neither could
    pull's (the same settings), whose failure is recorded."""
    try:
        return shop_factory()
    except (ShopError, ConfigError):
        _finish_pull(ctx, result, pulling)
        return None


def _push(
    ctx: RunContext,
    erp: ErpTarget,
    writer: WooClient | None,
    result: SyncResult,
    *,
    limit: int | None,
    after: Handover,
    pulling: _Background[PullResult],
    dry_run: bool,
) -> None:
    """Push (a dry run only prepares the documents); an outage is contained."""
    try:
        result.push = push(ctx, erp, shop_writer=writer, limit=limit, after=after, dry_run=dry_run)
    except (DynamicsError, ConfigError) as exc:
        _finish_pull(ctx, result, pulling)  # pull's problem is recorded first, as in turn
        _contain(ctx, result, "push", exc, shop=False)


def _finish_pull(ctx: RunContext, result: SyncResult, pulling: _Background[PullResult]) -> None:
    """Wait for pull and record its result, or contain its failure (once)."""
    pulling.join()
    if pulling.recorded:
        return
    pulling.recorded = True
    error = pulling.error
    if error is None:
        result.pull = pulling.value
    elif isinstance(error, ShopError | ConfigError):
        _contain(ctx, result, "pull", error, shop=True)
    else:
        raise error


def _finish_validate(
    ctx: RunContext, result: SyncResult, validating: _Background[ValidateResult]
) -> bool:
    """Wait for validate and record its result; False when it failed (contained)."""
    validating.join()
    error = validating.error
    if error is None:
        result.validate = validating.value
        return True
    if isinstance(error, DynamicsError | ConfigError):
        _contain(ctx, result, "validate", error, shop=False)
        return False
    raise error


def _follow_ups(
    ctx: RunContext,
    shop: WooClient,
    erp: ErpTarget,
    result: SyncResult,
    notify: Callable[[str], Any],
) -> None:
    """The enabled follow-up steps after the push; one failing never stops the others."""
    for name in enabled_steps(ctx.settings):
        if ctx.lease_lost.is_set():
            return
        notify(name)
        try:
            result.follow_ups[name] = step_function(name)(ctx, shop, erp, FollowUpOptions())
        except (ShopError, DynamicsError, ConfigError) as exc:
            _contain(ctx, result, name, exc, shop=isinstance(exc, ShopError))


def _contain(
    ctx: RunContext, result: SyncResult, step: str, exc: Woo2D365Error, *, shop: bool
) -> None:
    """Record a system's failure and let the other steps go on."""
    system = "WooCommerce" if shop else "Dynamics 365"
    retryable = getattr(exc, "retryable", False)
    if retryable:
        message = f"{system} could not be reached: {exc}"
        if shop:
            result.shop_problem = result.shop_problem or message
        else:
            result.dynamics_problem = result.dynamics_problem or message
    else:
        message = f"{system}: {exc}"
        if result.config_problem is None:
            result.config_problem = exc
    ctx.event(step, message, level="error")
