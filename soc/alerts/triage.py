"""Triage lifecycle of an alert: acknowledge, assign, escalate (to L1-L3, or to the client with
a question the client answers), note, resolve, reopen. Each change is checked against the
alert's state, written with its audit record (and any notification) in one transaction, and
limited to the actor's tenants.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any

from soc.alerts.audit import write_audit
from soc.alerts.db import Database, to_text
from soc.alerts.model import (
    CLIENT_REQUEST_KINDS,
    LEVELS,
    RESOLUTIONS,
    SUMMARY_COLUMNS,
    Actor,
    Change,
    Conflict,
    InvalidChange,
    NotFound,
    public_alert,
    row_summary,
    tenant_scope,
    triage_state,
)
from soc.alerts.outbox import NotificationPlanner, enqueue
from soc.auth.roles import ALL_TENANTS


class AlertTriage:
    """The alert store's lifecycle transitions."""

    db: Database
    clock: Callable[[], datetime]
    planner: NotificationPlanner | None

    def _change(self, alert_id: str, actor: Actor, action: str,
                apply: Callable[[dict[str, Any], str], dict[str, Any]],
                audit_after: dict[str, Any] | None = None,
                notify: tuple[str, dict[str, Any]] | None = None,
                also: Callable[[sqlite3.Connection, dict[str, Any], str], None] | None = None
                ) -> Change:
        """Read the alert in scope, apply a change, write it and its audit record atomically."""
        condition, params = tenant_scope(actor)
        now = to_text(self.clock())
        with self.db.transaction() as con:
            found = con.execute(f"SELECT * FROM alerts WHERE id = ? AND {condition}",
                                [alert_id, *params]).fetchone()
            if found is None:
                raise NotFound(f"alert {alert_id!r} not found")
            row = dict(found)
            before = triage_state(row)
            updates = apply(row, now)
            if updates:
                updates["updated_at"] = now
                sets = ", ".join(f"{k} = ?" for k in updates)
                con.execute(f"UPDATE alerts SET {sets} WHERE id = ?",
                            [*updates.values(), alert_id])
            if also is not None:
                also(con, row, now)
            after_row = {**row, **updates}
            after = triage_state(after_row)
            write_audit(con, row["tenant"], alert_id, actor, action, before,
                        audit_after if audit_after is not None else after, now)
            if notify is not None and self.planner is not None:
                event, extra = notify
                enqueue(con, self.planner(event, public_alert(after_row), extra), after_row,
                        now)
        return Change(action, {**row_summary(found)},
                      {k: after_row[k] for k in SUMMARY_COLUMNS})

    def acknowledge(self, alert_id: str, actor: Actor) -> Change:
        def apply(row: dict[str, Any], now: str) -> dict[str, Any]:
            if row["status"] != "new":
                raise Conflict(f"alert is {row['status']}, only a new alert can be acknowledged")
            return {"status": "acknowledged", "acknowledged_at": now,
                    "assignee": row["assignee"] or actor.login}
        return self._change(alert_id, actor, "acknowledge", apply)

    def assign(self, alert_id: str, actor: Actor, assignee: str | None) -> Change:
        """Assign to an active user of the alert's tenant or a platform admin (None: nobody).
        Another tenant's user gets the same answer as a login that does not exist."""
        def apply(row: dict[str, Any], now: str) -> dict[str, Any]:
            if row["status"] == "resolved":
                raise Conflict("alert is resolved; reopen it first")
            return {"assignee": assignee}

        def check(con: sqlite3.Connection, row: dict[str, Any], now: str) -> None:
            if assignee is not None and not _assignable(con, assignee, row["tenant"]):
                raise InvalidChange(f"no active user {assignee!r} in tenant {row['tenant']!r} "
                                    "to assign the alert to")
        return self._change(alert_id, actor, "assign", apply, also=check)

    def escalate(self, alert_id: str, actor: Actor, level: str, reason: str,
                 client_request: dict[str, Any] | None = None) -> Change:
        if level not in LEVELS:
            raise Conflict(f"escalation level must be one of {', '.join(LEVELS)}")

        def apply(row: dict[str, Any], now: str) -> dict[str, Any]:
            if row["status"] == "resolved":
                raise Conflict("alert is resolved; reopen it first")
            if row["escalation_level"] == level and client_request is None:
                raise Conflict(f"alert is already escalated to {level}")
            return {"status": "escalated", "escalation_level": level,
                    "escalation_reason": reason,
                    "acknowledged_at": row["acknowledged_at"] or now}
        if client_request is not None and client_request.get("kind") not in CLIENT_REQUEST_KINDS:
            raise InvalidChange("a question to the client is one of "
                                f"{', '.join(CLIENT_REQUEST_KINDS)}")
        extra = {"level": level, "reason": reason, "by": actor.login,
                 "client_request": client_request}
        ask = _ask_client(actor, client_request) if client_request is not None else None
        return self._change(alert_id, actor, "escalate", apply, notify=("escalation", extra),
                            also=ask)

    def answer_client_request(self, alert_id: str, actor: Actor, request_id: int,
                              answer: str) -> Change:
        """The client answers the SOC's question (once); the SOC is notified with the answer."""
        asked: dict[str, Any] = {}

        def apply(row: dict[str, Any], now: str) -> dict[str, Any]:
            return {}

        def also(con: sqlite3.Connection, row: dict[str, Any], now: str) -> None:
            found = con.execute("SELECT * FROM client_requests WHERE id = ? AND alert_id = ?",
                                (request_id, alert_id)).fetchone()
            if found is None:
                raise NotFound(f"no question {request_id} on alert {alert_id!r}")
            if found["answered_at"] is not None:
                raise Conflict("this question has already been answered")
            con.execute("UPDATE client_requests SET answer = ?, answered_by = ?, "
                        "answered_at = ? WHERE id = ?", (answer, actor.login, now, request_id))
            asked.update(kind=found["kind"], question=found["question"])

        audit = {"request_id": request_id, "answer": answer}
        extra = {"by": actor.login, "request_id": request_id, "answer": answer,
                 "client_request": asked}
        return self._change(alert_id, actor, "client_answer", apply, audit_after=audit,
                            also=also, notify=("client_answer", extra))

    def add_note(self, alert_id: str, actor: Actor, body: str) -> Change:
        def apply(row: dict[str, Any], now: str) -> dict[str, Any]:
            return {}

        def also(con: sqlite3.Connection, row: dict[str, Any], now: str) -> None:
            con.execute("INSERT INTO alert_notes (alert_id, tenant, author, created_at, body) "
                        "VALUES (?, ?, ?, ?, ?)", (alert_id, row["tenant"], actor.login, now, body))
        return self._change(alert_id, actor, "note", apply, audit_after={"note": body}, also=also)

    def resolve(self, alert_id: str, actor: Actor, resolution: str) -> Change:
        if resolution not in RESOLUTIONS:
            raise Conflict(f"resolution must be one of {', '.join(RESOLUTIONS)}")

        def apply(row: dict[str, Any], now: str) -> dict[str, Any]:
            if row["status"] == "resolved":
                raise Conflict("alert is already resolved")
            # Closing an alert acknowledges it too (a false positive closed straight away).
            return {"status": "resolved", "resolution": resolution, "resolved_at": now,
                    "acknowledged_at": row["acknowledged_at"] or now,
                    "assignee": row["assignee"] or actor.login}
        also = _request_incident_report if resolution == "true_positive" else None
        return self._change(alert_id, actor, "resolve", apply, also=also)

    def reopen(self, alert_id: str, actor: Actor, reason: str) -> Change:
        def apply(row: dict[str, Any], now: str) -> dict[str, Any]:
            if row["status"] != "resolved":
                raise Conflict("only a resolved alert can be reopened")
            status = "escalated" if row["escalation_level"] else "acknowledged"
            return {"status": status, "resolution": None, "resolved_at": None}
        return self._change(alert_id, actor, "reopen", apply, notify=None,
                            audit_after=None, also=_note_reason(actor, reason))


def _assignable(con: sqlite3.Connection, login: str, tenant: str) -> bool:
    """An active user whose scope holds the tenant (or every tenant: a platform admin)."""
    return con.execute(
        "SELECT 1 FROM users u JOIN user_tenants t ON t.login = u.login WHERE u.login = ? "
        "AND u.status = 'active' AND t.tenant IN (?, ?) LIMIT 1",
        (login, tenant, ALL_TENANTS)).fetchone() is not None


def _request_incident_report(con: sqlite3.Connection, row: dict[str, Any], now: str) -> None:
    """A true positive gets its closed-incident report (soc/reports/service.py builds and
    mails it; once per alert, should it be reopened and closed again)."""
    con.execute("INSERT INTO reports (tenant, kind, subject, requested_at, state) VALUES "
                "(?, 'closed_incident', ?, ?, 'pending') ON CONFLICT DO NOTHING",
                (row["tenant"], row["id"], now))


def _note_reason(actor: Actor, reason: str
                 ) -> Callable[[sqlite3.Connection, dict[str, Any], str], None]:
    """Keep the reason for a reopen as a note, so the alert's history reads on its own."""
    def also(con: sqlite3.Connection, row: dict[str, Any], now: str) -> None:
        con.execute("INSERT INTO alert_notes (alert_id, tenant, author, created_at, body) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (row["id"], row["tenant"], actor.login, now, f"reopened: {reason}"))
    return also


def _ask_client(actor: Actor, request: dict[str, Any]
                ) -> Callable[[sqlite3.Connection, dict[str, Any], str], None]:
    """Keep the question to the client, so the client can answer it in the console."""
    def also(con: sqlite3.Connection, row: dict[str, Any], now: str) -> None:
        con.execute("INSERT INTO client_requests (alert_id, tenant, kind, question, asked_by, "
                    "asked_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (row["id"], row["tenant"], request["kind"], request["question"],
                     actor.login, now))
    return also
