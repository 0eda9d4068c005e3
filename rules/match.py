"""What a detection produces: rule metadata (`RuleInfo`) and the match / alert record (`Match`).

A `Match` is the same record for a single-event rule and a correlation; the lead's alert stage
deduplicates on `Match.dedup_key` = (tenant, rule id, group key) and folds repeats in with
`Match.absorb`, which counts them in `suppressed`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

LEVELS = ("informational", "low", "medium", "high", "critical")
DEFAULT_LEVEL = "medium"

# Tags `attack.t1110.001` are techniques; `attack.credential-access` (or _) are tactics.
_TECHNIQUE = re.compile(r"^t\d{4}(?:\.\d{3})?$")
_GROUP_OR_SOFTWARE = re.compile(r"^[gs]\d{4}$")
TACTICS = {
    "reconnaissance", "resource-development", "initial-access", "execution", "persistence",
    "privilege-escalation", "defense-evasion", "credential-access", "discovery",
    "lateral-movement", "collection", "command-and-control", "exfiltration", "impact",
}


def severity_of(level: str | None) -> str:
    """Sigma level -> severity (the same five names; missing or unknown -> medium)."""
    text = (level or "").strip().lower()
    return text if text in LEVELS else DEFAULT_LEVEL


def attack_from_tags(tags: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """MITRE ATT&CK (tactics, techniques) from Sigma tags; techniques upper-cased (T1110.001)."""
    tactics: list[str] = []
    techniques: list[str] = []
    for tag in tags:
        namespace, _, name = tag.strip().lower().partition(".")
        if namespace != "attack" or not name:
            continue
        if _TECHNIQUE.match(name):
            if name.upper() not in techniques:
                techniques.append(name.upper())
        elif not _GROUP_OR_SOFTWARE.match(name):
            tactic = name.replace("_", "-")
            if tactic in TACTICS and tactic not in tactics:
                tactics.append(tactic)
    return tuple(tactics), tuple(techniques)


@dataclass(frozen=True)
class RuleInfo:
    """Metadata of one loaded rule (single-event or correlation), shared by all its matches."""

    id: str
    title: str
    level: str
    severity: str
    kind: str = "rule"  # "rule" or a correlation type ("event_count", "temporal", ...)
    status: str = ""
    description: str = ""
    references: tuple[str, ...] = ()
    falsepositives: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    tactics: tuple[str, ...] = ()
    techniques: tuple[str, ...] = ()
    runbook: str | None = None
    product: str | None = None
    category: str | None = None
    service: str | None = None
    file: str = ""
    tenant: str | None = None  # owner for rules loaded from a tenant's directory
    name: str | None = None  # Sigma `name` (correlations reference rules by id or name)
    # Vigil's custom attributes: `vigil.suppress_by` (fields whose values tell one alert from
    # another; a correlation's group-by otherwise) and `vigil.suppression` (window, seconds).
    suppress_by: tuple[str, ...] = ()
    suppression_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class EventRef:
    """One event behind a match: its position in the batch, lake offset, time and key fields."""

    index: int
    offset: int | None = None
    timestamp: datetime | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "offset": self.offset,
                "timestamp": self.timestamp.isoformat() if self.timestamp else None,
                "fields": self.fields}


@dataclass(slots=True)
class Match:
    """A detection: one rule firing for one tenant on one event or one correlation window."""

    rule: RuleInfo
    tenant: str
    dataset: str | None
    events: list[EventRef]
    first_seen: datetime | None
    last_seen: datetime | None
    group_key: dict[str, Any] = field(default_factory=dict)
    value: float | int | None = None  # correlation count / distinct count / aggregate
    suppressed: int = 0  # repeats folded into this alert by `absorb`

    @property
    def rule_id(self) -> str:
        return self.rule.id

    @property
    def title(self) -> str:
        return self.rule.title

    @property
    def level(self) -> str:
        return self.rule.level

    @property
    def severity(self) -> str:
        return self.rule.severity

    @property
    def dedup_key(self) -> str:
        """Stable `(tenant, rule id, group key)` string, the unit of deduplication."""
        group = orjson.dumps(self.group_key, option=orjson.OPT_SORT_KEYS, default=str)
        digest = hashlib.sha256(group).hexdigest()[:16]
        return f"{self.tenant}|{self.rule.id}|{digest}"

    def absorb(self, other: Match) -> None:
        """Fold a repeat of this alert in: count it and widen first/last seen."""
        self.suppressed += 1 + other.suppressed
        if other.first_seen and (self.first_seen is None or other.first_seen < self.first_seen):
            self.first_seen = other.first_seen
        if other.last_seen and (self.last_seen is None or other.last_seen > self.last_seen):
            self.last_seen = other.last_seen

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (the alert row)."""
        info = self.rule
        return {
            "tenant": self.tenant, "rule_id": info.id, "title": info.title, "level": info.level,
            "severity": info.severity, "kind": info.kind, "tactics": list(info.tactics),
            "techniques": list(info.techniques), "description": info.description,
            "references": list(info.references), "falsepositives": list(info.falsepositives),
            "runbook": info.runbook, "dataset": self.dataset, "group_key": self.group_key,
            "events": [ref.to_dict() for ref in self.events],
            "first_seen": self.first_seen.isoformat() if self.first_seen else None,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
            "value": self.value, "suppressed": self.suppressed, "dedup_key": self.dedup_key,
        }
