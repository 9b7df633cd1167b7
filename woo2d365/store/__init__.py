"""The state store: interface, SQL implementation, SQLite and MySQL backends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit

from woo2d365.errors import ConfigError, StoreUnavailable
from woo2d365.store.base import StateStore
from woo2d365.store.migrations import MIGRATIONS
from woo2d365.store.sql import SqlStore

__all__ = ["SqlStore", "StateStore", "naming_state_url", "open_store"]


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
    try:
        # Every version, not the highest: migrations of features built side by side may be
        # numbered out of the order they were applied in.
        if migrate and not {m.version for m in MIGRATIONS} <= store.applied_versions():
            store.migrate()
    except StoreUnavailable as exc:
        store.close()
        raise StoreUnavailable(naming_state_url(str(exc), store.dialect.describe())) from None
    except BaseException:
        store.close()
        raise
    return store


def naming_state_url(message: str, where: str) -> str:
    """``message`` about the store at ``where`` (no password), saying it is ``state.url``."""
    if "state.url" in message:
        return message
    if where in message:
        return message.replace(where, f"{where} (state.url)", 1)
    return f"state.url ({where}): {message}"
