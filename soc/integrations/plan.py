"""The integration plan a partner keeps per tenant: planned sources (category, product, target
date, owner, status, notes) in the alert store's database, every query limited to the caller's
tenants and every change audited in its own transaction; exported as CSV or JSON."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Literal, get_args

from soc.alerts.audit import write_audit
from soc.alerts.db import Database, to_text
from soc.alerts.model import Actor, tenant_scope

PlanStatus = Literal["planned", "in_progress", "blocked", "done", "cancelled"]
PLAN_STATUSES: tuple[str, ...] = get_args(PlanStatus)
COLUMNS = ("id", "tenant", "category", "product", "target_date", "owner", "status", "notes",
           "created_at", "created_by", "updated_at", "updated_by")
EDITABLE = ("category", "product", "target_date", "owner", "status", "notes")
ID_PREFIX = "plan-"


class PlanNotFound(LookupError):
    """No plan entry of that id within the tenant and the caller's tenants."""


class IntegrationPlan:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock

    def list(self, actor: Actor, tenant: str) -> list[dict[str, Any]]:
        """The tenant's entries by target date (undated last), then category."""
        condition, params = tenant_scope(actor)
        with self.db.transaction(write=False) as con:
            rows = con.execute(
                f"SELECT {', '.join(COLUMNS)} FROM integration_plan WHERE tenant = ? AND "
                f"{condition} ORDER BY target_date IS NULL, target_date, category, id",
                [tenant, *params]).fetchall()
        return [dict(r) for r in rows]

    def get(self, actor: Actor, tenant: str, entry_id: str) -> dict[str, Any]:
        condition, params = tenant_scope(actor)
        with self.db.transaction(write=False) as con:
            row = con.execute(
                f"SELECT {', '.join(COLUMNS)} FROM integration_plan WHERE id = ? AND "
                f"tenant = ? AND {condition}", [entry_id, tenant, *params]).fetchone()
        if row is None:
            raise PlanNotFound(entry_id)
        return dict(row)

    def create(self, actor: Actor, tenant: str, entry: dict[str, Any]) -> dict[str, Any]:
        if not actor.sees(tenant):
            raise PlanNotFound(tenant)
        now = to_text(self.clock())
        row = {"id": ID_PREFIX + uuid.uuid4().hex[:16], "tenant": tenant,
               **_values(entry), "created_at": now, "created_by": actor.login,
               "updated_at": now, "updated_by": actor.login}
        with self.db.transaction() as con:
            con.execute(f"INSERT INTO integration_plan ({', '.join(COLUMNS)}) VALUES "
                        f"({', '.join(':' + c for c in COLUMNS)})", row)
            write_audit(con, tenant, None, actor, "integration_planned", None,
                        _audited(row), now)
        return row

    def update(self, actor: Actor, tenant: str, entry_id: str, entry: dict[str, Any]
               ) -> dict[str, Any]:
        before = self.get(actor, tenant, entry_id)
        now = to_text(self.clock())
        values = _values(entry)
        with self.db.transaction() as con:
            con.execute(
                f"UPDATE integration_plan SET {', '.join(f'{c} = :{c}' for c in EDITABLE)}, "
                "updated_at = :updated_at, updated_by = :updated_by "
                "WHERE id = :id AND tenant = :tenant",
                {**values, "updated_at": now, "updated_by": actor.login, "id": entry_id,
                 "tenant": tenant})
            write_audit(con, tenant, None, actor, "integration_plan_changed", _audited(before),
                        _audited({**before, **values}), now)
        return self.get(actor, tenant, entry_id)

    def delete(self, actor: Actor, tenant: str, entry_id: str) -> None:
        before = self.get(actor, tenant, entry_id)
        now = to_text(self.clock())
        with self.db.transaction() as con:
            con.execute("DELETE FROM integration_plan WHERE id = ? AND tenant = ?",
                        [entry_id, tenant])
            write_audit(con, tenant, None, actor, "integration_plan_removed",
                        _audited(before), None, now)


def _values(entry: dict[str, Any]) -> dict[str, Any]:
    target = entry.get("target_date")
    return {"category": entry["category"], "product": entry["product"],
            "target_date": target.isoformat() if isinstance(target, date) else target,
            "owner": entry.get("owner") or "", "status": entry.get("status") or "planned",
            "notes": entry.get("notes") or ""}


def _audited(row: dict[str, Any]) -> dict[str, Any]:
    return {"entry": row["id"], **{c: row[c] for c in EDITABLE}}


def plan_csv(entries: list[dict[str, Any]], category_names: dict[str, str]) -> str:
    """The plan as CSV (one header row; cells a spreadsheet would run as a formula are
    quoted with a leading apostrophe)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    header = ["tenant", "category", "category_name", "product", "target_date", "owner",
              "status", "notes", "updated_at", "updated_by", "id"]
    writer.writerow(header)
    for entry in entries:
        row = {**entry, "category_name": category_names.get(entry["category"],
                                                            entry["category"])}
        writer.writerow([_cell(row.get(name)) for name in header])
    return out.getvalue()


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # CSV injection: a cell starting like a formula is text, not something to evaluate.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
