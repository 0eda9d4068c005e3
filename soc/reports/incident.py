"""The closed-incident report of one alert resolved as true positive: the rule (description,
level, ATT&CK), the group key, the timeline (first and last match, acknowledgement,
escalations, the client's questions and answers, the resolution with its reason), notes, the
audit trail and the triggering events read from the tenant's lake (`soc.console.lake`, the
investigation page's reader).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from collector.config.tenants import TenantConfig
from soc.alerts.model import Actor, NotFound
from soc.alerts.store import AlertStore
from soc.console import lake

log = logging.getLogger(__name__)

TRUE_POSITIVE = "true_positive"
MAX_EVENTS = 50


class NotAnIncident(NotFound):
    """The alert exists for the caller but was not resolved as true positive."""


def _step(at: str, what: str, who: str | None = None, detail: str | None = None
          ) -> dict[str, Any]:
    return {"at": at, "what": what, "who": who, "detail": detail}


def _sort_key(step: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(step["at"]).astimezone(UTC)


def _timeline(alert: dict[str, Any], trail: list[dict[str, Any]]) -> list[dict[str, Any]]:
    steps = [_step(alert["first_seen"], "first match"),
             _step(alert["last_seen"], f"last match ({alert['count']} in all)")]
    for record in trail:
        after = record.get("after") or {}
        action, who = record["action"], record["actor"]
        if action == "created":
            steps.append(_step(record["at"], "alert raised", who))
        elif action == "acknowledge":
            steps.append(_step(record["at"], "acknowledged", who))
        elif action == "escalate":
            steps.append(_step(record["at"], f"escalated to {after.get('escalation_level')}",
                               who, after.get("escalation_reason")))
        elif action == "resolve":
            steps.append(_step(record["at"], f"resolved as {after.get('resolution')}", who))
        elif action == "reopen":
            steps.append(_step(record["at"], "reopened", who))
        elif action == "assign":
            steps.append(_step(record["at"], f"assigned to {after.get('assignee') or 'nobody'}",
                               who))
    for request in alert["client_requests"]:
        steps.append(_step(request["asked_at"], f"question to the client ({request['kind']})",
                           request["asked_by"], request["question"]))
        if request["answered_at"]:
            steps.append(_step(request["answered_at"], "the client answered",
                               request["answered_by"], request["answer"]))
    for note in alert["notes"]:
        steps.append(_step(note["created_at"], "note", note["author"], note["body"]))
    return sorted(steps, key=_sort_key)


def resolution_reason(alert: dict[str, Any]) -> str | None:
    """The note written with the closing (the console asks for one), else the last note."""
    resolved = alert.get("resolved_at")
    notes = alert["notes"]
    for note in notes:
        if resolved and note["created_at"] >= resolved:
            return str(note["body"])
    return str(notes[-1]["body"]) if notes else None


def incident_report(store: AlertStore, alert_id: str, actor: Actor, tenant: TenantConfig | None,
                    lake_root: Path, now: datetime) -> dict[str, Any]:
    """The report of an alert the actor may see; NotFound for another tenant's alert or none,
    NotAnIncident for an alert not resolved as true positive."""
    alert = store.get(alert_id, actor)
    if alert["status"] != "resolved" or alert["resolution"] != TRUE_POSITIVE:
        raise NotAnIncident(f"alert {alert_id!r} is not a closed incident")
    trail, _ = store.audit(actor, alert_id=alert["id"], limit=1000)
    events: list[dict[str, Any]] = []
    lake_error = None
    try:
        events = lake.matched_events(lake_root, alert["tenant"], alert["events"])[:MAX_EVENTS]
    except Exception as exc:  # the report still goes out; the reason is in it and the log
        log.warning("lake read for a report failed",
                    extra={"alert": alert["id"], "error": f"{type(exc).__name__}: {exc}"})
        lake_error = f"the lake could not be read ({type(exc).__name__})"
    try:
        group = orjson.loads(alert["group_key"])
    except orjson.JSONDecodeError:
        group = alert["group_key"]
    details = alert["rule"]
    return {
        "kind": "closed_incident",
        "tenant": alert["tenant"], "tenant_name": tenant.name if tenant else alert["tenant"],
        "generated_at": now.isoformat(),
        "alert": {k: alert[k] for k in ("id", "severity", "status", "resolution", "assignee",
                                        "dataset", "first_seen", "last_seen", "count",
                                        "created_at", "acknowledged_at", "resolved_at",
                                        "escalation", "sla", "threat")},
        "rule": {"id": details["id"], "name": details["name"],
                 "description": details.get("description"),
                 "level": alert["severity"], "references": details.get("references", []),
                 "falsepositives": details.get("falsepositives", []),
                 "runbook": details.get("runbook")},
        "group_key": group if isinstance(group, dict) else {"group": group},
        "resolution_reason": resolution_reason(alert),
        "timeline": _timeline(alert, trail),
        "client_requests": alert["client_requests"],
        "notes": alert["notes"],
        "audit": [{"at": r["at"], "actor": r["actor"], "address": r["address"],
                   "action": r["action"], "after": r["after"]} for r in trail],
        "events": events, "lake_error": lake_error,
        "matched": [e.get("fields", {}) for e in alert["events"] if isinstance(e, dict)],
    }
