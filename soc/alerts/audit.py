"""The append-only audit log: every triage change, SLA breach and administrative action is
recorded with its actor, address, time and the state before and after, in the transaction of
the change itself; `AuditTrail` reads it back within the caller's tenants.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from soc.alerts.db import Database, to_text
from soc.alerts.model import Actor, tenant_scope, to_json


def write_audit(con: sqlite3.Connection, tenant: str, alert_id: str | None, actor: Actor,
                action: str, before: dict[str, Any] | None, after: dict[str, Any] | None,
                now: str) -> None:
    """Append one audit record (inside the caller's transaction)."""
    con.execute(
        "INSERT INTO audit_log (tenant, alert_id, actor, address, at, action, before_state, "
        "after_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (tenant, alert_id, actor.login, actor.address, now, action,
         None if before is None else to_json(before),
         None if after is None else to_json(after)))


class AuditTrail:
    """The alert store's audit queries and records of actions outside any alert."""

    db: Database
    clock: Callable[[], datetime]

    def record(self, tenant: str, actor: Actor, action: str, before: dict[str, Any] | None,
               after: dict[str, Any] | None) -> None:
        """An audit record of an action outside any alert (user administration, logins)."""
        with self.db.transaction() as con:
            write_audit(con, tenant, None, actor, action, before, after, to_text(self.clock()))

    def audit(self, actor: Actor, *, tenant: str | None = None, alert_id: str | None = None,
              since: datetime | None = None, limit: int = 100, offset: int = 0
              ) -> tuple[list[dict[str, Any]], int]:
        """Audit records within the actor's tenants, oldest first."""
        condition, params = tenant_scope(actor)
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
