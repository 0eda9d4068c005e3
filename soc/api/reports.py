"""/api/v1/reports (a part of `routes.Api`): a tenant's weekly reports and closed incidents
with what was mailed, and each report as HTML, PDF or JSON. A tenant or alert outside the
caller's scope is the same audited 404 as one that does not exist."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web
from pydantic import Field

from soc.alerts.model import NotFound
from soc.api.framework import ApiError, Call, Operation
from soc.api.models import Request, Response, Slug
from soc.reports.incident import NotAnIncident
from soc.reports.render import REPORT_CSP
from soc.reports.service import Rendered, Reports, render
from soc.reports.weekly import Week

if TYPE_CHECKING:
    from soc.alerts.service import Alerting
    from soc.dashboards.service import CoverageSource, DashboardService

Format = Literal["html", "pdf", "json"]


class ReportsQuery(Request):
    tenant: Slug = Field(description="the tenant whose reports (within your scope)")


class ReportFormat(Request):
    format: Format = Field("html", description="html (the mail's body), pdf or json")


class MailState(Response):
    state: str = Field(description="pending, sent, dead (the outbox's), unsent or failed")
    requested_at: str
    generated_at: str | None
    recipients: str | None
    sent_at: str | None
    error: str | None


class WeekItem(Response):
    week: str = Field(description="the week's Monday (the report's id)")
    label: str
    start: str
    end: str
    mail: MailState | None = Field(description="the scheduled mail of this report, if any")


class IncidentItem(Response):
    id: str
    rule_name: str
    severity: str
    group_key: str
    resolved_at: str | None
    assignee: str | None
    mail: MailState | None


class ReportList(Response):
    tenant: str
    weekly: list[WeekItem]
    incidents: list[IncidentItem]


def report_response(rendered: Rendered, fmt: str) -> web.StreamResponse:
    """The report in `fmt`; the HTML view may use its inline style sheet and nothing else."""
    if fmt == "pdf":
        return web.Response(body=rendered.pdf, content_type="application/pdf", headers={
            "Content-Disposition": f'attachment; filename="{rendered.name("pdf")}"',
            "Cache-Control": "no-store"})
    if fmt == "json":
        return web.json_response(rendered.report, headers={"Cache-Control": "no-store"})
    return web.Response(text=rendered.html, content_type="text/html", headers={
        "Content-Security-Policy": REPORT_CSP, "Cache-Control": "no-store",
        "Content-Disposition": f'inline; filename="{rendered.name("html")}"'})


class ReportRoutes:
    alerting: Alerting
    coverage_source: CoverageSource | None = None
    _reports: Reports | None = None

    if TYPE_CHECKING:
        @property
        def dashboards(self) -> DashboardService: ...

        async def _tenant(self, call: Call, tenant: str) -> str: ...
        async def _full_id(self, call: Call) -> None: ...
        async def _not_found(self, call: Call, alert_id: str) -> ApiError: ...

    @property
    def reports(self) -> Reports:
        if self._reports is None:
            self._reports = Reports(self.alerting, self.coverage_source)
        return self._reports

    async def list_reports(self, call: Call) -> Any:
        tenant = await self._tenant(call, call.query.tenant)
        return await asyncio.to_thread(self.reports.listing, tenant,
                                       call.me.actor(call.address), self.alerting.clock())

    async def weekly_report(self, call: Call) -> Any:
        tenant = await self._tenant(call, call.path["tenant_id"])
        try:
            week = Week.parse(call.path["week"])
        except (ValueError, OverflowError):
            raise ApiError(400, "a week is a date (its Monday, e.g. 2026-11-30) or an ISO "
                           "week (2026-W49)") from None
        now = self.alerting.clock()
        if week.start > now:
            raise ApiError(404, "that week has not begun")
        coverage = self.dashboards.coverage(tenant, now)  # on the loop, like detection
        rendered = await asyncio.to_thread(
            lambda: render(self.reports.weekly(tenant, week, now, coverage)))
        return report_response(rendered, call.query.format)

    async def incident_report(self, call: Call) -> Any:
        await self._full_id(call)
        alert_id = call.path["alert_id"]
        actor = call.me.actor(call.address)
        try:
            rendered = await asyncio.to_thread(
                lambda: render(self.reports.incident(alert_id, actor, self.alerting.clock())))
        except NotAnIncident:
            raise ApiError(404, "this alert was not closed as a true positive") from None
        except NotFound:
            raise await self._not_found(call, alert_id) from None
        return report_response(rendered, call.query.format)

    def report_operations(self) -> list[Operation]:
        Op = Operation
        return [
            Op("GET", "/reports", "listReports", "A tenant's weekly reports and closed "
               "incidents, with what was mailed", "reports", self.list_reports, ReportList,
               query=ReportsQuery),
            Op("GET", "/reports/weekly/{tenant_id}/{week}", "getWeeklyReport",
               "The weekly posture report of a tenant (HTML, PDF or JSON)", "reports",
               self.weekly_report, None, query=ReportFormat, content_type="application/pdf",
               description="`week` is the week's Monday or an ISO week; the figures are "
               "computed from the alert store when asked."),
            Op("GET", "/reports/incidents/{alert_id}", "getIncidentReport",
               "The closed-incident report of an alert resolved as true positive", "reports",
               self.incident_report, None, query=ReportFormat, content_type="application/pdf"),
        ]
