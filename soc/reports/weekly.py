"""The weekly posture report of one tenant: the week's alerts by severity and status, MTTA /
MTTR and the share handled within SLA against the tenant's SLA, top rules and ATT&CK tactics,
top attacking addresses, data-source health, the escalations to the client with their answers
and the incidents closed as true positive.

Every figure comes from the services behind the posture dashboard (`soc.alerts.sla`,
`soc.dashboards.posture`) over the week instead of the dashboard's windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from collector.config.tenants import WEEKDAYS, TenantConfig
from core.config import SEVERITIES
from rules.coverage import DatasetCoverage
from soc.alerts.db import to_text
from soc.alerts.model import STATUSES
from soc.alerts.sla import ALL, sla_report
from soc.alerts.store import AlertStore
from soc.dashboards.lake import TenantLake
from soc.dashboards.posture import alert_breakdown, data_source_health

WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Week:
    """Monday 00:00 UTC to the next Monday 00:00 UTC."""

    start: datetime

    @classmethod
    def of(cls, day: date) -> Week:
        monday = day - timedelta(days=day.weekday())
        return cls(datetime(monday.year, monday.month, monday.day, tzinfo=UTC))

    @classmethod
    def parse(cls, text: str) -> Week:
        """`2026-11-30` (any day of the week) or an ISO week `2026-W49`."""
        if "-W" in text:
            return cls.of(datetime.strptime(text + "-1", "%G-W%V-%u").date())
        return cls.of(date.fromisoformat(text))

    @property
    def end(self) -> datetime:
        return self.start + WEEK

    @property
    def key(self) -> str:
        return self.start.date().isoformat()

    @property
    def label(self) -> str:
        iso = self.start.isocalendar()
        last = (self.end - timedelta(days=1)).date()
        return f"{iso.year}-W{iso.week:02d} ({self.key} to {last.isoformat()})"


def week_due(now: datetime, weekday: str, hour: int) -> Week:
    """The week whose report is due at the last scheduled moment (`weekday` at `hour` UTC) up
    to `now`: the full week before that moment's week."""
    now = now.astimezone(UTC)
    this_week = Week.of(now.date())
    moment = this_week.start + timedelta(days=WEEKDAYS.index(weekday), hours=hour)
    if moment > now:
        moment -= WEEK
    return Week(Week.of(moment.date()).start - WEEK)


def sla_targets(tenant: TenantConfig) -> dict[str, dict[str, int]]:
    """The tenant's SLA per severity in seconds (as the posture API shows them)."""
    return {s: {"ack_seconds": int(tenant.sla.for_severity(s).ack.total_seconds()),
                "resolve_seconds": int(tenant.sla.for_severity(s).resolve.total_seconds())}
            for s in SEVERITIES}


def weekly_report(store: AlertStore, tenant_id: str, tenant: TenantConfig, week: Week,
                  now: datetime, coverage: dict[str, DatasetCoverage], lake: TenantLake,
                  *, top: int = 10) -> dict[str, Any]:
    """The report of `week` as of `now` (JSON-ready: templates and the API read it)."""
    start, end = week.start, week.end
    with store.db.transaction(write=False) as con:
        counts = con.execute(
            "SELECT severity, status, count(*) FROM alerts WHERE tenant = ? AND "
            "created_at >= ? AND created_at < ? GROUP BY 1, 2",
            [tenant_id, to_text(start), to_text(end)]).fetchall()
        asked = con.execute(
            "SELECT r.alert_id, a.rule_name, a.severity, r.kind, r.question, r.asked_by, "
            "r.asked_at, r.answer, r.answered_by, r.answered_at FROM client_requests r "
            "JOIN alerts a ON a.id = r.alert_id WHERE r.tenant = ? AND a.tenant = ? AND "
            "r.asked_at >= ? AND r.asked_at < ? ORDER BY r.asked_at, r.id",
            [tenant_id, tenant_id, to_text(start), to_text(end)]).fetchall()
        closed = con.execute(
            "SELECT id, rule_name, severity, group_key, first_seen, resolved_at, assignee "
            "FROM alerts WHERE tenant = ? AND status = 'resolved' AND resolution = "
            "'true_positive' AND resolved_at >= ? AND resolved_at < ? ORDER BY resolved_at",
            [tenant_id, to_text(start), to_text(end)]).fetchall()
    matrix = {s: {st: 0 for st in STATUSES} for s in SEVERITIES}
    for severity, status, count in counts:
        matrix.setdefault(severity, {st: 0 for st in STATUSES})[status] = int(count)
    by_severity: list[dict[str, Any]] = [
        {"severity": s, **matrix[s], "total": sum(matrix[s].values())}
        for s in reversed(SEVERITIES) if s in matrix]
    totals = {st: sum(row[st] for row in by_severity) for st in STATUSES}
    sla = [row.as_dict() for row in sla_report(store, now, tenants=frozenset({tenant_id}),
                                               since=start, until=end)]
    overall = next((row for row in sla if row["severity"] == ALL), None)
    return {
        "kind": "weekly",
        "tenant": tenant_id, "tenant_name": tenant.name, "tier": tenant.tier,
        "contract_id": tenant.contract_id,
        "week": week.key, "week_label": week.label,
        "start": start.isoformat(), "end": end.isoformat(), "generated_at": now.isoformat(),
        "alerts_by_severity": by_severity,
        "alerts_total": {**totals, "total": sum(totals.values())},
        "sla": sla, "sla_overall": overall, "sla_targets": sla_targets(tenant),
        **alert_breakdown(store, tenant_id, start, end, top=top),
        "data_sources": data_source_health(coverage, lake, now),
        "client_requests": [dict(row) for row in asked],
        "closed_incidents": [dict(row) for row in closed],
    }
