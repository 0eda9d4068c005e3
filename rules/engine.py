"""Evaluate batches of events against the compiled rules of their dataset.

Per dataset, rules are indexed by a literal every match requires: exact values in a dict per
field, substrings (prefixes, suffixes, contained text) in one Aho-Corasick automaton per field
(pyahocorasick), so an event is checked only against the rules whose literal it contains; rules
without a usable literal are evaluated for every event. Candidates pass through the full
predicate, then the Sigma filters (exclusions) of the rule's owner and the event's tenant.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import ahocorasick

from rules.compiler.anchors import anchor_cost
from rules.compiler.condition import CompiledCondition
from rules.compiler.fields import Predicate
from rules.compiler.ir import And, Keyword, Node, Not, Or, StrTest
from rules.correlation.engine import CorrelationEngine
from rules.correlation.values import event_time
from rules.loader import CompiledRule, RuleSet
from rules.match import EventRef, Match
from rules.new_value import NewValueState

Event = dict[str, Any]

# A rule whose best literal lets more than this share through is cheaper to evaluate always.
MAX_ANCHOR_COST = 3.0
DEFAULT_KEY_FIELDS = (
    "@timestamp", "host.hostname", "host.name", "user.name", "source.ip", "destination.ip",
    "event.action", "winlog.channel", "winlog.event_id", "winlog.computer_name",
    "winlog.event_data.Image", "winlog.event_data.CommandLine", "winlog.event_data.TargetFilename",
    "winlog.event_data.TargetObject", "winlog.event_data.User", "winlog.event_data.TargetUserName",
)


@dataclass
class DatasetIndex:
    """The rules of one dataset, indexed by required literals."""

    rules: list[CompiledRule]
    conditions: list[CompiledCondition]
    always: list[int] = field(default_factory=list)  # codes (position * 2) of unindexed rules
    exact: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    substrings: dict[str, Any] = field(default_factory=dict)  # field -> ahocorasick.Automaton
    view: Callable[[Event], Event] = field(default=lambda event: event)
    needs_second: list[bool] = field(default_factory=list)
    # The string fields some rule (or the index) reads lowered; None: every string field.
    lowered_fields: frozenset[str] | None = None

    @property
    def predicates(self) -> list[Predicate]:
        """Each rule's predicate (a condition from the cache builds its own at the first call)."""
        return [condition.predicate for condition in self.conditions]

    @classmethod
    def build(cls, dataset: str, rules: Sequence[CompiledRule]) -> DatasetIndex:
        index = cls(rules=list(rules), conditions=[r.conditions[dataset] for r in rules])
        if rules:
            index.view = rules[0].mappings[dataset].resolver.view
        weak = rules[0].mappings[dataset].resolver.weak_fields if rules else {}
        # Index payloads are codes: position * 2 + slot (slot 1 = the rule's second anchor set).
        patterns: dict[str, dict[str, set[int]]] = {}
        index.needs_second = [False] * len(rules)
        for position, rule in enumerate(rules):
            condition = rule.conditions[dataset]
            anchors = condition.anchors
            if anchors is None or anchor_cost(anchors, weak) > MAX_ANCHOR_COST:
                index.always.append(position * 2)
                continue
            slots = [(0, anchors)]
            if condition.anchors2 is not None:
                slots.append((1, condition.anchors2))
                index.needs_second[position] = True
            for slot, found in slots:
                code = position * 2 + slot
                for kind, key, literal in found:
                    if kind == "eq":
                        codes = index.exact.setdefault(key, {}).setdefault(literal, [])
                        if code not in codes:
                            codes.append(code)
                    else:
                        patterns.setdefault(key, {}).setdefault(literal, set()).add(code)
        index.lowered_fields = _lowered_fields(rules, dataset, index)
        for key, table in patterns.items():
            automaton = ahocorasick.Automaton()
            for literal, literal_codes in table.items():
                automaton.add_word(literal, tuple(sorted(literal_codes)))
            automaton.make_automaton()
            index.substrings[key] = automaton
        return index

    def candidates(self, event: Event, lowered: dict[str, str]) -> list[int]:
        """Positions of the rules whose required literals the event holds, in rule order."""
        hits: set[int] = set(self.always)
        exact = self.exact
        for key in exact.keys() & event.keys():
            table = exact[key]
            value = event[key]
            if value is None:
                continue
            if value.__class__ is str:
                hit = table.get(lowered.get(key) or value.lower())
                if hit:
                    hits.update(hit)
            elif isinstance(value, list):
                for item in value:
                    hit = table.get(_text(item))
                    if hit:
                        hits.update(hit)
            else:
                hit = table.get(_text(value))
                if hit:
                    hits.update(hit)
        substrings = self.substrings
        for key in substrings.keys() & event.keys():
            automaton = substrings[key]
            text = lowered.get(key)
            if text is None:
                value = event[key]
                if value is None:
                    continue
                text = " ".join(map(_text, value)) if isinstance(value, list) else _text(value)
            for _, codes in automaton.iter(text):
                hits.update(codes)
        needs_second = self.needs_second
        return sorted(code >> 1 for code in hits
                      if not code & 1 and (not needs_second[code >> 1] or code | 1 in hits))


def _lowered_fields(rules: Sequence[CompiledRule], dataset: str, index: DatasetIndex,
                    ) -> frozenset[str] | None:
    """Fields whose lowered text a predicate or the index reads: case-insensitive string tests
    (keywords included) and indexed literals. Lowering only these, not every string field of
    every event, was a fifth of detection's time; a field left out still matches correctly
    (a predicate lowers what it does not find in `lowered`), only more slowly."""
    names: set[str] = set(index.exact) | {
        key for rule in rules for kind, key, _ in [*(rule.conditions[dataset].anchors or ()),
                                                   *(rule.conditions[dataset].anchors2 or ())]
        if kind == "sub"}
    stack: list[Node] = []
    for rule in rules:
        node = rule.conditions[dataset].ir
        if node is None:
            return None  # a condition built without its IR: lower everything, as before
        stack.append(node)
    while stack:
        node = stack.pop()
        if isinstance(node, StrTest):
            if not node.cased:
                names.update(node.keys)
        elif isinstance(node, Keyword):
            stack.extend(node.inner)
        elif isinstance(node, (And, Or)):
            stack.extend(node.children)
        elif isinstance(node, Not):
            stack.append(node.child)
    return frozenset(names)


def _text(value: Any) -> str:
    if value.__class__ is bool:
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat().lower()
    return str(value).lower()


@dataclass
class TenantRules:
    """Per-tenant overrides: explicit enables/disables and an optional active set."""

    active: frozenset[str] | None = None  # None: every visible rule
    enabled: frozenset[str] = frozenset()
    disabled: frozenset[str] = frozenset()


class DetectionEngine:
    """Single-event rules and correlations over batches, per tenant."""

    def __init__(self, ruleset: RuleSet, *, correlation: CorrelationEngine | None = None,
                 key_fields: Sequence[str] = DEFAULT_KEY_FIELDS) -> None:
        self.ruleset = ruleset
        self.correlation = correlation or CorrelationEngine(ruleset.correlations)
        self.key_fields = tuple(key_fields)
        self.indexes: dict[str, DatasetIndex] = {}
        by_dataset: dict[str, list[CompiledRule]] = {}
        for rule in ruleset.rules:
            for dataset in rule.conditions:
                by_dataset.setdefault(dataset, []).append(rule)
        for dataset, rules in by_dataset.items():
            self.indexes[dataset] = DatasetIndex.build(dataset, rules)
        self.new_values = NewValueState()
        # Bumped whenever evaluation changes saved state (correlation windows, learned values):
        # a caller that persists that state knows which batches it must wait for.
        self.state_changes = 0
        self.tenant_rules: dict[str, TenantRules] = {}
        self._blocked: dict[tuple[str, str], frozenset[int]] = {}
        self._ref_keys: dict[tuple[int, str], tuple[str, ...]] = {}

    def datasets(self) -> list[str]:
        return sorted(self.indexes)

    def rules_for(self, dataset: str) -> list[CompiledRule]:
        index = self.indexes.get(dataset)
        return list(index.rules) if index else []

    def set_tenant_rules(self, tenant: str, *, active: Iterable[str] | None = None,
                         enabled: Iterable[str] = (), disabled: Iterable[str] = ()) -> None:
        """Restrict a tenant's rules: `active` (ids, None = all) plus enables minus disables."""
        self.tenant_rules[tenant] = TenantRules(
            active=frozenset(active) if active is not None else None,
            enabled=frozenset(enabled), disabled=frozenset(disabled))
        self._blocked = {k: v for k, v in self._blocked.items() if k[0] != tenant}

    def _blocked_for(self, tenant: str, dataset: str, index: DatasetIndex) -> frozenset[int]:
        cached = self._blocked.get((tenant, dataset))
        if cached is not None:
            return cached
        settings = self.tenant_rules.get(tenant, TenantRules())
        blocked = set()
        for position, rule in enumerate(index.rules):
            rule_id = rule.info.id
            owner_ok = rule.info.tenant in (None, tenant)
            on = (settings.active is None or rule_id in settings.active
                  or rule_id in settings.enabled)
            if not owner_ok or not on or rule_id in settings.disabled:
                blocked.add(position)
        result = self._blocked[(tenant, dataset)] = frozenset(blocked)
        return result

    def evaluate(self, dataset: str, events: Sequence[Event], tenant: str = "",
                 offsets: Sequence[int | None] | None = None) -> list[Match]:
        """Every match of the batch: single-event alerts, then correlation matches they complete."""
        index = self.indexes.get(dataset)
        if index is None or not events:
            return []
        blocked = self._blocked_for(tenant, dataset, index)
        conditions = index.conditions
        view = index.view
        wanted = index.lowered_fields
        out: list[Match] = []
        for position, original in enumerate(events):
            event = view(original)
            if wanted is None:
                lowered = {k: v.lower() for k, v in event.items() if v.__class__ is str}
            else:
                lowered = {k: v.lower() for k in wanted & event.keys()
                           if (v := event[k]).__class__ is str}
            for rule_position in index.candidates(event, lowered):
                if rule_position in blocked:
                    continue
                if not conditions[rule_position].predicate(event, lowered):
                    continue
                rule = index.rules[rule_position]
                if self._excluded(rule, dataset, tenant, event, lowered):
                    continue
                offset = offsets[position] if offsets is not None else event.get("vigil.offset")
                out.extend(self._emit(rule, dataset, tenant, event, position, offset))
        return out

    def _excluded(self, rule: CompiledRule, dataset: str, tenant: str, event: Event,
                  lowered: dict[str, str]) -> bool:
        if not rule.exclusions:
            return False
        # A Sigma filter's condition is AND-ed to the rule (pySigma's apply_on_rule): the match
        # stands only where every applicable filter condition holds.
        for owner in (None, tenant):
            for predicate in rule.exclusions.get(owner, {}).get(dataset, ()):
                if not predicate(event, lowered):
                    return True
        return False

    def _emit(self, rule: CompiledRule, dataset: str, tenant: str, event: Event, position: int,
              offset: int | None) -> list[Match]:
        when = event_time(event.get("@timestamp"), self.correlation.clock)
        # Key fields: the general ones plus every field the rule reads, as the analyst needs them.
        slot = (rule.position, dataset)
        keys = self._ref_keys.get(slot)
        if keys is None:  # once per rule and dataset, not per match
            keys = self._ref_keys[slot] = (*self.key_fields,
                                           *sorted(rule.conditions[dataset].fields))
        ref = EventRef(index=position, offset=offset, timestamp=when,
                       fields={k: _plain(event[k]) for k in keys if k in event})
        out: list[Match] = []
        alerting = rule.emits_for(tenant)
        if rule.correlations or rule.new_value is not None:
            self.state_changes += 1
        if alerting and rule.new_value is not None:
            # Alerts only when the value is new for its key (correlations still see the match).
            alerting = self.new_values.observe(tenant, rule.info.id, rule.new_value, event,
                                               when.timestamp(), offset)
        if alerting:
            group = {f: _plain(event.get(f)) for f in rule.info.suppress_by}
            out.append(Match(rule=rule.info, tenant=tenant, dataset=dataset, events=[ref],
                             first_seen=when, last_seen=when, group_key=group))
        if rule.correlations:
            out.extend(self.correlation.observe(tenant, rule, dataset, event, ref))
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value
