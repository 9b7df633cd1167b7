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

from woo2d365.erp.base import ErpTarget
from woo2d365.pipeline.context import RunContext, utc_now
from woo2d365.settings import LoadedSettings
from woo2d365.shop.client import WooClient
from woo2d365.store.base import StateStore

SHOP_KEYS = ("woocommerce.url", "woocommerce.consumer_key", "woocommerce.consumer_secret")
DYNAMICS_KEYS = (
    "dynamics.tenant_id",
    "dynamics.client_id",
    "dynamics.client_secret",
    "dynamics.company",
)


@dataclass
class Runtime:
    """Settings, store and clock of one command, and the factories of the two systems."""

    loaded: LoadedSettings
    store: StateStore
    clock: Callable[[], datetime] = utc_now

    @property
    def settings(self) -> Any:
        """The settings object."""
        return self.loaded.settings

    def context(self) -> RunContext:
        """A fresh run context."""
        return RunContext(settings=self.settings, store=self.store, clock=self.clock)

    def shop(self) -> WooClient:
        """The WooCommerce client; :class:`ConfigError` naming a missing key and the file."""
        self.loaded.require(*SHOP_KEYS)
        return WooClient(self.settings.woocommerce)

    def erp(self) -> ErpTarget:
        """The Business Central target; :class:`ConfigError` naming a missing key and the file."""
        from woo2d365.erp.businesscentral import open_target

        self.loaded.require(*DYNAMICS_KEYS)
        if self.settings.orders.customer_mode == "fixed":
            self.loaded.require("orders.customer_number")
        return open_target(self.settings, self.store, clock=self.clock)

    @contextmanager
    def recorded_run(self, command: str) -> Iterator[tuple[RunContext, dict[str, Any]]]:
        """A run record around one step; the caller fills ``outcome`` and ``counts``."""
        ctx = self.context()
        ctx.run_id = self.store.start_run(command, self.clock(), worker=ctx.worker)
        record: dict[str, Any] = {"outcome": "error", "counts": {}}
        try:
            yield ctx, record
        finally:
            self.store.finish_run(ctx.run_id, record["outcome"], record["counts"], self.clock())
