"""Dashboards users save (SQL panels, one tenant each) in the alert store's database, scoped to
the caller's tenants in every query and audited in the same transaction as the change."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from soc.alerts.audit import write_audit
from soc.alerts.db import Database, to_text
from soc.alerts.model import Actor, tenant_scope
from soc.dashboards.model import DashboardConfig

USER_PREFIX = "user-"


class SavedNotFound(LookupError):
    """No saved dashboard of that id within the caller's tenants."""


class SavedDashboards:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock

    def list(self, actor: Actor, tenant: str) -> list[dict[str, Any]]:
        condition, params = tenant_scope(actor)
        with self.db.transaction(write=False) as con:
            rows = con.execute(
                f"SELECT * FROM user_dashboards WHERE tenant = ? AND {condition} "
                "ORDER BY title, id", [tenant, *params]).fetchall()
        return [_out(dict(r)) for r in rows]

    def get(self, actor: Actor, tenant: str, dashboard_id: str) -> dict[str, Any]:
        condition, params = tenant_scope(actor)
        with self.db.transaction(write=False) as con:
            row = con.execute(
                f"SELECT * FROM user_dashboards WHERE id = ? AND tenant = ? AND {condition}",
                [dashboard_id, tenant, *params]).fetchone()
        if row is None:
            raise SavedNotFound(dashboard_id)
        return _out(dict(row))

    def create(self, actor: Actor, tenant: str, dashboard: DashboardConfig) -> dict[str, Any]:
        if not actor.sees(tenant):
            raise SavedNotFound(tenant)
        now = to_text(self.clock())
        row = {"id": USER_PREFIX + uuid.uuid4().hex[:16], "tenant": tenant,
               "owner": actor.login, "title": dashboard.title,
               "definition": dashboard.model_dump_json(), "created_at": now,
               "updated_at": now}
        with self.db.transaction() as con:
            con.execute("INSERT INTO user_dashboards (id, tenant, owner, title, definition, "
                        "created_at, updated_at) VALUES (:id, :tenant, :owner, :title, "
                        ":definition, :created_at, :updated_at)", row)
            write_audit(con, tenant, None, actor, "dashboard_created", None,
                        {"dashboard": row["id"], "title": dashboard.title}, now)
        return _out(row)

    def update(self, actor: Actor, tenant: str, dashboard_id: str,
               dashboard: DashboardConfig) -> dict[str, Any]:
        before = self.get(actor, tenant, dashboard_id)
        now = to_text(self.clock())
        with self.db.transaction() as con:
            con.execute("UPDATE user_dashboards SET title = ?, definition = ?, updated_at = ? "
                        "WHERE id = ? AND tenant = ?",
                        [dashboard.title, dashboard.model_dump_json(), now, dashboard_id,
                         tenant])
            write_audit(con, tenant, None, actor, "dashboard_updated",
                        {"dashboard": dashboard_id, "title": before["title"]},
                        {"dashboard": dashboard_id, "title": dashboard.title}, now)
        return self.get(actor, tenant, dashboard_id)

    def delete(self, actor: Actor, tenant: str, dashboard_id: str) -> None:
        before = self.get(actor, tenant, dashboard_id)
        now = to_text(self.clock())
        with self.db.transaction() as con:
            con.execute("DELETE FROM user_dashboards WHERE id = ? AND tenant = ?",
                        [dashboard_id, tenant])
            write_audit(con, tenant, None, actor, "dashboard_deleted",
                        {"dashboard": dashboard_id, "title": before["title"]}, None, now)


def _out(row: dict[str, Any]) -> dict[str, Any]:
    definition = orjson.loads(row.pop("definition"))
    return {**row, "config": DashboardConfig.model_validate(definition)}
