"""The console's pages: the Security Detections queue (filters, counts, bulk actions, a JSON
feed its script polls) and the alert investigation page (rule, group key, timeline, the
matched events and pivots from the tenant's lake, client questions, notes, audit trail) with
its triage forms. Every read and change is an /api/v1 operation run through `invoke`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from aiohttp import web
from multidict import MultiDict

from sinks.lake.sink import lake_root
from soc.alerts.model import LEVELS, OPEN_STATUSES, RESOLUTIONS, STATUSES
from soc.api.framework import ApiError
from soc.api.routes import Api
from soc.auth.roles import ALL_TENANTS, ANSWER, TRIAGE
from soc.console import lake
from soc.console.admin import add_admin
from soc.console.app import AuthPages, Form
from soc.console.dashboards import DashboardPages
from soc.console.integrations import add_integration_routes
from soc.console.reports import add_report_pages
from soc.console.session import Session

log = logging.getLogger(__name__)

PAGE_SIZE = 50
FILTERS = ("tenant", "status", "severity", "sla_state", "rule_id", "assignee", "tactic",
           "period", "order")
PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
SEVERITIES = ("critical", "high", "medium", "low", "informational")
DUE_SOON = timedelta(hours=1)
ACTIONS = {  # form action -> (operation, what the page says once done)
    "acknowledge": ("acknowledgeAlert", "Acknowledged."),
    "assign": ("assignAlert", "Assignee changed."),
    "escalate": ("escalateAlert", "Escalated."),
    "ask-client": ("escalateAlert", "Question sent to the client."),
    "answer": ("answerClientRequest", "Answer sent to the SOC."),
    "resolve": ("resolveAlert", "Closed."),
    "note": ("noteAlert", "Note added."),
    "reopen": ("reopenAlert", "Reopened."),
}
DONE = {action: message for action, (_, message) in ACTIONS.items()}


def sla_state(alert: dict[str, Any], now: datetime) -> str:
    """breached, due soon, on track (open alerts); met or missed (resolved ones)."""
    sla = alert["sla"]
    missed = bool(sla["ack_breached_at"] or sla["resolve_breached_at"])
    if alert["status"] == "resolved":
        return "missed" if missed else "met"
    due = datetime.fromisoformat(sla["ack_due"] if alert["status"] == "new"
                                 else sla["resolve_due"])
    if missed or due <= now:
        return "breached"
    return "due soon" if due <= now + DUE_SOON else "on track"


def next_due(alert: dict[str, Any]) -> str | None:
    if alert["status"] == "resolved":
        return None
    return str(alert["sla"]["ack_due" if alert["status"] == "new" else "resolve_due"])


class Console(AuthPages):
    """Every console route."""

    # -- the queue -------------------------------------------------------------------------

    def _queue_query(self, request: web.Request, now: datetime) -> MultiDict[str]:
        """The API query of the queue's filters (empty fields dropped, `open` expanded)."""
        raw = request.query
        query: MultiDict[str] = MultiDict()
        for name in ("tenant", "severity", "sla_state", "rule_id", "assignee", "tactic"):
            for value in raw.getall(name, []):
                if value:
                    query.add(name, value)
        status = raw.get("status", "open")
        if status == "open":
            for value in OPEN_STATUSES:
                query.add("status", value)
        elif status != "all":
            query.add("status", status)
        period = PERIODS.get(raw.get("period", ""))
        if period is not None:
            query["since"] = (now - period).isoformat()
        query["order"] = "newest" if raw.get("order") == "newest" else "sla"
        try:
            page = max(0, min(int(raw.get("page", "0")), 100_000))
        except ValueError:
            page = 0
        query["limit"] = str(PAGE_SIZE)
        query["offset"] = str(page * PAGE_SIZE)
        return query

    async def _queue_data(self, request: web.Request, session: Session) -> dict[str, Any]:
        now = self.alerting.clock()
        query = self._queue_query(request, now)
        page = await self.invoke("listAlerts", request, session, query=query)
        counts_query: MultiDict[str] = MultiDict()
        if query.get("tenant"):
            counts_query["tenant"] = query["tenant"]
        counts = await self.invoke("alertCounts", request, session, query=counts_query)
        for alert in page["items"]:
            alert["sla_state"] = sla_state(alert, now)
            alert["next_due"] = next_due(alert)
        return {"page": page, "counts": counts, "now": now.isoformat()}

    async def queue(self, request: web.Request, session: Session, form: Form
                    ) -> web.StreamResponse:
        data = await self._queue_data(request, session)
        selected = {name: request.query.get(name, "") for name in FILTERS}
        selected["status"] = selected["status"] or "open"
        offset, total = data["page"]["offset"], data["page"]["total"]
        keep = {k: v for k, v in selected.items() if v}
        pages = {"previous": urlencode({**keep, "page": offset // PAGE_SIZE - 1})
                 if offset else None,
                 "next": urlencode({**keep, "page": offset // PAGE_SIZE + 1})
                 if offset + PAGE_SIZE < total else None}
        return self.render(
            "queue.html", session=session, tenants=self.visible_tenants(session),
            current_tenant=selected["tenant"] or None, selected=selected, pages=pages,
            filters_query=urlencode(keep),
            feed_query=urlencode({**keep, "page": offset // PAGE_SIZE}), statuses=STATUSES,
            severities=SEVERITIES,
            periods=list(PERIODS), can_triage=session.principal.can(TRIAGE),
            resolutions=RESOLUTIONS, bulk=_bulk_result(request), **data)

    async def queue_json(self, request: web.Request, session: Session, form: Form
                         ) -> web.StreamResponse:
        data = await self._queue_data(request, session)
        items = [{"id": a["id"], "tenant": a["tenant"], "severity": a["severity"],
                  "rule": a["rule"]["name"], "status": a["status"], "assignee": a["assignee"],
                  "escalation": a["escalation"]["level"], "next_due": a["next_due"],
                  "sla_state": a["sla_state"], "created_at": a["created_at"],
                  "count": a["count"]} for a in data["page"]["items"]]
        return web.json_response({"counts": data["counts"], "total": data["page"]["total"],
                                  "items": items, "now": data["now"]},
                                 headers={"Cache-Control": "no-store"})

    async def bulk(self, request: web.Request, session: Session, form: Form
                   ) -> web.StreamResponse:
        action = form.get("action")
        body: dict[str, Any] = {"ids": form.getall("ids", []), "action": action}
        if action == "resolve":
            body["resolution"] = form.get("resolution") or None
            body["note"] = form.get("note") or None
        elif action != "acknowledge":
            raise ApiError(400, "choose acknowledge or close")
        if not body["ids"]:
            raise ApiError(400, "select at least one alert")
        result = await self.invoke("bulkAlerts", request, session, body=body)
        outcomes = [r["result"] for r in result["results"]]
        back = urlencode(parse_qsl(str(form.get("back") or ""))[:20])  # the queue's filters
        query = urlencode({"bulk_ok": outcomes.count("ok"),
                           "bulk_failed": len(outcomes) - outcomes.count("ok")})
        raise web.HTTPSeeOther(f"/alerts?{back}&{query}" if back else f"/alerts?{query}")

    # -- one alert -------------------------------------------------------------------------

    async def alert(self, request: web.Request, session: Session, form: Form
                    ) -> web.StreamResponse:
        alert_id = request.match_info["alert_id"]
        alert = await self.invoke("getAlert", request, session, path={"alert_id": alert_id})
        trail = await self.invoke("alertAudit", request, session, path={"alert_id": alert_id})
        root = lake_root(self.alerting.data_dir, self.alerting.config.sinks.values())
        pivot = self._pivot_request(request)
        events, pivoted, lake_error = [], [], None
        try:
            events = await asyncio.to_thread(lake.matched_events, root, alert["tenant"],
                                             alert["events"])
            if pivot is not None:
                start = datetime.fromisoformat(alert["first_seen"])
                end = datetime.fromisoformat(alert["last_seen"])
                pivoted = await asyncio.to_thread(lake.pivot_events, root, alert["tenant"],
                                                  pivot[0], pivot[1], start, end)
        except Exception as exc:  # the page still shows the alert; the reason is logged
            log.warning("lake read for the console failed",
                        extra={"alert": alert_id, "error": f"{type(exc).__name__}: {exc}"})
            lake_error = "The lake could not be read; see the daemon's log."
        group = _group_key(alert["group_key"])
        now = self.alerting.clock()
        return self.render(
            "alert.html", session=session, tenants=self.visible_tenants(session),
            current_tenant=alert["tenant"], alert=alert, group=group, trail=trail["items"],
            events=events, pivot=pivot, pivoted=pivoted, lake_error=lake_error,
            pivots=_pivot_values(alert, group, events), sla_state=sla_state(alert, now),
            next_due=next_due(alert), assignees=await self._assignees(session, alert["tenant"]),
            levels=LEVELS, resolutions=RESOLUTIONS, done=DONE.get(request.query.get("done", "")),
            can_triage=session.principal.can(TRIAGE), can_answer=session.principal.can(ANSWER),
            client_user=session.principal.role.startswith("client_"),
            timeline=_timeline(alert, trail["items"]))

    def _pivot_request(self, request: web.Request) -> tuple[str, str] | None:
        field, value = request.query.get("pivot", ""), request.query.get("value", "")
        if field in lake.PIVOT_FIELDS and 0 < len(value) <= 256:
            return field, value
        return None

    async def _assignees(self, session: Session, tenant: str) -> list[str]:
        """Active users of the alert's tenant (and platform admins, for the SOC's users)."""
        users = await asyncio.to_thread(self.alerting.directory.users)
        client = session.principal.role.startswith("client_")
        return [u.login for u in users if u.status == "active" and (
            tenant in u.tenants or (ALL_TENANTS in u.tenants and not client))]

    async def act(self, request: web.Request, session: Session, form: Form
                  ) -> web.StreamResponse:
        alert_id, action = request.match_info["alert_id"], request.match_info["action"]
        if action not in ACTIONS:
            raise web.HTTPNotFound()
        operation = ACTIONS[action][0]
        path = {"alert_id": alert_id}
        text = {k: v.strip() for k, v in form.items() if isinstance(v, str)}
        body: dict[str, Any] | None = None
        if action == "assign":
            body = {"assignee": text.get("assignee") or None}
        elif action == "escalate":
            body = {"level": text.get("level"), "reason": text.get("reason")}
        elif action == "ask-client":
            body = {"level": text.get("level") or "L1",
                    "reason": text.get("reason") or "question to the client",
                    "client_request": {"kind": text.get("kind"),
                                       "question": text.get("question")}}
        elif action == "answer":
            path["request_id"] = text.get("request_id", "")
            body = {"answer": text.get("answer")}
        elif action == "resolve":
            if not text.get("reason"):
                raise ApiError(400, "give the reason for closing the alert")
            body = {"resolution": text.get("resolution"), "note": text.get("reason")}
        elif action == "note":
            body = {"body": text.get("body")}
        elif action == "reopen":
            body = {"reason": text.get("reason")}
        body = {k: v for k, v in body.items() if v not in ("", None) or k == "assignee"} \
            if body is not None else None
        await self.invoke(operation, request, session, path=path, body=body)
        raise web.HTTPSeeOther(f"/alerts/{alert_id}?done={action}")

    # -- routes ----------------------------------------------------------------------------

    async def home(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther("/alerts")

    def add_routes(self, app: web.Application) -> None:
        page = self.page
        app.router.add_get("/", self.home)
        app.router.add_get("/login", self.login_form)
        app.router.add_post("/login", self.login)
        app.router.add_post("/logout", page(self.logout, form=True))
        app.router.add_post("/logout-all", page(self.logout_all, form=True))
        app.router.add_get("/alerts", page(self.queue))
        app.router.add_get("/alerts.json", page(self.queue_json))
        app.router.add_post("/alerts/bulk", page(self.bulk, form=True))
        app.router.add_get("/alerts/{alert_id}", page(self.alert))
        app.router.add_post("/alerts/{alert_id}/{action}", page(self.act, form=True))
        app.router.add_get("/static/{name}", self.static)


def add_console(app: web.Application, api: Api, secure: bool) -> None:
    """Serve the console on `app` (the control listener's root application)."""
    console = Console(api, secure)
    console.add_routes(app)
    add_integration_routes(app, console)
    DashboardPages(console).add_routes(app)
    add_report_pages(app, api, secure)
    add_admin(app, console)


def _bulk_result(request: web.Request) -> dict[str, int] | None:
    try:
        return {"ok": int(request.query["bulk_ok"]),
                "failed": int(request.query.get("bulk_failed", "0"))}
    except (KeyError, ValueError):
        return None


def _group_key(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"group": text}
    return value if isinstance(value, dict) else {"group": value}


def _pivot_values(alert: dict[str, Any], group: dict[str, Any], events: list[dict[str, Any]]
                  ) -> list[tuple[str, str]]:
    """(field, value) pairs to pivot on, from the group key and the matched events."""
    found: dict[tuple[str, str], None] = {}
    sources = [group, *[e.get("fields", {}) for e in alert["events"] if isinstance(e, dict)],
               *events]
    aliases = {"source.address": "source.ip", "host.name": "host.hostname"}
    for source in sources:
        if not isinstance(source, dict):
            continue
        for key, value in source.items():
            field = aliases.get(key, key)
            if field in lake.PIVOT_FIELDS and isinstance(value, (str, int)) and str(value):
                found[(field, str(value))] = None
    return list(found)[:12]


def _timeline(alert: dict[str, Any], trail: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """First and last match, and every audited step, in time order."""
    steps = [(alert["first_seen"], "first match"),
             (alert["last_seen"], f"last match ({alert['count']} in all)")]
    steps += [(r["at"], f"{r['action']} by {r['actor']}") for r in trail]
    return sorted(steps, key=lambda s: datetime.fromisoformat(s[0]).astimezone(UTC))
