"""SLA tracking: breach detection on a tick and the MTTA / MTTR / within-SLA report.

Every figure is computed against an injected `now`, so tests drive time. Definitions:
- MTTA: mean of (acknowledged_at - created_at) over acknowledged alerts.
- MTTR: mean of (resolved_at - created_at) over resolved alerts.
- An alert is *decided* once it is resolved or one of its deadlines has passed; it was *handled
  within SLA* when it was acknowledged by `ack_due` and resolved by `resolve_due`.
  within_sla_pct = handled within SLA / decided.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from core.config import SEVERITIES
from core.telemetry import Telemetry
from soc.alerts.db import from_text
from soc.alerts.store import AlertStore

log = logging.getLogger(__name__)

# The seed's target: at least this share of critical and high alerts handled within SLA.
TARGET_PCT = {"critical": 95.0, "high": 95.0}
ALL = "all"


class SlaFigures(BaseModel):
    """The SLA figures of one tenant and severity (`all` for the tenant's total); also the
    rows of the API's SLA report."""

    model_config = ConfigDict(extra="forbid")

    tenant: str
    severity: str
    alerts: int
    open: int
    acknowledged: int
    resolved: int
    mtta_seconds: float | None
    mttr_seconds: float | None
    ack_within_sla: int
    ack_breached: int
    resolve_within_sla: int
    resolve_breached: int
    decided: int
    within_sla: int
    within_sla_pct: float | None
    target_pct: float | None
    meets_target: bool | None

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump()


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


SECOND = timedelta(seconds=1)
Times = tuple[datetime | None, datetime | None, datetime | None, datetime | None,
              datetime | None]


def _times(row: dict[str, Any]) -> Times:
    """The row's created, acknowledged, resolved and due times, parsed once per row (a row
    counts toward its severity and toward the tenant's `all`)."""
    parsed = row.get("_times")
    if parsed is None:
        parsed = row["_times"] = (
            from_text(row["created_at"]), from_text(row["acknowledged_at"]),
            from_text(row["resolved_at"]), from_text(row["ack_due"]),
            from_text(row["resolve_due"]))
    return parsed


def figures(tenant: str, severity: str, rows: list[dict[str, Any]], now: datetime
            ) -> SlaFigures:
    """The figures of `rows` (alerts' timing columns) as of `now`."""
    tta: list[float] = []
    ttr: list[float] = []
    ack_ok = ack_late = res_ok = res_late = decided = within = 0
    for row in rows:
        created, acked, resolved, ack_due, resolve_due = _times(row)
        assert ack_due is not None and resolve_due is not None
        if acked is not None:
            tta.append((acked - created) / SECOND if created is not None else 0.0)
        if resolved is not None:
            ttr.append((resolved - created) / SECOND if created is not None else 0.0)
        ack_in_time = acked is not None and acked <= ack_due
        if ack_in_time:
            ack_ok += 1
        elif acked is not None or ack_due <= now:
            ack_late += 1
        resolve_in_time = resolved is not None and resolved <= resolve_due
        if resolve_in_time:
            res_ok += 1
        elif resolved is not None or resolve_due <= now:
            res_late += 1
        if resolved is not None or resolve_due <= now or (acked is None and ack_due <= now):
            decided += 1
            within += 1 if ack_in_time and resolve_in_time else 0
    target = TARGET_PCT.get(severity)
    pct = round(100.0 * within / decided, 2) if decided else None
    return SlaFigures(
        tenant=tenant, severity=severity, alerts=len(rows),
        open=sum(1 for r in rows if r["status"] != "resolved"),
        acknowledged=len(tta), resolved=len(ttr),
        mtta_seconds=_mean(tta), mttr_seconds=_mean(ttr),
        ack_within_sla=ack_ok, ack_breached=ack_late,
        resolve_within_sla=res_ok, resolve_breached=res_late,
        decided=decided, within_sla=within, within_sla_pct=pct, target_pct=target,
        meets_target=None if target is None or pct is None else pct >= target)


def sla_report(store: AlertStore, now: datetime, *, tenants: frozenset[str] | None = None,
               since: datetime | None = None, until: datetime | None = None
               ) -> list[SlaFigures]:
    """Figures per tenant and severity (severities with alerts only), then the tenant's `all`,
    of the alerts created in [since, until)."""
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for row in store.sla_rows(tenants, since, until):
        groups.setdefault(row["tenant"], {}).setdefault(row["severity"], []).append(row)
    report = []
    for tenant in sorted(groups):
        by_severity = groups[tenant]
        for severity in reversed(SEVERITIES):
            if severity in by_severity:
                report.append(figures(tenant, severity, by_severity[severity], now))
        everything = [row for rows in by_severity.values() for row in rows]
        report.append(figures(tenant, ALL, everything, now))
    return report


class SlaMonitor:
    """Run from the daemon's tick: marks breaches (each counted and notified once, across
    processes) and refreshes the open-alert gauges."""

    def __init__(self, store: AlertStore, telemetry: Telemetry,
                 clock: Callable[[], datetime]) -> None:
        self.store = store
        self.telemetry = telemetry
        self.clock = clock
        self._gauge_labels: set[tuple[str, str, str]] = set()

    def check(self) -> list[tuple[str, dict[str, Any]]]:
        """One pass; blocking (the daemon runs it in a thread)."""
        breaches = self.store.mark_breaches(self.clock())
        for kind, alert in breaches:
            self.telemetry.alert_sla_breaches.labels(alert["tenant"], alert["severity"],
                                                     kind).inc()
            log.warning("SLA breached", extra={"tenant": alert["tenant"],
                                               "alert_id": alert["id"], "kind": kind,
                                               "severity": alert["severity"]})
        self.refresh_gauges()
        return breaches

    def refresh_gauges(self) -> None:
        seen = set()
        for tenant, severity, status, count in self.store.open_counts():
            labels = (tenant, severity, status)
            self.telemetry.alerts_open.labels(*labels).set(count)
            seen.add(labels)
        for labels in self._gauge_labels - seen:
            self.telemetry.alerts_open.labels(*labels).set(0)
        self._gauge_labels |= seen


def age_seconds(start: str | None, end: str | None) -> float | None:
    """Seconds between two stored times, None when either is missing."""
    a, b = from_text(start), from_text(end)
    if a is None or b is None:
        return None
    return (b - a) / timedelta(seconds=1)
