"""The state store: interface, SQL implementation, SQLite and MySQL backends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from urllib.parse import urlsplit

from woo2d365.errors import ConfigError, StoreUnavailable
from woo2d365.store.base import StateStore
from woo2d365.store.migrations import MIGRATIONS
from woo2d365.store.sql import ScratchStore, SqlStore

__all__ = ["SqlStore", "StateStore", "naming_state_url", "open_dry_run_store", "open_store"]


def open_store(
    url: str, *, migrate: bool = True, clock: Callable[[], datetime] | None = None
) -> SqlStore:
    """Open the store named by ``state.url`` and (by default) bring its schema up to date."""
    store = _store_at(url, clock)
    with _first_use(store):
        # Checking first keeps every later start to one query (DDL is not free on MySQL).
        if migrate and _pending(store):
            store.migrate()
    return store


def open_dry_run_store(url: str, *, clock: Callable[[], datetime] | None = None) -> SqlStore:
    """The store a dry run reads: the one named by ``state.url``, never created nor migrated.

    A store not there yet (a SQLite file missing, a database without our tables) is an empty
    scratch store, one whose migrations are pending a scratch copy of it brought up to date
    (docs/architecture.md, "Dry run"); a scratch store is deleted when it is closed. A database
    or server that cannot be used fails as it does for the real run.
    """
    store = _store_at(url, clock)
    if store.dialect.creates_on_connect():
        return ScratchStore(clock=clock)
    with _first_use(store):
        if not _pending(store):
            return store
        copy = store.migrated_copy()
    store.close()
    return copy


def _pending(store: SqlStore) -> bool:
    """True when a migration of the code is not applied to ``store``."""
    # Every version, not the highest: migrations of features built side by side may be
    # numbered out of the order they were applied in.
    return not {m.version for m in MIGRATIONS} <= store.applied_versions()


def _store_at(url: str, clock: Callable[[], datetime] | None) -> SqlStore:
    """The store named by ``state.url``, not connected yet."""
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
    return store


@contextmanager
def _first_use(store: SqlStore) -> Iterator[None]:
    """A failure of the block closes ``store``; one that cannot be reached is named as
    ``state.url``."""
    try:
        yield
    except StoreUnavailable as exc:
        store.close()
        raise StoreUnavailable(naming_state_url(str(exc), store.dialect.describe())) from None
    except BaseException:
        store.close()
        raise


def naming_state_url(message: str, where: str) -> str:
    """``message`` about the store at ``where`` (no password), saying it is ``state.url``."""
    if "state.url" in message:
        return message
    if where in message:
        return message.replace(where, f"{where} (state.url)", 1)
    return f"state.url ({where}): {message}"
