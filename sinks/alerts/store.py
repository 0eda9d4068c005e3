"""The alert store: idempotent upserts from detection, triage changes with their audit records,
and the queries behind the API, the SLA monitor and the SLA report.

Every read and change names an `Actor` whose tenant scope is part of the SQL, so an alert of
another tenant is indistinguishable from one that does not exist (`NotFound` either way).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from collector.config.models import SEVERITIES, SeveritySla, SlaConfig
from collector.errors import VigilError
from collector.events import TENANT, TIMESTAMP, Event
from sinks.alerts.db import Database, from_text, to_text

log = logging.getLogger(__name__)

STATUSES = ("new", "acknowledged", "escalated", "resolved")
OPEN_STATUSES = ("new", "acknowledged", "escalated")
RESOLUTIONS = ("false_positive", "true_positive", "benign", "duplicate")
LEVELS = ("L1", "L2", "L3")
PLATFORM = "_platform"  # audit tenant of actions that belong to no client (user admin)
SYSTEM_ACTOR = "system"

# Columns an audit record shows before and after a change.
_TRIAGE = ("status", "assignee", "escalation_level", "escalation_reason", "resolution",
           "acknowledged_at", "resolved_at")
_SUMMARY = ("id", "tenant", "rule_id", "rule_name", "severity", "dataset", "group_key", "status",
            "assignee", "escalation_level", "escalation_reason", "resolution", "first_seen",
            "last_seen", "match_count", "suppressed", "created_at", "updated_at",
            "acknowledged_at", "resolved_at", "ack_due", "resolve_due", "ack_breached_at",
            "resolve_breached_at")


class NotFound(VigilError):
    """No such alert within the caller's tenants (which one of the two is never told)."""


class Conflict(VigilError):
    """The change does not apply to the alert's current state."""


@dataclass(frozen=True)
class Actor:
    """Who acts: a login, the tenants it may see (None: every tenant), the client address."""

    login: str
    tenants: frozenset[str] | None
    address: str | None = None

    def sees(self, tenant: str) -> bool:
        return self.tenants is None or tenant in self.tenants


SYSTEM = Actor(SYSTEM_ACTOR, None)


@dataclass
class Outgoing:
    """A notification to send through one channel; written to the outbox with the change."""

    channel: str
    event: str
    payload: dict[str, Any]


# (event, alert, extra) -> notifications; set by the notification router.
NotificationPlanner = Callable[[str, dict[str, Any], dict[str, Any]], list[Outgoing]]
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


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


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


def _scope(actor: Actor, column: str = "tenant") -> tuple[str, list[Any]]:
    """The SQL condition limiting rows to the actor's tenants."""
    if actor.tenants is None:
        return "1 = 1", []
    if not actor.tenants:
        return "1 = 0", []
    tenants = sorted(actor.tenants)
    return f"{column} IN ({', '.join('?' * len(tenants))})", tenants


def row_summary(row: sqlite3.Row) -> dict[str, Any]:
    return {key: row[key] for key in _SUMMARY}


def _triage_state(row: dict[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in _TRIAGE}


class AlertStore:
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
        last_seen = _time(alert.get("alert.last_seen")) or _time(alert.get(TIMESTAMP))
        first_seen = _time(alert.get("alert.first_seen")) or last_seen
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
            "events": _json([_matched_event(e) for e in _list(alert.get("alert.events"))]),
            "details": _json(details),
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
        self._audit(con, row["tenant"], row["id"], SYSTEM, "created", None,
                    {"status": "new", "severity": row["severity"], "rule_id": row["rule_id"],
                     "ack_due": row["ack_due"], "resolve_due": row["resolve_due"]}, now)
        if self.planner is not None:
            self._enqueue(con, self.planner("new_alert", self._public(row), {}), row, now)

    # -- reading ---------------------------------------------------------------------------

    def get(self, alert_id: str, actor: Actor) -> dict[str, Any]:
        """The full alert (matched events, details, notes) if the actor may see it."""
        condition, params = _scope(actor)
        with self.db.transaction(write=False) as con:
            row = con.execute(f"SELECT * FROM alerts WHERE id = ? AND {condition}",
                              [alert_id, *params]).fetchone()
            if row is None:
                raise NotFound(f"alert {alert_id!r} not found")
            notes = con.execute("SELECT author, created_at, body FROM alert_notes "
                                "WHERE alert_id = ? ORDER BY id", (alert_id,)).fetchall()
        full = self._public(dict(row))
        full["events"] = orjson.loads(row["events"])
        full["notes"] = [dict(n) for n in notes]
        return full

    def search(self, actor: Actor, filters: AlertFilter, *, limit: int = 50, offset: int = 0
             ) -> tuple[list[dict[str, Any]], int]:
        """A page of alerts (newest first) and the total matching the filters."""
        condition, params = _scope(actor)
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
        clause = " AND ".join(where)
        with self.db.transaction(write=False) as con:
            total = con.execute(f"SELECT count(*) FROM alerts WHERE {clause}", args).fetchone()[0]
            rows = con.execute(
                f"SELECT {', '.join(_SUMMARY)}, details FROM alerts WHERE {clause} "
                "ORDER BY created_at DESC, id LIMIT ? OFFSET ?", [*args, limit, offset]).fetchall()
        return [self._public(dict(r)) for r in rows], int(total)

    @staticmethod
    def _public(row: dict[str, Any]) -> dict[str, Any]:
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

    # -- triage ----------------------------------------------------------------------------

    def _change(self, alert_id: str, actor: Actor, action: str,
                apply: Callable[[dict[str, Any], str], dict[str, Any]],
                audit_after: dict[str, Any] | None = None,
                notify: tuple[str, dict[str, Any]] | None = None,
                also: Callable[[sqlite3.Connection, dict[str, Any], str], None] | None = None
                ) -> Change:
        """Read the alert in scope, apply a change, write it and its audit record atomically."""
        condition, params = _scope(actor)
        now = to_text(self.clock())
        with self.db.transaction() as con:
            found = con.execute(f"SELECT * FROM alerts WHERE id = ? AND {condition}",
                                [alert_id, *params]).fetchone()
            if found is None:
                raise NotFound(f"alert {alert_id!r} not found")
            row = dict(found)
            before = _triage_state(row)
            updates = apply(row, now)
            if updates:
                updates["updated_at"] = now
                sets = ", ".join(f"{k} = ?" for k in updates)
                con.execute(f"UPDATE alerts SET {sets} WHERE id = ?",
                            [*updates.values(), alert_id])
            if also is not None:
                also(con, row, now)
            after_row = {**row, **updates}
            after = _triage_state(after_row)
            self._audit(con, row["tenant"], alert_id, actor, action, before,
                        audit_after if audit_after is not None else after, now)
            if notify is not None and self.planner is not None:
                event, extra = notify
                self._enqueue(con, self.planner(event, self._public(after_row), extra),
                              after_row, now)
        return Change(action, {**row_summary(found)},
                      {k: after_row[k] for k in _SUMMARY})

    def acknowledge(self, alert_id: str, actor: Actor) -> Change:
        def apply(row: dict[str, Any], now: str) -> dict[str, Any]:
            if row["status"] != "new":
                raise Conflict(f"alert is {row['status']}, only a new alert can be acknowledged")
            return {"status": "acknowledged", "acknowledged_at": now,
                    "assignee": row["assignee"] or actor.login}
        return self._change(alert_id, actor, "acknowledge", apply)

    def assign(self, alert_id: str, actor: Actor, assignee: str | None) -> Change:
        def apply(row: dict[str, Any], now: str) -> dict[str, Any]:
            if row["status"] == "resolved":
                raise Conflict("alert is resolved; reopen it first")
            return {"assignee": assignee}
        return self._change(alert_id, actor, "assign", apply)

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
        extra = {"level": level, "reason": reason, "by": actor.login,
                 "client_request": client_request}
        return self._change(alert_id, actor, "escalate", apply, notify=("escalation", extra))

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
        return self._change(alert_id, actor, "resolve", apply)

    def reopen(self, alert_id: str, actor: Actor, reason: str) -> Change:
        def apply(row: dict[str, Any], now: str) -> dict[str, Any]:
            if row["status"] != "resolved":
                raise Conflict("only a resolved alert can be reopened")
            status = "escalated" if row["escalation_level"] else "acknowledged"
            return {"status": status, "resolution": None, "resolved_at": None}
        return self._change(alert_id, actor, "reopen", apply, notify=None,
                            audit_after=None, also=_note_reason(actor, reason))

    # -- audit -----------------------------------------------------------------------------

    def _audit(self, con: sqlite3.Connection, tenant: str, alert_id: str | None, actor: Actor,
               action: str, before: dict[str, Any] | None, after: dict[str, Any] | None,
               now: str) -> None:
        write_audit(con, tenant, alert_id, actor, action, before, after, now)

    def record(self, tenant: str, actor: Actor, action: str, before: dict[str, Any] | None,
               after: dict[str, Any] | None) -> None:
        """An audit record of an action outside any alert (user administration, logins)."""
        with self.db.transaction() as con:
            self._audit(con, tenant, None, actor, action, before, after, to_text(self.clock()))

    def audit(self, actor: Actor, *, tenant: str | None = None, alert_id: str | None = None,
              since: datetime | None = None, limit: int = 100, offset: int = 0
              ) -> tuple[list[dict[str, Any]], int]:
        """Audit records within the actor's tenants, oldest first."""
        condition, params = _scope(actor)
        where, args = [condition], list(params)
        for column, value in (("tenant", tenant), ("alert_id", alert_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            where.append("at >= ?")
            args.append(to_text(since))
        clause = " AND ".join(where)
        with self.db.transaction(write=False) as con:
            total = con.execute(f"SELECT count(*) FROM audit_log WHERE {clause}",
                                args).fetchone()[0]
            rows = con.execute(
                "SELECT id, tenant, alert_id, actor, address, at, action, before_state, "
                f"after_state FROM audit_log WHERE {clause} ORDER BY id LIMIT ? OFFSET ?",
                [*args, limit, offset]).fetchall()
        records = []
        for row in rows:
            record = dict(row)
            record["before"] = orjson.loads(record.pop("before_state") or "null")
            record["after"] = orjson.loads(record.pop("after_state") or "null")
            records.append(record)
        return records, int(total)

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
                    alert = self._public({**dict(row), mark: stamp})
                    self._audit(con, row["tenant"], row["id"], SYSTEM, f"sla_{kind}_breach",
                                None, {due: row[due], mark: stamp}, stamp)
                    if self.planner is not None:
                        self._enqueue(con, self.planner("sla_breach", alert, {"kind": kind}),
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

    def sla_rows(self, tenants: frozenset[str] | None, since: datetime | None
                 ) -> list[dict[str, Any]]:
        """The timing columns of alerts created since `since`, for the SLA report."""
        condition, params = _scope(Actor(SYSTEM_ACTOR, tenants))
        where, args = [condition], list(params)
        if since is not None:
            where.append("created_at >= ?")
            args.append(to_text(since))
        with self.db.transaction(write=False) as con:
            rows = con.execute(
                "SELECT tenant, severity, status, created_at, acknowledged_at, resolved_at, "
                f"ack_due, resolve_due FROM alerts WHERE {' AND '.join(where)}", args).fetchall()
        return [dict(r) for r in rows]

    # -- notification outbox ---------------------------------------------------------------

    def _enqueue(self, con: sqlite3.Connection, items: list[Outgoing], row: dict[str, Any],
                 now: str) -> None:
        for item in items:
            con.execute(
                "INSERT INTO notification_outbox (tenant, alert_id, event, channel, payload, "
                "created_at, state, attempts) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0)",
                (row["tenant"], row["id"], item.event, item.channel, _json(item.payload), now))

    def pending_notifications(self, limit: int, exclude: Iterable[int] = ()
                              ) -> list[dict[str, Any]]:
        skip = set(exclude)
        with self.db.transaction(write=False) as con:
            rows = con.execute(
                "SELECT id, tenant, alert_id, event, channel, payload, attempts FROM "
                "notification_outbox WHERE state = 'pending' ORDER BY id LIMIT ?",
                (limit + len(skip),)).fetchall()
        out = []
        for row in rows:
            if row["id"] in skip:
                continue
            item = dict(row)
            item["payload"] = orjson.loads(item["payload"])
            out.append(item)
        return out[:limit]

    def finish_notification(self, outbox_id: int, state: str, attempts: int,
                            error: str | None) -> None:
        """Record a notification's outcome: `sent` or `dead` (dead-lettered)."""
        with self.db.transaction() as con:
            con.execute("UPDATE notification_outbox SET state = ?, attempts = ?, last_error = ?, "
                        "sent_at = ? WHERE id = ?",
                        (state, attempts, error, to_text(self.clock()), outbox_id))

    def notifications(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """Every outbox row (tests and `vigil` diagnostics)."""
        with self.db.transaction(write=False) as con:
            if tenant is None:
                rows = con.execute("SELECT * FROM notification_outbox ORDER BY id").fetchall()
            else:
                rows = con.execute("SELECT * FROM notification_outbox WHERE tenant = ? "
                                   "ORDER BY id", (tenant,)).fetchall()
        return [dict(r) for r in rows]


def write_audit(con: sqlite3.Connection, tenant: str, alert_id: str | None, actor: Actor,
                action: str, before: dict[str, Any] | None, after: dict[str, Any] | None,
                now: str) -> None:
    """Append one audit record (inside the caller's transaction)."""
    con.execute(
        "INSERT INTO audit_log (tenant, alert_id, actor, address, at, action, before_state, "
        "after_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (tenant, alert_id, actor.login, actor.address, now, action,
         None if before is None else _json(before), None if after is None else _json(after)))


def _note_reason(actor: Actor, reason: str
                 ) -> Callable[[sqlite3.Connection, dict[str, Any], str], None]:
    """Keep the reason for a reopen as a note, so the alert's history reads on its own."""
    def also(con: sqlite3.Connection, row: dict[str, Any], now: str) -> None:
        con.execute("INSERT INTO alert_notes (alert_id, tenant, author, created_at, body) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (row["id"], row["tenant"], actor.login, now, f"reopened: {reason}"))
    return also


def age_seconds(start: str | None, end: str | None) -> float | None:
    """Seconds between two stored times, None when either is missing."""
    a, b = from_text(start), from_text(end)
    if a is None or b is None:
        return None
    return (b - a) / timedelta(seconds=1)
