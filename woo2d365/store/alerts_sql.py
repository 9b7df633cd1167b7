"""The alerts room in SQL: ``alerts`` (see :mod:`woo2d365.store.alerts`)."""

from __future__ import annotations

from woo2d365.store.alerts import AlertRecord
from woo2d365.store.connection import (
    SqlRoom,
    from_db_time,
    opt_time,
    to_db_time,
)


class SqlAlerts(SqlRoom):
    """:class:`~woo2d365.store.alerts.AlertStore` in SQL."""

    _ALERT_COLUMNS = ("alert_key", "kind", "message", "active", "first_seen", "last_sent")

    def alert_records(self) -> list[AlertRecord]:
        """Every remembered alert condition."""
        rows = self._rows(f"SELECT {', '.join(self._ALERT_COLUMNS)} FROM alerts ORDER BY alert_key")
        return [
            AlertRecord(
                key=r[0],
                kind=r[1],
                message=r[2],
                active=bool(r[3]),
                first_seen=from_db_time(r[4]),
                last_sent=opt_time(r[5]),
            )
            for r in rows
        ]

    def save_alert_records(self, upsert: list[AlertRecord], delete: list[str]) -> None:
        """Store changed alert conditions and forget others, in one transaction."""
        statement = self._sql(self.dialect.upsert("alerts", self._ALERT_COLUMNS, ("alert_key",)))
        rows = [
            (
                a.key[:191],
                a.kind[:32],
                a.message,
                int(a.active),
                to_db_time(a.first_seen),
                to_db_time(a.last_sent) if a.last_sent else None,
            )
            for a in upsert
        ]
        with self._tx() as cur:
            if rows:
                cur.executemany(statement, rows)
            for key in delete:
                self._exec(cur, "DELETE FROM alerts WHERE alert_key = ?", (key,))
