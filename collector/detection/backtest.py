"""Backtesting: run rules over a tenant's lake with the same evaluators as the live stream.

For each dataset the rules serve, DuckDB scans the tenant's Hive partitions since a point in
time, in event-time order, and hands the rows to `DetectionEngine` in batches; matches fold
into alerts with the live suppression. Nothing is written anywhere: it is how a partner sees
what a new rule would have fired before it goes live.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from collector.detection.alerts import AlertTracker
from core.events import Event
from rules.engine import DetectionEngine
from rules.loader import RuleSet
from rules.match import Match

BATCH_ROWS = 5_000


@dataclass
class BacktestResult:
    alerts: dict[str, Event] = field(default_factory=dict)  # alert id -> latest record
    matches: Counter[str] = field(default_factory=Counter)  # rule title -> matches
    events: Counter[str] = field(default_factory=Counter)  # dataset -> events scanned


def _scan(lake: Path, dataset: str, tenant: str) -> str | None:
    """The DuckDB table expression over the tenant's files of one dataset; None: no files."""
    base = lake / dataset / f"tenant={tenant}"
    if not any(base.glob("**/*.parquet")):
        return None
    pattern = str(base / "**" / "*.parquet").replace("'", "''")
    return f"read_parquet('{pattern}', hive_partitioning=true, union_by_name=true)"


def events_to_scan(ruleset: RuleSet, lake: Path, tenant: str, since: datetime) -> int:
    """How many events `backtest` will read (a progress bar's total): one count per dataset
    the rules serve, from the Parquet footers and the timestamp column."""
    total = 0
    con = duckdb.connect(":memory:")
    try:
        for dataset in sorted({d for rule in ruleset.rules for d in rule.conditions}):
            scan = _scan(lake, dataset, tenant)
            if scan is not None:
                row = con.execute(f'SELECT count(*) FROM {scan} WHERE "@timestamp" >= ?',
                                  [since]).fetchone()
                total += int(row[0]) if row else 0
    finally:
        con.close()
    return total


def lake_events(lake: Path, dataset: str, tenant: str, since: datetime,
                batch_rows: int = BATCH_ROWS) -> Iterator[list[Event]]:
    """The tenant's events of one dataset since `since`, oldest first, in batches; columns that
    are null in a row are left out of its event (as they were absent when it was written)."""
    scan = _scan(lake, dataset, tenant)
    if scan is None:
        return
    con = duckdb.connect(":memory:")
    try:
        cursor = con.execute(
            f"SELECT * EXCLUDE (tenant, date, hour) FROM {scan} "
            'WHERE "@timestamp" >= ? ORDER BY "@timestamp", "vigil.offset"', [since])
        columns = [d[0] for d in cursor.description]
        while rows := cursor.fetchmany(batch_rows):
            yield [{c: v for c, v in zip(columns, row, strict=True) if v is not None}
                   for row in rows]
    finally:
        con.close()


def backtest(ruleset: RuleSet, lake: Path, tenant: str, since: datetime, now: datetime,
             suppression: timedelta, max_alert_events: int = 20,
             advance: Callable[[float], None] = lambda _n: None) -> BacktestResult:
    """What `ruleset` would have fired on `tenant`'s lake since `since`; `advance(n)` is told
    each batch's events once evaluated (a progress bar's)."""
    engine = DetectionEngine(ruleset)
    tracker = AlertTracker(suppression, max_alert_events)
    result = BacktestResult()

    def take(matches: list[Match]) -> None:
        for match in matches:
            result.matches[match.title] += 1
            alert = tracker.add(match, now)
            result.alerts[alert.id] = alert.record()

    for dataset in engine.datasets():
        for events in lake_events(lake, dataset, tenant, since):
            result.events[dataset] += len(events)
            take(engine.evaluate(dataset, events, tenant))
            advance(len(events))
    # Windows still open at the end close now: `lt`/`lte` correlations decide.
    take(engine.correlation.flush(now=datetime.max.replace(tzinfo=now.tzinfo)))
    return result


def summary(result: BacktestResult) -> dict[str, Any]:
    per_rule: Counter[str] = Counter(a["rule.name"] for a in result.alerts.values())
    return {"events_scanned": dict(result.events), "matches": dict(result.matches),
            "alerts": dict(per_rule), "total_alerts": len(result.alerts)}
