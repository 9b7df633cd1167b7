"""The ``woo2d365`` command line: parse, call one function of the core, render, exit code.

Errors of the tool's own hierarchy become one line on stderr and the contract's exit code;
anything else is an internal error (a bug): one line, exit 70, the traceback only with ``-v``.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from typer.core import TyperGroup

from woo2d365 import __version__, monitoring, runs, skumap
from woo2d365.allocator import limit_arenas
from woo2d365.clock import utc_now
from woo2d365.errors import ExitCode, Woo2D365Error
from woo2d365.logs import (
    LogFormat,
    clean,
    configure_logging,
    dry_run_context,
    redact,
    register_secret,
    step_context,
    tracking_steps,
)
from woo2d365.pipeline.followup import FollowUpOptions
from woo2d365.pipeline.push import already_as
from woo2d365.pipeline.retry import retry_refunds
from woo2d365.runtime import Runtime
from woo2d365.settings import LoadedSettings, load_settings
from woo2d365.store import SqlStore, open_dry_run_store, open_store
from woo2d365.threads import answer_sooner


@dataclass
class CliState:
    """Global options, and what commands open lazily from them."""

    config: str | None = None
    verbose: bool = False
    quiet: bool = False
    log_format: LogFormat = "text"
    out: Console = field(default_factory=lambda: Console(soft_wrap=True))
    err: Console = field(default_factory=lambda: Console(stderr=True, soft_wrap=True))
    _settings: LoadedSettings | None = None
    _store: SqlStore | None = None

    def settings(self) -> LoadedSettings:
        """Load settings once; register their secrets for redaction."""
        if self._settings is None:
            self._settings = load_settings(self.config)
            s = self._settings.settings
            for secret in (
                s.woocommerce.consumer_key,
                s.woocommerce.consumer_secret,
                s.dynamics.client_secret,
                s.alerts.email.password,
                s.alerts.webhook.url,
            ):
                register_secret(secret.get_secret_value())
            from urllib.parse import unquote, urlsplit

            password = urlsplit(s.state.url.get_secret_value()).password
            register_secret(password)
            register_secret(unquote(password) if password else None)
        return self._settings

    def store(self, *, dry_run: bool = False) -> SqlStore:
        """Open the state store once: migrated, or for a dry run never created nor migrated."""
        if self._store is None:
            url = self.settings().settings.state.url.get_secret_value()
            self._store = open_dry_run_store(url) if dry_run else open_store(url)
        return self._store

    def close(self) -> None:
        """Close what was opened."""
        if self._store is not None:
            self._store.close()
            self._store = None


def _click_class(name: str) -> type[Exception]:
    """A click exception class, whether Typer vendors click or depends on it."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


_UsageError = _click_class("UsageError")


def internal_error_line(exc: BaseException) -> str:
    """The one stderr line of an unexpected exception (a bug): its type and message, no secret."""
    message = " ".join(redact(str(exc)).split()) or "(no message)"
    return (
        f"woo2d365: internal error: {type(exc).__name__}: {message}; run with -v for the traceback"
    )


class _Woo2D365Group(TyperGroup):
    """Runs the command and turns every failure into one line and an exit code."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> NoReturn:
        verbose = any(a in ("-v", "--verbose") for a in (args if args is not None else sys.argv))
        try:
            result = super().main(
                args=args,
                prog_name=prog_name or "woo2d365",
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
            code = result if isinstance(result, int) else 0
        except _UsageError as exc:
            ctx = getattr(exc, "ctx", None)
            if type(exc).__name__.startswith("NoArgsIsHelp"):
                typer.echo(ctx.get_help() if ctx else str(exc))
            else:
                hint = f" (see '{ctx.command_path} --help')" if ctx else ""
                typer.echo(f"woo2d365: error: {exc.format_message()}{hint}", err=True)  # type: ignore[attr-defined]
            code = ExitCode.USAGE
        except (typer.Abort, KeyboardInterrupt):
            typer.echo("woo2d365: interrupted", err=True)
            code = ExitCode.INTERRUPTED
        except Woo2D365Error as exc:
            typer.echo(f"woo2d365: error: {redact(str(exc))}", err=True)
            if verbose:
                typer.echo(redact(traceback.format_exc()), err=True)
            code = exc.exit_code
        except Exception as exc:
            typer.echo(internal_error_line(exc), err=True)
            if verbose:
                typer.echo(redact(traceback.format_exc()), err=True)
            code = ExitCode.INTERNAL
        sys.exit(int(code))


app = typer.Typer(
    cls=_Woo2D365Group,
    help=(
        "Move WooCommerce orders into Microsoft Dynamics 365 (Business Central or Finance & "
        "Operations), exactly once."
    ),
    epilog="Example: woo2d365 --config /etc/woo2d365.toml sync",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
map_sku_app = typer.Typer(
    help=(
        "Link shop SKUs to Dynamics item numbers.\n\nExample: woo2d365 map-sku add WIDGET-001 1000"
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(map_sku_app, name="map-sku")


def _state(ctx: typer.Context) -> CliState:
    state = ctx.find_root().obj
    assert isinstance(state, CliState)
    return state


def _version(value: bool) -> None:
    if value:
        typer.echo(f"woo2d365 {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        str | None, typer.Option("--config", metavar="FILE", help="Config file (TOML).")
    ] = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Debug logging.")] = False,
    quiet: Annotated[
        bool, typer.Option("-q", "--quiet", help="Print only what needs attention.")
    ] = False,
    log_format: Annotated[
        str, typer.Option("--log-format", metavar="text|json", help="Log line format on stderr.")
    ] = "text",
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    """Global options."""
    if log_format not in ("text", "json"):
        raise typer.BadParameter("must be text or json", param_hint="--log-format")
    state = CliState(config=config, verbose=verbose, quiet=quiet, log_format=log_format)  # type: ignore[arg-type]
    configure_logging(verbose=verbose, quiet=quiet, log_format=state.log_format)
    ctx.obj = state
    ctx.call_on_close(state.close)


# -- status ---------------------------------------------------------------------------------


@app.command()
def status(
    ctx: typer.Context,
    order_id: Annotated[
        int | None, typer.Argument(metavar="[ID]", help="A WooCommerce order id.")
    ] = None,
    state_filter: Annotated[
        str | None, typer.Option("--state", metavar="STATE", help="Only orders in this state.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", metavar="N", help="At most N orders.")
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Monitoring plugin: one line; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        ),
    ] = False,
    max_age: Annotated[
        str | None,
        typer.Option(
            "--max-age",
            metavar="DURATION",
            help="With --check: WARNING when the last successful sync is older (15m, 2h; "
            "default 3 × monitoring.expected_interval_minutes).",
        ),
    ] = None,
    critical_age: Annotated[
        str | None,
        typer.Option(
            "--critical-age",
            metavar="DURATION",
            help="With --check: CRITICAL when the last successful sync is older "
            "(default monitoring.critical_after_minutes).",
        ),
    ] = None,
    max_wait: Annotated[
        str | None,
        typer.Option(
            "--max-wait",
            metavar="DURATION",
            help="With --check: WARNING when an order has been in one state longer "
            "(default alerts.max_wait_hours).",
        ),
    ] = None,
    number: Annotated[
        str | None, typer.Option("--number", metavar="NUMBER", help="Only this shop order number.")
    ] = None,
    email: Annotated[
        str | None, typer.Option("--email", metavar="ADDRESS", help="Only this customer's orders.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="DATE", help="Only orders updated since (ISO date)."),
    ] = None,
    utc: Annotated[
        bool, typer.Option("--utc", help="Times in UTC instead of this machine's time zone.")
    ] = False,
) -> None:
    """Show what needs you, counts per state, the last sync and the orders; or one order.

    Held, failed and pushing orders come first. Times are local (--utc for UTC).

    Example: woo2d365 status
    Example: woo2d365 status --state held
    Example: woo2d365 status --email jan@example.com --since 2026-12-01
    Example: woo2d365 status 1234
    Example: woo2d365 status --check --max-age 15m   (Nagios, Icinga, Zabbix)
    """
    state = _state(ctx)
    if check:
        options = {
            "ID": order_id,
            "--state": state_filter,
            "--json": as_json,
            "--limit": limit,
            "--number": number,
            "--email": email,
            "--since": since,
        }
        result = monitoring.run_check(
            state.settings,
            state.store,
            max_age=max_age,
            critical_age=critical_age,
            max_wait=max_wait,
            conflicting=[name for name, value in options.items() if value not in (None, False)],
        )
        typer.echo(result.line)
        raise typer.Exit(result.code)
    if max_age is not None or critical_age is not None or max_wait is not None:
        raise _usage("--max-age, --critical-age and --max-wait go with --check")
    wanted = monitoring.parse_state(state_filter)
    updated_since = runs.parse_since(since, option="--since")
    when = _clock_format(utc=utc)
    store = state.store()
    if order_id is not None:
        order = store.get_order(order_id)
        if order is None:
            raise _usage(f"order {order_id} is not in the state store")
        events = store.events(order_id)
        refunds = store.list_refunds(woo_ids=[order_id])
        if as_json:
            _print_json(state, monitoring.order_detail_json(order, events, store, refunds))
        else:
            _render_order(state, order, events, when, monitoring.documents_json(store, order_id))
            for refund in refunds:
                state.out.print(
                    f"Refund {refund.refund_id} ({refund.amount}): {refund.state.value}"
                    + (f", credit memo {refund.d365_number}" if refund.d365_number else "")
                    + (f" – {refund.reason}" if refund.reason else ""),
                    markup=False,
                    highlight=False,
                )
        return
    report = monitoring.status_report(
        store,
        state=wanted,
        limit=limit if (limit is not None or as_json) else 20,
        attention_first=not as_json,
        number=number,
        email=email,
        since=updated_since,
    )
    if as_json:
        _print_json(state, monitoring.report_json(report))
    else:
        narrowed = any(v is not None for v in (wanted, number, email, updated_since))
        _render_status(state, report, when, limited=limit is None, narrowed=narrowed)


def _clock_format(*, utc: bool) -> Callable[[datetime | None], str]:
    """How people read a time: local (or UTC) to the minute; the zone named once, above."""

    def when(moment: datetime | None) -> str:
        if moment is None:
            return "-"
        shown = moment.astimezone(UTC) if utc else moment.astimezone()
        return shown.strftime("%Y-%m-%d %H:%M")

    return when


def _zone_name(*, utc: bool) -> str:
    return "UTC" if utc else (utc_now().astimezone().tzname() or "local time")


def _render_status(
    state: CliState,
    report: monitoring.StatusReport,
    when: Callable[[datetime | None], str],
    *,
    limited: bool,
    narrowed: bool,
) -> None:
    out = state.out
    now = utc_now()
    for line in monitoring.summary_lines(report, now, when):
        out.print(line, markup=False, highlight=False)
    if not report.orders:
        if narrowed:
            out.print("No order matches.", highlight=False)
        return
    rows = [
        (str(o.woo_id), o.number, o.state.value, when(o.since), o.d365_number or "", o.reason or "")
        for o in report.orders
    ]
    for line in fixed_columns(("id", "number", "state", "since", "D365", "reason"), rows, 80):
        out.print(line, markup=False, highlight=False, crop=False, soft_wrap=True)
    if limited and not narrowed and len(report.orders) < report.total:
        out.print(
            f"({len(report.orders)} of {report.total} shown: what needs you first, then the "
            "latest; --limit N for more)",
            highlight=False,
        )


def fixed_columns(header: Sequence[str], rows: Sequence[Sequence[str]], width: int) -> list[str]:
    """Rows as aligned text lines of at most ``width`` characters; the last column is cut."""
    widths = [
        min(max(len(header[i]), *(len(r[i]) for r in rows)), 20) for i in range(len(header) - 1)
    ]
    room = max(8, width - sum(widths) - 2 * len(widths))

    def line(cells: Sequence[str]) -> str:
        parts = [_cut(clean(c), w).ljust(w) for c, w in zip(cells[:-1], widths, strict=True)]
        return "  ".join([*parts, _cut(clean(cells[-1]), room)]).rstrip()

    return [line(header), *(line(r) for r in rows)]


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _render_order(
    state: CliState,
    order: Any,
    events: list[Any],
    when: Callable[[datetime | None], str],
    documents: dict[str, Any],
) -> None:
    out = state.out
    out.print(f"Order {order.woo_id} (shop number {order.number}): {order.state.value}")
    out.print(f"In this state since {when(order.since)}", highlight=False)
    if order.reason:
        out.print(f"Reason: {order.reason}", markup=False, highlight=False)
    if order.d365_number:
        out.print(
            f"Dynamics: sales order {order.d365_number} ({order.d365_id}), "
            f"{order.external_number}, pushed {when(order.pushed_at)}",
            highlight=False,
        )
    out.print(
        f"Attempts: {order.attempts}; shop status {order.shop_status}; total "
        f"{order.total} {order.currency}",
        highlight=False,
    )
    for shipment in documents.get("shipments", []):
        tracking = f", tracking {shipment['tracking']}" if shipment["tracking"] else ""
        out.print(f"Shipment {shipment['number']} posted {shipment['posted_at']}{tracking}")
    for invoice in documents.get("invoices", []):
        out.print(f"Invoice {invoice['number']}: {invoice['status']}")
    table = Table(title="Events", show_edge=False)
    for column in ("at", "step", "level", "message"):
        table.add_column(column)
    for e in events:
        table.add_row(when(e.at), e.step, e.level, e.message)
    out.print(table)


# -- map-sku --------------------------------------------------------------------------------


@map_sku_app.command("add")
def map_sku_add(
    ctx: typer.Context,
    sku: Annotated[str, typer.Argument(help="The shop SKU, exactly as in WooCommerce.")],
    item: Annotated[str, typer.Argument(help="The Dynamics item number (max 20).")],
    note: Annotated[
        str, typer.Option("--note", metavar="TEXT", help="Why, for the next person.")
    ] = "",
    strict: Annotated[
        bool, typer.Option("--strict", help="Refuse an item Dynamics is not known to have.")
    ] = False,
) -> None:
    """Link a SKU to an item (adds or updates). Held orders are released on the next run.

    Example: woo2d365 map-sku add WIDGET-001 1000 --note "blue widget"
    """
    state = _state(ctx)
    outcome, doubt = skumap.add_mapping(state.store(), sku, item, note, utc_now(), strict=strict)
    if doubt:
        state.err.print(f"warning: {doubt}", markup=False, highlight=False)
    if not state.quiet:
        state.out.print(f"{sku} → {skumap.normalise_item_number(item)}: {outcome}")


@map_sku_app.command("remove")
def map_sku_remove(
    ctx: typer.Context, sku: Annotated[str, typer.Argument(help="The shop SKU.")]
) -> None:
    """Remove a mapping.

    Example: woo2d365 map-sku remove WIDGET-001
    """
    state = _state(ctx)
    if not state.store().unmap_sku(sku):
        raise _usage(f"SKU {sku!r} is not mapped")
    if not state.quiet:
        state.out.print(f"{sku}: removed")


@map_sku_app.command("list")
def map_sku_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    unmapped: Annotated[
        bool, typer.Option("--unmapped", help="SKUs on held orders that have no mapping yet.")
    ] = False,
) -> None:
    """List mappings, or the SKUs still holding orders.

    Example: woo2d365 map-sku list --unmapped
    """
    state = _state(ctx)
    store = state.store()
    if unmapped:
        rows = store.unmapped_skus()
        if as_json:
            _print_json(state, [{"sku": s, "held_orders": n} for s, n in rows])
            return
        table = Table(title="SKUs holding orders", show_edge=False)
        table.add_column("sku")
        table.add_column("held orders", justify="right")
        table.add_column("fix")
        for sku, count in rows:
            table.add_row(sku, str(count), f"woo2d365 map-sku add {_shell_quote(sku)} ITEM")
        state.out.print(table if rows else "No held order waits for a SKU mapping.")
        return
    mappings = store.sku_mappings()
    if as_json:
        _print_json(state, [skumap.mapping_as_json(m) for m in mappings])
        return
    table = Table(title=f"SKU map ({len(mappings)})", show_edge=False)
    for column in ("sku", "item", "note", "by", "updated"):
        table.add_column(column)
    for m in mappings:
        table.add_row(
            m.sku, m.item_number, m.note, m.updated_by, monitoring.iso(m.updated_at) or ""
        )
    state.out.print(table)


@map_sku_app.command("import")
def map_sku_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE.csv", help="CSV: sku,item_number[,note]")],
) -> None:
    """Import mappings from CSV; bad lines are listed with their line numbers, good ones kept.

    Example: woo2d365 map-sku import mappings.csv
    """
    state = _state(ctx)
    report = skumap.import_csv(state.store(), file, utc_now())
    for line, problem in report.rejected:
        state.err.print(f"{file}:{line}: rejected: {problem}", markup=False, highlight=False)
    state.out.print(
        f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
        f"{len(report.rejected)} rejected"
    )
    if report.rejected:
        raise typer.Exit(ExitCode.ATTENTION)


@map_sku_app.command("export")
def map_sku_export(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE.csv", help="Where to write the CSV.")],
) -> None:
    """Export every mapping as CSV (the format import reads).

    Example: woo2d365 map-sku export mappings.csv
    """
    state = _state(ctx)
    count = skumap.export_csv(state.store(), file)
    if not state.quiet:
        state.out.print(f"{count} mappings written to {file}")


# -- pipeline -------------------------------------------------------------------------------

_ORDER_IDS = typer.Option("--order", metavar="ID", help="Only this WooCommerce order (repeatable).")


def _runtime(state: CliState, *, dry_run: bool = False) -> Runtime:
    return Runtime(state.settings(), state.store(dry_run=dry_run))


@app.command()
def sync(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read only: show what would be created.")
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", metavar="N", min=1, help="Push at most N orders.")
    ] = None,
    metrics_file: Annotated[
        Path | None,
        typer.Option(
            "--metrics-file",
            metavar="PATH",
            help="After the run, write Prometheus metrics there (node_exporter textfile "
            "collector, e.g. /var/lib/node_exporter/textfile/woo2d365.prom).",
        ),
    ] = None,
) -> None:
    """Pull, validate and push in one run, under the run lock (what cron runs).

    Example: woo2d365 --quiet sync
    """
    state = _state(ctx)
    if dry_run:
        with dry_run_context():
            preview = runs.preview(_runtime(state, dry_run=True), limit=limit)
        _print_preview(state, preview)
        raise typer.Exit(preview.exit_code)
    interactive = state.out.is_terminal and not state.quiet
    with (
        monitoring.SyncMetrics(metrics_file) as metrics,
        step_context("sync"),
        _progress(state, enabled=interactive) as (on_step, on_progress),
    ):
        runtime = metrics.instrument(_runtime(state))
        runtime.progress = on_progress
        result = metrics.result = runs.run_sync(
            runtime, limit=limit, on_step=tracking_steps(on_step)
        )
    if interactive:
        _render_sync(state, result)
    else:
        _print_line(state, runs.sync_summary(result), attention=result.exit_code != ExitCode.OK)
    raise typer.Exit(result.exit_code)


@app.command()
def pull(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="ISO-DATETIME", help="Re-read orders modified since then."),
    ] = None,
    order: Annotated[list[int] | None, _ORDER_IDS] = None,
) -> None:
    """Read new and changed orders from WooCommerce into the state store.

    Example: woo2d365 pull --since 2026-11-01T00:00:00Z
    """
    state = _state(ctx)
    result = runs.run_pull(_runtime(state), since=runs.parse_since(since), order_ids=order or None)
    _print_line(state, runs.pull_summary(result), attention=False)


@app.command()
def validate(ctx: typer.Context, order: Annotated[list[int] | None, _ORDER_IDS] = None) -> None:
    """Check that every line of new and held orders resolves to a Dynamics item.

    Example: woo2d365 validate --order 1234
    """
    state = _state(ctx)
    result = runs.run_validate(_runtime(state), order_ids=order or None)
    _print_line(state, runs.validate_summary(result), attention=result.needs_attention)
    raise typer.Exit(ExitCode.ATTENTION if result.needs_attention else ExitCode.OK)


@app.command()
def push(
    ctx: typer.Context,
    order: Annotated[list[int] | None, _ORDER_IDS] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the exact Dynamics payloads; send nothing.")
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", metavar="N", min=1, help="At most N orders.")
    ] = None,
) -> None:
    """Create ready orders in Dynamics 365 as sales orders, exactly once.

    Example: woo2d365 push --dry-run --order 1234
    """
    state = _state(ctx)
    runtime = _runtime(state, dry_run=dry_run)
    result = runs.run_push(runtime, order_ids=order or None, dry_run=dry_run, limit=limit)
    for woo_id, why in result.left_out.items():
        state.err.print(f"order {woo_id}: not pushed: {clean(why)}", markup=False)
    if dry_run:
        _print_json(state, result.payloads())
        for adopted in result.adopted:
            state.err.print(
                f"order {adopted.woo_id}: already in Dynamics as {already_as(adopted)}: "
                "would be recorded as pushed, not created",
                markup=False,
            )
        for document in result.documents:
            for warning in document.warnings:
                state.err.print(f"order {document.woo_id}: {clean(warning)}", markup=False)
        raise typer.Exit(result.exit_code)
    _print_line(state, runs.push_summary(result), attention=result.needs_attention)
    raise typer.Exit(result.exit_code)


@app.command()
def retry(
    ctx: typer.Context,
    ids: Annotated[list[int] | None, typer.Argument(metavar="[ID]...", help="Order ids.")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Every failed order.")] = False,
    held: Annotated[bool, typer.Option("--held", help="Every held order.")] = False,
    everything: Annotated[bool, typer.Option("--all", help="Every failed and held order.")] = False,
    now: Annotated[bool, typer.Option("--now", help="Validate and push them at once.")] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Send again pushed orders whose Dynamics document was deleted."
        ),
    ] = False,
    refund: Annotated[
        list[int] | None,
        typer.Option("--refund", metavar="ID", help="A held or failed shop refund (repeatable)."),
    ] = None,
) -> None:
    """Give failed or held orders another go (attempts reset; who and when recorded).

    With --force, a pushed order whose sales order no longer exists in Dynamics is sent again;
    checked first: one invoiced or shipped there (the invoice or shipment exists) is refused.

    Example: woo2d365 retry --failed
    Example: woo2d365 retry --refund 1240
    """
    state = _state(ctx)
    if refund:
        if ids or failed or held or everything or now or force:
            raise _usage("--refund goes alone: retry --refund ID [--refund ID ...]")
        refunds = retry_refunds(state.store(), refund)
        for refund_id, why in refunds.refused:
            state.err.print(f"refund {refund_id}: not retried: {why}", markup=False)
        _print_line(
            state,
            f"retry: {len(refunds.retried)} refund(s) ready for the next refunds run",
            attention=bool(refunds.refused),
        )
        raise typer.Exit(1 if refunds.refused else 0)
    outcome = runs.run_retry(
        _runtime(state),
        ids=ids or [],
        failed=failed,
        held=held,
        everything=everything,
        now=now,
        force=force,
    )
    for woo_id, why in outcome.refused:
        state.err.print(f"order {woo_id}: not retried: {why}", markup=False)
    _print_line(state, runs.retry_summary(outcome), attention=bool(outcome.refused))
    raise typer.Exit(outcome.exit_code)


def _follow_up(state: CliState, name: str, options: FollowUpOptions) -> None:
    """Run one follow-up step and render it: dry-run lines on stdout, then the summary line."""
    with step_context(name):
        result = runs.run_follow_up(_runtime(state, dry_run=options.dry_run), name, options)
    for line in result.lines:
        state.out.print(clean(line), markup=False, highlight=False)
    for line in result.attention:
        state.err.print(clean(line), markup=False, highlight=False)
    if result.counts or not result.lines:
        _print_line(state, result.summary(), attention=bool(result.attention))
    raise typer.Exit(result.exit_code)


_DRY_RUN = typer.Option("--dry-run", help="Read only: show what would be written.")


@app.command()
def shipments(
    ctx: typer.Context,
    dry_run: Annotated[bool, _DRY_RUN] = False,
    order: Annotated[list[int] | None, _ORDER_IDS] = None,
) -> None:
    """Report Dynamics shipments and invoices of pushed orders to the shop, once each.

    Example: woo2d365 shipments --dry-run
    """
    options = FollowUpOptions(dry_run=dry_run, order_ids=tuple(order or ()))
    _follow_up(_state(ctx), "shipments", options)


@app.command()
def refunds(
    ctx: typer.Context,
    dry_run: Annotated[bool, _DRY_RUN] = False,
    order: Annotated[list[int] | None, _ORDER_IDS] = None,
) -> None:
    """Create a Dynamics sales credit memo for each shop refund of a pushed order, once.

    Example: woo2d365 refunds --order 1234
    """
    options = FollowUpOptions(dry_run=dry_run, order_ids=tuple(order or ()))
    _follow_up(_state(ctx), "refunds", options)


@app.command()
def stock(
    ctx: typer.Context,
    dry_run: Annotated[bool, _DRY_RUN] = False,
    sku: Annotated[
        list[str] | None,
        typer.Option("--sku", metavar="SKU", help="Only this shop SKU (repeatable)."),
    ] = None,
) -> None:
    """Set the shop's stock quantity of every mapped SKU from Dynamics inventory.

    Example: woo2d365 stock --dry-run --sku MUG-001
    """
    options = FollowUpOptions(dry_run=dry_run, skus=tuple(sku or ()))
    _follow_up(_state(ctx), "stock", options)


@contextmanager
def _progress(state: CliState, *, enabled: bool) -> Iterator[tuple[Any, Any]]:
    """On a terminal (stderr): the current step, its count and the time left; else nothing."""
    if not enabled:
        yield None, None
        return
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=state.err, transient=True) as progress:
        task = [progress.add_task("sync: starting", total=None)]

        def on_step(step: str) -> None:  # a new task: counts and time left start afresh
            progress.remove_task(task[0])
            task[0] = progress.add_task(f"sync: {step}", total=None)

        def on_progress(step: str, done: int, total: int | None) -> None:
            progress.update(task[0], description=f"sync: {step}", completed=done, total=total)

        yield on_step, on_progress


def _render_sync(state: CliState, result: Any) -> None:
    table = Table(title=f"sync run {result.run_id}", show_edge=False)
    for column in ("pulled new", "updated", "ready", "held", "pushed", "failed", "outcome"):
        table.add_column(column, justify="right")
    pull, valid, push_ = result.pull, result.validate, result.push
    table.add_row(
        str(pull.new) if pull else "-",
        str(pull.updated) if pull else "-",
        str(len(valid.ready)) if valid else "-",
        str(len(valid.held)) if valid else "-",
        str(push_.in_dynamics) if push_ else "-",
        str(len(push_.failed)) if push_ else "-",
        result.outcome,
    )
    state.out.print(table)
    for problem in (result.shop_problem, result.dynamics_problem, result.config_problem):
        if problem:
            state.out.print(f"[red]{escape(clean(str(problem)))}[/red]", highlight=False)
    if valid and valid.held:
        state.out.print(
            "Held orders: woo2d365 status --state held; SKUs: woo2d365 map-sku list --unmapped",
            highlight=False,
        )


def _print_line(state: CliState, line: str, *, attention: bool) -> None:
    if state.quiet and not attention:
        return
    state.out.print(clean(line), markup=False, highlight=False)


def _print_preview(state: CliState, preview: runs.Preview) -> None:
    for line in preview.lines:
        state.out.print(line, markup=False, highlight=False)


# -- demo -----------------------------------------------------------------------------------


@app.command()
def demo(
    ctx: typer.Context,
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the sandboxes and config running afterwards.")
    ] = False,
    orders: Annotated[
        int, typer.Option("--orders", metavar="N", help="Orders in the sandbox shop.")
    ] = 50,
    erp: Annotated[
        str,
        typer.Option(
            "--erp",
            metavar="PRODUCT",
            help="business-central (default) or finance-operations.",
        ),
    ] = "business-central",
) -> None:
    """A full sync against built-in sandboxes: no set-up, no network, under 30 seconds.

    Example: woo2d365 demo --keep, woo2d365 demo --erp finance-operations
    """
    from woo2d365.sandbox.demo import run_demo
    from woo2d365.sandbox.world import ERPS

    state = _state(ctx)
    if orders < 5:
        raise _usage("--orders must be at least 5")
    if erp not in ERPS:
        raise _usage(f"--erp must be one of {', '.join(ERPS)}")
    if not state.verbose:
        configure_logging(quiet=True, log_format=state.log_format)  # the demo tells its story
    outcome = run_demo(state.out, orders=orders, keep=keep, erp=erp)
    raise typer.Exit(ExitCode.OK if outcome.ok else ExitCode.ATTENTION)


# -- operations -----------------------------------------------------------------------------


@app.command()
def doctor(
    ctx: typer.Context,
    test_alerts: Annotated[
        bool, typer.Option("--test-alerts", help="Also send a test alert on every channel.")
    ] = False,
) -> None:
    """Check config, state store, WooCommerce, Dynamics 365 and alerts; a fix for each failure.

    Exits 0 when every check passes, 1 when one fails, 2 when the config cannot be loaded.

    Example: woo2d365 doctor --test-alerts
    """
    from woo2d365.doctor import run_doctor

    state = _state(ctx)
    report = run_doctor(state.settings, config=state.config, test_alerts=test_alerts)
    _render_doctor(state, report)
    raise typer.Exit(report.exit_code)


def _render_doctor(state: CliState, report: Any) -> None:
    from rich.text import Text

    styles = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}
    table = Table(show_edge=False, show_lines=True)
    for column in ("check", "result", "detail", "fix"):
        table.add_column(column, overflow="fold")
    for c in report.checks:
        table.add_row(
            Text(c.name), Text(c.result, style=styles[c.result]), Text(c.detail), Text(c.fix)
        )
    state.out.print(table)
    state.out.print(report.summary(), markup=False, highlight=False)


@app.command()
def reconcile(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="DATE", help="Only orders the store took since DATE."),
    ] = None,
    fix: Annotated[
        bool, typer.Option("--fix", help="Adopt the adoptable; queue missing write-backs.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Compare the store, Dynamics and the shop: adoptable, duplicated, missing orders.

    Never creates or deletes a Dynamics document.

    Example: woo2d365 reconcile --since 2026-11-01 --json
    """
    state = _state(ctx)
    report = runs.run_reconcile(_runtime(state), since=runs.parse_since(since), fix=fix)
    if as_json:
        _print_json(state, report.as_json())
    else:
        for line in runs.reconcile_summary(report):
            _print_line(state, line, attention=report.exit_code != ExitCode.OK)
    raise typer.Exit(report.exit_code)


@app.command()
def ack(
    ctx: typer.Context,
    woo_id: Annotated[int, typer.Argument(metavar="ID", help="The shop order id.")],
) -> None:
    """Acknowledge a change made in the shop after the order was pushed (who and when recorded).

    Example: woo2d365 ack 1234
    """
    state = _state(ctx)
    done = runs.run_ack(_runtime(state), woo_id)
    _print_line(state, f"order {done.woo_id}: {done.message}", attention=False)


@app.command()
def resolve(
    ctx: typer.Context,
    woo_id: Annotated[int, typer.Argument(metavar="ID", help="The shop order id.")],
    document: Annotated[
        str | None,
        typer.Option(
            "--document", metavar="NUMBER", help="The Dynamics sales order entered by hand."
        ),
    ] = None,
    skip: Annotated[bool, typer.Option("--skip", help="The order is not to be sent.")] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", metavar="TEXT", help="Why it is skipped.")
    ] = None,
) -> None:
    """Close an order by hand: recorded pushed to an existing document, or skipped.

    Who and why are recorded in the order's events.

    Example: woo2d365 resolve 1234 --document S-ORD101234
    """
    state = _state(ctx)
    done = runs.run_resolve(_runtime(state), woo_id, document=document, skip=skip, reason=reason)
    _print_line(state, f"order {done.woo_id}: {done.message}", attention=False)


@app.command()
def prune(
    ctx: typer.Context,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than", metavar="DURATION", help="Age of what is removed: 180d, 26w (≥ 1d)."
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would be removed.")
    ] = False,
) -> None:
    """Remove old events and the personal data of old pushed and skipped orders (GDPR).

    Ids, numbers, states and totals are kept; see woo2d365/retention.py for the fields.

    Example: woo2d365 prune --older-than 180d --dry-run
    """
    from woo2d365 import retention

    state = _state(ctx)
    age = retention.parse_retention(older_than)
    report = retention.prune(state.store(dry_run=dry_run), age, now=utc_now(), dry_run=dry_run)
    _print_line(state, report.summary(older_than), attention=dry_run)


# -- helpers --------------------------------------------------------------------------------


def _print_json(state: CliState, data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def _usage(message: str) -> Woo2D365Error:
    from woo2d365.errors import UsageError

    return UsageError(message)


def _shell_quote(value: str) -> str:
    import shlex

    return shlex.quote(value)


def _examples_one_per_line(*typers: typer.Typer) -> None:
    """Keep each command's ``Example:`` lines apart in ``--help`` (click rewraps a paragraph
    unless it starts with ``\\b``)."""
    for group in typers:
        for command in group.registered_commands:
            callback = command.callback
            doc = callback.__doc__ if callback else None
            if callback and doc and "Example:" in doc and "\b\n" not in doc:
                head, _, examples = doc.partition("    Example:")
                callback.__doc__ = f"{head}    \b\n    Example:{examples}"


_examples_one_per_line(app, map_sku_app)


def main() -> None:
    """Console-script entry point: the malloc arenas limited before any thread starts, and
    threads switched sooner (``threads.py``)."""
    limit_arenas()
    answer_sooner()
    app()
