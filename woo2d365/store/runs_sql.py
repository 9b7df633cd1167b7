"""The runs room in SQL: ``runs``, ``locks`` and ``kv`` (see :mod:`woo2d365.store.runs`)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from woo2d365.store.connection import (
    SqlRoom,
    from_db_time,
    opt_time,
    to_db_time,
)
from woo2d365.store.runs import RunRecord


class SqlKeyValues(SqlRoom):
    """:class:`~woo2d365.store.runs.KeyValues` in SQL: the ``kv`` table."""

    def get_value(self, key: str) -> str | None:
        """A stored value (e.g. ``pull.cursor``)."""
        with self._tx() as cur:
            self._exec(cur, "SELECT value FROM kv WHERE name = ?", (key,))
            row = cur.fetchone()
        return None if row is None else str(row[0])

    def set_value(self, key: str, value: str) -> None:
        """Store a value."""
        with self._tx() as cur:
            self._exec(
                cur,
                self.dialect.upsert("kv", ("name", "value", "updated_at"), ("name",)),
                (key, value, self._now()),
            )


class SqlRuns(SqlKeyValues):
    """:class:`~woo2d365.store.runs.RunStore` in SQL."""

    def start_run(self, command: str, now: datetime, worker: str = "") -> int:
        """Open a run record; return its id."""
        with self._tx() as cur:
            self._exec(
                cur,
                "INSERT INTO runs (command, worker, started_at) VALUES (?, ?, ?)",
                (command, worker[:128], to_db_time(now)),
            )
            return int(cur.lastrowid)

    def finish_run(self, run_id: int, outcome: str, counts: dict[str, int], now: datetime) -> None:
        """Close a run record with its outcome and counts."""
        with self._tx() as cur:
            self._exec(
                cur,
                "UPDATE runs SET finished_at = ?, outcome = ?, counts_json = ? WHERE id = ?",
                (to_db_time(now), outcome, json.dumps(counts, sort_keys=True), run_id),
            )

    def last_run(self, command: str = "sync", *, outcome: str | None = None) -> RunRecord | None:
        """The latest run of ``command`` (optionally only with ``outcome``)."""
        sql = "SELECT id, command, started_at, finished_at, outcome, counts_json FROM runs "
        params: list[Any] = [command]
        if outcome is None:
            sql += "WHERE command = ? ORDER BY id DESC LIMIT 1"
        else:
            sql += "WHERE command = ? AND outcome = ? ORDER BY id DESC LIMIT 1"
            params.append(outcome)
        with self._tx() as cur:
            self._exec(cur, sql, params)
            row = cur.fetchone()
        if row is None:
            return None
        return RunRecord(
            id=int(row[0]),
            command=row[1],
            started_at=from_db_time(row[2]),
            finished_at=opt_time(row[3]),
            outcome=row[4],
            counts=json.loads(row[5]) if row[5] else {},
        )

    def last_successful_run(self, command: str = "sync") -> RunRecord | None:
        """The latest run of ``command`` that reached both systems (outcome ok or attention)."""
        found = [self.last_run(command, outcome=outcome) for outcome in ("ok", "attention")]
        runs = [run for run in found if run is not None]
        return max(runs, key=lambda run: run.id) if runs else None

    def acquire_lock(self, name: str, holder: str, now: datetime, ttl_seconds: float) -> bool:
        """Take the lease ``name`` if free or expired; True if ``holder`` now holds it."""
        stamp = to_db_time(now)
        expires = to_db_time(now + timedelta(seconds=ttl_seconds))
        with self._tx() as cur:
            taken = self._exec(
                cur,
                "UPDATE locks SET holder = ?, acquired_at = ?, expires_at = ? "
                "WHERE name = ? AND (expires_at < ? OR holder = ?)",
                (holder, stamp, expires, name, stamp, holder),
            )
            if taken == 1:
                return True
            inserted = self._exec(
                cur,
                self.dialect.insert_ignore(
                    "locks", ("name", "holder", "acquired_at", "expires_at")
                ),
                (name, holder, stamp, expires),
            )
            return inserted == 1

    def renew_lock(self, name: str, holder: str, now: datetime, ttl_seconds: float) -> bool:
        """Extend a held lease; False if it was lost."""
        expires = to_db_time(now + timedelta(seconds=ttl_seconds))
        return self._changes_one(
            "UPDATE locks SET expires_at = ? WHERE name = ? AND holder = ?",
            (expires, name, holder),
        )

    def release_lock(self, name: str, holder: str) -> None:
        """Give a lease back."""
        with self._tx() as cur:
            self._exec(cur, "DELETE FROM locks WHERE name = ? AND holder = ?", (name, holder))

    def lock_holder(self, name: str) -> str | None:
        """Who holds the lease ``name`` (expired or not), or None."""
        with self._tx() as cur:
            self._exec(cur, "SELECT holder FROM locks WHERE name = ?", (name,))
            row = cur.fetchone()
        return None if row is None else str(row[0])
