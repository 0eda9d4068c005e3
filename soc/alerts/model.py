"""What the alert store's callers pass and get back: statuses, the errors, who acts (`Actor`)
and the SQL that limits rows to its tenants, filters, the results of upserts and triage changes,
and the API form of an alert row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from collector.config.tenants import SeveritySla, SlaConfig
from core.errors import VigilError
from core.events import Event

STATUSES = ("new", "acknowledged", "escalated", "resolved")
OPEN_STATUSES = ("new", "acknowledged", "escalated")
RESOLUTIONS = ("false_positive", "true_positive", "benign", "duplicate")
LEVELS = ("L1", "L2", "L3")
CLIENT_REQUEST_KINDS = ("validation", "action", "decision")
SLA_STATES = ("breached", "due_soon")  # the queue's SLA filter
ORDERS = ("sla", "newest")  # the queue's sort: the next SLA deadline first, or newest first
PLATFORM = "_platform"  # audit tenant of actions that belong to no client (user admin)
SYSTEM_ACTOR = "system"

# Columns an audit record shows before and after a change.
TRIAGE_COLUMNS = ("status", "assignee", "escalation_level", "escalation_reason", "resolution",
                  "acknowledged_at", "resolved_at")
# Columns of an alert's summary form (lists, triage changes).
SUMMARY_COLUMNS = ("id", "tenant", "rule_id", "rule_name", "severity", "dataset", "group_key",
                   "status", "assignee", "escalation_level", "escalation_reason", "resolution",
                   "first_seen", "last_seen", "match_count", "suppressed", "created_at",
                   "updated_at", "acknowledged_at", "resolved_at", "ack_due", "resolve_due",
                   "ack_breached_at", "resolve_breached_at")


class NotFound(VigilError):
    """No such alert within the caller's tenants (which one of the two is never told)."""


class Conflict(VigilError):
    """The change does not apply to the alert's current state."""


class InvalidChange(VigilError):
    """The change names something that does not fit the alert (an assignee who is not an
    active user of its tenant)."""


@dataclass(frozen=True)
class Actor:
    """Who acts: a login, the tenants it may see (None: every tenant), the client address."""

    login: str
    tenants: frozenset[str] | None
    address: str | None = None

    def sees(self, tenant: str) -> bool:
        return self.tenants is None or tenant in self.tenants


SYSTEM = Actor(SYSTEM_ACTOR, None)

SlaPolicy = Callable[[str, str], SeveritySla]


def default_sla_policy(tenant: str, severity: str) -> SeveritySla:
    return SlaConfig().for_severity(severity)


@dataclass
class UpsertResult:
    tenant: str = "_unknown"
    inserted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    rejected: list[tuple[Event, str]] = field(default_factory=list)


@dataclass
class Change:
    """One triage change: the alert before and after (summary form)."""

    action: str
    before: dict[str, Any]
    after: dict[str, Any]


@dataclass
class AlertFilter:
    tenant: str | None = None
    status: Sequence[str] = ()
    severity: Sequence[str] = ()
    rule_id: str | None = None
    assignee: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    breached: bool | None = None
    sla_state: str | None = None  # one of SLA_STATES: measured at `now`
    tactic: str | None = None  # an ATT&CK tactic the rule is tagged with
    awaiting_client: bool | None = None  # a question to the client is unanswered
    order: str = "newest"
    now: datetime | None = None  # where `due_soon` starts (the store's clock by default)
    due_soon: timedelta = timedelta(hours=1)


def to_json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def tenant_scope(actor: Actor, column: str = "tenant") -> tuple[str, list[Any]]:
    """The SQL condition limiting rows to the actor's tenants."""
    if actor.tenants is None:
        return "1 = 1", []
    if not actor.tenants:
        return "1 = 0", []
    tenants = sorted(actor.tenants)
    return f"{column} IN ({', '.join('?' * len(tenants))})", tenants


def row_summary(row: sqlite3.Row) -> dict[str, Any]:
    return {key: row[key] for key in SUMMARY_COLUMNS}


def triage_state(row: dict[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in TRIAGE_COLUMNS}


def public_alert(row: dict[str, Any]) -> dict[str, Any]:
    """The API form of an alert row."""
    details = orjson.loads(row["details"]) if row.get("details") else {}
    return {
        "id": row["id"], "tenant": row["tenant"], "severity": row["severity"],
        "status": row["status"], "assignee": row.get("assignee"),
        "rule": {"id": row["rule_id"], "name": row["rule_name"],
                 "description": details.get("description"), "type": details.get("type"),
                 "references": details.get("references", []),
                 "falsepositives": details.get("falsepositives", []),
                 "tags": details.get("tags", []), "runbook": details.get("runbook")},
        "threat": {"tactics": details.get("tactics", []),
                   "techniques": details.get("techniques", [])},
        "escalation": {"level": row.get("escalation_level"),
                       "reason": row.get("escalation_reason")},
        "resolution": row.get("resolution"),
        "dataset": row.get("dataset"), "group_key": row["group_key"],
        "first_seen": row["first_seen"], "last_seen": row["last_seen"],
        "count": row["match_count"], "suppressed": row["suppressed"],
        "created_at": row["created_at"], "updated_at": row["updated_at"],
        "acknowledged_at": row.get("acknowledged_at"), "resolved_at": row.get("resolved_at"),
        "sla": {"ack_due": row["ack_due"], "resolve_due": row["resolve_due"],
                "ack_breached_at": row.get("ack_breached_at"),
                "resolve_breached_at": row.get("resolve_breached_at")},
    }
