"""Shared fixtures: a fresh state store per test on SQLite and on the real MariaDB/MySQL server.

The MySQL side uses ``WOO2D365_TEST_MYSQL_URL`` (default ``mysql://root@127.0.0.1:3306/``) and
creates a database per test. When the server cannot be reached the MySQL tests are skipped
locally, but fail when ``WOO2D365_REQUIRE_MYSQL=1`` (set by ``.ci/run``): CI never skips them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pymysql
import pytest
from hypothesis import settings

from woo2d365.store import SqlStore, open_store

MYSQL_URL = os.environ.get("WOO2D365_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/")
REQUIRE_MYSQL = os.environ.get("WOO2D365_REQUIRE_MYSQL") == "1"

# Property tests explore new examples on every local run; in CI they are the same every time, so
# a gate never fails on an example nobody has seen (a failure found locally becomes a test).
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _isolated_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No developer's WOO2D365_* settings or ./woo2d365.toml leak into a test."""
    for name in list(os.environ):
        if (
            name.startswith("WOO2D365_")
            and not name.startswith("WOO2D365_TEST_")
            and name != "WOO2D365_REQUIRE_MYSQL"
        ):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("MSAL_FORCE_REGION", raising=False)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


def _server_admin() -> pymysql.connections.Connection:
    parts = urlsplit(MYSQL_URL)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        autocommit=True,
        connect_timeout=5,
    )


class MysqlServer:
    """Creates and drops throwaway databases on the test server."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def new_database_url(self) -> str:
        name = f"w2d_test_{uuid.uuid4().hex[:12]}"
        with _server_admin() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        self.created.append(name)
        parts = urlsplit(MYSQL_URL)
        return urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))

    def drop_all(self) -> None:
        with _server_admin() as conn, conn.cursor() as cur:
            for name in self.created:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        self.created.clear()


@pytest.fixture(scope="session")
def mysql_server() -> Iterator[MysqlServer]:
    """The real MariaDB/MySQL server, or a skip (a failure in CI)."""
    try:
        _server_admin().close()
    except pymysql.err.Error as exc:
        message = f"MySQL/MariaDB server not reachable at {MYSQL_URL}: {exc}"
        if REQUIRE_MYSQL:
            pytest.fail(message + " (WOO2D365_REQUIRE_MYSQL=1: the MySQL tests must run)")
        pytest.skip(message)
    server = MysqlServer()
    yield server
    server.drop_all()


@pytest.fixture(params=["sqlite", "mysql"])
def state_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh, empty state store URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('store') / 'woo2d365.db'}"
    server: MysqlServer = request.getfixturevalue("mysql_server")
    return server.new_database_url()


@pytest.fixture
def store(state_url: str) -> Iterator[SqlStore]:
    """A migrated store on each backend."""
    opened = open_store(state_url)
    yield opened
    opened.close()
