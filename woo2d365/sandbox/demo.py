"""``woo2d365 demo``: the whole job on a fresh machine, against the built-in sandboxes.

Starts the shop and a Dynamics emulator — Business Central, or Finance & Operations with
``--erp finance-operations`` — (real HTTPS, real msal), seeds about 50 orders, then goes through
the normal code path exactly as cron would: ``sync``, ``status``, the held orders explained and
released with ``map-sku add``, ``sync`` again, and a reconciliation of every order against the
emulated Dynamics; with Business Central, one order shipped and invoiced there
reaching the shop through ``shipments``.
"""

from __future__ import annotations

import shlex
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from woo2d365 import runs, skumap
from woo2d365.model import OrderState
from woo2d365.pipeline.context import utc_now
from woo2d365.pipeline.followup import FollowUpOptions
from woo2d365.pipeline.sync import SyncResult
from woo2d365.runtime import Runtime
from woo2d365.sandbox.world import BUSINESS_CENTRAL, FINANCE_OPERATIONS, UNMAPPED, Sandbox
from woo2d365.settings import LoadedSettings, load_settings
from woo2d365.store import open_store

PRODUCT_NAMES = {BUSINESS_CENTRAL: "Business Central", FINANCE_OPERATIONS: "Finance & Operations"}


@dataclass
class DemoOutcome:
    """What the demo ended with; ``ok`` when every taken order is in Dynamics exactly once."""

    taken: int = 0
    in_dynamics: int = 0
    duplicates: int = 0
    exact_totals: int = 0
    within_tolerance: int = 0
    seconds: float = 0.0
    directory: Path | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every taken order pushed once, totals reconciled within tolerance."""
        return (
            not self.problems
            and self.taken == self.in_dynamics
            and self.duplicates == 0
            and self.within_tolerance == self.in_dynamics
        )


def run_demo(
    console: Console,
    *,
    orders: int = 50,
    directory: Path | None = None,
    keep: bool = False,
    wait_forever: Callable[[], None] | None = None,
    erp: str = BUSINESS_CENTRAL,
) -> DemoOutcome:
    """Run the demo; with ``keep`` the sandboxes stay up until ``wait_forever`` returns."""
    started = time.perf_counter()
    temporary = None
    if directory is None:
        temporary = tempfile.TemporaryDirectory(prefix="woo2d365-demo-")
        directory = Path(temporary.name)
    outcome = DemoOutcome(directory=directory)
    sandbox = Sandbox(directory, orders=orders, pushable_only=True, erp=erp)
    name = PRODUCT_NAMES[erp]
    where = "legal entity wcnl" if erp == FINANCE_OPERATIONS else "company CRONUS NL"
    try:
        with console.status(f"Starting the WooCommerce and {name} sandboxes…"):
            sandbox.start()
        console.print(
            f"[bold]Sandboxes up[/bold]: shop {sandbox.shop.url} ({len(sandbox.shop.orders)} "
            f"orders), {name} {sandbox.bc.url} ({where}), "
            f"config {sandbox.config_path}",
            highlight=False,
        )
        with sandbox.trusted():
            _walk_through(console, sandbox, outcome)
            outcome.seconds = time.perf_counter() - started
            _conclude(console, outcome, name)
            if keep:
                _explain_keep(console, sandbox)
                (wait_forever or _wait_for_interrupt)()
    finally:
        sandbox.stop()
        if temporary is not None and not keep:
            temporary.cleanup()
    return outcome


def _walk_through(console: Console, sandbox: Sandbox, outcome: DemoOutcome) -> None:
    loaded = load_settings(sandbox.config_path)
    store = open_store(loaded.settings.state.url.get_secret_value())
    runtime = Runtime(loaded, store)
    try:
        console.rule("1. woo2d365 sync")
        first = _sync(console, runtime)
        console.print(runs.sync_summary(first), markup=False, highlight=False)
        _show_status(console, store)

        console.rule("2. Held orders, and how to release them")
        held = store.list_orders(states=[OrderState.HELD])
        for order in held:
            console.print(f"order {order.woo_id}: {order.reason}", markup=False, highlight=False)
        items = {u.product.sku: u.item_number for u in UNMAPPED}
        for sku, count in store.unmapped_skus():
            item = items.get(sku)
            if item is None:
                outcome.problems.append(f"no Dynamics item known for SKU {sku}")
                continue
            console.print(
                f"$ woo2d365 map-sku add {shlex.quote(sku)} {item}   # holds {count} order(s)",
                markup=False,
                highlight=False,
            )
            skumap.add_mapping(store, sku, item, "mapped by woo2d365 demo", utc_now(), strict=False)

        console.rule("3. woo2d365 sync (held orders are validated again by themselves)")
        second = _sync(console, runtime)
        console.print(runs.sync_summary(second), markup=False, highlight=False)
        _show_status(console, store)

        console.rule(f"4. Reconciliation against {PRODUCT_NAMES[sandbox.erp]}")
        _reconcile(console, sandbox, runtime, outcome)

        if sandbox.erp == BUSINESS_CENTRAL:  # shipments are built for Business Central only
            console.rule("5. Business Central ships and invoices; shipments tells the shop")
            _ship_and_invoice(console, sandbox, runtime, outcome)
    finally:
        store.close()


def _ship_and_invoice(
    console: Console, sandbox: Sandbox, runtime: Runtime, outcome: DemoOutcome
) -> None:
    """One processing order shipped and invoiced in one posting (its sales order is deleted),
    a tracking number typed in afterwards, and ``shipments`` with ``[shipments] enabled``."""
    store = runtime.store
    pushed = {o.woo_id: o for o in store.list_orders(states=[OrderState.PUSHED])}
    candidates = [
        o for i, o in sorted(pushed.items()) if sandbox.shop.orders[i]["status"] == "processing"
    ]
    if not candidates:
        outcome.problems.append("no pushed order in processing to ship")
        return
    order = candidates[0]
    shipment, invoice = sandbox.bc.ship_and_invoice(str(order.d365_number))
    sandbox.bc.set_tracking(shipment["number"], "DHL", "JVGL05432198765")
    console.print(
        f"Business Central: sales order {order.d365_number} shipped (shipment "
        f"{shipment['number']}, tracking JVGL05432198765 by DHL) and invoiced (invoice "
        f"{invoice['number']}); the fully invoiced sales order is deleted, as Business Central "
        "does.",
        highlight=False,
    )
    settings = runtime.settings
    enabled = settings.model_copy(
        update={"shipments": settings.shipments.model_copy(update={"enabled": True})}
    )
    shipping = Runtime(LoadedSettings(enabled, runtime.loaded.source), store)
    result = runs.run_follow_up(shipping, "shipments", FollowUpOptions())
    console.print(f"$ woo2d365 shipments\n{result.summary()}", markup=False, highlight=False)
    shop_order = sandbox.shop.orders[order.woo_id]
    for note in sandbox.shop.notes.get(order.woo_id, []):
        if "Dynamics 365" in str(note.get("note")):
            kind = "customer note" if note.get("customer_note") else "private note"
            console.print(f"  shop {kind}: {note['note']}", markup=False, highlight=False)
    console.print(
        f"  shop order {shop_order['number']}: status {shop_order['status']}", highlight=False
    )
    if shop_order["status"] != settings.shipments.complete_status:
        outcome.problems.append(f"order {order.woo_id} was not completed in the shop")


def _sync(console: Console, runtime: Runtime) -> SyncResult:
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("sync", total=None)
        return runs.run_sync(
            runtime, on_step=lambda step: progress.update(task, description=f"sync: {step}")
        )


def _show_status(console: Console, store: object) -> None:
    counts = store.counts()  # type: ignore[attr-defined]
    table = Table(title="woo2d365 status", show_edge=False)
    for state in counts:
        table.add_column(state, justify="right")
    table.add_row(*(str(v) for v in counts.values()))
    console.print(table)


def _reconcile(console: Console, sandbox: Sandbox, runtime: Runtime, outcome: DemoOutcome) -> None:
    taken = sandbox.taken_order_ids()
    outcome.taken = len(taken)
    prefix = runtime.settings.orders.document_prefix
    tolerance = Decimal(str(runtime.settings.orders.total_tolerance))
    name = PRODUCT_NAMES[sandbox.erp]
    documents = sandbox.documents()
    by_number = Counter(number for number, _ in documents)
    outcome.duplicates = sum(n - 1 for n in by_number.values() if n > 1)
    totals = dict(documents)
    for woo_id in taken:
        shop_order = sandbox.shop.orders[woo_id]
        number = (prefix + str(shop_order["number"])).upper()
        if number not in totals:
            outcome.problems.append(f"order {woo_id} is not in {name}")
            continue
        outcome.in_dynamics += 1
        difference = abs(totals[number] - Decimal(shop_order["total"]))
        outcome.exact_totals += difference == 0
        outcome.within_tolerance += difference <= tolerance
        if difference > tolerance:
            outcome.problems.append(
                f"order {woo_id}: {name} total {totals[number]} differs from the shop "
                f"total {shop_order['total']}"
            )
    console.print(
        f"{outcome.in_dynamics} of {outcome.taken} taken shop orders are sales orders in "
        f"{name}, {outcome.duplicates} duplicates; totals: {outcome.exact_totals} equal to the "
        f"cent, {outcome.within_tolerance} within orders.total_tolerance ({tolerance})"
    )
    for problem in outcome.problems:
        console.print(f"[red]✗[/red] {problem}", highlight=False)


def _conclude(console: Console, outcome: DemoOutcome, name: str) -> None:
    if outcome.ok:
        console.print(
            f"[bold green]Done[/bold green] in {outcome.seconds:.1f} s: every order is in "
            f"{name} exactly once and the totals reconcile."
        )
    else:
        console.print(
            f"[bold red]The demo did not end as expected[/bold red] ({outcome.seconds:.1f} s)."
        )


def _explain_keep(console: Console, sandbox: Sandbox) -> None:
    console.rule("The sandboxes keep running (--keep)")
    console.print(
        "In another shell, try the commands against them:\n"
        f"  export REQUESTS_CA_BUNDLE={sandbox.ca.ca_path}\n"
        f"  export WOO2D365_CONFIG={sandbox.config_path}\n"
        "  woo2d365 status\n"
        "  woo2d365 map-sku list\n"
        "  woo2d365 push --dry-run\n"
        "  woo2d365 sync\n"
        "Press Ctrl-C here to stop them.",
        highlight=False,
    )


def _wait_for_interrupt() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
