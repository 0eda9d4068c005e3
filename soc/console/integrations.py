"""The integration map page (`/integrations`): a tenant's integration categories with their
state from its data and what a missing one would switch on, the plan of sources with an
add / edit form, and its CSV and JSON export. Every read and change is an /api/v1 operation
(getIntegrationMap, createPlanEntry, updatePlanEntry, deletePlanEntry, exportPlan) run
through `invoke`, so the page has the API's permissions, tenant scopes and audit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDict

from soc.api.framework import ApiError
from soc.auth.roles import TRIAGE
from soc.console.app import Form
from soc.console.session import Session

if TYPE_CHECKING:
    from soc.console.pages import Console

DONE = {"added": "Source added to the plan.", "changed": "Plan entry changed.",
        "removed": "Plan entry removed."}
PLAN_FIELDS = ("category", "product", "target_date", "owner", "status", "notes")


class IntegrationPages:
    """The routes of the integration map, on the console's sessions and operations."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def _tenant(self, request: web.Request, session: Session) -> str:
        """The tenant asked for (the switcher's), else the user's first tenant; one the user
        cannot see is left to the operation, which answers 404 and audits it."""
        asked = request.query.get("tenant", "")
        if asked:
            return asked
        visible = list(self.console.visible_tenants(session))
        if not visible:
            raise ApiError(404, "you have no tenant")
        return visible[0]

    async def page(self, request: web.Request, session: Session, form: Form
                   ) -> web.StreamResponse:
        tenant = self._tenant(request, session)
        data = await self.console.invoke("getIntegrationMap", request, session,
                                         query=MultiDict(tenant=tenant))
        editing = next((e for e in data["plan"] if e["id"] == request.query.get("edit")), None)
        tenants = self.console.visible_tenants(session)
        return self.console.render(
            "integrations.html", session=session, tenants=tenants, current_tenant=tenant,
            switch_to="/integrations", tenant=tenant,
            tenant_name=tenants[tenant].name if tenant in tenants else tenant,
            map=data, editing=editing, can_edit=session.principal.can(TRIAGE),
            preselect=request.query.get("plan", ""),
            done=DONE.get(request.query.get("done", "")),
            export_query=urlencode({"tenant": tenant}))

    async def save(self, request: web.Request, session: Session, form: Form
                   ) -> web.StreamResponse:
        """Add an entry, or change one (`entry_id` in the form); the tenant is the form's
        field, checked by the operation like any API caller's."""
        tenant = str(form.get("tenant") or "")
        body: dict[str, Any] = {"tenant": tenant}
        for name in PLAN_FIELDS:
            value = str(form.get(name) or "").strip()
            if value:
                body[name] = value
        entry_id = str(form.get("entry_id") or "")
        if entry_id:
            await self.console.invoke("updatePlanEntry", request, session,
                                      path={"entry_id": entry_id}, body=body)
        else:
            await self.console.invoke("createPlanEntry", request, session, body=body)
        done = "changed" if entry_id else "added"
        raise web.HTTPSeeOther(f"/integrations?{urlencode({'tenant': tenant, 'done': done})}")

    async def delete(self, request: web.Request, session: Session, form: Form
                     ) -> web.StreamResponse:
        tenant = str(form.get("tenant") or "")
        await self.console.invoke("deletePlanEntry", request, session,
                                  path={"entry_id": request.match_info["entry_id"]},
                                  query=MultiDict(tenant=tenant))
        raise web.HTTPSeeOther(f"/integrations?{urlencode({'tenant': tenant, 'done': 'removed'})}")

    async def export(self, request: web.Request, session: Session, form: Form
                     ) -> web.StreamResponse:
        query = MultiDict(tenant=request.query.get("tenant", ""),
                          format=request.match_info["format"])
        response: web.StreamResponse = await self.console.invoke("exportPlan", request, session,
                                                                 query=query)
        return response

    def add_routes(self, app: web.Application) -> None:
        page = self.console.page
        app.router.add_get("/integrations", page(self.page))
        app.router.add_post("/integrations/plan", page(self.save, form=True))
        app.router.add_post("/integrations/plan/{entry_id}/delete", page(self.delete, form=True))
        app.router.add_get(r"/integrations/plan.{format:csv|json}", page(self.export))


def add_integration_routes(app: web.Application, console: Console) -> None:
    IntegrationPages(console).add_routes(app)
