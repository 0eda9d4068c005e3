"""The investigation page's reads of one tenant's lake with DuckDB: the events an alert matched
(by their journal offsets) and pivots (every event with a field's value within a time window).

Only files under `<lake>/<dataset>/tenant=<tenant>/date=<d>/hour=<h>/` are ever read, the
directory built from the alert's (stored, server-side) tenant with the same checked path
components as the lake sink; a value typed by a user is a query parameter, never a path or SQL.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from core.provenance import UnsafePathComponent, path_component

log = logging.getLogger(__name__)

PIVOT_FIELDS = ("source.ip", "user.name", "host.hostname")
PIVOT_WINDOW = timedelta(hours=1)
MAX_ROWS = 200
MAX_HOURS = 24 * 7  # a window wider than this is cut (a long-lived alert's pivot)


def _hours(start: datetime, end: datetime) -> list[datetime]:
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    found: list[datetime] = []
    while hour <= end and len(found) < MAX_HOURS:
        found.append(hour)
        hour += timedelta(hours=1)
    return found


def tenant_files(root: Path, tenant: str, datasets: list[str] | None, start: datetime,
                 end: datetime) -> list[str]:
    """The Parquet files of `tenant` (and of `datasets`, default every dataset) whose hour
    partitions overlap [start, end]."""
    tenant = path_component("tenant", tenant)
    if datasets is None:
        datasets = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    files: list[str] = []
    for dataset in datasets:
        try:
            dataset = path_component("dataset", dataset)
        except UnsafePathComponent:
            continue  # a directory that is not a dataset (or a bad reference): never read
        base = root / dataset / f"tenant={tenant}"
        for hour in _hours(start, end):
            directory = base / f"date={hour:%Y-%m-%d}" / f"hour={hour:%H}"
            if directory.is_dir():
                files += sorted(str(f) for f in directory.glob("*.parquet"))
    return files


def _query(files: list[str], where: str, params: list[Any]) -> list[dict[str, Any]]:
    if not files:
        return []
    con = duckdb.connect(":memory:")
    try:
        cursor = con.execute(
            "SELECT * EXCLUDE (tenant, date, hour) FROM read_parquet(?, union_by_name = true, "
            f"hive_partitioning = true) WHERE {where} ORDER BY \"@timestamp\" LIMIT {MAX_ROWS}",
            [files, *params])
        columns = [d[0] for d in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    except duckdb.BinderException:  # the field is in none of these files
        return []
    finally:
        con.close()
    return [{k: _plain(v) for k, v in row.items() if v is not None} for row in rows]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def matched_events(root: Path, tenant: str, references: list[dict[str, Any]]
                   ) -> list[dict[str, Any]]:
    """The lake rows of an alert's matched events (`{"lake": {dataset, offset, time}}`)."""
    by_dataset: dict[str, list[tuple[int, datetime]]] = {}
    for ref in references:
        lake = ref.get("lake") if isinstance(ref, dict) else None
        if not isinstance(lake, dict) or not isinstance(lake.get("offset"), int):
            continue
        try:
            time = datetime.fromisoformat(str(lake.get("time")))
        except ValueError:
            continue
        by_dataset.setdefault(str(lake.get("dataset")), []).append((lake["offset"], time))
    rows: list[dict[str, Any]] = []
    for dataset, refs in by_dataset.items():
        times = [t for _, t in refs]
        files = tenant_files(root, tenant, [dataset], min(times), max(times))
        offsets = sorted({o for o, _ in refs})
        rows += _query(files, "\"vigil.offset\" IN (SELECT unnest(?))", [offsets])
    return rows


def pivot_events(root: Path, tenant: str, field: str, value: str, start: datetime,
                 end: datetime) -> list[dict[str, Any]]:
    """Every event of `tenant` whose `field` is `value` between start - 1 h and end + 1 h."""
    if field not in PIVOT_FIELDS:
        raise ValueError(f"pivots are on {', '.join(PIVOT_FIELDS)}")
    start, end = start - PIVOT_WINDOW, end + PIVOT_WINDOW
    files = tenant_files(root, tenant, None, start, end)
    column = '"' + field.replace('"', '""') + '"'
    return _query(files, f"CAST({column} AS VARCHAR) = ? AND \"@timestamp\" BETWEEN ? AND ?",
                  [value, start, end])
