"""The embedded SQLite database (WAL) under the store: connections, transactions, migrations.

Several processes use one file at once (the daemon, `vigil users`, `vigil sla report`): WAL lets
readers run beside the one writer, every connection waits on a busy timeout instead of failing,
and transactions stay short. Writers take the lock up front (BEGIN IMMEDIATE) so a transaction
that reads then writes never deadlocks against another process.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from soc.alerts.migrations import MIGRATIONS

BUSY_TIMEOUT_SECONDS = 10.0
_SQLITE_AUTO_ID = "INTEGER PRIMARY KEY"  # PostgreSQL: BIGINT GENERATED ALWAYS AS IDENTITY ...


def to_text(moment: datetime) -> str:
    """A UTC time as the fixed-width ISO text the store keeps (text order is time order)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def from_text(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class Database:
    """One database file; a connection per transaction, so any thread or process may call."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._migrated = False

    def connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        con.row_factory = sqlite3.Row
        con.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        con.execute("PRAGMA foreign_keys = ON")
        # FULL: a commit is on disk before the journal position behind it is acknowledged.
        con.execute("PRAGMA synchronous = FULL")
        return con

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """A transaction on a fresh connection: committed on success, rolled back on error."""
        self.migrate()
        con = self.connect()
        try:
            con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        finally:
            con.close()

    @property
    def migrated(self) -> bool:
        """Whether this process has brought the file up to date (`migrate` succeeded)."""
        return self._migrated

    def migrate(self) -> list[int]:
        """Apply the migrations this file lacks, in order; returns the versions applied."""
        if self._migrated:
            return []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = self.connect()
        try:
            # WAL is a property of the file and cannot be switched inside a transaction.
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("BEGIN IMMEDIATE")
            try:
                con.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                            "applied_at VARCHAR(40) NOT NULL)")
                done = {row[0] for row in con.execute("SELECT version FROM schema_migrations")}
                applied = []
                for version, name, statements in MIGRATIONS:
                    if version in done:
                        continue
                    for statement in statements:
                        con.execute(statement.replace("{AUTO_ID}", _SQLITE_AUTO_ID))
                    con.execute("INSERT INTO schema_migrations (version, name, applied_at) "
                                "VALUES (?, ?, ?)", (version, name, to_text(datetime.now(UTC))))
                    applied.append(version)
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        finally:
            con.close()
        if self.path.stat().st_mode & 0o077:
            # Users' TOTP secrets and password hashes live here: owner-only (when we own it).
            with contextlib.suppress(OSError):
                self.path.chmod(0o600)
        self._migrated = True
        return applied

    def schema_version(self) -> int:
        self.migrate()
        con = self.connect()
        try:
            row = con.execute("SELECT max(version) FROM schema_migrations").fetchone()
            return int(row[0] or 0)
        finally:
            con.close()
