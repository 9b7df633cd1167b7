"""MySQL/MariaDB backend via PyMySQL: the production store (utf8mb4, InnoDB, transactions)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import pymysql
from pymysql.constants import CLIENT

from woo2d365.errors import ConfigError, StoreUnavailable
from woo2d365.store.connection import Dialect
from woo2d365.store.migrations import Index


@dataclass(frozen=True)
class MysqlTarget:
    """Connection parameters parsed from ``mysql://user:password@host:port/db``."""

    host: str
    port: int
    user: str
    password: str
    database: str
    unix_socket: str | None = None

    @classmethod
    def from_url(cls, url: str) -> MysqlTarget:
        """Parse a ``mysql://`` URL; the password never appears in errors."""
        parts = urlsplit(url)
        database = parts.path.lstrip("/")
        if not database:
            raise ConfigError("state.url must name a database: mysql://user:password@host:3306/db")
        query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
        try:
            port = parts.port or 3306
        except ValueError:
            raise ConfigError("state.url has an invalid port") from None
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=port,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            database=unquote(database),
            unix_socket=query.get("unix_socket"),
        )


class MysqlDialect(Dialect):
    """PyMySQL with READ COMMITTED transactions and matched-row counts."""

    name: ClassVar[str] = "mysql"
    paramstyle_format: ClassVar[bool] = True
    ddl_types: ClassVar[dict[str, str]] = {
        "id": "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY",
        "ts": "DATETIME(6)",
        "longtext": "LONGTEXT",
        "opts": "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    }
    unavailable_errors: ClassVar[tuple[type[BaseException], ...]] = (
        pymysql.err.OperationalError,
        pymysql.err.InterfaceError,
        ConnectionError,
        OSError,
    )
    integrity_errors: ClassVar[tuple[type[BaseException], ...]] = (pymysql.err.IntegrityError,)
    insert_ignore_verb: ClassVar[str] = "INSERT IGNORE"

    def __init__(self, target: MysqlTarget, *, connect_timeout: float = 10.0) -> None:
        self.target = target
        self.connect_timeout = connect_timeout

    def connect(self) -> Any:
        """Connect with utf8mb4 and UTC session time; rowcount = rows matched, not changed."""
        t = self.target
        try:
            conn = self._open(t)
        except pymysql.err.OperationalError as exc:
            # Refused credentials or a missing database need a person, not a later retry.
            if exc.args and exc.args[0] in (1044, 1045, 1049):
                raise ConfigError(f"state.url: {exc.args[1]} ({self.describe()})") from None
            raise self._unreachable(exc) from None
        except self.unavailable_errors as exc:
            raise self._unreachable(exc) from None
        try:
            with conn.cursor() as cursor:  # the one spelling MySQL and every MariaDB accept
                cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        except self.unavailable_errors as exc:
            conn.close()
            raise self._unreachable(exc) from None
        return conn

    def _unreachable(self, exc: BaseException) -> StoreUnavailable:
        """The server cannot be used now: one line naming ``state.url``, never the password."""
        args: tuple[Any, ...] = exc.args
        cause = str(args[1]) if len(args) > 1 else (str(exc) or type(exc).__name__)
        cause = " ".join(cause.split())
        if self.target.password:
            cause = cause.replace(self.target.password, "***")
        return StoreUnavailable(
            f"state store {self.describe()} (state.url) cannot be reached: {cause}"
        )

    def _open(self, t: MysqlTarget) -> Any:
        return pymysql.connect(
            host=t.host,
            port=t.port,
            user=t.user,
            password=t.password,
            database=t.database,
            unix_socket=t.unix_socket,
            charset="utf8mb4",
            autocommit=False,
            connect_timeout=int(self.connect_timeout),
            read_timeout=120,
            write_timeout=120,
            client_flag=CLIENT.FOUND_ROWS,
            init_command="SET time_zone = '+00:00'",
        )

    def begin(self, conn: Any) -> None:
        """Start a transaction."""
        conn.begin()

    def on_duplicate(self, keys: Sequence[str], updated: Sequence[str]) -> str:
        """``ON DUPLICATE KEY UPDATE`` (the key is the table's own)."""
        return "ON DUPLICATE KEY UPDATE " + ", ".join(f"{c} = VALUES({c})" for c in updated)

    def index_exists(self, cursor: Any, index: Index) -> bool:
        """Look the index up (MySQL 8 has no CREATE INDEX IF NOT EXISTS)."""
        cursor.execute(
            "SELECT 1 FROM information_schema.statistics WHERE table_schema = DATABASE() "
            "AND table_name = %s AND index_name = %s LIMIT 1",
            (index.table, index.name),
        )
        return cursor.fetchone() is not None

    def table_exists(self, cursor: Any, table: str) -> bool:
        """Look the table up in ``information_schema``."""
        cursor.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() "
            "AND table_name = %s LIMIT 1",
            (table,),
        )
        return cursor.fetchone() is not None

    def lock_for_migration(self, cursor: Any) -> None:
        """A named lock, because DDL commits at once and cannot be serialised by a transaction."""
        cursor.execute("SELECT GET_LOCK('woo2d365_migrate', 60)")
        cursor.fetchone()

    def unlock_after_migration(self, cursor: Any) -> None:
        """Release the named lock."""
        cursor.execute("SELECT RELEASE_LOCK('woo2d365_migrate')")
        cursor.fetchone()

    def describe(self) -> str:
        """``mysql://user@host:port/db`` without the password."""
        t = self.target
        return f"mysql://{t.user}@{t.host}:{t.port}/{t.database}"
