"""The console's posture and dashboard pages: `/posture` (the tenant's Security Posture),
`/dashboards` (the library with each dashboard's state and reason), `/dashboards/<id>` (its
panels over a time range, run in the tenant's lake partitions) and the forms that save, edit
and delete a user's own dashboards of SQL panels. Every read and change is the /api/v1
operation (`getPosture`, `listDashboards`, `getDashboard`, `createDashboard`,
`updateDashboard`, `deleteDashboard`) run through `invoke`: the same tenant scopes, SQL
sandbox and audit as the API."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDict

from soc.api.dashboards import NOT_SAVED
from soc.api.edge import client_address
from soc.api.framework import ApiError
from soc.auth.roles import TRIAGE
from soc.console import charts
from soc.console.app import Form
from soc.console.session import Session
from soc.dashboards.lake import TimeRange
from soc.dashboards.saved import SavedNotFound

if TYPE_CHECKING:
    from soc.console.pages import Console

RANGES = ("1h", "24h", "7d", "30d", "90d")
TRENDS = ("7d", "30d", "90d")
SEVERITIES = ("critical", "high", "medium", "low", "informational")  # as the queue shows
PANEL_KINDS = ("stat", "top_n", "timeseries", "map", "table")
MAX_PANELS = 30
DONE = {"created": "Dashboard saved.", "updated": "Dashboard changed.",
        "deleted": "Dashboard deleted."}


class DashboardPages:
    """The pages, on the console's base (sessions, CSRF, `invoke`, templates)."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def _tenant(self, request: web.Request, session: Session, form: Form | None = None
                ) -> str:
        """The requested tenant (the operation checks the scope and audits a refusal), else
        the first the user may see."""
        asked = (form.get("tenant") if form is not None else None) or \
            request.query.get("tenant", "")
        if asked:
            return str(asked)
        visible = self.console.visible_tenants(session)
        if not visible:
            raise ApiError(404, "you have no tenant")
        return next(iter(visible))

    def _render(self, name: str, session: Session, tenant: str, status: int = 200,
                **context: Any) -> web.Response:
        return self.console.render(name, status, session=session,
                                   tenants=self.console.visible_tenants(session),
                                   current_tenant=tenant, switch_to=f"/{name.split('.')[0]}"
                                   if name in ("posture.html", "dashboards.html")
                                   else "/dashboards", **context)

    # -- posture ---------------------------------------------------------------------------

    async def posture(self, request: web.Request, session: Session, form: Form
                      ) -> web.StreamResponse:
        tenant = self._tenant(request, session)
        data = await self.console.invoke("getPosture", request, session,
                                         query=MultiDict(tenant=tenant))
        trend = request.query.get("trend", "30d")
        trend = trend if trend in TRENDS else "30d"
        daily = data["trend"][trend]["daily"]
        chart = charts.stacked_bars(
            f"Alerts per day, last {trend}", [d["date"][5:] for d in daily],
            {s: [d[s] for d in daily] for s in SEVERITIES}, charts.SEVERITY_COLOURS)
        sla = {row["severity"]: row for row in data["sla_30d"]}
        techniques = sorted({t["technique"] for row in data["attack_matrix"]
                             for t in row["techniques"]})
        matrix = {row["tactic"]: {t["technique"]: t["alerts"] for t in row["techniques"]}
                  for row in data["attack_matrix"]}
        top_rule = max((r["alerts"] for r in data["top_rules"]), default=1)
        return self._render(
            "posture.html", session, tenant, posture=data, trend=trend, trends=TRENDS,
            chart=chart, severities=SEVERITIES, sla=sla, targets=data["sla_targets"],
            techniques=techniques, matrix=matrix, top_rule=top_rule, duration=duration,
            silent=sum(1 for d in data["data_sources"] if d["silent"]))

    # -- the library and one dashboard -----------------------------------------------------

    async def library(self, request: web.Request, session: Session, form: Form
                      ) -> web.StreamResponse:
        tenant = self._tenant(request, session)
        listing = await self.console.invoke("listDashboards", request, session,
                                            query=MultiDict(tenant=tenant))
        items = sorted(listing["items"], key=lambda i: (not i["active"], i["origin"] != "user",
                                                        i["category"], i["title"]))
        return self._render("dashboards.html", session, tenant, listing=listing, items=items,
                            can_save=session.principal.can(TRIAGE),
                            done=DONE.get(request.query.get("done", "")))

    async def dashboard(self, request: web.Request, session: Session, form: Form
                        ) -> web.StreamResponse:
        tenant = self._tenant(request, session)
        dashboard_id = request.match_info["dashboard_id"]
        since = request.query.get("since", "24h")
        query: MultiDict[str] = MultiDict(tenant=tenant, since=since if since in RANGES
                                          else "24h")
        start, end = request.query.get("start", ""), request.query.get("end", "")
        if start:
            query["start"] = _utc(start)
            if end:
                query["end"] = _utc(end)
        data = await self.console.invoke("getDashboard", request, session,
                                         path={"dashboard_id": dashboard_id}, query=query)
        when = TimeRange(datetime.fromisoformat(data["start"]),
                         datetime.fromisoformat(data["end"]))
        panels = [_panel_view(p, when) for p in data["results"]]
        return self._render(
            "dashboard.html", session, tenant, data=data, board=data["dashboard"],
            panels=panels, ranges=RANGES, since=query["since"], start=start[:16],
            end=end[:16], can_save=session.principal.can(TRIAGE),
            done=DONE.get(request.query.get("done", "")))

    # -- saved dashboards ------------------------------------------------------------------

    async def new_form(self, request: web.Request, session: Session, form: Form
                       ) -> web.StreamResponse:
        tenant = self._tenant(request, session)
        # The tenant is checked (and a refusal audited) as the library would.
        await self.console.invoke("listDashboards", request, session,
                                  query=MultiDict(tenant=tenant))
        return self._form_page(session, tenant, None, _blank(), [])

    async def edit_form(self, request: web.Request, session: Session, form: Form
                        ) -> web.StreamResponse:
        tenant = self._tenant(request, session)
        dashboard_id = request.match_info["dashboard_id"]
        await self.console.invoke("listDashboards", request, session,
                                  query=MultiDict(tenant=tenant))
        api = self.console.api
        actor = session.principal.actor(client_address(request))
        try:
            row = await asyncio.to_thread(api.saved.get, actor, tenant, dashboard_id)
        except SavedNotFound:
            raise await api.dashboard_missing(actor, tenant, dashboard_id, request.path,
                                              NOT_SAVED) from None
        config = row["config"]
        values = {"title": config.title, "description": config.description,
                  "category": config.category,
                  "requires": "\n".join(f"{d}: {', '.join(f)}"
                                        for d, f in config.requires.items()),
                  "panels": [p.model_dump() for p in config.panels]}
        return self._form_page(session, tenant, dashboard_id, values, [])

    def _form_page(self, session: Session, tenant: str, dashboard_id: str | None,
                   values: dict[str, Any], problems: list[str], status: int = 200
                   ) -> web.Response:
        panels = list(values["panels"])
        panels += [{"id": "", "title": "", "kind": "stat", "sql": "", "limit": 20}] * max(
            1, 3 - len(panels))
        return self._render("dashboard_form.html", session, tenant, status,
                            dashboard_id=dashboard_id, values=values,
                            panels=panels[:MAX_PANELS], kinds=PANEL_KINDS, problems=problems)

    async def save(self, request: web.Request, session: Session, form: Form
                   ) -> web.StreamResponse:
        dashboard_id = request.match_info.get("dashboard_id")
        tenant = str(form.get("tenant") or "")
        values = _form_values(form)
        body = {"tenant": tenant, "title": values["title"],
                "description": values["description"],
                "category": values["category"] or "custom", "requires": values["requires_map"],
                "panels": [{**p, "id": p["id"] or f"p{n + 1}",
                            "title": p["title"] or f"Panel {n + 1}"}
                           for n, p in enumerate(values["panels"])]}
        try:
            if dashboard_id is None:
                saved = await self.console.invoke("createDashboard", request, session,
                                                  body=body)
            else:
                saved = await self.console.invoke("updateDashboard", request, session,
                                                  path={"dashboard_id": dashboard_id},
                                                  body=body)
        except ApiError as exc:
            if exc.status != 400:
                raise
            problems = [f"{_where(d['loc'])}: {d['msg']}" for d in exc.detail or []] or \
                [exc.message]
            return self._form_page(session, tenant, dashboard_id, values,
                                   [exc.message, *problems], status=400)
        done = "created" if dashboard_id is None else "updated"
        raise web.HTTPSeeOther(f"/dashboards/{saved['id']}?" + urlencode(
            {"tenant": tenant, "done": done}))

    async def delete(self, request: web.Request, session: Session, form: Form
                     ) -> web.StreamResponse:
        tenant = str(form.get("tenant") or "")
        dashboard_id = request.match_info["dashboard_id"]
        await self.console.invoke("deleteDashboard", request, session,
                                  path={"dashboard_id": dashboard_id},
                                  query=MultiDict(tenant=tenant))
        raise web.HTTPSeeOther("/dashboards?" + urlencode({"tenant": tenant,
                                                           "done": "deleted"}))

    def add_routes(self, app: web.Application) -> None:
        page = self.console.page
        app.router.add_get("/posture", page(self.posture))
        app.router.add_get("/dashboards", page(self.library))
        app.router.add_get("/dashboards/new", page(self.new_form))
        app.router.add_post("/dashboards/new", page(self.save, form=True))
        app.router.add_get("/dashboards/{dashboard_id}", page(self.dashboard))
        app.router.add_get("/dashboards/{dashboard_id}/edit", page(self.edit_form))
        app.router.add_post("/dashboards/{dashboard_id}/edit", page(self.save, form=True))
        app.router.add_post("/dashboards/{dashboard_id}/delete", page(self.delete, form=True))


def _blank() -> dict[str, Any]:
    return {"title": "", "description": "", "category": "custom", "requires": "",
            "panels": []}


def _form_values(form: Form) -> dict[str, Any]:
    """The form's fields as typed: panels `panel-<n>-<field>` (a panel without SQL is left
    out), requirements one `dataset: field, field` per line (also as `requires_map`)."""
    panels = []
    for n in range(MAX_PANELS + 1):
        sql = str(form.get(f"panel-{n}-sql") or "").strip()
        if not sql:
            continue
        try:
            limit = int(str(form.get(f"panel-{n}-limit") or "20"))
        except ValueError:
            limit = 20
        panels.append({"id": str(form.get(f"panel-{n}-id") or "").strip(),
                       "title": str(form.get(f"panel-{n}-title") or "").strip(),
                       "kind": str(form.get(f"panel-{n}-kind") or "table"),
                       "sql": sql, "limit": limit})
    requires_text = str(form.get("requires") or "")
    requires: dict[str, list[str]] = {}
    for line in requires_text.splitlines():
        dataset, _, fields = line.partition(":")
        if dataset.strip():
            requires[dataset.strip()] = [f.strip() for f in fields.split(",") if f.strip()]
    return {"title": str(form.get("title") or "").strip(),
            "description": str(form.get("description") or "").strip(),
            "category": str(form.get("category") or "").strip(),
            "requires": requires_text, "requires_map": requires, "panels": panels}


def _where(loc: list[Any]) -> str:
    """`panels.0.sql` -> `panel 1, sql` (the form's numbering)."""
    parts = [str(p) for p in loc if p != "body"]
    if len(parts) >= 2 and parts[0] == "panels" and parts[1].isdigit():
        return f"panel {int(parts[1]) + 1}" + (f", {parts[2]}" if len(parts) > 2 else "")
    return ".".join(parts) or "form"


def _utc(text: str) -> str:
    """A `datetime-local` value (no zone) read as UTC, as an ISO time with its zone."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(400, f"not a time: {text[:40]!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def _panel_view(panel: dict[str, Any], when: TimeRange) -> dict[str, Any]:
    """What the template draws for a panel: its figure, its chart or its table."""
    view = {"error": None, "elapsed_ms": None, "truncated": False, **panel}
    rows, columns = panel["rows"], panel["columns"]
    if panel.get("error") or not columns:
        return view
    if panel["kind"] == "stat":
        view["figure"] = rows[0][0] if rows and rows[0] else 0
    elif panel["kind"] == "timeseries" and len(columns) > 1 and rows:
        rows = _every_bucket(rows, len(columns), when)
        labels = [charts.time_label(r[0]) for r in rows]
        series = {c: [r[i] if isinstance(r[i], int | float) else None for r in rows]
                  for i, c in enumerate(columns) if i > 0}
        view["chart"] = charts.lines(panel["title"], labels, series)
    elif panel["kind"] in ("top_n", "map") and len(columns) > 1:
        numbers = [r[-1] for r in rows if isinstance(r[-1], int | float)]
        view["max"] = max(numbers, default=0) or 1
    return view


def _every_bucket(rows: list[list[Any]], width: int, when: TimeRange) -> list[list[Any]]:
    """The rows of a time series with a zero row for every `bucket()` of the range that had
    no data (a line through the gaps would say otherwise); rows whose first column is not a
    bucket's time are kept as they are."""
    step = when.bucket_seconds()
    by_time: dict[int, list[Any]] = {}
    for row in rows:
        try:
            epoch = int(datetime.fromisoformat(str(row[0])).timestamp())
        except ValueError:
            return rows
        if epoch % step:
            return rows
        by_time[epoch] = row
    first = int(when.start.timestamp()) // step * step
    last = int(when.end.timestamp())
    if (last - first) // step > 2000:
        return rows
    out = []
    for epoch in range(min(first, *by_time), max(last, *by_time) + 1, step):
        out.append(by_time.get(epoch) or [datetime.fromtimestamp(epoch, UTC).isoformat(),
                                          *[0] * (width - 1)])
    return out


def duration(seconds: float | None) -> str:
    """`3m 20s`, `2h 05m`, `1d 4h` (or a dash)."""
    if seconds is None:
        return "–"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"

