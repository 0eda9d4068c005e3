"""Reports for the API, the console, the CLI and the daemon's schedule: building a report from
the store and the tenant's lake, listing a tenant's reports, and mailing each report once.

Mailing is durable and idempotent: a report to send is a row of the `reports` table, unique
per (tenant, kind, subject) -- a week's Monday, or an alert id. The weekly schedule adds the
row of the week due (`ON CONFLICT DO NOTHING`: once, across restarts and processes); resolving
an alert as true positive adds its row in the resolving transaction (`soc.alerts.triage`).
`tick()` then builds each pending report and, in one transaction, queues its mail (HTML body,
PDF attached) in the notification outbox, whose dispatcher retries it, and marks the row
`queued`. A crash between the two leaves the row pending: it is built again, never mailed
twice.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from soc.alerts.db import to_text
from soc.alerts.model import Actor, tenant_scope
from soc.alerts.outbox import Outgoing, enqueue
from soc.dashboards.service import CoverageSource, DashboardService
from soc.reports.incident import incident_report
from soc.reports.render import file_name, render_html, render_pdf, render_text, title
from soc.reports.weekly import Week, week_due, weekly_report

if TYPE_CHECKING:
    from soc.alerts.service import Alerting

log = logging.getLogger(__name__)

WEEKLY, CLOSED_INCIDENT = "weekly", "closed_incident"
KINDS = (WEEKLY, CLOSED_INCIDENT)
CHECK_SECONDS = 5.0
# A closed incident's report waits this long after the closing, so that the reason the
# analyst gave (a note, written by the same form in its own request) is in it.
SETTLE = timedelta(seconds=5)
LISTED_WEEKS = 12


@dataclass
class Rendered:
    """A report in its three forms, with its file names."""

    report: dict[str, Any]
    html: str
    pdf: bytes
    text: str

    @property
    def title(self) -> str:
        return title(self.report)

    def name(self, extension: str) -> str:
        return file_name(self.report, extension)


def render(report: dict[str, Any]) -> Rendered:
    return Rendered(report, render_html(report), render_pdf(report), render_text(report))


class Reports:
    """The reports of one daemon (or of the CLI, with `alerting` opened on the store)."""

    def __init__(self, alerting: Alerting, coverage: CoverageSource | None = None, *,
                 monotonic: Callable[[], float] = time.monotonic,
                 check_seconds: float = CHECK_SECONDS) -> None:
        self.alerting = alerting
        self.dashboards = DashboardService(lambda: alerting.config, alerting.data_dir,
                                           alerting.db, coverage=coverage)
        self.monotonic = monotonic
        self.check_seconds = check_seconds
        self._last_check = float("-inf")
        self._running: asyncio.Future[Any] | None = None
        # (tenant, week) rows this process has added: the tick skips their coverage reads and
        # the pass their insert (the table, not this memo, is what makes a report go once).
        self._scheduled: set[tuple[str, str]] = set()

    @property
    def store(self) -> Any:
        return self.alerting.store

    # -- building --------------------------------------------------------------------------

    def weekly(self, tenant: str, week: Week, now: datetime,
               coverage: dict[str, Any] | None = None) -> dict[str, Any]:
        """The weekly report (blocking; `coverage` read on the loop by async callers)."""
        if coverage is None:
            coverage = self.dashboards.coverage(tenant, now)
        return weekly_report(self.store, tenant, self.alerting.tenants[tenant], week, now,
                             coverage, self.dashboards.lake(tenant))

    def incident(self, alert_id: str, actor: Actor, now: datetime) -> dict[str, Any]:
        """The closed-incident report (blocking); NotFound outside the actor's tenants."""
        from sinks.lake.sink import lake_root

        root = lake_root(self.alerting.data_dir, self.alerting.config.sinks.values())
        report = incident_report(self.store, alert_id, actor, None, root, now)
        tenant = self.alerting.tenants.get(report["tenant"])
        if tenant is not None:
            report["tenant_name"] = tenant.name
        return report

    # -- listing ---------------------------------------------------------------------------

    def listing(self, tenant: str, actor: Actor, now: datetime) -> dict[str, Any]:
        """The tenant's past weeks (newest first) and closed incidents, with what was mailed."""
        condition, params = tenant_scope(actor)
        with self.store.db.transaction(write=False) as con:
            sent = {(row["kind"], row["subject"]): dict(row) for row in con.execute(
                "SELECT r.kind, r.subject, r.state, r.requested_at, r.generated_at, "
                "r.recipients, r.error, o.state AS mail_state, o.sent_at FROM reports r "
                "LEFT JOIN notification_outbox o ON o.id = r.outbox_id WHERE r.tenant = ?",
                [tenant])}
            incidents = [dict(row) for row in con.execute(
                "SELECT id, rule_name, severity, group_key, resolved_at, assignee FROM alerts "
                f"WHERE tenant = ? AND {condition} AND status = 'resolved' AND resolution = "
                "'true_positive' ORDER BY resolved_at DESC LIMIT 200", [tenant, *params])]
        current = Week.of(now.date())
        weeks = []
        for n in range(1, LISTED_WEEKS + 1):
            week = Week(current.start - n * (current.end - current.start))
            weeks.append({"week": week.key, "label": week.label, "start": week.start.isoformat(),
                          "end": week.end.isoformat(), "mail": _mail(sent.get((WEEKLY,
                                                                               week.key)))})
        for incident in incidents:
            incident["mail"] = _mail(sent.get((CLOSED_INCIDENT, incident["id"])))
        return {"tenant": tenant, "weekly": weeks, "incidents": incidents}

    # -- the schedule ----------------------------------------------------------------------

    async def tick(self) -> None:
        """From the daemon's housekeeping tick: every few seconds, add the weekly reports due
        and build and queue the pending ones on a thread (one pass at a time)."""
        now = self.monotonic()
        if now - self._last_check < self.check_seconds:
            return
        if self._running is not None and not self._running.done():
            return
        self._last_check = now
        moment = self.alerting.clock()
        # Coverage is read here, on the loop, where detection counts it.
        coverage = {t: self.dashboards.coverage(t, moment) for t, week in
                    self._weeks_due(moment).items() if (t, week) not in self._scheduled}
        self._running = asyncio.ensure_future(asyncio.to_thread(self.run, moment, coverage))
        self._running.add_done_callback(_log_failure)

    def run(self, now: datetime, coverage: dict[str, dict[str, Any]] | None = None) -> int:
        """One pass (blocking): schedule the weeks due, then queue every pending report.
        Returns how many reports were queued or recorded unsent."""
        self.schedule_weeks(now)
        done = 0
        for row in self.pending(now - SETTLE):
            self.send(row, now, (coverage or {}).get(row["tenant"]))
            done += 1
        return done

    def _weeks_due(self, now: datetime) -> dict[str, str]:
        """Tenant -> the week whose report is due now, for tenants with weekly reports."""
        return {tenant_id: week_due(now, t.reports.weekly.weekday, t.reports.weekly.hour).key
                for tenant_id, t in self.alerting.tenants.items() if t.reports.weekly.enabled}

    def schedule_weeks(self, now: datetime) -> None:
        """Add the row of each week due (once: the unique key ignores a second insert)."""
        due = [(t, week) for t, week in self._weeks_due(now).items()
               if (t, week) not in self._scheduled]
        if not due:
            return
        stamp = to_text(now)
        with self.store.db.transaction() as con:
            for tenant_id, week in due:
                con.execute("INSERT INTO reports (tenant, kind, subject, requested_at, state) "
                            "VALUES (?, ?, ?, ?, 'pending') ON CONFLICT DO NOTHING",
                            (tenant_id, WEEKLY, week, stamp))
        self._scheduled.update(due)

    def pending(self, settled: datetime) -> list[dict[str, Any]]:
        """Reports to build: weekly ones at once, incidents closed before `settled`."""
        with self.store.db.transaction(write=False) as con:
            return [dict(r) for r in con.execute(
                "SELECT id, tenant, kind, subject FROM reports WHERE state = 'pending' AND "
                "(kind = ? OR requested_at <= ?) ORDER BY id LIMIT 50",
                (WEEKLY, to_text(settled)))]

    def send(self, row: dict[str, Any], now: datetime, coverage: dict[str, Any] | None) -> None:
        """Build one pending report and queue its mail (or record why it is not mailed)."""
        tenant = self.alerting.tenants.get(row["tenant"])
        recipients: list[str] = []
        channel = self.alerting.router.email_channel
        problem = None
        rendered = None
        try:
            if tenant is None:
                problem = "the tenant is no longer configured"
            elif row["kind"] == WEEKLY:
                settings = tenant.reports.weekly
                recipients = tenant.report_recipients(settings.recipients)
                rendered = render(self.weekly(row["tenant"], Week.parse(row["subject"]), now,
                                              coverage))
            else:
                settings_ci = tenant.reports.closed_incident
                if not settings_ci.enabled:
                    problem = "closed-incident reports are off for this tenant"
                else:
                    recipients = tenant.report_recipients(settings_ci.recipients)
                    rendered = render(self.incident(
                        row["subject"], Actor("system", frozenset({row["tenant"]})), now))
        except Exception as exc:  # one report never stops the others
            log.exception("report failed", extra={"tenant": row["tenant"], "kind": row["kind"],
                                                   "subject": row["subject"]})
            problem = f"{type(exc).__name__}: {exc}"
            self._finish(row, "failed", now, [], problem)
            return
        if problem is None and not recipients:
            problem = "no recipients (set reports recipients or the tenant's contacts)"
        if problem is None and channel is None:
            problem = "no email notifier is configured"
        if problem is not None or rendered is None:
            self._finish(row, "unsent", now, recipients, problem)
            return
        assert channel is not None
        payload = {"to": recipients, "subject": f"[Vigil] {rendered.title}",
                   "text": rendered.text, "html": rendered.html,
                   "attachments": [{"filename": rendered.name("pdf"),
                                    "content_type": "application/pdf",
                                    "data": base64.b64encode(rendered.pdf).decode()}]}
        outgoing = Outgoing(channel, f"{row['kind']}_report", payload)
        alert_id = row["subject"] if row["kind"] == CLOSED_INCIDENT else None
        self._finish(row, "queued", now, recipients, None, outgoing, alert_id)

    def _finish(self, row: dict[str, Any], state: str, now: datetime, recipients: list[str],
                error: str | None, outgoing: Outgoing | None = None,
                alert_id: str | None = None) -> None:
        stamp = to_text(now)
        with self.store.db.transaction() as con:
            still = con.execute("SELECT state FROM reports WHERE id = ?", (row["id"],)).fetchone()
            if still is None or still["state"] != "pending":
                return  # another process took it
            outbox_id = None
            if outgoing is not None:
                enqueue(con, [outgoing], {"tenant": row["tenant"], "id": alert_id}, stamp)
                outbox_id = con.execute("SELECT max(id) FROM notification_outbox").fetchone()[0]
            con.execute("UPDATE reports SET state = ?, recipients = ?, outbox_id = ?, "
                        "generated_at = ?, error = ? WHERE id = ?",
                        (state, ", ".join(recipients), outbox_id, stamp, error, row["id"]))
        self.alerting.telemetry.reports.labels(row["tenant"], row["kind"], state).inc()
        log.info("report %s", state, extra={"tenant": row["tenant"], "kind": row["kind"],
                                              "subject": row["subject"], "error": error})


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        log.warning("report pass failed; trying again shortly",
                    extra={"error": f"{type(exc).__name__}: {exc}"})


def _mail(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"state": row["mail_state"] or row["state"], "requested_at": row["requested_at"],
            "generated_at": row["generated_at"], "recipients": row["recipients"],
            "sent_at": row["sent_at"], "error": row["error"]}
