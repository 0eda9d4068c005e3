"""/api/v1/integrations (a part of `routes.Api`): a tenant's integration map, its plan of
sources to integrate (create, change, delete: the triage permission, i.e. the provider's SOC
roles, the platform admin and the client's operator; client viewers read) and the plan's
export as CSV or JSON. A tenant outside the caller's scope, or a plan entry of another tenant,
is the same 404 as an unknown one, and is audited."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
from aiohttp import web
from pydantic import Field

from rules.integrations import CategoryMap, Framework, Priority, configured
from rules.loader import RuleRequirement
from soc.alerts.model import PLATFORM
from soc.api.framework import ApiError, Call, Operation
from soc.api.models import Request, Response, Slug
from soc.auth.roles import TRIAGE
from soc.integrations.map import integration_map, lake_presence
from soc.integrations.plan import (
    PLAN_STATUSES,
    IntegrationPlan,
    PlanNotFound,
    PlanStatus,
    plan_csv,
)

if TYPE_CHECKING:
    from soc.alerts.service import Alerting
    from soc.dashboards.service import DashboardService

RequirementSource = Callable[[], list[RuleRequirement]]
Short = Annotated[str, Field(max_length=200)]


class TenantQuery(Request):
    tenant: Slug = Field(description="the tenant (within your scope)")


class ExportQuery(Request):
    tenant: Slug
    format: Literal["csv", "json"] = "csv"


class PlanIn(Request):
    tenant: Slug = Field(description="the tenant whose plan (within your scope)")
    category: Annotated[str, Field(min_length=1, max_length=128)] = Field(
        description="an integration category id (GET /integrations lists them)")
    product: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        description="the source to connect (`FortiGate 100F, HQ`)")
    target_date: date | None = None
    owner: Short = Field("", description="who connects it (a person or team)")
    status: PlanStatus = "planned"
    notes: Annotated[str, Field(max_length=2000)] = ""


class PlanEntry(Response):
    id: str
    tenant: str
    category: str
    product: str
    target_date: str | None
    owner: str
    status: str
    notes: str
    created_at: str
    created_by: str
    updated_at: str
    updated_by: str


class Named(Response):
    id: str
    title: str


class DatasetState(Response):
    dataset: str
    events_window: int = Field(description="events in the coverage window")
    events_per_day: float
    present_since: str | None = Field(description="its first date partition in the lake")
    last_seen: str | None = Field(description="its newest lake file")
    read_by_rules: bool


class SwitchesOn(Response):
    rules: int
    rule_names: list[str]
    dashboards: int
    dashboard_names: list[Named]


class CategoryState(Response):
    id: str
    name: str
    priority: Priority
    value: str
    examples: list[str]
    frameworks: dict[Framework, list[str]]
    state: Literal["present", "unread", "silent", "missing"] = Field(
        description="present: events some rule reads; unread: events no rule reads; silent: "
        "in the lake but nothing in the coverage window; missing: no data")
    datasets: list[DatasetState]
    fields: list[str]
    present_since: str | None
    last_seen: str | None
    events_per_day: float
    active_dashboards: list[Named]
    would_switch_on: SwitchesOn = Field(description="what connecting it would activate "
                                        "(empty for a present category)")


class IntegrationMap(Response):
    tenant: str
    generated_at: str
    window_days: int
    present: int
    missing: int
    categories: list[CategoryState]
    plan: list[PlanEntry]
    statuses: list[str]


class PlanDeleted(Response):
    id: str
    deleted: bool


class IntegrationRoutes:
    alerting: Alerting
    requirements_source: RequirementSource | None = None

    @property
    def dashboards(self) -> DashboardService:  # DashboardRoutes' (the same coverage and lake)
        raise NotImplementedError

    @property
    def plan(self) -> IntegrationPlan:
        return IntegrationPlan(self.alerting.db, self.alerting.clock)

    def categories(self) -> CategoryMap:
        return configured(self.alerting.config.section("integrations"))

    async def _plan_tenant(self, call: Call, tenant: str) -> str:
        """The tenant if the caller may see it; otherwise an audited 404."""
        scope = call.me.tenants
        if (scope is None or tenant in scope) and tenant in self.alerting.tenants:
            return tenant
        await asyncio.to_thread(
            self.alerting.store.record, PLATFORM, call.me.actor(call.address),
            "integration_denied", None, {"tenant": tenant, "method": call.request.method,
                                         "route": call.request.path[:200]})
        raise ApiError(404, f"tenant {tenant!r} not found")

    async def _entry_not_found(self, call: Call, tenant: str, entry_id: str) -> ApiError:
        await asyncio.to_thread(
            self.alerting.store.record, PLATFORM, call.me.actor(call.address),
            "integration_plan_not_found", None,
            {"tenant": tenant, "entry": entry_id[:64], "method": call.request.method})
        return ApiError(404, "plan entry not found")

    def _rule_requirements(self) -> list[RuleRequirement]:
        return self.requirements_source() if self.requirements_source is not None else []

    async def integrations(self, call: Call) -> Any:
        tenant = await self._plan_tenant(call, call.query.tenant)
        now = self.alerting.clock()
        coverage = self.dashboards.coverage(tenant, now)  # on the loop, like detection
        return await asyncio.to_thread(self._map, call, tenant, coverage, now)

    def _map(self, call: Call, tenant: str, coverage: dict[str, Any], now: Any
             ) -> dict[str, Any]:
        config = self.alerting.config
        rules = config.tenants[tenant].rules
        listed = self.dashboards.statuses(tenant, now, coverage=coverage)
        result = integration_map(
            tenant, self.categories(), self._rule_requirements(), coverage,
            config.settings.detection.activation,
            [(i.dashboard.id, i.dashboard.config, i.status) for i in listed],
            lake_presence(self.dashboards.lake(tenant)), now,
            enabled=frozenset(rules.enable), disabled=frozenset(rules.disable))
        result["plan"] = self.plan.list(call.me.actor(call.address), tenant)
        result["statuses"] = list(PLAN_STATUSES)
        return result

    def _checked_category(self, body: PlanIn) -> None:
        if body.category not in self.categories().categories:
            known = ", ".join(self.categories().ids)
            raise ApiError(400, f"unknown category {body.category!r}; one of: {known}")

    async def create_plan_entry(self, call: Call) -> Any:
        body: PlanIn = call.body
        tenant = await self._plan_tenant(call, body.tenant)
        self._checked_category(body)
        return await asyncio.to_thread(self.plan.create, call.me.actor(call.address), tenant,
                                       body.model_dump(exclude={"tenant"}))

    async def update_plan_entry(self, call: Call) -> Any:
        body: PlanIn = call.body
        tenant = await self._plan_tenant(call, body.tenant)
        self._checked_category(body)
        entry_id = call.path["entry_id"]
        try:
            return await asyncio.to_thread(self.plan.update, call.me.actor(call.address),
                                           tenant, entry_id, body.model_dump(exclude={"tenant"}))
        except PlanNotFound:
            raise await self._entry_not_found(call, tenant, entry_id) from None

    async def delete_plan_entry(self, call: Call) -> Any:
        tenant = await self._plan_tenant(call, call.query.tenant)
        entry_id = call.path["entry_id"]
        try:
            await asyncio.to_thread(self.plan.delete, call.me.actor(call.address), tenant,
                                    entry_id)
        except PlanNotFound:
            raise await self._entry_not_found(call, tenant, entry_id) from None
        return {"id": entry_id, "deleted": True}

    async def export_plan(self, call: Call) -> web.Response:
        q: ExportQuery = call.query
        tenant = await self._plan_tenant(call, q.tenant)
        entries = await asyncio.to_thread(self.plan.list, call.me.actor(call.address), tenant)
        day = self.alerting.clock().date().isoformat()
        name = f"integration-plan-{tenant}-{day}.{q.format}"
        headers = {"Content-Disposition": f'attachment; filename="{name}"',
                   "Cache-Control": "no-store"}
        if q.format == "csv":
            names = {c: e.name for c, e in self.categories().categories.items()}
            return web.Response(text=plan_csv(entries, names), content_type="text/csv",
                                charset="utf-8", headers=headers)
        body = orjson.dumps({"tenant": tenant, "exported_at": self.alerting.clock().isoformat(),
                             "entries": entries}, option=orjson.OPT_INDENT_2)
        return web.Response(body=body, content_type="application/json", headers=headers)

    def integration_operations(self) -> list[Operation]:
        Op = Operation
        changes = (400, 401, 403, 404)
        return [
            Op("GET", "/integrations", "getIntegrationMap",
               "A tenant's integration map (category states, what missing ones would switch "
               "on) and its plan", "integrations", self.integrations, IntegrationMap,
               query=TenantQuery),
            Op("POST", "/integrations/plan", "createPlanEntry", "Plan a source to integrate",
               "integrations", self.create_plan_entry, PlanEntry, body=PlanIn,
               permission=TRIAGE, status=201, errors=changes),
            Op("PUT", "/integrations/plan/{entry_id}", "updatePlanEntry",
               "Change a planned source", "integrations", self.update_plan_entry, PlanEntry,
               body=PlanIn, permission=TRIAGE, errors=changes),
            Op("DELETE", "/integrations/plan/{entry_id}", "deletePlanEntry",
               "Remove a planned source", "integrations", self.delete_plan_entry,
               PlanDeleted, query=TenantQuery, permission=TRIAGE, errors=changes),
            Op("GET", "/integrations/plan/export", "exportPlan",
               "The tenant's plan as a CSV or JSON download", "integrations",
               self.export_plan, None, query=ExportQuery, content_type="text/csv"),
        ]
