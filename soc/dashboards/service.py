"""What the API and the CLI ask of dashboards for one tenant: every dashboard (library, conf.d,
saved) with its state and reason from the tenant's field coverage, and a dashboard's panels run
over a time range inside the tenant's lake partitions."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from collector.config.loader import VigilConfig
from rules.coverage import DatasetCoverage, FieldCoverage
from rules.state import Ownership, merge_coverage, read_docs, state_files
from sinks.lake.sink import lake_root
from soc.alerts.db import Database
from soc.dashboards.activation import DashboardStatus, dashboard_status
from soc.dashboards.lake import (
    LakeLimits,
    PanelFailed,
    PanelTimeout,
    TenantLake,
    TimeRange,
)
from soc.dashboards.library import Dashboard, all_dashboards
from soc.dashboards.model import DashboardConfig
from soc.dashboards.sql import ALERTS_VIEW, PanelSqlError, check_panel_sql

log = logging.getLogger(__name__)

# The alert store's columns a panel may read through `alert_store` (never another tenant's).
ALERT_COLUMNS = ("id", "rule_id", "rule_name", "severity", "status", "assignee",
                 "escalation_level", "resolution", "dataset", "group_key", "match_count",
                 "first_seen", "last_seen", "created_at", "acknowledged_at", "resolved_at",
                 "ack_due", "resolve_due", "ack_breached_at", "resolve_breached_at")
ALERT_TIMES = ("first_seen", "last_seen", "created_at", "acknowledged_at", "resolved_at",
               "ack_due", "resolve_due", "ack_breached_at", "resolve_breached_at")

CoverageSource = Callable[[], FieldCoverage | None]


@dataclass
class Listed:
    dashboard: Dashboard
    status: DashboardStatus
    owner: str | None = None  # who saved it (user dashboards)


class DashboardService:
    """Dashboards of a daemon; `config` is read on every call, so reloads take effect."""

    def __init__(self, config: Callable[[], VigilConfig], data_dir: Path, db: Database | None,
                 *, coverage: CoverageSource | None = None,
                 limits: LakeLimits | None = None) -> None:
        self.config = config
        self.data_dir = data_dir
        self.db = db
        self.live_coverage = coverage
        self.limits = limits
        self._saved_coverage: tuple[list[tuple[str, int]], FieldCoverage] | None = None
        # Panel queries are CPU and memory heavy: a bounded number run at once.
        self._turns = threading.BoundedSemaphore(
            config().settings.dashboard_queries.concurrent)

    # -- coverage and activation ------------------------------------------------------------

    def coverage(self, tenant: str, now: datetime) -> dict[str, DatasetCoverage]:
        """The tenant's field coverage: the running detection's, else what it saved."""
        live = self.live_coverage() if self.live_coverage else None
        if live is not None:
            # Detection counts on the event loop, where the API calls this; should it ever
            # count on another thread, a read that overlapped a new bucket is read again.
            for _ in range(5):
                try:
                    return live.totals(tenant)
                except RuntimeError:
                    continue
            return {}
        # What detection saved: one file per process (`coverage.json`, or `coverage.w<k>.json`
        # per worker process), merged as detection merges them at start.
        state_dir = self.data_dir / "state"
        stamp = []
        for path in state_files(state_dir, "coverage"):
            try:
                stamp.append((path.name, path.stat().st_mtime_ns))
            except OSError:
                continue
        if not stamp:
            return {}
        if self._saved_coverage is None or self._saved_coverage[0] != stamp:
            restored = FieldCoverage(self.config().settings.detection.activation.window)
            merged = merge_coverage(read_docs(state_dir, "coverage"), Ownership())
            if merged is not None:
                restored.load(merged, now)
            self._saved_coverage = (stamp, restored)
        return self._saved_coverage[1].totals(tenant)

    def statuses(self, tenant: str, now: datetime, extra: dict[str, Dashboard] | None = None,
                 coverage: dict[str, DatasetCoverage] | None = None) -> list[Listed]:
        """Every dashboard (and `extra`, the saved ones) with its state for the tenant."""
        if coverage is None:
            coverage = self.coverage(tenant, now)
        activation = self.config().settings.detection.activation
        dashboards = {**all_dashboards(self.config()), **(extra or {})}
        return [Listed(d, dashboard_status(d.id, d.config, coverage, activation))
                for d in dashboards.values()]

    # -- panels --------------------------------------------------------------------------

    def lake(self, tenant: str) -> TenantLake:
        config = self.config()
        settings = config.settings.dashboard_queries
        limits = self.limits or LakeLimits(settings.timeout_seconds, settings.memory_limit,
                                           settings.threads)
        return TenantLake(lake_root(self.data_dir, config.sinks.values()), tenant, limits)

    def run_panels(self, tenant: str, dashboard: DashboardConfig, status: DashboardStatus,
                   when: TimeRange, *, prune: bool = True) -> list[dict[str, Any]]:
        """Every panel's result or error; a failing panel never fails the others."""
        lake = self.lake(tenant)
        alerts: pa.Table | None = None
        results = []
        for panel in dashboard.panels:
            out: dict[str, Any] = {"id": panel.id, "title": panel.title, "kind": panel.kind,
                                   "description": panel.description}
            try:
                if ALERTS_VIEW in check_panel_sql(panel.sql).views and alerts is None:
                    alerts = self.alerts_table(tenant)
                with self._turns:
                    result = lake.run(panel.sql, when, limit=panel.limit,
                                      events_datasets=status.datasets, alerts=alerts,
                                      prune=prune)
                out.update(columns=result.columns, rows=result.rows,
                           truncated=result.truncated, elapsed_ms=result.elapsed_ms,
                           empty_datasets=result.empty_datasets)
            except (PanelSqlError, PanelFailed, PanelTimeout) as exc:
                out.update(columns=[], rows=[], error=str(exc))
            results.append(out)
        return results

    def alerts_table(self, tenant: str) -> pa.Table:
        """The tenant's alerts (only this tenant's rows ever leave the store for a panel)."""
        columns: dict[str, list[Any]] = {c: [] for c in ALERT_COLUMNS}
        if self.db is not None:
            with self.db.transaction(write=False) as con:
                for row in con.execute(f"SELECT {', '.join(ALERT_COLUMNS)} FROM alerts "
                                       "WHERE tenant = ?", [tenant]):
                    for name in ALERT_COLUMNS:
                        columns[name].append(row[name])
        arrays = {}
        for name, values in columns.items():
            if name in ALERT_TIMES:
                arrays[name] = pa.array([_time(v) for v in values],
                                        pa.timestamp("us", tz="UTC"))
            elif name == "match_count":
                arrays[name] = pa.array(values, pa.int64())
            else:
                arrays[name] = pa.array(values, pa.string())
        return pa.table(arrays)


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
