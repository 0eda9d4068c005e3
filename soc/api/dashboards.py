"""/api/v1/dashboards and /api/v1/posture (a part of `routes.Api`): dashboards per tenant with
their state, panel results over a time range, user-saved dashboards, and the posture figures.
A tenant outside the caller's scope is the same 404 as an unknown one, and is audited."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from core.config import SEVERITIES, ValidationContext, parse_duration
from soc.alerts.model import PLATFORM, Actor
from soc.api import dashboard_models as dm
from soc.api.framework import ApiError, Call, Operation
from soc.auth.roles import TRIAGE
from soc.dashboards.lake import TimeRange
from soc.dashboards.library import Dashboard
from soc.dashboards.model import DashboardConfig
from soc.dashboards.posture import posture
from soc.dashboards.saved import SavedDashboards, SavedNotFound
from soc.dashboards.service import CoverageSource, DashboardService, Listed

if TYPE_CHECKING:
    from soc.alerts.service import Alerting

MAX_RANGE = timedelta(days=400)
NOT_SAVED = "dashboard not found (only saved dashboards change)"


class DashboardRoutes:
    alerting: Alerting
    coverage_source: CoverageSource | None = None
    _dashboards: DashboardService | None = None

    @property
    def dashboards(self) -> DashboardService:
        if self._dashboards is None:
            self._dashboards = DashboardService(
                lambda: self.alerting.config, self.alerting.data_dir, self.alerting.db,
                coverage=self.coverage_source)
        return self._dashboards

    @property
    def saved(self) -> SavedDashboards:
        return SavedDashboards(self.alerting.db, self.alerting.clock)

    async def _tenant(self, call: Call, tenant: str) -> str:
        """The tenant if the caller may see it; otherwise an audited 404."""
        scope = call.me.tenants
        if (scope is None or tenant in scope) and tenant in self.alerting.tenants:
            return tenant
        await asyncio.to_thread(
            self.alerting.store.record, PLATFORM, call.me.actor(call.address),
            "dashboard_denied", None, {"tenant": tenant, "route": call.request.path})
        raise ApiError(404, f"tenant {tenant!r} not found")

    async def dashboard_missing(self, actor: Actor, tenant: str, dashboard_id: str,
                                route: str, message: str = "dashboard not found") -> ApiError:
        """The 404 of a dashboard id not found within the tenant (perhaps another tenant's
        saved dashboard), audited as `alert_not_found` is for alerts."""
        await asyncio.to_thread(
            self.alerting.store.record, PLATFORM, actor, "dashboard_not_found", None,
            {"tenant": tenant, "dashboard": dashboard_id[:100], "route": route[:200]})
        return ApiError(404, message)

    async def _listed(self, call: Call, tenant: str) -> list[Listed]:
        # Coverage is read here, on the loop, where detection counts it.
        now = self.alerting.clock()
        coverage = self.dashboards.coverage(tenant, now)
        return await asyncio.to_thread(self._list_with, call, tenant, coverage)

    def _list_with(self, call: Call, tenant: str, coverage: dict[str, Any]) -> list[Listed]:
        actor = call.me.actor(call.address)
        rows = self.saved.list(actor, tenant)
        saved = {row["id"]: Dashboard(row["id"], row["config"], "user") for row in rows}
        owners = {row["id"]: row["owner"] for row in rows}
        listed = self.dashboards.statuses(tenant, self.alerting.clock(), saved, coverage)
        for item in listed:
            item.owner = owners.get(item.dashboard.id)
        return listed

    async def list_dashboards(self, call: Call) -> Any:
        tenant = await self._tenant(call, call.query.tenant)
        listed = await self._listed(call, tenant)
        items = [_summary(tenant, item) for item in listed]
        active = sum(1 for i in items if i["active"])
        return {"tenant": tenant, "active": active, "inactive": len(items) - active,
                "items": items}

    async def get_dashboard(self, call: Call) -> Any:
        q: dm.DashboardRunQuery = call.query
        tenant = await self._tenant(call, q.tenant)
        now = self.alerting.clock()
        end = q.end or now
        try:
            start = q.start or end - parse_duration(q.since)
        except ValueError:
            raise ApiError(400, "`since` must be a duration like 24h or 7d") from None
        if start >= end or end - start > MAX_RANGE:
            raise ApiError(400, "the range must be positive and at most 400 days")
        listed = await self._listed(call, tenant)
        found = next((i for i in listed if i.dashboard.id == call.path["dashboard_id"]), None)
        if found is None:
            raise await self.dashboard_missing(call.me.actor(call.address), tenant,
                                               call.path["dashboard_id"], call.request.path)
        results: list[dict[str, Any]] = []
        if found.status.active:
            results = await asyncio.to_thread(
                self.dashboards.run_panels, tenant, found.dashboard.config, found.status,
                TimeRange(start, end))
        return {"dashboard": _summary(tenant, found), "start": start.isoformat(),
                "end": end.isoformat(), "results": results}

    async def _checked(self, call: Call, body: dm.DashboardIn) -> DashboardConfig:
        try:
            config = DashboardConfig(title=body.title, description=body.description,
                                     category=body.category, requires=body.requires,
                                     panels=body.panels)
        except ValidationError as exc:  # a dataset name in `requires` that is not one
            raise ApiError(400, "invalid request body", [
                {"loc": ["body", *e["loc"]], "msg": e["msg"]}
                for e in exc.errors(include_url=False, include_input=False)]) from None
        problems = config.semantic_errors(ValidationContext(Path(".")))
        if problems:
            await asyncio.to_thread(
                self.alerting.store.record, body.tenant, call.me.actor(call.address),
                "dashboard_refused", None,
                {"title": body.title, "problems": [m for _, m in problems]})
            raise ApiError(400, "panel SQL refused", [
                {"loc": ["body", *loc], "msg": message} for loc, message in problems])
        return config

    async def create_dashboard(self, call: Call) -> Any:
        body: dm.DashboardIn = call.body
        tenant = await self._tenant(call, body.tenant)
        config = await self._checked(call, body)
        row = await asyncio.to_thread(self.saved.create, call.me.actor(call.address), tenant,
                                      config)
        return await self._summary_of(call, tenant, row["id"])

    async def update_dashboard(self, call: Call) -> Any:
        body: dm.DashboardIn = call.body
        tenant = await self._tenant(call, body.tenant)
        config = await self._checked(call, body)
        try:
            await asyncio.to_thread(self.saved.update, call.me.actor(call.address), tenant,
                                    call.path["dashboard_id"], config)
        except SavedNotFound:
            raise await self.dashboard_missing(
                call.me.actor(call.address), tenant, call.path["dashboard_id"],
                call.request.path, NOT_SAVED) from None
        return await self._summary_of(call, tenant, call.path["dashboard_id"])

    async def delete_dashboard(self, call: Call) -> Any:
        tenant = await self._tenant(call, call.query.tenant)
        try:
            await asyncio.to_thread(self.saved.delete, call.me.actor(call.address), tenant,
                                    call.path["dashboard_id"])
        except SavedNotFound:
            raise await self.dashboard_missing(
                call.me.actor(call.address), tenant, call.path["dashboard_id"],
                call.request.path, NOT_SAVED) from None
        return {"id": call.path["dashboard_id"], "deleted": True}

    async def _summary_of(self, call: Call, tenant: str, dashboard_id: str) -> Any:
        listed = await self._listed(call, tenant)
        return next(_summary(tenant, i) for i in listed if i.dashboard.id == dashboard_id)

    async def posture(self, call: Call) -> Any:
        tenant = await self._tenant(call, call.query.tenant)
        now = self.alerting.clock()
        coverage = self.dashboards.coverage(tenant, now)  # on the loop, like detection
        sla = self.alerting.tenants[tenant].sla
        targets = {s: {"ack_seconds": int(sla.for_severity(s).ack.total_seconds()),
                       "resolve_seconds": int(sla.for_severity(s).resolve.total_seconds())}
                   for s in SEVERITIES}
        return await asyncio.to_thread(posture, self.alerting.store, tenant, now, coverage,
                                       self.dashboards.lake(tenant), targets=targets)

    def dashboard_operations(self) -> list[Operation]:
        Op = Operation
        return [
            Op("GET", "/dashboards", "listDashboards",
               "A tenant's dashboards with state and reason", "dashboards",
               self.list_dashboards, dm.DashboardList, query=dm.TenantQuery),
            Op("POST", "/dashboards", "createDashboard", "Save a dashboard of SQL panels",
               "dashboards", self.create_dashboard, dm.DashboardSummary, body=dm.DashboardIn,
               permission=TRIAGE, status=201, errors=(400, 401, 403, 404)),
            Op("GET", "/dashboards/{dashboard_id}", "getDashboard",
               "A dashboard with its panels run over a time range", "dashboards",
               self.get_dashboard, dm.DashboardOut, query=dm.DashboardRunQuery),
            Op("PUT", "/dashboards/{dashboard_id}", "updateDashboard",
               "Replace a saved dashboard", "dashboards", self.update_dashboard,
               dm.DashboardSummary, body=dm.DashboardIn, permission=TRIAGE,
               errors=(400, 401, 403, 404)),
            Op("DELETE", "/dashboards/{dashboard_id}", "deleteDashboard",
               "Delete a saved dashboard", "dashboards", self.delete_dashboard, dm.Deleted,
               query=dm.TenantQuery, permission=TRIAGE, errors=(400, 401, 403, 404)),
            Op("GET", "/posture", "getPosture", "The tenant's security posture figures",
               "dashboards", self.posture, dm.PostureOut, query=dm.TenantQuery),
        ]


def _summary(tenant: str, item: Listed) -> dict[str, Any]:
    config, status = item.dashboard.config, item.status
    return {"id": item.dashboard.id, "tenant": tenant, "title": config.title,
            "description": config.description, "category": config.category,
            "origin": item.dashboard.origin, "owner": item.owner,
            "active": status.active, "reason": status.reason, "datasets": status.datasets,
            "missing_fields": status.missing_fields,
            "panels": [{"id": p.id, "title": p.title, "kind": p.kind} for p in config.panels]}
