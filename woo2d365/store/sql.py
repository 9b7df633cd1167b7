"""The state store in SQL: :class:`SqlStore`, every room of the store over one connection.

Each room's SQL is in its own module on the shared plumbing of :mod:`woo2d365.store.connection`
(``orders_sql``, ``sku_map_sql``, ``runs_sql``, ``mirror_sql``, ``alerts_sql``,
``shipments_sql``, ``refunds_sql``, ``stock_sql``); this module adds the schema's migrations and
combines them. Names other modules imported from here before the split are re-exported.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Collection, Iterator
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from woo2d365.store.alerts_sql import SqlAlerts as SqlAlerts
from woo2d365.store.claims import SINCE as _SINCE
from woo2d365.store.connection import _TS_FORMAT as _TS_FORMAT
from woo2d365.store.connection import CHUNK as _CHUNK
from woo2d365.store.connection import Dialect as Dialect
from woo2d365.store.connection import first_line as _first_line
from woo2d365.store.connection import from_db_time as from_db_time
from woo2d365.store.connection import opt_time as _opt_time
from woo2d365.store.connection import to_db_time as to_db_time
from woo2d365.store.migrations import MIGRATIONS
from woo2d365.store.mirror_sql import SqlMirror as SqlMirror
from woo2d365.store.orders_sql import _ORDER_COLUMNS as _ORDER_COLUMNS
from woo2d365.store.orders_sql import _RAW_INDEX as _RAW_INDEX
from woo2d365.store.orders_sql import WAITING_STATES as WAITING_STATES
from woo2d365.store.orders_sql import SqlOrders as SqlOrders
from woo2d365.store.orders_sql import _billing_email as _billing_email
from woo2d365.store.orders_sql import _like_escape as _like_escape
from woo2d365.store.refunds_sql import SqlRefunds as SqlRefunds
from woo2d365.store.runs_sql import SqlRuns as SqlRuns
from woo2d365.store.scratch import COPIED, copy_tables, tables_of
from woo2d365.store.shipments_sql import SqlFulfilment as SqlFulfilment
from woo2d365.store.sku_map_sql import SqlSkuMap as SqlSkuMap
from woo2d365.store.sqlite import SqliteDialect
from woo2d365.store.stock_sql import SqlStock as SqlStock

# Re-exported: the names other modules imported from here before the rooms were split out.
__all__ = [
    "WAITING_STATES",
    "_CHUNK",
    "_ORDER_COLUMNS",
    "_RAW_INDEX",
    "_SINCE",
    "_TS_FORMAT",
    "Dialect",
    "ScratchStore",
    "SqlAlerts",
    "SqlFulfilment",
    "SqlMirror",
    "SqlOrders",
    "SqlRefunds",
    "SqlRuns",
    "SqlSkuMap",
    "SqlStock",
    "SqlStore",
    "_billing_email",
    "_first_line",
    "_like_escape",
    "_opt_time",
    "from_db_time",
    "to_db_time",
]


class SqlStore(
    SqlOrders, SqlSkuMap, SqlRuns, SqlMirror, SqlAlerts, SqlFulfilment, SqlRefunds, SqlStock
):
    """:class:`~woo2d365.store.base.StateStore` on any :class:`Dialect`."""

    def reopen(self) -> SqlStore:
        """The same database through a connection of its own (for a heartbeat thread)."""
        if getattr(self.dialect, "path", None) == ":memory:":
            return self  # a second connection would open another, empty database
        return SqlStore(self.dialect, clock=self.clock)

    @contextmanager
    def scratch_copy(self) -> Iterator[SqlStore]:
        """A throwaway copy of what the sync steps read (:mod:`woo2d365.store.scratch`)."""
        with closing(ScratchStore(clock=self.clock)) as scratch:
            copy_tables(self, scratch, COPIED)
            yield scratch

    def migrated_copy(self) -> ScratchStore:
        """A scratch store holding every table of this one, brought up to the code's schema;
        this store is only read (a dry run over a store whose migrations are pending)."""
        scratch = ScratchStore(clock=self.clock, only=self.applied_versions())
        try:
            copy_tables(self, scratch, tables_of(scratch))
            scratch.migrate()
        except BaseException:
            scratch.close()
            raise
        return scratch

    def migrate(self, *, only: Collection[int] | None = None) -> int:
        """Apply pending migrations (of those, only the versions in ``only`` when given); return
        the schema version."""
        types = self.dialect.ddl_types
        with self._tx() as cur:
            self.dialect.lock_for_migration(cur)
            try:
                self._exec(
                    cur,
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER NOT NULL "
                    "PRIMARY KEY, description VARCHAR(255) NOT NULL, applied_at {ts} NOT NULL) "
                    "{opts}".format(**types),
                )
                self._exec(cur, "SELECT version FROM schema_migrations")
                applied = {int(row[0]) for row in cur.fetchall()}
                for migration in MIGRATIONS:
                    if migration.version in applied or (
                        only is not None and migration.version not in only
                    ):
                        continue
                    for statement in migration.tables:
                        self._exec(cur, statement.format(**types))
                    for column in migration.columns:
                        if column.name not in self._column_names(cur, column.table):
                            self._exec(
                                cur,
                                f"ALTER TABLE {column.table} ADD COLUMN {column.name} "
                                + column.ddl.format(**types),
                            )
                    for statement in migration.data:
                        self._exec(cur, statement)
                    for index in migration.indexes:
                        if not self.dialect.index_exists(cur, index):
                            unique = "UNIQUE " if index.unique else ""
                            columns = ", ".join(index.columns)
                            self._exec(
                                cur,
                                f"CREATE {unique}INDEX {index.name} ON {index.table} ({columns})",
                            )
                    self._exec(
                        cur,
                        self.dialect.insert_ignore(
                            "schema_migrations", ("version", "description", "applied_at")
                        ),
                        (migration.version, migration.description, self._now()),
                    )
            finally:
                self.dialect.unlock_after_migration(cur)
        return self.schema_version()

    def _column_names(self, cur: Any, table: str) -> set[str]:
        # Both drivers describe the columns of an empty result: no catalogue query per dialect.
        cur.execute(f"SELECT * FROM {table} WHERE 1 = 0")
        cur.fetchall()
        return {str(column[0]).lower() for column in cur.description or ()}

    def applied_versions(self) -> set[int]:
        """The schema versions applied to this database (empty for a new one)."""
        with self._tx() as cur:
            if not self.dialect.table_exists(cur, "schema_migrations"):
                return set()
            self._exec(cur, "SELECT version FROM schema_migrations")
            return {int(row[0]) for row in cur.fetchall()}

    def schema_version(self) -> int:
        """The version of the applied schema (0 for an empty database)."""
        with self._tx() as cur:
            if not self.dialect.table_exists(cur, "schema_migrations"):
                return 0
            self._exec(cur, "SELECT MAX(version) FROM schema_migrations")
            row = cur.fetchone()
        return int(row[0] or 0) if row else 0


class ScratchStore(SqlStore):
    """A store on a new SQLite file in a temporary folder of its own, deleted when it is closed:
    what a dry run works on (docs/architecture.md, "Dry run")."""

    def __init__(
        self, *, clock: Callable[[], datetime] | None = None, only: Collection[int] | None = None
    ) -> None:
        """Create it with the code's schema (only the migrations in ``only`` when given)."""
        self._folder = tempfile.TemporaryDirectory(prefix="woo2d365-dry-run-")
        super().__init__(SqliteDialect(str(Path(self._folder.name) / "scratch.db")), clock=clock)
        try:
            self.migrate(only=only)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the connection and delete the file."""
        super().close()
        self._folder.cleanup()
