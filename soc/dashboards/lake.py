"""Panel SQL run by DuckDB inside one tenant's lake partitions.

Each run gets a fresh in-memory DuckDB. From Python, before any panel SQL runs, it creates one
view per dataset the SQL names over `<lake>/<dataset>/tenant=<id>/date=<d>/*/*.parquet` for the
dates of the time range only (partition pruning), the `events`, `alert_store` and
`lake_partitions` views and the `bucket(ts)` macro; then it allows only those tenant
directories (`allowed_directories`), turns external access off and locks the configuration.
A panel that names a path, another tenant's partition, a table function or a setting is
refused by `sql.check_panel_sql` first and by DuckDB itself whatever that check missed. Every
query is interrupted after `timeout` seconds from a timer thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from core.provenance import path_component
from soc.dashboards.sql import (
    ALERTS_VIEW,
    EVENTS_VIEW,
    PARTITIONS_VIEW,
    PanelSqlError,
    PanelTables,
    check_panel_sql,
)

BUCKETS = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)
TARGET_POINTS = 120  # time buckets a timeseries aims for over its range


class PanelTimeout(Exception):
    """The panel ran longer than its time limit and was interrupted."""


class PanelFailed(Exception):
    """DuckDB refused or failed the panel's SQL (the message is DuckDB's first line)."""


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime

    def dates(self) -> list[date]:
        """Every UTC date the range touches (the lake's date partitions to read)."""
        first, last = self.start.astimezone(UTC).date(), self.end.astimezone(UTC).date()
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]

    def bucket_seconds(self) -> int:
        span = max(1.0, (self.end - self.start).total_seconds())
        return next((b for b in BUCKETS if span / b <= TARGET_POINTS), BUCKETS[-1])


@dataclass
class PanelResult:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool = False
    elapsed_ms: float = 0.0
    empty_datasets: list[str] = field(default_factory=list)


@dataclass
class LakeLimits:
    timeout_seconds: float = 10.0
    memory_limit: str = "1GB"
    threads: int = 2


class TenantLake:
    """One tenant's view of the lake: partition listing and sandboxed panel runs."""

    def __init__(self, root: Path, tenant: str, limits: LakeLimits | None = None) -> None:
        self.root = root
        self.tenant = path_component("tenant", tenant)
        self.limits = limits or LakeLimits()

    def tenant_dir(self, dataset: str) -> Path:
        return self.root / path_component("dataset", dataset) / f"tenant={self.tenant}"

    def partition_globs(self, dataset: str, when: TimeRange | None) -> list[str]:
        """Globs of the dataset's files for the tenant: one per existing date in the range
        (None: every date, no pruning)."""
        base = self.tenant_dir(dataset)
        if when is None:
            return [f"{base}/date=*/*/*.parquet"] if base.is_dir() else []
        globs = []
        for day in when.dates():
            directory = base / f"date={path_component('date', day.isoformat())}"
            if directory.is_dir():
                globs.append(f"{directory}/*/*.parquet")
        return globs

    def datasets(self) -> list[str]:
        """Datasets with a partition directory of this tenant."""
        if not self.root.is_dir():
            return []
        return sorted(d.name for d in self.root.iterdir()
                      if (d / f"tenant={self.tenant}").is_dir())

    def partitions(self) -> pa.Table:
        """dataset, date, hour, files, bytes, last_modified for every partition directory."""
        rows: dict[str, list[Any]] = {k: [] for k in ("dataset", "date", "hour", "files",
                                                      "bytes", "last_modified")}
        for dataset in self.datasets():
            for day_dir in sorted(self.tenant_dir(dataset).glob("date=*")):
                for hour_dir in sorted(day_dir.glob("hour=*")):
                    files = [f.stat() for f in hour_dir.glob("*.parquet")]
                    if not files:
                        continue
                    rows["dataset"].append(dataset)
                    rows["date"].append(date.fromisoformat(day_dir.name.removeprefix("date=")))
                    rows["hour"].append(int(hour_dir.name.removeprefix("hour=")))
                    rows["files"].append(len(files))
                    rows["bytes"].append(sum(f.st_size for f in files))
                    rows["last_modified"].append(datetime.fromtimestamp(
                        max(f.st_mtime for f in files), UTC))
        return pa.table(rows, schema=pa.schema([
            ("dataset", pa.string()), ("date", pa.date32()), ("hour", pa.int32()),
            ("files", pa.int64()), ("bytes", pa.int64()),
            ("last_modified", pa.timestamp("us", tz="UTC"))]))

    # -- running a panel -----------------------------------------------------------------

    def run(self, sql: str, when: TimeRange, *, limit: int = 1000,
            events_datasets: Iterable[str] = (), alerts: pa.Table | None = None,
            prune: bool = True) -> PanelResult:
        """Check and run one panel's SQL over the tenant's partitions of `when`."""
        tables = check_panel_sql(sql)
        return self._execute(sql, tables, when, limit=limit,
                             events_datasets=list(events_datasets), alerts=alerts, prune=prune)

    def _execute(self, sql: str, tables: PanelTables, when: TimeRange, *, limit: int,
                 events_datasets: list[str], alerts: pa.Table | None, prune: bool
                 ) -> PanelResult:
        started = time.perf_counter()
        con = duckdb.connect(":memory:", config={
            "autoinstall_known_extensions": False, "autoload_known_extensions": False,
            "threads": self.limits.threads, "memory_limit": self.limits.memory_limit})
        try:
            empty = self._prepare(con, tables, when, events_datasets, alerts, prune)
            timer = threading.Timer(self.limits.timeout_seconds, con.interrupt)
            timer.start()
            try:
                cursor = con.execute(sql)
                rows = cursor.fetchmany(limit + 1)
                columns = [d[0] for d in cursor.description or []]
            except duckdb.InterruptException:
                raise PanelTimeout(f"the panel ran over {self.limits.timeout_seconds:g} s "
                                   "and was stopped") from None
            except duckdb.BinderException as exc:
                if empty:  # a dataset without data in the range has no columns to bind
                    return PanelResult([], [], elapsed_ms=_ms(started), empty_datasets=empty)
                raise PanelFailed(_first_line(exc)) from None
            except duckdb.Error as exc:
                raise PanelFailed(_first_line(exc)) from None
            finally:
                timer.cancel()
        finally:
            con.close()
        return PanelResult(columns, [[_json_value(v) for v in row] for row in rows[:limit]],
                           truncated=len(rows) > limit, elapsed_ms=_ms(started),
                           empty_datasets=empty)

    def _prepare(self, con: duckdb.DuckDBPyConnection, tables: PanelTables, when: TimeRange,
                 events_datasets: list[str], alerts: pa.Table | None, prune: bool
                 ) -> list[str]:
        """Views, macros and the sandbox; returns the datasets without data in the range."""
        start, end = _literal(when.start), _literal(when.end)
        wanted = set(tables.datasets)
        if EVENTS_VIEW in tables.views:
            wanted.update(events_datasets)
        allowed: list[str] = []
        empty: list[str] = []
        with_data: list[str] = []
        bodies: dict[str, str] = {}
        for dataset in sorted(wanted):
            globs = self.partition_globs(dataset, when if prune else None)
            if globs:
                files = ", ".join(_quote(g) for g in globs)
                body = (f"SELECT * FROM read_parquet([{files}], hive_partitioning = true, "
                        f"union_by_name = true) WHERE \"@timestamp\" >= {start} "
                        f"AND \"@timestamp\" < {end}")
                allowed.append(f"{self.tenant_dir(dataset)}/")
                with_data.append(dataset)
                bodies[dataset] = body
            else:
                body = _empty_body(tables.columns)
                empty.append(dataset)
            _create_view(con, dataset, body)
        for dataset in with_data:
            if dataset in tables.datasets:
                _fill_missing(con, dataset, bodies[dataset], tables.columns)
        if EVENTS_VIEW in tables.views:
            members = [d for d in sorted(set(events_datasets)) if d in with_data]
            body = (" UNION ALL BY NAME ".join(f"SELECT * FROM {_ident(d)}" for d in members)
                    if members else _empty_body(tables.columns))
            con.execute(f"CREATE VIEW {EVENTS_VIEW} AS {body}")
            if not members:
                empty.append(EVENTS_VIEW)
            else:
                _fill_missing(con, EVENTS_VIEW, body, tables.columns)
        if ALERTS_VIEW in tables.views:
            con.register("_alerts_in", alerts if alerts is not None else pa.table({}))
            con.execute(f"CREATE TABLE {ALERTS_VIEW} AS SELECT * FROM _alerts_in")
            con.unregister("_alerts_in")
        if PARTITIONS_VIEW in tables.views:
            con.register("_partitions_in", self.partitions())
            con.execute(f"CREATE TABLE {PARTITIONS_VIEW} AS SELECT * FROM _partitions_in")
            con.unregister("_partitions_in")
        seconds = when.bucket_seconds()
        # Arithmetic on epoch microseconds: four times faster than time_bucket on TIMESTAMPTZ
        # (no calendar), and every bucket is a whole number of seconds anyway.
        step = seconds * 1_000_000
        con.execute(f"CREATE MACRO bucket(ts) AS make_timestamptz((epoch_us(ts) // {step}) "
                    f"* {step})")
        con.execute(f"CREATE MACRO range_start() AS {start}")
        con.execute(f"CREATE MACRO range_end() AS {end}")
        # The sandbox: only this tenant's directories, nothing else, and no way back.
        con.execute("SET temp_directory = ''")
        con.execute("SET allowed_directories = ?", [allowed])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return empty


def _empty_body(columns: frozenset[str]) -> str:
    """A view without rows that still has every column the SQL names (a stat reads 0)."""
    nulls = "".join(f", NULL AS {_ident(c)}" for c in sorted(columns - {"@timestamp"}))
    return f'SELECT NULL::TIMESTAMPTZ AS "@timestamp"{nulls} WHERE false'


def _fill_missing(con: duckdb.DuckDBPyConnection, view: str, body: str,
                  wanted: frozenset[str]) -> None:
    """Columns the SQL names that the view's files lack become NULL columns: a field a
    dataset does not have is absent, not an error (the library's panels span datasets)."""
    present = {str(row[0]) for row in con.execute(f"DESCRIBE {_ident(view)}").fetchall()}
    missing = sorted(wanted - present)
    if not missing:
        return
    nulls = ", ".join(f"NULL AS {_ident(name)}" for name in missing)
    con.execute(f"CREATE OR REPLACE VIEW {_ident(view)} AS SELECT *, {nulls} FROM ({body})")


def _create_view(con: duckdb.DuckDBPyConnection, dataset: str, body: str) -> None:
    """`linux.auth` is both the view "linux.auth" and the view auth of schema linux, so panel
    SQL may write either."""
    con.execute(f"CREATE VIEW {_ident(dataset)} AS {body}")
    schema, dot, table = dataset.partition(".")
    if dot and "." not in table:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {_ident(schema)}")
        con.execute(f"CREATE VIEW {_ident(schema)}.{_ident(table)} AS SELECT * FROM "
                    f"main.{_ident(dataset)}")


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _literal(moment: datetime) -> str:
    return f"TIMESTAMPTZ '{moment.astimezone(UTC).isoformat()}'"


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


__all__ = ["LakeLimits", "PanelFailed", "PanelResult", "PanelSqlError", "PanelTimeout",
           "TenantLake", "TimeRange"]
