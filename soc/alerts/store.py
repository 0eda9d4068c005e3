"""The alert store: idempotent upserts from detection and the queries behind the API, the SLA
monitor and the SLA report; triage (`triage.py`), the audit log (`audit.py`) and the
notification outbox (`outbox.py`) share its database and transactions.

Every read and change names an `Actor` whose tenant scope is part of the SQL, so an alert of
another tenant is indistinguishable from one that does not exist (`NotFound` either way).
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from core.config import SEVERITIES
from core.events import TENANT, TIMESTAMP, Event, as_datetime
from soc.alerts.audit import AuditTrail, write_audit
from soc.alerts.db import Database, from_text, to_text
from soc.alerts.model import (
    STATUSES,
    SUMMARY_COLUMNS,
    SYSTEM,
    SYSTEM_ACTOR,
    Actor,
    AlertFilter,
    NotFound,
    SlaPolicy,
    UpsertResult,
    default_sla_policy,
    public_alert,
    tenant_scope,
    to_json,
)
from soc.alerts.outbox import NotificationOutbox, NotificationPlanner, enqueue
from soc.alerts.triage import AlertTriage

log = logging.getLogger(__name__)

# The next SLA deadline of an alert: acknowledging while new, resolving while open.
NEXT_DUE = ("(CASE WHEN status = 'new' THEN ack_due WHEN status = 'resolved' THEN NULL "
            "ELSE resolve_due END)")


def _breached(now: str) -> tuple[str, list[Any]]:
    """An open alert that missed a deadline: marked by the SLA monitor, or past due now (the
    monitor marks within seconds; the queue should not wait for it)."""
    return (f"(status <> 'resolved' AND (ack_breached_at IS NOT NULL OR resolve_breached_at "
            f"IS NOT NULL OR {NEXT_DUE} <= ?))", [now])


MIN_PREFIX = 6
_ID_PREFIX = re.compile(r"[0-9a-f-]+")  # alert ids are UUIDs: nothing LIKE would read as a wildcard


class Ambiguous(ValueError):
    """An id prefix that more than one of the caller's alerts share."""


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _matched_event(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return {"raw": raw}
    return raw


class AlertStore(AlertTriage, AuditTrail, NotificationOutbox):
    """Alerts, notes, audit log and notification outbox in one database."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime] | None = None,
                 sla_policy: SlaPolicy = default_sla_policy,
                 planner: NotificationPlanner | None = None) -> None:
        self.db = db
        self.clock = clock or (lambda: datetime.now(UTC))
        self.sla_policy = sla_policy
        self.planner = planner

    # -- detection's alerts ----------------------------------------------------------------

    def upsert(self, alerts: Iterable[Event], fallback_tenant: str | None = None) -> UpsertResult:
        """Insert new alerts and refresh known ones (by `alert.id`) in one transaction.

        A known alert gets only its match data (last_seen, count, suppressed, events) updated,
        and only forward in time, so a replayed older copy never rolls it back; triage state is
        never touched here."""
        result = UpsertResult(tenant=fallback_tenant or "_unknown")
        rows: dict[str, dict[str, Any]] = {}
        for alert in alerts:
            row, problem = self._row(alert, fallback_tenant)
            if row is None:
                result.rejected.append((alert, problem))
                continue
            known = rows.get(row["id"])
            if known is None or (row["last_seen"], row["match_count"]) >= (
                    known["last_seen"], known["match_count"]):
                rows[row["id"]] = row
        if not rows:
            return result
        now = to_text(self.clock())
        with self.db.transaction() as con:
            ids = list(rows)
            existing: dict[str, sqlite3.Row] = {}
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                for found in con.execute(
                        "SELECT id, tenant, last_seen, match_count FROM alerts WHERE id IN "
                        f"({', '.join('?' * len(chunk))})", chunk):
                    existing[found["id"]] = found
            for alert_id, row in rows.items():
                known_row = existing.get(alert_id)
                if known_row is None:
                    self._insert(con, row, now)
                    result.inserted.append(alert_id)
                elif known_row["tenant"] != row["tenant"]:
                    # Same id under another tenant: never let one tenant's data touch another's.
                    result.rejected.append(({"alert.id": alert_id}, "tenant mismatch"))
                elif (row["last_seen"], row["match_count"]) >= (
                        known_row["last_seen"], known_row["match_count"]):
                    con.execute(
                        "UPDATE alerts SET last_seen = ?, match_count = ?, suppressed = ?, "
                        "events = ?, updated_at = ? WHERE id = ?",
                        (row["last_seen"], row["match_count"], row["suppressed"], row["events"],
                         now, alert_id))
                    result.updated.append(alert_id)
                else:
                    result.unchanged.append(alert_id)
        return result

    def _row(self, alert: Event, fallback_tenant: str | None
             ) -> tuple[dict[str, Any] | None, str]:
        alert_id = alert.get("alert.id")
        tenant = alert.get(TENANT) or fallback_tenant
        rule_id = alert.get("rule.id")
        if not isinstance(alert_id, str) or not alert_id or len(alert_id) > 64:
            return None, "missing or invalid alert.id"
        if not isinstance(tenant, str) or not tenant:
            return None, "missing vigil.tenant"
        if fallback_tenant is not None and tenant != fallback_tenant:
            return None, f"alert of tenant {tenant!r} in a batch of tenant {fallback_tenant!r}"
        if not isinstance(rule_id, str) or not rule_id:
            return None, "missing rule.id"
        last_seen = as_datetime(alert.get("alert.last_seen")) or as_datetime(alert.get(TIMESTAMP))
        first_seen = as_datetime(alert.get("alert.first_seen")) or last_seen
        if last_seen is None or first_seen is None:
            return None, "missing alert.first_seen / alert.last_seen"
        severity = str(alert.get("alert.severity") or alert.get("rule.level") or "medium")
        if severity not in SEVERITIES:
            severity = "medium"
        details = {
            "description": alert.get("rule.description"),
            "level": alert.get("rule.level"),
            "type": alert.get("rule.type") or "single",
            "references": _list(alert.get("rule.references")),
            "falsepositives": _list(alert.get("rule.falsepositives")),
            "tags": _list(alert.get("rule.tags")),
            "runbook": alert.get("rule.runbook"),
            "tactics": _list(alert.get("threat.tactic.name")),
            "techniques": _list(alert.get("threat.technique.id")),
        }
        return {
            "id": alert_id,
            "tenant": tenant,
            "dedup_key": str(alert.get("alert.dedup_key") or ""),
            "rule_id": rule_id,
            "rule_name": str(alert.get("rule.name") or rule_id),
            "severity": severity,
            "dataset": alert.get("alert.dataset"),
            "group_key": str(alert.get("alert.group_key") or "{}"),
            "first_seen": to_text(first_seen),
            "last_seen": to_text(last_seen),
            "match_count": int(alert.get("alert.count") or 1),
            "suppressed": int(alert.get("alert.suppressed") or 0),
            "events": to_json([_matched_event(e) for e in _list(alert.get("alert.events"))]),
            "details": to_json(details),
        }, ""

    def _insert(self, con: sqlite3.Connection, row: dict[str, Any], now: str) -> None:
        created = from_text(now)
        assert created is not None
        sla = self.sla_policy(row["tenant"], row["severity"])
        row = {**row, "status": "new", "created_at": now, "updated_at": now,
               "ack_due": to_text(created + sla.ack), "resolve_due": to_text(created + sla.resolve)}
        columns = ", ".join(row)
        con.execute(f"INSERT INTO alerts ({columns}) VALUES ({', '.join('?' * len(row))})",
                    list(row.values()))
        write_audit(con, row["tenant"], row["id"], SYSTEM, "created", None,
                    {"status": "new", "severity": row["severity"], "rule_id": row["rule_id"],
                     "ack_due": row["ack_due"], "resolve_due": row["resolve_due"]}, now)
        if self.planner is not None:
            enqueue(con, self.planner("new_alert", public_alert(row), {}), row, now)

    # -- reading ---------------------------------------------------------------------------

    def full_id(self, alert_id: str, actor: Actor) -> str:
        """`alert_id` itself, or the one id of the actor's alerts it is a prefix of (at least
        6 characters, as `git` takes commits); raises Ambiguous when several share it."""
        if len(alert_id) < MIN_PREFIX or not _ID_PREFIX.fullmatch(alert_id):
            return alert_id
        condition, params = tenant_scope(actor)
        with self.db.transaction(write=False) as con:
            if con.execute(f"SELECT 1 FROM alerts WHERE id = ? AND {condition}",
                           [alert_id, *params]).fetchone():
                return alert_id
            found = [row[0] for row in con.execute(
                f"SELECT id FROM alerts WHERE id LIKE ? AND {condition} ORDER BY id LIMIT 2",
                [f"{alert_id}%", *params])]
        if len(found) > 1:
            raise Ambiguous(f"more than one alert id starts with {alert_id!r}: give more of it")
        return found[0] if found else alert_id

    def get(self, alert_id: str, actor: Actor) -> dict[str, Any]:
        """The full alert (matched events, details, notes) if the actor may see it."""
        condition, params = tenant_scope(actor)
        with self.db.transaction(write=False) as con:
            row = con.execute(f"SELECT * FROM alerts WHERE id = ? AND {condition}",
                              [alert_id, *params]).fetchone()
            if row is None:
                raise NotFound(f"alert {alert_id!r} not found")
            notes = con.execute("SELECT author, created_at, body FROM alert_notes "
                                "WHERE alert_id = ? ORDER BY id", (alert_id,)).fetchall()
            asked = con.execute("SELECT id, kind, question, asked_by, asked_at, answer, "
                                "answered_by, answered_at FROM client_requests "
                                "WHERE alert_id = ? ORDER BY id", (alert_id,)).fetchall()
        full = public_alert(dict(row))
        full["events"] = orjson.loads(row["events"])
        full["notes"] = [dict(n) for n in notes]
        full["client_requests"] = [dict(a) for a in asked]
        return full

    def search(self, actor: Actor, filters: AlertFilter, *, limit: int = 50, offset: int = 0
             ) -> tuple[list[dict[str, Any]], int]:
        """A page of alerts and the total matching the filters: newest first, or (`order`
        "sla") open alerts by their next SLA deadline, resolved ones last."""
        clause, args = self._where(actor, filters)
        order = ("CASE WHEN status = 'resolved' THEN 1 ELSE 0 END, next_due, created_at DESC, id"
                 if filters.order == "sla" else "created_at DESC, id")
        with self.db.transaction(write=False) as con:
            total = con.execute(f"SELECT count(*) FROM alerts WHERE {clause}", args).fetchone()[0]
            rows = con.execute(
                f"SELECT {', '.join(SUMMARY_COLUMNS)}, details, {NEXT_DUE} AS next_due "
                f"FROM alerts WHERE {clause} ORDER BY {order} LIMIT ? OFFSET ?",
                [*args, limit, offset]).fetchall()
        return [public_alert(dict(r)) for r in rows], int(total)

    def counts(self, actor: Actor, filters: AlertFilter) -> dict[str, int]:
        """How many alerts in the caller's scope (and the filter's tenant) are in each status,
        and how many open ones breached or are due soon: the queue's counters."""
        scope = AlertFilter(tenant=filters.tenant, now=filters.now, due_soon=filters.due_soon)
        clause, args = self._where(actor, scope)
        now = to_text(filters.now or self.clock())
        soon = to_text((filters.now or self.clock()) + filters.due_soon)
        breached = _breached(now)
        sums = ", ".join(f"sum(CASE WHEN status = '{s}' THEN 1 ELSE 0 END)" for s in STATUSES)
        with self.db.transaction(write=False) as con:
            row = con.execute(
                f"SELECT {sums}, sum(CASE WHEN {breached[0]} THEN 1 ELSE 0 END), "
                f"sum(CASE WHEN status <> 'resolved' AND NOT ({breached[0]}) AND {NEXT_DUE} <= ?"
                f" THEN 1 ELSE 0 END) FROM alerts WHERE {clause}",
                [*breached[1], *breached[1], soon, *args]).fetchone()
            # Few questions are open at a time: count from their side, not per alert.
            awaiting = con.execute(
                f"SELECT count(*) FROM alerts WHERE {clause} AND id IN (SELECT alert_id FROM "
                "client_requests WHERE answered_at IS NULL)", args).fetchone()[0]
        names = [*STATUSES, "breached", "due_soon"]
        found = {name: int(value or 0) for name, value in zip(names, row, strict=True)}
        return {**found, "awaiting_client": int(awaiting)}

    def _where(self, actor: Actor, filters: AlertFilter) -> tuple[str, list[Any]]:
        condition, params = tenant_scope(actor)
        where, args = [condition], list(params)
        if filters.tenant is not None:
            where.append("tenant = ?")
            args.append(filters.tenant)
        for column, values in (("status", filters.status), ("severity", filters.severity)):
            if values:
                where.append(f"{column} IN ({', '.join('?' * len(values))})")
                args.extend(values)
        for column, value in (("rule_id", filters.rule_id), ("assignee", filters.assignee)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if filters.since is not None:
            where.append("created_at >= ?")
            args.append(to_text(filters.since))
        if filters.until is not None:
            where.append("created_at < ?")
            args.append(to_text(filters.until))
        if filters.breached is not None:
            test = "IS NOT NULL" if filters.breached else "IS NULL"
            joiner = " OR " if filters.breached else " AND "
            where.append(f"(ack_breached_at {test}{joiner}resolve_breached_at {test})")
        if filters.sla_state is not None:
            now = filters.now or self.clock()
            breached, breached_args = _breached(to_text(now))
            if filters.sla_state == "breached":
                where.append(breached)
                args.extend(breached_args)
            else:  # due_soon: open, not breached, the next deadline within the window
                where.append(f"status <> 'resolved' AND NOT ({breached}) AND {NEXT_DUE} <= ?")
                args.extend([*breached_args, to_text(now + filters.due_soon)])
        if filters.tactic is not None:
            where.append("EXISTS (SELECT 1 FROM json_each(details, '$.tactics') t "
                         "WHERE lower(t.value) = lower(?))")
            args.append(filters.tactic)
        if filters.awaiting_client is not None:
            test = "EXISTS" if filters.awaiting_client else "NOT EXISTS"
            where.append(f"{test} (SELECT 1 FROM client_requests c WHERE c.alert_id = "
                         "alerts.id AND c.answered_at IS NULL)")
        return " AND ".join(where), args

    # -- SLA -------------------------------------------------------------------------------

    def mark_breaches(self, now: datetime) -> list[tuple[str, dict[str, Any]]]:
        """Mark open alerts whose ack or resolve deadline passed; returns (kind, alert) for each
        newly marked. The UPDATE re-checks the mark, so two processes never both count one."""
        stamp = to_text(now)
        found: list[tuple[str, dict[str, Any]]] = []
        with self.db.transaction() as con:
            checks = (
                ("ack", "ack_breached_at", "ack_due", "status = 'new'"),
                ("resolve", "resolve_breached_at", "resolve_due", "status <> 'resolved'"),
            )
            for kind, mark, due, state in checks:
                rows = con.execute(
                    f"SELECT * FROM alerts WHERE {mark} IS NULL AND {due} <= ? AND {state}",
                    (stamp,)).fetchall()
                for row in rows:
                    done = con.execute(f"UPDATE alerts SET {mark} = ? WHERE id = ? AND "
                                       f"{mark} IS NULL", (stamp, row["id"])).rowcount
                    if not done:
                        continue
                    alert = public_alert({**dict(row), mark: stamp})
                    write_audit(con, row["tenant"], row["id"], SYSTEM, f"sla_{kind}_breach",
                                None, {due: row[due], mark: stamp}, stamp)
                    if self.planner is not None:
                        enqueue(con, self.planner("sla_breach", alert, {"kind": kind}),
                                      dict(row), stamp)
                    found.append((kind, alert))
        return found

    def open_counts(self) -> list[tuple[str, str, str, int]]:
        """(tenant, severity, status, count) of every open alert group."""
        with self.db.transaction(write=False) as con:
            rows = con.execute(
                "SELECT tenant, severity, status, count(*) FROM alerts WHERE status <> "
                "'resolved' GROUP BY tenant, severity, status").fetchall()
        return [(r[0], r[1], r[2], int(r[3])) for r in rows]

    def sla_rows(self, tenants: frozenset[str] | None, since: datetime | None,
                 until: datetime | None = None) -> list[dict[str, Any]]:
        """The timing columns of alerts created in [since, until), for the SLA report."""
        condition, params = tenant_scope(Actor(SYSTEM_ACTOR, tenants))
        where, args = [condition], list(params)
        if since is not None:
            where.append("created_at >= ?")
            args.append(to_text(since))
        if until is not None:
            where.append("created_at < ?")
            args.append(to_text(until))
        with self.db.transaction(write=False) as con:
            rows = con.execute(
                "SELECT tenant, severity, status, created_at, acknowledged_at, resolved_at, "
                f"ack_due, resolve_due FROM alerts WHERE {' AND '.join(where)}", args).fetchall()
        return [dict(r) for r in rows]
