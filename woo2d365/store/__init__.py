"""The state store: interface, SQL implementation, SQLite and MySQL backends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit

from woo2d365.errors import ConfigError
from woo2d365.store.base import StateStore
from woo2d365.store.migrations import LATEST_VERSION
from woo2d365.store.sql import SqlStore

__all__ = ["SqlStore", "StateStore", "open_store"]


def open_store(
    url: str, *, migrate: bool = True, clock: Callable[[], datetime] | None = None
) -> SqlStore:
    """Open the store named by ``state.url`` and (by default) bring its schema up to date."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from woo2d365.store.sqlite import SqliteDialect

        path = url[len("sqlite://") :]
        if path.startswith("/"):
            path = path[1:]  # sqlite:///relative.db → relative.db; sqlite:////abs → /abs
        if not path:
            raise ConfigError("state.url must name a file: sqlite:///woo2d365.db")
        store = SqlStore(SqliteDialect(path), clock=clock)
    elif scheme in ("mysql", "mariadb", "mysql+pymysql"):
        from woo2d365.store.mysql import MysqlDialect, MysqlTarget

        store = SqlStore(MysqlDialect(MysqlTarget.from_url(url)), clock=clock)
    else:
        raise ConfigError(f"state.url: unsupported scheme {scheme!r}")
    # Checking first keeps every later start to one query (DDL is not free on MySQL).
    if migrate and store.schema_version() < LATEST_VERSION:
        store.migrate()
    return store
