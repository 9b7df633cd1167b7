"""The Prometheus textfile of ``sync --metrics-file``: :class:`SyncMetrics` counts the API
requests of the run and writes the node_exporter textfile (:func:`render_metrics`) atomically,
also when the run failed."""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from woo2d365.clock import utc_now
from woo2d365.errors import LockHeld, RunOutcome, StoreUnavailable, Woo2D365Error, outcome_of
from woo2d365.model import OrderState
from woo2d365.monitoring.counts import (
    OPEN_STATES,
    SYSTEM_NAMES,
    oldest_per_state,
    order_counts,
    waited,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Gauge

    from woo2d365.pipeline.sync import SyncResult
    from woo2d365.runtime import Runtime

log = logging.getLogger("woo2d365.monitoring")

RUN_OUTCOMES = tuple(o.value for o in RunOutcome if o is not RunOutcome.INTERRUPTED)


@dataclass
class ApiCounter:
    """HTTP requests sent to one system and how many of them failed (no answer or >= 400)."""

    requests: int = 0
    errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, *, failed: bool) -> None:
        """Count one request."""
        with self._lock:
            self.requests += 1
            if failed:
                self.errors += 1


@functools.cache
def _instrumented_types() -> tuple[type[Any], type[Any]]:
    """``(CountingSession, MeteredRuntime)``, built on first use.

    Only ``sync --metrics-file`` needs them; defining them lazily keeps ``requests`` and the
    runtime out of the import of this module, which ``status`` loads.
    """
    import requests

    from woo2d365.http import TrustingSession
    from woo2d365.runtime import SHOP_KEYS, Runtime
    from woo2d365.shop.client import WooClient

    class CountingSession(TrustingSession):
        """A :class:`TrustingSession` that counts requests and failed requests."""

        def __init__(self, counter: ApiCounter, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.counter = counter

        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            """Send and count."""
            try:
                response = super().request(method, url, *args, **kwargs)
            except requests.RequestException:
                self.counter.count(failed=True)
                raise
            self.counter.count(failed=response.status_code >= 400)
            return response

    @dataclass
    class MeteredRuntime(Runtime):
        """A :class:`Runtime` whose shop client and ERP target are counted for the metrics."""

        shop_counter: ApiCounter = field(default_factory=ApiCounter)
        targets: list[Any] = field(default_factory=list)

        def shop(self) -> WooClient:
            """The WooCommerce client on a counting session."""
            self.loaded.require(*SHOP_KEYS)
            session = CountingSession(self.shop_counter)
            return WooClient(self.settings.woocommerce, session=session)

        def erp(self) -> Any:
            """The ERP target, remembered so its client's request counts can be read later."""
            target = super().erp()
            self.targets.append(target)
            return target

    return CountingSession, MeteredRuntime


def _dynamics_counts(targets: list[Any]) -> tuple[int, int | None] | None:
    """``(requests, errors)`` of the Business Central clients used; None when none was."""
    clients: list[Any] = [getattr(t, "client", None) for t in targets]
    clients = [c for c in clients if c is not None and hasattr(c, "request_count")]
    if not clients:
        return None
    requests_sent = sum(int(c.request_count) for c in clients)
    errors: list[Any] = [getattr(c, "error_count", None) for c in clients]
    if any(e is None for e in errors):
        return requests_sent, None
    return requests_sent, sum(int(e) for e in errors)


@dataclass(frozen=True)
class MetricsSnapshot:
    """What one sync run leaves for Prometheus."""

    outcome: str
    finished_at: datetime
    duration_seconds: float
    counts: dict[str, int] | None = None
    changed_after_push: int | None = None
    last_success_at: datetime | None = None
    api: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    unreachable_runs: dict[str, int] = field(default_factory=dict)
    run_orders: dict[str, int] = field(default_factory=dict)
    oldest_age_seconds: dict[str, float] = field(default_factory=dict)
    write_backs_pending: int | None = None


def render_metrics(snapshot: MetricsSnapshot) -> CollectorRegistry:
    """The metrics of one sync run, as a registry of their own (gauges: the last run's values)."""
    from prometheus_client import CollectorRegistry, Gauge  # only a run that writes metrics

    registry = CollectorRegistry()

    def gauge(name: str, help_text: str, labels: Sequence[str] = ()) -> Gauge:
        return Gauge(name, help_text, labels, registry=registry)

    _store_gauges(gauge, snapshot)
    _run_gauges(gauge, snapshot)
    _api_gauges(gauge, snapshot)
    return registry


_GaugeFactory = Callable[..., "Gauge"]  # (name, help text, labels) → a gauge of the registry


def _store_gauges(gauge: _GaugeFactory, snapshot: MetricsSnapshot) -> None:
    """What the state store held when the run ended."""
    if snapshot.counts is not None:
        orders = gauge("woo2d365_orders", "Orders in the state store by state.", ["state"])
        for state in OrderState:
            orders.labels(state=state.value).set(snapshot.counts.get(state.value, 0))
        oldest = gauge(
            "woo2d365_oldest_order_age_seconds",
            "How long the longest-waiting order of each open state has been in it (0: none).",
            ["state"],
        )
        for state in OPEN_STATES:
            oldest.labels(state=state.value).set(snapshot.oldest_age_seconds.get(state.value, 0))
    if snapshot.write_backs_pending is not None:
        gauge(
            "woo2d365_write_backs_pending",
            "Pushed orders whose note and meta are not in the shop yet.",
        ).set(snapshot.write_backs_pending)
    if snapshot.changed_after_push is not None:
        gauge(
            "woo2d365_changed_after_push",
            "Orders changed in the shop after their push, not acknowledged (woo2d365 ack).",
        ).set(snapshot.changed_after_push)


def _run_gauges(gauge: _GaugeFactory, snapshot: MetricsSnapshot) -> None:
    """When the run ended, how long it took, its outcome and the orders it handled."""
    gauge("woo2d365_run_duration_seconds", "Duration of the last sync run in seconds.").set(
        snapshot.duration_seconds
    )
    gauge("woo2d365_last_run_timestamp_seconds", "When the last sync run ended (Unix time).").set(
        snapshot.finished_at.timestamp()
    )
    if snapshot.last_success_at is not None:
        gauge(
            "woo2d365_last_success_timestamp_seconds",
            "When the last sync that reached both systems ended (Unix time).",
        ).set(snapshot.last_success_at.timestamp())
    outcome = gauge(
        "woo2d365_run_outcome",
        "Outcome of the last sync run: 1 for the outcome it had, 0 for the others.",
        ["outcome"],
    )
    for name in RUN_OUTCOMES:
        outcome.labels(outcome=name).set(1 if snapshot.outcome == name else 0)
    if snapshot.run_orders:
        run_orders = gauge(
            "woo2d365_run_orders", "Orders the last sync run handled, by result.", ["result"]
        )
        for result, value in snapshot.run_orders.items():
            run_orders.labels(result=result).set(value)


def _api_gauges(gauge: _GaugeFactory, snapshot: MetricsSnapshot) -> None:
    """The requests the run sent to each system, those that failed, and runs that reached none."""
    if snapshot.api:
        requests_sent = gauge(
            "woo2d365_api_requests",
            "HTTP requests the last sync run sent, retries included, by system.",
            ["system"],
        )
        errors = gauge(
            "woo2d365_api_errors",
            "HTTP requests of the last sync run that failed (no answer, or status 400 or more), "
            "by system.",
            ["system"],
        )
        for system, (sent, failed) in snapshot.api.items():
            requests_sent.labels(system=system).set(sent)
            if failed is not None:
                errors.labels(system=system).set(failed)
    if snapshot.unreachable_runs:
        unreachable = gauge(
            "woo2d365_unreachable_runs",
            "Sync runs in a row that could not reach the system.",
            ["system"],
        )
        for system, value in snapshot.unreachable_runs.items():
            unreachable.labels(system=system).set(value)


def metrics_text(registry: CollectorRegistry) -> str:
    """The Prometheus text exposition of a registry."""
    from prometheus_client import generate_latest

    return generate_latest(registry).decode("utf-8")


def write_metrics_file(path: Path, registry: CollectorRegistry) -> None:
    """Write the textfile for node_exporter's collector atomically (``write_to_textfile``: a
    temporary file beside it, renamed), readable by the collector's user (0644)."""
    from prometheus_client import write_to_textfile

    write_to_textfile(str(path), registry)
    os.chmod(path, 0o644)  # metrics only; node_exporter usually runs as another user


class SyncMetrics:
    """Around one ``sync``: counts its API requests and writes the metrics file at the end.

    The file is written whatever the outcome (unreachable systems and store included), except
    when another sync held the run lock: that run did nothing and the holder writes its own.
    A metrics file that cannot be written is logged and never changes the run's exit code.
    Without a path the object does nothing.
    """

    def __init__(self, path: Path | None, *, clock: Callable[[], datetime] | None = None) -> None:
        self.path = path
        self.clock = clock or utc_now
        self.result: SyncResult | None = None
        self._runtime: Any = None  # the MeteredRuntime of instrument()
        self._started = 0.0

    def instrument(self, runtime: Runtime) -> Runtime:
        """The runtime to run the sync with (counted when a metrics file is wanted)."""
        if self.path is None:
            return runtime
        metered = _instrumented_types()[1]
        self._runtime = metered(runtime.loaded, runtime.store, runtime.clock)
        return self._runtime

    def __enter__(self) -> SyncMetrics:
        self._started = time.monotonic()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.path is None or isinstance(exc, LockHeld):
            return
        if exc is not None and not isinstance(exc, Exception):
            return  # interrupted: no half-truths in the metrics file
        try:
            write_metrics_file(self.path, render_metrics(self.snapshot(exc)))
        except OSError as error:
            log.error("metrics file %s not written: %s", self.path, error.strerror or error)

    def snapshot(self, exc: BaseException | None = None) -> MetricsSnapshot:
        """What to write, from the result (or the error) and what the store can still tell."""
        duration = time.monotonic() - self._started
        result = self.result
        if result is not None:
            outcome = result.outcome
        else:
            outcome = (outcome_of(exc).run_outcome if exc else RunOutcome.ERROR).value
        api: dict[str, tuple[int, int | None]] = {}
        runtime = self._runtime
        if runtime is not None:
            counter = runtime.shop_counter
            if counter.requests:
                api["shop"] = (counter.requests, counter.errors)
            dynamics = _dynamics_counts(runtime.targets)
            if dynamics is not None:
                api["dynamics"] = dynamics
        counts: dict[str, int] | None = None
        changed: int | None = None
        last_success: datetime | None = None
        unreachable: dict[str, int] = {}
        ages: dict[str, float] = {}
        pending: int | None = None
        if runtime is not None and not _store_failed(exc):
            try:
                from woo2d365.alerts import unreachable_runs

                counts = order_counts(runtime.store)
                changed = len(runtime.store.changed_after_push_ids())
                success = runtime.store.last_successful_run("sync")
                if success is not None:
                    last_success = success.finished_at or success.started_at
                unreachable = {s: unreachable_runs(runtime.store, s) for s in SYSTEM_NAMES}
                now = self.clock()
                ages = {
                    state.value: waited(record, now).total_seconds()
                    for state, record in oldest_per_state(runtime.store).items()
                }
                pending = len(runtime.store.write_back_pending_ids())
            except Woo2D365Error as error:
                log.warning("metrics: the state store could not be read: %s", error)
        return MetricsSnapshot(
            outcome=outcome,
            finished_at=self.clock(),
            duration_seconds=duration,
            counts=counts,
            changed_after_push=changed,
            last_success_at=last_success,
            api=api,
            unreachable_runs=unreachable,
            run_orders=_run_orders(result),
            oldest_age_seconds=ages,
            write_backs_pending=pending,
        )


def _store_failed(exc: BaseException | None) -> bool:
    return isinstance(exc, StoreUnavailable)


def _run_orders(result: SyncResult | None) -> dict[str, int]:
    if result is None:
        return {}
    orders: dict[str, int] = {}
    if result.pull is not None:
        orders["pulled"] = result.pull.new + result.pull.updated
    if result.validate is not None:
        orders["held"] = len(result.validate.newly_held)
    if result.push is not None:
        orders["pushed"] = result.push.in_dynamics
        orders["failed"] = len(result.push.failed)
    return orders
