"""``woo2d365 doctor``: is everything in place for unattended runs? One check per row.

Checks, in order: the config (loads, the keys each system needs, file permissions), the state
store (reachable, schema version), WooCommerce (reachable, the API key, write permission, order
storage), Dynamics 365 (token, company, read items, sales orders and customers; what can be said
about the permission to create) and the alert channels (a test alert with ``--test-alerts``).
Nothing is written anywhere, except the test alert when asked for. Every text shown passes
through :func:`woo2d365.logs.clean`, so no secret and no personal data reaches the table.
"""

from __future__ import annotations

import stat
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from woo2d365.errors import (
    ConfigError,
    DynamicsAuthenticationError,
    DynamicsError,
    DynamicsUnreachable,
    ExitCode,
    ShopAuthenticationError,
    ShopError,
    ShopUnreachable,
    Woo2D365Error,
)
from woo2d365.logs import clean
from woo2d365.runtime import FINANCE_OPERATIONS, SHOP_KEYS, dynamics_keys
from woo2d365.settings import LoadedSettings, Settings, resolve_config_path, secrets_in

Result = Literal["ok", "warn", "fail", "skip"]

DOCTOR_TRIES = 2  # doctor answers quickly: one retry, short waits
PERMISSION_SETS = (
    "give the Microsoft Entra application in Business Central (page 'Microsoft Entra "
    "Applications') permission sets that allow it, e.g. D365 BUS FULL ACCESS"
)


@dataclass(frozen=True)
class Check:
    """One row of the doctor's table."""

    name: str
    result: Result
    detail: str
    fix: str = ""

    def cleaned(self) -> Check:
        """The same row with secrets redacted and personal data masked."""
        return Check(self.name, self.result, clean(self.detail), clean(self.fix))


@dataclass
class DoctorReport:
    """Every check made, and the exit code they add up to."""

    checks: list[Check] = field(default_factory=list)
    config_loaded: bool = True
    store_exit: ExitCode | None = None  # 2 or 3 when the state store check failed, as for status

    def add(self, name: str, result: Result, detail: str, fix: str = "") -> Check:
        """Record one check (cleaned) and return it."""
        check = Check(name, result, detail, fix if result in ("fail", "warn") else "").cleaned()
        self.checks.append(check)
        return check

    def count(self, result: Result) -> int:
        """How many checks had ``result``."""
        return sum(1 for c in self.checks if c.result == result)

    @property
    def exit_code(self) -> ExitCode:
        """As ``status``: 2 when the config cannot be loaded or ``state.url`` is wrong, 3 when
        the state store cannot be reached; else 1 when a check failed, 0 when none did."""
        if not self.config_loaded:
            return ExitCode.USAGE
        if self.store_exit is not None:
            return self.store_exit
        return ExitCode.ATTENTION if self.count("fail") else ExitCode.OK

    def summary(self) -> str:
        """``doctor: 14 passed, 1 warning, 0 failed, 1 not checked``."""
        warnings = self.count("warn")
        return (
            f"doctor: {self.count('ok')} passed, {warnings} warning{'' if warnings == 1 else 's'}"
            f", {self.count('fail')} failed, {self.count('skip')} not checked"
        )


def run_doctor(
    load_settings: Callable[[], LoadedSettings],
    *,
    config: str | None = None,
    test_alerts: bool = False,
    clock: Callable[[], datetime] | None = None,
) -> DoctorReport:
    """Run every check; ``config`` is the ``--config`` value (for the permission check)."""
    from woo2d365.clock import utc_now

    report = DoctorReport()
    try:
        loaded = load_settings()
    except ConfigError as exc:
        report.config_loaded = False
        report.add(
            "config",
            "fail",
            str(exc),
            "correct the setting named here in the config file, or its WOO2D365_… variable",
        )
        return report
    path, _named = resolve_config_path(config)
    _check_config(report, loaded, path)
    shop_ready = _required(report, loaded, "WooCommerce", SHOP_KEYS)
    dynamics_ready = _required(report, loaded, "Dynamics 365", dynamics_keys(loaded.settings))
    _check_store(report, loaded.settings)
    if shop_ready:
        _check_shop(report, loaded.settings)
    if dynamics_ready:
        _check_dynamics(report, loaded.settings)
    _check_alerts(report, loaded.settings, test_alerts=test_alerts, clock=clock or utc_now)
    return report


# -- config -------------------------------------------------------------------------------------


def _check_config(report: DoctorReport, loaded: LoadedSettings, path: Path) -> None:
    if not path.exists():
        report.add("config", "ok", "no config file; defaults and WOO2D365_* variables")
        return
    report.add("config", "ok", f"{path} loaded")
    mode = path.stat().st_mode
    secrets = _secrets_in_file(path)
    if mode & stat.S_IWOTH:
        report.add(
            "config: permissions",
            "warn",
            f"{path} is writable by everyone (mode {stat.S_IMODE(mode):04o})",
            f"chmod 600 {path}",
        )
    elif mode & (stat.S_IRGRP | stat.S_IROTH) and secrets:
        report.add(
            "config: permissions",
            "warn",
            f"{path} holds secrets ({', '.join(secrets)}) and is readable by group or others "
            f"(mode {stat.S_IMODE(mode):04o})",
            f"chmod 600 {path} (readable by the service user only), or move the secrets to "
            "WOO2D365_* environment variables",
        )
    else:
        report.add("config: permissions", "ok", f"mode {stat.S_IMODE(mode):04o}")
    orders = loaded.settings.orders
    missing = [
        f"orders.{name} is empty: orders with {what} are held until it is set"
        for name, what in (("shipping_account", "shipping"), ("fee_account", "fees"))
        if not getattr(orders, name).strip()
    ]
    if missing:
        report.add(
            "config: orders",
            "warn",
            "; ".join(missing),
            "set the G/L account numbers in [orders] if your orders have shipping or fees",
        )


def _secrets_in_file(path: Path) -> list[str]:
    """Names of the secret settings the file itself holds (not those from the environment)."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError):
        return []
    return secrets_in(data)


def _required(
    report: DoctorReport, loaded: LoadedSettings, system: str, keys: tuple[str, ...]
) -> bool:
    try:
        loaded.require(*keys)
    except ConfigError as exc:
        report.add(f"config: {system}", "fail", str(exc), f"set it to check {system}")
        return False
    report.add(f"config: {system}", "ok", "every required key is set")
    return True


# -- state store --------------------------------------------------------------------------------


def _check_store(report: DoctorReport, settings: Settings) -> None:
    from woo2d365.store import open_store
    from woo2d365.store.migrations import LATEST_VERSION

    name = "state store"
    try:
        store = open_store(settings.state.url.get_secret_value(), migrate=False)
    except ConfigError as exc:
        report.add(name, "fail", str(exc), "correct state.url")
        report.store_exit = ExitCode.USAGE
        return
    sqlite_path = getattr(store.dialect, "path", None)
    try:
        where = store.dialect.describe()
        if sqlite_path is not None and sqlite_path != ":memory:":
            path = Path(sqlite_path)
            if not path.parent.is_dir():
                report.add(
                    name,
                    "fail",
                    f"state.url: {where}: the directory {path.parent} does not exist",
                    f"correct state.url, or create the directory (mkdir -p {path.parent}) and "
                    "let the service user write to it",
                )
                report.store_exit = ExitCode.UNREACHABLE
                return
            if not path.exists():
                report.add(name, "ok", f"{where} does not exist yet; the first run creates it")
                return
        version = store.schema_version()
    except ConfigError as exc:
        report.add(name, "fail", str(exc), "correct the user, password or database in state.url")
        report.store_exit = ExitCode.USAGE
        return
    except Woo2D365Error as exc:
        report.add(name, "fail", str(exc), _store_fix(sqlite_path))
        report.store_exit = exc.exit_code
        return
    except Exception as exc:  # doctor reports, it never crashes
        report.add(
            name,
            "fail",
            f"state.url: {type(exc).__name__}: {exc}",
            "check state.url; this looks like a bug of woo2d365, please report it",
        )
        return
    finally:
        store.close()
    report.add(name, "ok", f"{where} reachable")
    if version == LATEST_VERSION:
        report.add("state store: schema", "ok", f"version {version} (latest)")
    elif version < LATEST_VERSION:
        report.add(
            "state store: schema",
            "warn",
            f"version {version}, this woo2d365 uses {LATEST_VERSION}",
            "nothing to do by hand: the next command (e.g. woo2d365 status) migrates it",
        )
    else:
        report.add(
            "state store: schema",
            "fail",
            f"version {version} is newer than this woo2d365 knows ({LATEST_VERSION})",
            "run the woo2d365 version that wrote it (upgrade this installation)",
        )


def _store_fix(sqlite_path: str | None) -> str:
    if sqlite_path is None:
        return "check state.url and that the database server runs and accepts connections"
    if Path(sqlite_path).is_dir():
        return "state.url must name a database file, not a directory"
    return (
        "state.url must name woo2d365's SQLite file: correct it, or restore the file from a "
        "backup; when it was only busy (database is locked), run doctor again"
    )


# -- WooCommerce --------------------------------------------------------------------------------


def _check_shop(report: DoctorReport, settings: Settings) -> None:
    from woo2d365.shop.client import WooClient

    woo = settings.woocommerce
    try:
        client = WooClient(woo, max_tries=DOCTOR_TRIES, max_wait_seconds=2.0)
    except ConfigError as exc:
        report.add("WooCommerce", "fail", str(exc), "correct [woocommerce] as the message says")
        return
    try:
        info = client.check_access(probe_write=True)
    except ShopUnreachable as exc:
        report.add(
            "WooCommerce: reachable",
            "fail",
            str(exc),
            "check woocommerce.url, and that this host can reach the shop (DNS, firewall); for a "
            "private CA set REQUESTS_CA_BUNDLE",
        )
        return
    except ShopAuthenticationError as exc:
        report.add("WooCommerce: reachable", "ok", "the shop answers")
        report.add(
            "WooCommerce: API key",
            "fail",
            str(exc),
            "check woocommerce.consumer_key and woocommerce.consumer_secret (WooCommerce → "
            "Settings → Advanced → REST API); if the host strips the Authorization header, set "
            'woocommerce.auth = "query"',
        )
        return
    except ShopError as exc:
        report.add(
            "WooCommerce: API",
            "fail",
            str(exc),
            "check woocommerce.url (the site root) and that the WooCommerce REST API is enabled",
        )
        return
    finally:
        client.close()
    total = f", {info.orders_total} orders" if info.orders_total is not None else ""
    report.add("WooCommerce: reachable", "ok", f"{info.url}{total}")
    report.add("WooCommerce: API key", "ok", f"accepted (auth = {info.auth})")
    notes = "; ".join(info.notes)
    if info.can_write:
        report.add("WooCommerce: write permission", "ok", "Read/Write")
    elif info.can_write is False and not woo.write_back:
        report.add("WooCommerce: write permission", "ok", "read only (write_back is off)")
    elif info.can_write is False:
        report.add(
            "WooCommerce: write permission",
            "fail",
            "the API key is read-only; the note and meta written back after a push need Read/Write",
            "give the key Read/Write permission, or set woocommerce.write_back = false",
        )
    else:
        report.add(
            "WooCommerce: write permission",
            "warn",
            notes or "could not be determined",
            "make sure the key has Read/Write permission",
        )
    if info.hpos is None:
        report.add(
            "WooCommerce: order storage",
            "warn",
            notes or "unknown",
            "not needed to sync; the key's user needs the shop manager role to read the "
            "system status",
        )
    else:
        storage = "HPOS (order tables)" if info.hpos else "WordPress posts (legacy)"
        report.add("WooCommerce: order storage", "ok", storage)


# -- Dynamics 365 -------------------------------------------------------------------------------


def _check_dynamics(report: DoctorReport, settings: Settings) -> None:
    if settings.dynamics.product == FINANCE_OPERATIONS:
        from woo2d365.erp.financeoperations.doctor import check_finance_operations

        check_finance_operations(report.add, settings, tries=DOCTOR_TRIES)
        return
    from woo2d365.erp.businesscentral.auth import MsalTokenProvider
    from woo2d365.erp.businesscentral.client import BusinessCentralClient
    from woo2d365.retries import RetryPolicy

    dynamics = settings.dynamics
    tokens = MsalTokenProvider(dynamics)
    try:
        tokens.token()
    except DynamicsAuthenticationError as exc:
        report.add(
            "Dynamics: token",
            "fail",
            str(exc),
            "check dynamics.client_secret (wrong or expired: create a new client secret in the "
            "app registration), dynamics.client_id and dynamics.tenant_id",
        )
        return
    except DynamicsError as exc:
        report.add(
            "Dynamics: token",
            "fail",
            str(exc),
            "check dynamics.authority_host and that this host can reach it",
        )
        return
    report.add("Dynamics: token", "ok", f"issued by {dynamics.authority_host}")
    retry = RetryPolicy(
        max_tries=DOCTOR_TRIES, base_seconds=0.5, max_backoff_seconds=2.0, max_elapsed_seconds=30
    )
    client = BusinessCentralClient(dynamics, tokens, retry=retry)
    try:
        try:
            company_id = client.company_id()
        except (ConfigError, DynamicsError) as exc:
            report.add("Dynamics: company", "fail", str(exc), _dynamics_fix(exc, "company"))
            return
        report.add("Dynamics: company", "ok", f"{dynamics.company} ({company_id})")
        reads = [
            ("items", "items", "number"),
            ("sales orders", "salesOrders", "number"),
        ]
        if settings.orders.customer_mode == "per-email":
            reads.append(("customers", "customers", "number"))
        for label, entity, select in reads:
            try:
                client.request("GET", client.company_path(entity) + f"?$top=1&$select={select}")
            except DynamicsError as exc:
                report.add(f"Dynamics: read {label}", "fail", str(exc), _dynamics_fix(exc, label))
            else:
                report.add(f"Dynamics: read {label}", "ok", "readable")
        _check_references(report, client, settings)
        _check_tax_codes_and_countries(report, client, settings)
        report.add(
            "Dynamics: permission to create",
            "skip",
            "not checked: only a create shows it, and doctor creates nothing. Without it the "
            "first push fails the order with an Authorization_ error naming the missing "
            "permission; then "
            + PERMISSION_SETS.replace(
                " that allow it", " that allow creating sales orders and customers"
            ),
        )
    finally:
        client.close()


def _check_references(report: DoctorReport, client: Any, settings: Settings) -> None:
    """The G/L accounts and the fixed customer the orders refer to exist in Business Central
    (else every order with shipping, a fee or a rounding difference fails on its first push)."""
    from woo2d365.erp.odata_query import odata_string, query_string

    orders = settings.orders
    wanted = [
        (f"orders.{key}", "accounts", "G/L account", getattr(orders, key).strip())
        for key in ("shipping_account", "fee_account", "rounding_account")
    ]
    if orders.customer_mode == "fixed":
        wanted.append(
            ("orders.customer_number", "customers", "customer", orders.customer_number.strip())
        )
    for key, entity, kind, number in wanted:
        if not number:
            continue
        check = f"Dynamics: {key}"
        path = client.company_path(entity) + query_string(
            {"$filter": f"number eq {odata_string(number.upper())}", "$select": "number"}
        )
        try:
            found = client.request("GET", path)
        except DynamicsError as exc:
            report.add(check, "fail", str(exc), _dynamics_fix(exc, f"{kind}s"))
            continue
        if isinstance(found, dict) and found.get("value"):
            report.add(check, "ok", f"{kind} {number.upper()} exists")
        else:
            report.add(
                check,
                "fail",
                f"{kind} {number.upper()} does not exist in the company",
                f"create {kind} {number.upper()} in Business Central, or correct {key}",
            )


def _check_tax_codes_and_countries(report: DoctorReport, client: Any, settings: Settings) -> None:
    """Every code of ``orders.tax_codes`` is a tax group of the company (else every order with
    that rate fails on its first push), and the company has countries/regions to check against."""
    from woo2d365.erp.odata_query import query_string

    codes = sorted(set(settings.orders.tax_codes.values()))
    if codes:
        path = client.company_path("taxGroups") + query_string({"$select": "code"})
        try:
            found = client.request("GET", path)
        except DynamicsError as exc:
            if getattr(exc, "status", None) in (404, 501):
                report.add(
                    "Dynamics: orders.tax_codes",
                    "skip",
                    "not checked: this Business Central does not list its tax groups",
                )
            else:
                report.add(
                    "Dynamics: orders.tax_codes", "fail", str(exc), _dynamics_fix(exc, "taxGroups")
                )
        else:
            known = {str(g.get("code", "")).upper() for g in (found or {}).get("value", [])}
            missing = [code for code in codes if code not in known]
            if missing:
                report.add(
                    "Dynamics: orders.tax_codes",
                    "fail",
                    f"tax code{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                    "not found among the company's tax groups (VAT product posting groups)",
                    "create the VAT product posting group in Business Central, or correct "
                    "orders.tax_codes",
                )
            else:
                report.add("Dynamics: orders.tax_codes", "ok", f"{', '.join(codes)} exist")
    try:
        countries = client.country_codes()
    except DynamicsError as exc:
        report.add("Dynamics: countries/regions", "fail", str(exc), _dynamics_fix(exc, "countries"))
        return
    if countries is None:
        report.add(
            "Dynamics: countries/regions",
            "skip",
            "not listed by this Business Central: country codes are not checked before a push",
        )
    elif not countries:
        report.add(
            "Dynamics: countries/regions",
            "fail",
            "the company has no countries/regions: every order with an address would be held",
            "set up Countries/Regions in Business Central",
        )
    else:
        report.add("Dynamics: countries/regions", "ok", f"{len(countries)} known")


def _dynamics_fix(exc: Woo2D365Error, what: str) -> str:
    if isinstance(exc, ConfigError):
        return "correct dynamics.company (or environment/tenant_id) as the message says"
    if isinstance(exc, DynamicsUnreachable):
        return "check dynamics.api_url and that this host can reach it"
    status = getattr(exc, "status", None)
    code = getattr(exc, "code", None) or ""
    if status in (401, 403) or code.startswith(("Authorization_", "Authentication_")):
        return f"{PERMISSION_SETS} to read {what}"
    return "see the message; check dynamics.environment and dynamics.api_url"


# -- alerts -------------------------------------------------------------------------------------


def _check_alerts(
    report: DoctorReport,
    settings: Settings,
    *,
    test_alerts: bool,
    clock: Callable[[], datetime],
) -> None:
    from woo2d365.alerts import channels_from_settings, send_test_alert

    channels = channels_from_settings(settings.alerts)
    if not channels:
        report.add(
            "alerts",
            "warn",
            "no alert channel configured: held and failed orders reach nobody",
            "configure [alerts.email] or [alerts.webhook]",
        )
        return
    names = ", ".join(channel.name for channel in channels)
    if not test_alerts:
        report.add("alerts", "ok", f"{names} configured; --test-alerts sends a test alert")
        return
    for name, error in send_test_alert(settings.alerts, clock=clock, channels=channels):
        if error is None:
            report.add(f"alerts: {name}", "ok", "test alert sent")
        else:
            report.add(
                f"alerts: {name}",
                "fail",
                error,
                "check [alerts.email] (smtp_host, smtp_port, starttls, username, password, "
                "sender, recipients)"
                if name == "email"
                else "check [alerts.webhook] url (a new incoming-webhook URL if it was revoked)",
            )
