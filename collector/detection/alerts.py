"""From matches to alerts: deduplication / suppression and the alert record.

Matches with the same (tenant, rule, group key) within the suppression window (event time,
from the first match) fold into one alert that counts them; the alert's id is derived from its
dedup key and first match time, so a journal replay produces the same id and the stores upsert
instead of duplicating. A replayed match that was already folded in changes nothing, but the
alert is emitted again (the sinks may not have committed its last state before the crash).
The record's keys are the contract in docs/architecture.md ("Detection").
"""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from core.events import DATASET, TENANT, TIMESTAMP, Event
from core.schema import FieldType
from rules.match import EventRef, Match, RuleInfo

ALERTS_DATASET = "alerts"
# Column types of the lake's `alerts` dataset.
ALERT_SCHEMA: dict[str, FieldType] = {
    "alert.first_seen": "timestamp", "alert.last_seen": "timestamp", "alert.count": "int",
    "alert.suppressed": "int", "alert.value": "float", "alert.events": "list",
    "rule.references": "list", "rule.falsepositives": "list", "rule.tags": "list",
    "threat.tactic.name": "list", "threat.technique.id": "list",
}
# uuid5 namespace of alert ids (a fixed random UUID: ids are stable across versions and hosts).
ALERT_NAMESPACE = uuid.UUID("6f4b1c52-3a5e-4d2b-9a51-2f9d0c7e8b14")


def alert_id(dedup_key: str, first_seen: datetime) -> str:
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{dedup_key}|{first_seen.isoformat()}"))


@dataclass
class OpenAlert:
    """An alert still inside its suppression window."""

    id: str
    dedup_key: str
    rule: RuleInfo
    tenant: str
    dataset: str | None
    group_key: dict[str, Any]
    first_seen: datetime
    last_seen: datetime
    count: int = 1
    value: float | int | None = None
    max_offset: int = -1  # highest queue offset folded in (replays below it change nothing)
    events: deque[dict[str, Any]] = field(default_factory=deque)

    def record(self) -> Event:
        """The alert event (see the alert record contract)."""
        rule = self.rule
        return {
            TIMESTAMP: self.last_seen, TENANT: self.tenant, DATASET: ALERTS_DATASET,
            "alert.id": self.id, "alert.dedup_key": self.dedup_key,
            "alert.first_seen": self.first_seen, "alert.last_seen": self.last_seen,
            "alert.count": self.count, "alert.suppressed": self.count - 1,
            "alert.severity": rule.severity, "alert.dataset": self.dataset,
            "alert.group_key": orjson.dumps(self.group_key, default=str,
                                            option=orjson.OPT_SORT_KEYS).decode(),
            "alert.value": self.value,
            "alert.events": [orjson.dumps(e, default=str).decode() for e in self.events],
            "rule.id": rule.id, "rule.name": rule.title, "rule.description": rule.description,
            "rule.level": rule.level,
            "rule.type": "single" if rule.kind == "rule" else "correlation",
            "rule.correlation_type": None if rule.kind == "rule" else rule.kind,
            "rule.references": list(rule.references),
            "rule.falsepositives": list(rule.falsepositives), "rule.tags": list(rule.tags),
            "rule.runbook": rule.runbook, "rule.file": rule.file,
            "threat.tactic.name": list(rule.tactics),
            "threat.technique.id": list(rule.techniques),
        }


def _max_offset(refs: list[EventRef]) -> int:
    return max((r.offset for r in refs if r.offset is not None), default=-1)


def _event_entry(ref: EventRef, tenant: str, dataset: str | None) -> dict[str, Any]:
    """A matched event on the alert: its key fields and where it is in the lake."""
    return {"lake": {"dataset": dataset, "tenant": tenant, "offset": ref.offset,
                     "time": ref.timestamp.isoformat() if ref.timestamp else None},
            "fields": ref.fields}


class AlertTracker:
    """Open alerts per dedup key; `add` returns the alert to (up)write."""

    def __init__(self, suppression: timedelta, max_events: int) -> None:
        self.suppression = suppression
        self.max_events = max_events
        self.open: dict[str, OpenAlert] = {}
        self.suppressed = 0  # matches folded into an existing alert, for the metric

    def add(self, match: Match, now: datetime) -> OpenAlert:
        first = match.first_seen or match.last_seen or now
        last = match.last_seen or first
        key = match.dedup_key
        current = self.open.get(key)
        offset = _max_offset(match.events)
        window = (timedelta(seconds=match.rule.suppression_seconds)
                  if match.rule.suppression_seconds is not None else self.suppression)
        if current is not None and first < current.first_seen + window:
            if offset >= 0 and offset <= current.max_offset:
                return current  # a replayed match, already counted
            current.count += 1 + match.suppressed
            current.last_seen = max(current.last_seen, last)
            current.max_offset = max(current.max_offset, offset)
            if match.value is not None:
                current.value = match.value
            self._keep_events(current, match)
            self.suppressed += 1 + match.suppressed
            return current
        alert = OpenAlert(alert_id(key, first), key, match.rule, match.tenant, match.dataset,
                          dict(match.group_key), first, last, 1 + match.suppressed, match.value,
                          offset)
        self._keep_events(alert, match)
        self.open[key] = alert
        return alert

    def _keep_events(self, alert: OpenAlert, match: Match) -> None:
        for ref in match.events:
            alert.events.append(_event_entry(ref, match.tenant, match.dataset))
        while len(alert.events) > self.max_events:
            alert.events.popleft()

    def expire(self, watermarks: dict[str, datetime]) -> int:
        """Forget alerts whose window closed before their tenant's latest event time."""
        def window(alert: OpenAlert) -> timedelta:
            seconds = alert.rule.suppression_seconds
            return self.suppression if seconds is None else timedelta(seconds=seconds)

        closed = [k for k, a in self.open.items() if a.tenant in watermarks
                  and a.first_seen + window(a) <= watermarks[a.tenant]]
        for key in closed:
            del self.open[key]
        return len(closed)

    def forget(self, tenant: str) -> None:
        """Drop a tenant's open alerts (its shard moved to another worker)."""
        for key in [k for k, a in self.open.items() if a.tenant == tenant]:
            del self.open[key]

    # -- persistence (part of the detection state file) ---------------------------------------

    def dump(self) -> list[dict[str, Any]]:
        return [{"id": a.id, "key": a.dedup_key, "rule": a.rule.id, "rule_tenant": a.rule.tenant,
                 "tenant": a.tenant, "dataset": a.dataset, "group": a.group_key,
                 "first": a.first_seen.isoformat(), "last": a.last_seen.isoformat(),
                 "count": a.count, "value": a.value, "max_offset": a.max_offset,
                 "events": list(a.events)} for a in self.open.values()]

    def load(self, saved: list[dict[str, Any]], rules: dict[tuple[str, str | None], RuleInfo]
             ) -> int:
        """Restore open alerts whose rule is still loaded; returns how many."""
        restored = 0
        for doc in saved:
            info = rules.get((doc["rule"], doc.get("rule_tenant")))
            if info is None:
                continue
            self.open[doc["key"]] = OpenAlert(
                doc["id"], doc["key"], info, doc["tenant"], doc.get("dataset"),
                dict(doc.get("group") or {}), _time(doc["first"]), _time(doc["last"]),
                int(doc["count"]), doc.get("value"), int(doc.get("max_offset", -1)),
                deque(doc.get("events") or (), maxlen=None))
            restored += 1
        return restored


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
