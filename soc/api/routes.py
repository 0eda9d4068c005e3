"""The /api/v1 operations: alerts and triage, audit, tenants and SLA reports (accounts, tokens
and users in soc/api/accounts.py). Every query carries the caller's tenant scope down to
the SQL."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from collector.config.tenants import TenantConfig
from core.config import SEVERITIES, parse_duration
from soc.alerts.model import (
    PLATFORM,
    AlertFilter,
    Change,
    Conflict,
    InvalidChange,
    NotFound,
)
from soc.alerts.service import Alerting
from soc.alerts.sla import sla_report
from soc.alerts.store import Ambiguous
from soc.api import models as m
from soc.api.accounts import AccountRoutes
from soc.api.dashboards import DashboardRoutes
from soc.api.framework import ApiError, Call, Operation
from soc.api.integrations import IntegrationRoutes
from soc.api.reports import ReportRoutes
from soc.api.users import UserRoutes
from soc.auth.model import Principal
from soc.auth.roles import ANSWER, TRIAGE

log = logging.getLogger(__name__)

CHANGES = (400, 401, 403, 404, 409)


def _page(items: list[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    following = offset + len(items)
    return {"items": items, "total": total, "limit": limit, "offset": offset,
            "next_offset": following if following < total else None}


def _tenant_out(tenant_id: str, tenant: TenantConfig) -> dict[str, Any]:
    def contact(c: Any) -> dict[str, Any]:
        return {"name": c.name, "email": c.email, "phone": c.phone}
    return {"id": tenant_id, "name": tenant.name, "contract_id": tenant.contract_id,
            "tier": tenant.tier, "contact": contact(tenant.contact) if tenant.contact else None,
            "escalation_contacts": [contact(c) for c in tenant.escalation_contacts],
            "sla": {s: {"ack_seconds": int(tenant.sla.for_severity(s).ack.total_seconds()),
                        "resolve_seconds": int(tenant.sla.for_severity(s).resolve
                                               .total_seconds())}
                    for s in SEVERITIES}}


def alert_filter(q: m.AlertQuery) -> AlertFilter:
    """The store's filter for an alert query (the API's and the console's)."""
    return AlertFilter(tenant=q.tenant, status=q.status, severity=q.severity,
                       rule_id=q.rule_id, assignee=q.assignee, since=q.since, until=q.until,
                       breached=q.breached, sla_state=q.sla_state, tactic=q.tactic,
                       awaiting_client=q.awaiting_client, order=q.order)


def parse_since(text: str, now: datetime) -> datetime:
    """`30d` (back from now) or an ISO time."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(400, "`since` must be a duration like 30d or an ISO time") from None
    return m._utc(value) if value.tzinfo is None else value


class Api(AccountRoutes, UserRoutes, DashboardRoutes, IntegrationRoutes, ReportRoutes):
    """Handlers bound to the daemon's alerting services."""

    def __init__(self, alerting: Alerting) -> None:
        self.alerting = alerting
        self._login_limiter = None

    @property
    def store(self) -> Any:
        return self.alerting.store

    async def resolve(self, token: str) -> Principal | None:
        return await asyncio.to_thread(self.alerting.directory.authenticate, token)

    async def _scope_tenant(self, call: Call, tenant: str | None) -> None:
        """A tenant named in a request must be in the caller's scope and configured; both
        failures are the same 404, audited under the platform like an alert's."""
        if tenant is None:
            return
        principal = call.me
        in_scope = principal.tenants is None or tenant in principal.tenants
        if not in_scope or tenant not in self.alerting.tenants:
            await asyncio.to_thread(self.store.record, PLATFORM, principal.actor(call.address),
                                    "tenant_not_found", None,
                                    {"tenant": tenant[:64], "method": call.request.method,
                                     "path": call.request.path[:200]})
            raise ApiError(404, f"tenant {tenant!r} not found")

    async def _not_found(self, call: Call, alert_id: str) -> ApiError:
        """The 404 of an alert outside the caller's tenants (or of none), audited under the
        platform (never the alert's tenant: which of the two it was is not told)."""
        await asyncio.to_thread(self.store.record, PLATFORM, call.me.actor(call.address),
                                "alert_not_found", None,
                                {"alert_id": alert_id[:64], "method": call.request.method,
                                 "path": call.request.path[:200]})
        return ApiError(404, "alert not found")

    # -- alerts ----------------------------------------------------------------------------

    async def list_alerts(self, call: Call) -> Any:
        q: m.AlertQuery = call.query
        await self._scope_tenant(call, q.tenant)
        filters = alert_filter(q)
        items, total = await asyncio.to_thread(self.store.search, call.me.actor(call.address),
                                               filters, limit=q.limit, offset=q.offset)
        return _page(items, total, q.limit, q.offset)

    async def alert_counts(self, call: Call) -> Any:
        q: m.CountsQuery = call.query
        await self._scope_tenant(call, q.tenant)
        return await asyncio.to_thread(self.store.counts, call.me.actor(call.address),
                                       AlertFilter(tenant=q.tenant))

    async def _full_id(self, call: Call) -> None:
        """A unique prefix of one of the caller's alert ids stands for it (`vigil alerts show
        3f2a9c`); the handlers then see the whole id."""
        try:
            call.path["alert_id"] = await asyncio.to_thread(
                self.store.full_id, call.path["alert_id"], call.me.actor(call.address))
        except Ambiguous as exc:
            raise ApiError(409, str(exc)) from None

    async def get_alert(self, call: Call) -> Any:
        await self._full_id(call)
        try:
            return await asyncio.to_thread(self.store.get, call.path["alert_id"],
                                           call.me.actor(call.address))
        except NotFound:
            raise await self._not_found(call, call.path["alert_id"]) from None

    async def _apply(self, call: Call, name: str, *args: Any) -> Any:
        await self._full_id(call)
        actor = call.me.actor(call.address)
        try:
            change: Change = await self.alerting.change(getattr(self.store, name),
                                                        call.path["alert_id"], actor, *args)
        except NotFound:
            raise await self._not_found(call, call.path["alert_id"]) from None
        except Conflict as exc:
            raise ApiError(409, str(exc)) from None
        except InvalidChange as exc:
            raise ApiError(400, str(exc)) from None
        summary = await asyncio.to_thread(self.store.get, call.path["alert_id"], actor)
        return {"action": change.action, "alert": summary}

    async def acknowledge(self, call: Call) -> Any:
        return await self._apply(call, "acknowledge")

    async def assign(self, call: Call) -> Any:
        return await self._apply(call, "assign", call.body.assignee)

    async def escalate(self, call: Call) -> Any:
        body: m.EscalateRequest = call.body
        request = body.client_request.model_dump() if body.client_request else None
        return await self._apply(call, "escalate", body.level, body.reason, request)

    async def answer_client(self, call: Call) -> Any:
        try:
            request_id = int(call.path["request_id"])
        except ValueError:
            raise ApiError(404, "question not found") from None
        return await self._apply(call, "answer_client_request", request_id, call.body.answer)

    async def note(self, call: Call) -> Any:
        return await self._apply(call, "add_note", call.body.body)

    async def resolve_alert(self, call: Call) -> Any:
        body: m.ResolveRequest = call.body
        result = await self._apply(call, "resolve", body.resolution)
        if body.note:
            await self._apply(call, "add_note", body.note)
        return result

    async def reopen(self, call: Call) -> Any:
        return await self._apply(call, "reopen", call.body.reason)

    async def bulk(self, call: Call) -> Any:
        body: m.BulkRequest = call.body
        actor = call.me.actor(call.address)
        if body.action == "resolve" and body.resolution is None:
            raise ApiError(400, "`resolution` is required to resolve")
        if body.action == "note" and body.note is None:
            raise ApiError(400, "`note` is required to add a note")
        operation, args = {
            "acknowledge": ("acknowledge", ()), "assign": ("assign", (body.assignee,)),
            "note": ("add_note", (body.note,)), "resolve": ("resolve", (body.resolution,)),
        }[body.action]
        results = []
        for alert_id in dict.fromkeys(body.ids):
            try:
                await self.alerting.change(getattr(self.store, operation), alert_id, actor,
                                           *args)
                results.append({"id": alert_id, "result": "ok"})
            except NotFound:
                await self._not_found(call, alert_id)
                results.append({"id": alert_id, "result": "not_found"})
            except Conflict as exc:
                results.append({"id": alert_id, "result": "conflict", "error": str(exc)})
            except InvalidChange as exc:
                results.append({"id": alert_id, "result": "invalid", "error": str(exc)})
        return {"results": results}

    # -- audit, tenants, SLA ---------------------------------------------------------------

    async def audit(self, call: Call) -> Any:
        q: m.AuditQuery = call.query
        items, total = await asyncio.to_thread(
            self.store.audit, call.me.actor(call.address), tenant=q.tenant,
            alert_id=q.alert_id, since=q.since, limit=q.limit, offset=q.offset)
        return _page(items, total, q.limit, q.offset)

    async def alert_audit(self, call: Call) -> Any:
        await self._full_id(call)
        actor = call.me.actor(call.address)
        try:
            await asyncio.to_thread(self.store.get, call.path["alert_id"], actor)
        except NotFound:
            raise await self._not_found(call, call.path["alert_id"]) from None
        items, total = await asyncio.to_thread(self.store.audit, actor,
                                               alert_id=call.path["alert_id"], limit=1000)
        return _page(items, total, 1000, 0)

    def _visible_tenants(self, call: Call) -> dict[str, TenantConfig]:
        scope = call.me.tenants
        return {k: v for k, v in sorted(self.alerting.tenants.items())
                if scope is None or k in scope}

    async def tenants(self, call: Call) -> Any:
        return {"items": [_tenant_out(k, v) for k, v in self._visible_tenants(call).items()]}

    async def tenant(self, call: Call) -> Any:
        found = self._visible_tenants(call).get(call.path["tenant_id"])
        if found is None:
            raise ApiError(404, "tenant not found")
        return _tenant_out(call.path["tenant_id"], found)

    async def sla(self, call: Call) -> Any:
        q: m.SlaQuery = call.query
        await self._scope_tenant(call, q.tenant)
        now = self.alerting.clock()
        since = parse_since(q.since, now)
        scope = frozenset({q.tenant}) if q.tenant else call.me.tenants
        rows = await asyncio.to_thread(sla_report, self.store, now, tenants=scope, since=since)
        return {"since": since.isoformat(), "generated_at": now.isoformat(),
                "rows": [r.as_dict() for r in rows]}

    def operations(self) -> list[Operation]:
        Op = Operation  # a table reads better with a short constructor
        return self.auth_operations() + [
            Op("GET", "/alerts", "listAlerts", "Alerts with filters and paging", "alerts",
              self.list_alerts, m.AlertPage, query=m.AlertQuery),
            Op("POST", "/alerts/bulk", "bulkAlerts", "One change on many alerts", "alerts",
              self.bulk, m.BulkResponse, body=m.BulkRequest, permission=TRIAGE,
              errors=(400, 401, 403)),
            Op("GET", "/alerts/counts", "alertCounts", "Alerts per status, breached, due "
              "soon and awaiting the client", "alerts", self.alert_counts, m.AlertCounts,
              query=m.CountsQuery),
            Op("GET", "/alerts/{alert_id}", "getAlert", "One alert with events and notes",
              "alerts", self.get_alert, m.AlertDetail),
            Op("POST", "/alerts/{alert_id}/acknowledge", "acknowledgeAlert", "Acknowledge",
              "alerts", self.acknowledge, m.ChangeResponse, permission=TRIAGE,
              errors=CHANGES),
            Op("POST", "/alerts/{alert_id}/assign", "assignAlert", "Assign to an analyst",
              "alerts", self.assign, m.ChangeResponse, body=m.AssignRequest,
              permission=TRIAGE, errors=CHANGES),
            Op("POST", "/alerts/{alert_id}/escalate", "escalateAlert",
              "Escalate (L1/L2/L3), optionally asking the client", "alerts", self.escalate,
              m.ChangeResponse, body=m.EscalateRequest, permission=TRIAGE, errors=CHANGES),
            Op("POST", "/alerts/{alert_id}/client-requests/{request_id}/answer",
              "answerClientRequest", "The client answers the SOC's question (the SOC is "
              "notified)", "alerts", self.answer_client, m.ChangeResponse,
              body=m.ClientAnswerRequest, permission=ANSWER, errors=CHANGES),
            Op("POST", "/alerts/{alert_id}/notes", "noteAlert", "Add a note", "alerts",
              self.note, m.ChangeResponse, body=m.NoteRequest, permission=TRIAGE,
              errors=CHANGES),
            Op("POST", "/alerts/{alert_id}/resolve", "resolveAlert",
              "Close as false/true positive, benign or duplicate", "alerts",
              self.resolve_alert, m.ChangeResponse, body=m.ResolveRequest,
              permission=TRIAGE, errors=CHANGES),
            Op("POST", "/alerts/{alert_id}/reopen", "reopenAlert", "Reopen a resolved alert",
              "alerts", self.reopen, m.ChangeResponse, body=m.ReopenRequest,
              permission=TRIAGE, errors=CHANGES),
            Op("GET", "/alerts/{alert_id}/audit", "alertAudit", "The audit trail of an alert",
              "audit", self.alert_audit, m.AuditPage),
            Op("GET", "/audit", "listAudit", "Audit records of your tenants", "audit",
              self.audit, m.AuditPage, query=m.AuditQuery, errors=(400, 401)),
            Op("GET", "/tenants", "listTenants", "Your tenants with contract and SLAs",
              "tenants", self.tenants, m.TenantList, errors=(401,)),
            Op("GET", "/tenants/{tenant_id}", "getTenant", "One tenant", "tenants",
              self.tenant, m.TenantOut, errors=(401, 404)),
            Op("GET", "/sla/report", "slaReport", "MTTA, MTTR and share within SLA", "sla",
              self.sla, m.SlaReport, query=m.SlaQuery),
        ] + self.user_operations() + self.dashboard_operations() \
            + self.integration_operations() + self.report_operations()

