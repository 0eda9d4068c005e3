"""The notification outbox: what to send for an alert is written in the same transaction as
the change that causes it; the dispatcher reads pending rows and records each outcome.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from soc.alerts.db import Database, to_text
from soc.alerts.model import to_json


@dataclass
class Outgoing:
    """A notification to send through one channel; written to the outbox with the change."""

    channel: str
    event: str
    payload: dict[str, Any]


# (event, alert, extra) -> notifications; set by the notification router.
NotificationPlanner = Callable[[str, dict[str, Any], dict[str, Any]], list[Outgoing]]


def enqueue(con: sqlite3.Connection, items: list[Outgoing], row: dict[str, Any], now: str
            ) -> None:
    """Write an alert's notifications to the outbox (inside the caller's transaction)."""
    for item in items:
        con.execute(
            "INSERT INTO notification_outbox (tenant, alert_id, event, channel, payload, "
            "created_at, state, attempts) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0)",
            (row["tenant"], row["id"], item.event, item.channel, to_json(item.payload), now))


class NotificationOutbox:
    """The alert store's outbox queries, for the dispatcher and diagnostics."""

    db: Database
    clock: Callable[[], datetime]

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
