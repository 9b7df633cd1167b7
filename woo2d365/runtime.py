"""The real collaborators of one command, wired from settings in one place.

The CLI asks a :class:`Runtime` for a run context, the shop client and the ERP target; tests
build the same objects against the emulators. Each step run from the command line gets a run
record, so ``status`` shows what happened and when.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from woo2d365.clock import utc_now
from woo2d365.erp.base import ErpTarget
from woo2d365.errors import Woo2D365Error, outcome_of
from woo2d365.pipeline.context import RunContext
from woo2d365.settings import LoadedSettings, Settings
from woo2d365.shop.client import WooClient
from woo2d365.store.base import StateStore

SHOP_KEYS = ("woocommerce.url", "woocommerce.consumer_key", "woocommerce.consumer_secret")
DYNAMICS_KEYS = (
    "dynamics.tenant_id",
    "dynamics.client_id",
    "dynamics.client_secret",
    "dynamics.company",
)
FINANCE_OPERATIONS = "finance-operations"


def dynamics_keys(settings: Settings) -> tuple[str, ...]:
    """The settings the configured Dynamics product needs before it can be reached."""
    if settings.dynamics.product == FINANCE_OPERATIONS:
        from woo2d365.erp.financeoperations import REQUIRED_KEYS

        keys: tuple[str, ...] = REQUIRED_KEYS
        if settings.orders.customer_mode == "per-email":
            keys = (*keys, "dynamics.customer_group")
    else:
        keys = DYNAMICS_KEYS
    if settings.orders.customer_mode == "fixed":
        keys = (*keys, "orders.customer_number")
    return keys


@dataclass
class Runtime:
    """Settings, store and clock of one command, and the factories of the two systems."""

    loaded: LoadedSettings
    store: StateStore
    clock: Callable[[], datetime] = utc_now
    progress: Callable[[str, int, int | None], None] | None = None  # a terminal's progress bar

    @property
    def settings(self) -> Settings:
        """The settings object."""
        return self.loaded.settings

    def context(self) -> RunContext:
        """A fresh run context."""
        return RunContext(
            settings=self.settings, store=self.store, clock=self.clock, progress=self.progress
        )

    def shop(self) -> WooClient:
        """The WooCommerce client; :class:`ConfigError` naming a missing key and the file."""
        self.loaded.require(*SHOP_KEYS)
        return WooClient(self.settings.woocommerce)

    def erp(self) -> ErpTarget:
        """The target of ``dynamics.product`` (the one place it is chosen); :class:`ConfigError`
        naming a missing key and the file."""
        self.loaded.require(*dynamics_keys(self.settings))
        if self.settings.dynamics.product == FINANCE_OPERATIONS:
            from woo2d365.erp.financeoperations import open_target as open_fo

            return open_fo(self.settings, self.store, clock=self.clock)
        from woo2d365.erp.businesscentral import open_target

        return open_target(self.settings, self.store, clock=self.clock)

    @contextmanager
    def recorded_run(
        self, command: str, ctx: RunContext | None = None
    ) -> Iterator[tuple[RunContext, dict[str, Any]]]:
        """A run record around one step; the caller fills ``outcome`` and ``counts``.

        Whatever the caller filled in, a run left by an exception is never recorded as a success:
        a system out of reach is ``unreachable``, an interruption ``interrupted`` and anything
        else (a bug, a refused setting) ``error``.
        """
        ctx = ctx or self.context()
        run_id = ctx.run_id = self.store.start_run(command, self.clock(), worker=ctx.worker)
        record: dict[str, Any] = {"outcome": "error", "counts": {}}
        try:
            try:
                yield ctx, record
            finally:
                ctx.log_repeats()
        except BaseException as exc:
            record["outcome"] = failed_outcome(exc)
            try:
                self._finish(run_id, record)
            except Woo2D365Error as error:  # the first failure is the one to report
                ctx.log.warning("run %s not closed: %s", run_id, error)
            raise
        self._finish(run_id, record)

    def _finish(self, run_id: int, record: dict[str, Any]) -> None:
        self.store.finish_run(run_id, record["outcome"], record["counts"], self.clock())


def failed_outcome(exc: BaseException) -> str:
    """The run record's outcome for a run ended by ``exc`` (``errors.OUTCOMES``)."""
    return outcome_of(exc).run_outcome.value
