"""New-value detection: a Vigil extension for what Sigma cannot say ("a country never seen for
this user", "a user's first sudo to root").

A rule opts in with a custom attribute; its detection selects the events, and the match stands
only when the value of `fields` is new for the `group_by` key:

    vigil:
      new_value:
        fields: [source.geo.country_iso_code]
        group_by: [user.name]
        learning: 1d

A key's values are learned silently during its first `learning` (event time) after it is first
seen, so a new deployment or a new user does not alert on everything. State is per tenant,
bounded (keys per rule and tenant, values per key; the least recently used go first, counted),
and saved with the detection state. Each learned value remembers the queue offset that taught
it, so a replayed event re-emits its match (alert upserts are idempotent) instead of losing it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from core.config import parse_duration

MAX_KEYS = 100_000
MAX_VALUES = 256
SILENT = -1  # "taught by" of a value learned without an alert


@dataclass(frozen=True)
class NewValueSpec:
    fields: tuple[str, ...]
    group_by: tuple[str, ...]
    learning: timedelta

    @classmethod
    def from_rule(cls, custom: dict[str, Any]) -> NewValueSpec | None:
        """The spec in a rule's custom attributes, if any; ValueError when malformed."""
        vigil = custom.get("vigil")
        spec = vigil.get("new_value") if isinstance(vigil, dict) else None
        if spec is None:
            return None
        if not isinstance(spec, dict) or not spec.get("fields"):
            raise ValueError("vigil.new_value needs `fields`")
        fields = spec["fields"]
        group_by = spec.get("group_by") or []
        return cls(tuple([fields] if isinstance(fields, str) else fields),
                   tuple([group_by] if isinstance(group_by, str) else group_by),
                   parse_duration(spec.get("learning", "1d")))


@dataclass
class KeyHistory:
    first_seen: float  # event time, epoch seconds
    # value -> offset of the event whose alert taught it, or SILENT
    values: OrderedDict[str, int] = field(default_factory=OrderedDict)


class NewValueState:
    """Learned values per (tenant, rule, group key)."""

    def __init__(self, max_keys: int = MAX_KEYS, max_values: int = MAX_VALUES) -> None:
        self.max_keys = max_keys
        self.max_values = max_values
        self.keys: dict[tuple[str, str], OrderedDict[str, KeyHistory]] = {}
        self.evicted = 0

    def observe(self, tenant: str, rule_id: str, spec: NewValueSpec, event: dict[str, Any],
                when: float, offset: int | None) -> bool:
        """Learn the event's value; True when it is new for its key after learning (or when
        this very event taught it before: a replay)."""
        value = _joined(event, spec.fields)
        if value is None:
            return False
        group = _joined(event, spec.group_by) or ""
        histories = self.keys.setdefault((tenant, rule_id), OrderedDict())
        history = histories.get(group)
        if history is None:
            if len(histories) >= self.max_keys:
                histories.popitem(last=False)
                self.evicted += 1
            history = histories[group] = KeyHistory(when)
            history.values[value] = SILENT
            return False
        histories.move_to_end(group)
        taught_by = history.values.get(value)
        if taught_by is not None:
            history.values.move_to_end(value)
            return offset is not None and taught_by == offset  # a replay of the alerting event
        if len(history.values) >= self.max_values:
            history.values.popitem(last=False)
            self.evicted += 1
        alerting = when >= history.first_seen + spec.learning.total_seconds()
        history.values[value] = offset if alerting and offset is not None else SILENT
        return alerting

    def forget(self, tenant: str) -> None:
        """Drop a tenant's histories (its shard moved to another worker)."""
        for key in [k for k in self.keys if k[0] == tenant]:
            del self.keys[key]

    def dump(self) -> list[list[Any]]:
        return [[tenant, rule, group, h.first_seen, list(h.values.items())]
                for (tenant, rule), histories in self.keys.items()
                for group, h in histories.items()]

    def load(self, saved: list[list[Any]]) -> int:
        for tenant, rule, group, first_seen, values in saved:
            history = KeyHistory(float(first_seen), OrderedDict((str(v), int(o))
                                                                for v, o in values))
            self.keys.setdefault((tenant, rule), OrderedDict())[group] = history
        return len(saved)


def _joined(event: dict[str, Any], names: tuple[str, ...]) -> str | None:
    parts = []
    for name in names:
        value = event.get(name)
        if value is None or value == "":
            return None
        parts.append(str(value).lower())
    return "\x1f".join(parts)
