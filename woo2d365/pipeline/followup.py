"""Follow-up steps: what happens to an order after the push (docs/architecture.md, "Follow-ups").

``shipments`` (Dynamics shipments and invoices → shop), ``refunds`` (shop refunds → credit memos)
and ``stock`` (Dynamics inventory → shop stock) share one shape so ``sync`` and their own commands
run them the same way: each is a module of this package with a function ``run(ctx, shop, erp,
options) -> FollowUpResult``, switched on by ``enabled`` in its settings section. A step raises
the errors of :mod:`woo2d365.errors` for a system out of reach or a refused setting; everything
about one document (a refused write, a held refund) is counted in its result, never raised.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from woo2d365.erp.base import ErpTarget
from woo2d365.errors import ExitCode
from woo2d365.pipeline.context import RunContext
from woo2d365.settings import Settings
from woo2d365.shop.client import WooClient

FOLLOW_UPS: tuple[str, ...] = ("shipments", "refunds", "stock")
"""In the order ``sync`` runs them: stock last, so it sees this run's shipments."""


@dataclass(frozen=True)
class FollowUpOptions:
    """What the command line narrowed the step to."""

    dry_run: bool = False
    order_ids: tuple[int, ...] = ()  # shipments, refunds: only these shop orders
    skus: tuple[str, ...] = ()  # stock: only these SKUs


@dataclass
class FollowUpResult:
    """What one follow-up step did.

    ``counts`` go to the run record (prefixed with the step's name in a sync) and the summary
    line; ``attention`` has one line per document a person must look at (refused, held, failed)
    and makes the exit code 1; ``lines`` is what a dry run would write, one line each.
    """

    step: str
    counts: dict[str, int] = field(default_factory=dict)
    attention: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    dry_run: bool = False
    lease_lost: bool = False  # the run lock was lost meanwhile: never a success

    @property
    def exit_code(self) -> ExitCode:
        """3 when the run lock was lost, 1 when something of this run needs a person, else 0."""
        if self.lease_lost:
            return ExitCode.UNREACHABLE
        return ExitCode.ATTENTION if self.attention else ExitCode.OK

    def summary(self) -> str:
        """One line for cron and the terminal."""
        done = ", ".join(f"{value} {name.replace('_', ' ')}" for name, value in self.counts.items())
        prefix = f"{self.step} (dry run)" if self.dry_run else self.step
        return f"{prefix}: {done or 'nothing to do'}"


StepFunction = Callable[[RunContext, WooClient, ErpTarget, FollowUpOptions], FollowUpResult]


def step_function(name: str) -> StepFunction:
    """The ``run`` function of the follow-up step ``name``, after the ERP target said it can
    do it (:meth:`~woo2d365.erp.base.ErpTarget.check_follow_up`)."""
    if name not in FOLLOW_UPS:
        raise ValueError(f"unknown follow-up step {name!r}")
    module = importlib.import_module(f"woo2d365.pipeline.{name}")
    step = cast(StepFunction, module.run)

    def checked(
        ctx: RunContext, shop: WooClient, erp: ErpTarget, options: FollowUpOptions
    ) -> FollowUpResult:
        erp.check_follow_up(name)
        return step(ctx, shop, erp, options)

    return checked


def is_enabled(settings: Settings, name: str) -> bool:
    """True when the step's settings section says ``enabled = true``."""
    return bool(getattr(settings, name).enabled)


def enabled_steps(settings: Settings) -> list[str]:
    """The follow-up steps ``sync`` runs after the push, in order."""
    return [name for name in FOLLOW_UPS if is_enabled(settings, name)]
