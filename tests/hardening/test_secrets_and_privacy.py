"""Secrets never leak and personal data is masked, whatever command runs and however it fails.

Every command runs against the sandbox with known secret values (the shop's consumer key and
secret in query-string auth, so they travel in every URL; the Dynamics client secret; a MySQL
password in ``state.url``; a webhook URL and an SMTP password for alerts that cannot be
delivered), with ``-v``, ``--log-format json``, dry runs and failing runs that print
``--verbose`` tracebacks. Not one secret may appear in stdout, stderr, a metrics file or anywhere
in the state store. Log lines mask the e-mail, phone and street of a customer.
"""

from __future__ import annotations

import socket
import sqlite3
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit, urlunsplit

import pymysql
import pytest

from tests.cli.conftest import CliResult
from tests.conftest import MysqlServer, _server_admin
from tests.fixtures.cli import (
    finish,
    run_cli,
    running_sandbox,
    start_cli,
    unexpected_tracebacks,
    with_config,
)
from woo2d365 import settings as settings_module
from woo2d365.sandbox.shop_data import DEFAULT_BILLING, build_order, product_by_sku
from woo2d365.sandbox.tls import SandboxCA
from woo2d365.sandbox.world import Sandbox

PROBE_EMAIL = "privacy.probe@example.org"
PROBE_INVALID_EMAIL = "probe.invalid(at)example.org"
PROBE_PHONE = "+31 6 9876 5432"
PROBE_STREET = "Geheimstraat 77"
PROBE_ADDRESS = (
    f"{PROBE_STREET}, achterom via de groene poort naast de garage van de buren, derde deur links "
    "bij de fietsenstalling"
)  # over 100 characters: a warning says it was cut


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Secrets:
    """The secret values in play and every spelling of them that could leak."""

    values: list[str] = field(default_factory=list)

    def add(self, value: str) -> None:
        for form in (value, quote(value, safe=""), quote_plus(value)):
            if form not in self.values:
                self.values.append(form)

    def found_in(self, text: str) -> list[str]:
        return [value for value in self.values if value in text]


@dataclass
class Runs:
    """Every command's output on one backend, the secrets in play and the store's URL."""

    results: list[tuple[str, CliResult]]
    secrets: Secrets
    state_url: str


@pytest.fixture(scope="module")
def sqlite_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runs]:
    """Every command, run once with a SQLite store."""
    yield from _runs(request, tmp_path_factory, "sqlite")


@pytest.fixture(scope="module")
def mysql_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runs]:
    """The commands that open the store in every way, with a MySQL store behind a password."""
    yield from _runs(request, tmp_path_factory, "mysql")


def _runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, backend: str
) -> Iterator[Runs]:
    """Commands run against a sandbox whose config carries every kind of secret."""
    directory = tmp_path_factory.mktemp(f"secrets-{backend}")
    token = uuid.uuid4().hex
    secrets = Secrets()
    with running_sandbox(directory / "sandbox", orders=8, unmapped_orders=0, seed=5) as sandbox:
        state_url = f"sqlite:///{sandbox.state_path}"
        user = ""
        if backend == "mysql":
            server: MysqlServer = request.getfixturevalue("mysql_server")
            database = urlsplit(server.new_database_url())
            user = f"w2d_{token[:10]}"
            password = f"My+Sql/Pw%{token[10:26]}"
            with _server_admin() as conn, conn.cursor() as cur:
                for host in ("127.0.0.1", "localhost", "%"):
                    cur.execute("CREATE USER %s@%s IDENTIFIED BY %s", (user, host, password))
                    cur.execute(f"GRANT ALL ON `{database.path[1:]}`.* TO %s@%s", (user, host))
            host = f"{database.hostname}:{database.port or 3306}"
            netloc = f"{user}:{quote(password, safe='')}@{host}"
            state_url = urlunsplit(("mysql", netloc, database.path, "", ""))
            secrets.add(password)
        webhook = f"https://127.0.0.1:{_closed_port()}/hooks/T0K3N{token}"
        smtp_password = f"smtp-{token[::-1]}"
        with_config(
            sandbox,
            woocommerce={"auth": "query"},
            state={"url": state_url},
            alerts={"repeat_after_minutes": 0},
            **{
                "alerts.webhook": {"url": webhook},
                "alerts.email": {
                    "smtp_host": "127.0.0.1",
                    "smtp_port": _closed_port(),
                    "username": "alerts",
                    "password": smtp_password,
                    "sender": "woo2d365@example.org",
                    "recipients": ["ops@example.org"],
                },
            },
        )
        for value in (
            sandbox.shop.consumer_key,
            sandbox.shop.consumer_secret,
            sandbox.bc.client_secret,
            webhook,
            f"T0K3N{token}",
            smtp_password,
        ):
            secrets.add(value)
        sandbox.shop.add_orders(_probe_orders(sandbox))
        try:
            results = _run_everything(sandbox, directory, full=backend == "sqlite")
            if backend == "mysql":  # the store away: its error must not carry the password
                parts = urlsplit(state_url)
                away = parts.netloc.rsplit(":", 1)[0] + f":{_closed_port()}"
                url = urlunsplit((parts.scheme, away, parts.path, "", ""))
                for args in (("-v", "status"), ("--verbose", "sync")):
                    result = run_cli(sandbox, *args, env={"WOO2D365_STATE__URL": url})
                    assert result.exit_code == 3, result.stderr
                    results.append((f"{' '.join(args)} (store away)", result))
            yield Runs(results, secrets, state_url)
        finally:
            if user:
                with _server_admin() as conn, conn.cursor() as cur:
                    for host in ("127.0.0.1", "localhost", "%"):
                        cur.execute("DROP USER IF EXISTS %s@%s", (user, host))


def _probe_orders(sandbox: Sandbox) -> list[dict[str, Any]]:
    created = sandbox.start_gmt + timedelta(hours=20)
    billing = {
        **DEFAULT_BILLING,
        "email": PROBE_EMAIL,
        "phone": f"{PROBE_PHONE} (na 18u)",  # letters: a warning names the phone
        "address_1": PROBE_ADDRESS,  # over 100 characters: a warning names the street
    }
    widget = product_by_sku("WIDGET-001")
    return [
        build_order(7001, items=[(widget, 1)], created_gmt=created, billing=billing,
                    shipping=Decimal("4.09")),
        build_order(7002, items=[(widget, 2)], created_gmt=created + timedelta(minutes=5),
                    billing={**billing, "email": PROBE_INVALID_EMAIL}, shipping=Decimal("4.09")),
    ]  # fmt: skip


def _dump_store(state_url: str) -> str:
    """Every row of every table of the store as text (and, for SQLite, the raw files)."""
    parts: list[str] = []
    if state_url.startswith("sqlite:///"):
        path = Path(state_url[len("sqlite:///") :])
        with sqlite3.connect(path) as conn:
            query = "SELECT name FROM sqlite_master WHERE type='table'"
            for (table,) in conn.execute(query).fetchall():
                rows = conn.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - catalogue names
                parts += [repr(row) for row in rows]
        for file in path.parent.glob(path.name + "*"):
            parts.append(file.read_bytes().decode("utf-8", "replace"))
        return "\n".join(parts)
    url = urlsplit(state_url)
    conn = pymysql.connect(
        host=url.hostname, port=url.port or 3306, user=unquote(url.username or ""),
        password=unquote(url.password or ""), database=url.path[1:],
    )  # fmt: skip
    with conn, conn.cursor() as cur:
        cur.execute("SHOW TABLES")
        for (table,) in cur.fetchall():
            cur.execute(f"SELECT * FROM `{table}`")  # noqa: S608 - catalogue names
            parts += [repr(row) for row in cur.fetchall()]
    return "\n".join(parts)


def _run_everything(
    sandbox: Sandbox, directory: Path, *, full: bool
) -> list[tuple[str, CliResult]]:
    """Every command (``full``) or those that open the store in every way, ok and failing."""
    results: list[tuple[str, CliResult]] = []
    metrics = directory / "woo2d365.prom"
    csv = directory / "skus.csv"

    def run(*args: str) -> CliResult:
        result = run_cli(sandbox, *args)
        results.append((" ".join(args), result))
        return result

    def run_at_once(*commands: tuple[str, ...]) -> None:
        started = [(args, start_cli(sandbox, *args)) for args in commands]
        results.extend((" ".join(args), finish(process)) for args, process in started)

    if full:
        for args in (("-v", "pull"), ("-v", "push", "--dry-run"), ("-v", "sync", "--dry-run"),
                     ("-v", "validate")):  # fmt: skip
            run(*args)
    run("-v", "sync", "--metrics-file", str(metrics))
    run("--log-format", "json", "-v", "sync")
    if full:
        for args in (("-v", "push"), ("-v", "retry", "--all"),
                     ("--log-format", "json", "-v", "retry", "--all", "--now"),
                     ("map-sku", "add", "SECRET-PROBE", "1000", "--note", "probe"),
                     ("map-sku", "export", str(csv)), ("map-sku", "import", str(csv))):  # fmt: skip
            run(*args)
        run_at_once(
            ("status",), ("status", "7001"), ("status", "7001", "--json"), ("status", "--check"),
            ("-v", "map-sku", "list", "--unmapped"), ("map-sku", "list", "--json"),
            ("--log-format", "json", "-v", "doctor", "--test-alerts"),
            ("-v", "prune", "--older-than", "1d", "--dry-run"),
        )  # fmt: skip
        results.append(("exported csv", CliResult(0, csv.read_text(encoding="utf-8"), "")))
    run_at_once(("status", "--json"), ("-v", "doctor"))
    results.append(("metrics file", CliResult(0, metrics.read_text(encoding="utf-8"), "")))
    # Failing runs with --verbose tracebacks: the shop away (its URLs carry the credentials in
    # query-string auth), then Dynamics away too.
    sandbox.shop.stop()
    run("--verbose", "--log-format", "json", "sync")
    run("-v", "pull", "--order", "7001")
    sandbox.bc.stop()
    run("-v", "push")
    if full:
        run("-v", "doctor")
    return results


def _leaks(runs: Runs) -> None:
    exits = {name: result.exit_code for name, result in runs.results}
    assert exits["status --json"] == 0, "the store could not be read: the test proves nothing"
    assert exits["--log-format json -v sync"] == 0, "the sync before held what it holds"
    found = [
        f"{name} ({stream}): {value[:12]}…"
        for name, result in runs.results
        for stream, text in (("stdout", result.stdout), ("stderr", result.stderr))
        for value in runs.secrets.found_in(text)
    ]
    assert not found, "\n".join(found)
    assert "Traceback" in "".join(r.stderr for _, r in runs.results), "no traceback was seen"
    stored = runs.secrets.found_in(_dump_store(runs.state_url))
    assert not stored, f"secrets in the state store: {[v[:12] for v in stored]}"


def test_no_command_leaks_a_secret_anywhere(sqlite_runs: Runs) -> None:
    _leaks(sqlite_runs)


@pytest.mark.mysql
def test_no_command_leaks_a_secret_with_a_mysql_store_behind_a_password(mysql_runs: Runs) -> None:
    _leaks(mysql_runs)


def _exposed(runs: Runs, values: tuple[str, ...]) -> list[str]:
    return [
        f"{name}: {line}"
        for name, result in runs.results
        for value in values
        for line in result.stderr.splitlines()
        if value in line
    ]


def test_log_lines_mask_email_addresses_and_phone_numbers(sqlite_runs: Runs) -> None:
    exposed = _exposed(sqlite_runs, (PROBE_EMAIL, PROBE_PHONE))
    assert not exposed, "personal data on stderr:\n" + "\n".join(exposed)
    logged = "\n".join(result.stderr for _, result in sqlite_runs.results)
    assert "p***@example.org" in logged and "removed characters" in logged  # they were there


def test_log_lines_mask_streets_and_unreadable_email_addresses(sqlite_runs: Runs) -> None:
    exposed = _exposed(sqlite_runs, (PROBE_STREET, PROBE_INVALID_EMAIL))
    assert not exposed, "personal data on stderr:\n" + "\n".join(exposed)
    logged = "\n".join(result.stderr for _, result in sqlite_runs.results)
    assert "cut to 100 characters" in logged and "not a valid e-mail address" in logged


# -- config file permissions ----------------------------------------------------------------


@pytest.mark.parametrize(("mode", "warned"), [(0o644, True), (0o640, True), (0o600, False)])
def test_a_config_file_with_secrets_readable_by_others_gets_one_warning(
    tmp_path: Path, mode: int, warned: bool
) -> None:
    config = tmp_path / "woo2d365.toml"
    config.write_text(
        f'[dynamics]\nclient_secret = "s3cret-value"\n[state]\nurl = "sqlite:///{tmp_path}/s.db"\n',
        encoding="utf-8",
    )
    config.chmod(mode)
    result = run_cli(None, "status", config=config)
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "chmod 600" in line]
    assert len(warnings) == (1 if warned else 0), result.stderr
    if warned:
        assert str(config) in warnings[0] and "s3cret-value" not in result.stderr


def test_a_config_file_without_secrets_may_be_readable(tmp_path: Path) -> None:
    config = tmp_path / "woo2d365.toml"
    config.write_text(f'[state]\nurl = "sqlite:///{tmp_path}/s.db"\n', encoding="utf-8")
    config.chmod(0o644)
    result = run_cli(None, "status", config=config)
    assert result.exit_code == 0 and "chmod" not in result.stderr, result.stderr


# -- TLS verification -----------------------------------------------------------------------


def _setting_names(model: Any, prefix: str = "") -> Iterator[str]:
    for name, info in getattr(model, "model_fields", {}).items():
        yield f"{prefix}{name}"
        yield from _setting_names(info.annotation, f"{prefix}{name}.")


def test_there_is_no_setting_that_turns_tls_verification_off() -> None:
    names = list(_setting_names(settings_module.Settings))
    assert "dynamics.client_secret" in names and "alerts.email.smtp_host" in names
    # STARTTLS on or off is the SMTP relay's choice; it never turns verification off.
    suspicious = [
        name
        for name in names
        if name != "alerts.email.starttls"
        and any(word in name.lower() for word in ("verify", "insecure", "tls", "ssl", "cert"))
    ]
    assert suspicious == []


@pytest.mark.parametrize(
    "environment",
    [
        {"REQUESTS_CA_BUNDLE": None, "SSL_CERT_FILE": None},
        # requests once read an empty CURL_CA_BUNDLE as "verify nothing"
        {"REQUESTS_CA_BUNDLE": None, "SSL_CERT_FILE": None, "CURL_CA_BUNDLE": ""},
        {"REQUESTS_CA_BUNDLE": "", "SSL_CERT_FILE": "", "PYTHONHTTPSVERIFY": "0"},
    ],
    ids=["no-ca", "empty-curl-bundle", "empty-bundles"],
)
def test_a_server_whose_certificate_is_not_trusted_is_refused_with_a_clear_error(
    tmp_path: Path, environment: dict[str, str | None]
) -> None:
    with running_sandbox(tmp_path / "sandbox", orders=3, unmapped_orders=0) as sandbox:
        result = run_cli(sandbox, "-v", "sync", env=environment)  # -v: tracebacks shown
        assert result.exit_code == 3, result.stdout + result.stderr
        text = result.stdout + result.stderr
        assert "certificate" in text and "REQUESTS_CA_BUNDLE" in text, text
        assert not unexpected_tracebacks(text), text
        assert sandbox.bc.sales_orders() == [] and sandbox.bc.token_requests == 0
        assert sandbox.shop.requests == [], "a request (with credentials) went out"


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"[]")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def test_a_self_signed_shop_is_refused_even_with_a_ca_bundle_set(tmp_path: Path) -> None:
    """A shop with a certificate of a CA nobody trusts (self-signed): clear error, exit 3."""
    stranger = SandboxCA(tmp_path / "stranger")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    context: ssl.SSLContext = stranger.server_context()
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with running_sandbox(tmp_path / "sandbox", orders=1, unmapped_orders=0) as sandbox:
            with_config(sandbox, woocommerce={"url": f"https://127.0.0.1:{server.server_port}"})
            result = run_cli(sandbox, "pull")
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 3, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "certificate could not be verified" in lines[0], result.stderr
