"""The console's Reports page: per tenant, the weekly posture reports of past weeks and the
closed-incident reports, each viewable as HTML and downloadable as PDF. Everything is an
/api/v1 reports operation run through `invoke` (same permission, tenant scope and audit)."""

from __future__ import annotations

from aiohttp import web
from multidict import MultiDict

from soc.api.framework import ApiError
from soc.api.routes import Api
from soc.console.app import AuthPages, Form
from soc.console.session import Session

EXTENSIONS = ("html", "pdf")


class ReportPages(AuthPages):
    async def reports(self, request: web.Request, session: Session, form: Form
                      ) -> web.StreamResponse:
        tenants = self.visible_tenants(session)
        tenant = request.query.get("tenant") or next(iter(tenants), "")
        listing = None
        if tenant:
            listing = await self.invoke("listReports", request, session,
                                        query=MultiDict(tenant=tenant))
        return self.render("reports.html", session=session, tenants=tenants,
                           current_tenant=tenant or None, listing=listing,
                           tenant_name=tenants[tenant].name if tenant in tenants else tenant)

    async def weekly(self, request: web.Request, session: Session, form: Form
                     ) -> web.StreamResponse:
        week, ext = _split(request.match_info["name"])
        return await self.invoke(
            "getWeeklyReport", request, session, query=MultiDict(format=ext),
            path={"tenant_id": request.match_info["tenant"], "week": week})

    async def incident(self, request: web.Request, session: Session, form: Form
                       ) -> web.StreamResponse:
        alert_id, ext = _split(request.match_info["name"])
        return await self.invoke("getIncidentReport", request, session,
                                 query=MultiDict(format=ext), path={"alert_id": alert_id})

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/reports", self.page(self.reports))
        app.router.add_get("/reports/weekly/{tenant}/{name}", self.page(self.weekly))
        app.router.add_get("/reports/incidents/{name}", self.page(self.incident))


def _split(name: str) -> tuple[str, str]:
    """`2026-11-30.pdf` -> ("2026-11-30", "pdf")."""
    stem, _, ext = name.rpartition(".")
    if ext not in EXTENSIONS or not stem:
        raise ApiError(404, "reports are .html or .pdf")
    return stem, ext


def add_report_pages(app: web.Application, api: Api, secure: bool) -> None:
    ReportPages(api, secure).add_routes(app)
