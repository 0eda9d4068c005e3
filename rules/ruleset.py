"""What a load produces: rule sources, load errors, compiled rules, inactive rules and the
rule set, plus what activation needs from each rule (`RuleRequirement`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sigma.rule import SigmaLogSource, SigmaRule
from sigma.types import Placeholder, SigmaExpansion

from rules.compiler.condition import CompiledCondition
from rules.compiler.fields import Predicate
from rules.datasets import Mapping
from rules.match import RuleInfo
from rules.new_value import NewValueSpec

if TYPE_CHECKING:
    from rules.cache import CacheStats


@dataclass(frozen=True)
class RuleSource:
    """A file or directory of Sigma YAML; `tenant` None means the global library."""

    path: Path
    tenant: str | None = None


@dataclass(frozen=True)
class LoadError:
    """A rule, filter or file that was skipped, and why."""

    file: str
    reason: str
    rule: str | None = None

    def __str__(self) -> str:
        what = f" ({self.rule})" if self.rule else ""
        return f"{self.file}{what}: {self.reason}"


@dataclass
class CompiledRule:
    """One single-event rule compiled for every dataset that serves its logsource."""

    info: RuleInfo
    position: int
    conditions: dict[str, CompiledCondition] = field(default_factory=dict)  # dataset -> compiled
    mappings: dict[str, Mapping] = field(default_factory=dict)  # dataset -> mapping
    # The rule's Sigma logsource (what filters and correlation group-by mapping select on) and
    # the `|expand` placeholders left unresolved in it (activation reports them).
    logsource: SigmaLogSource | None = field(default=None, repr=False)
    placeholders: frozenset[str] = frozenset()
    # Owners (None = every tenant) whose correlations reference this rule with `generate: false`
    # and none with `generate: true`: the rule feeds those correlations but alerts nothing alone.
    silenced: set[str | None] = field(default_factory=set)
    correlations: list[Any] = field(default_factory=list)  # CorrelationRule objects
    # owner tenant (None = everyone) -> dataset -> Sigma filter conditions a match must satisfy
    exclusions: dict[str | None, dict[str, list[Predicate]]] = field(default_factory=dict)
    new_value: NewValueSpec | None = None  # Vigil's first-seen extension (rules/new_value.py)

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(self.conditions)

    @property
    def emits(self) -> bool:
        """Whether the rule alerts on its own for tenants without a silencing correlation."""
        return None not in self.silenced

    def emits_for(self, tenant: str) -> bool:
        return None not in self.silenced and tenant not in self.silenced

    def fields(self, dataset: str) -> frozenset[str]:
        """Event fields a match needs in `dataset`: union over AND, intersection over OR."""
        return self.conditions[dataset].fields


@dataclass(frozen=True)
class InactiveRule:
    """A rule served by a dataset but not compiled for some owners, and why (e.g. an `|expand`
    placeholder without a value: rules/placeholders.py). `owners` None means every tenant."""

    info: RuleInfo
    reason: str
    owners: tuple[str | None, ...] = (None,)
    placeholders: frozenset[str] = frozenset()  # the names without a value


@dataclass
class RuleSet:
    """Everything loaded: compiled rules, correlations, errors, and rules no dataset serves."""

    rules: list[CompiledRule] = field(default_factory=list)
    correlations: list[Any] = field(default_factory=list)
    errors: list[LoadError] = field(default_factory=list)
    unserved: list[RuleInfo] = field(default_factory=list)
    inactive: list[InactiveRule] = field(default_factory=list)
    mappings: list[Mapping] = field(default_factory=list)
    filters: int = 0
    cache: CacheStats | None = None  # what the load did with the compiled-rule cache

    def by_id(self, rule_id: str, tenant: str | None = None) -> CompiledRule | None:
        """The rule with this id visible to `tenant` (its own first, then global)."""
        fallback = None
        for rule in self.rules:
            if rule.info.id == rule_id:
                if rule.info.tenant == tenant:
                    return rule
                if rule.info.tenant is None:
                    fallback = rule
        return fallback

    def datasets(self) -> list[str]:
        return sorted({name for m in self.mappings for name in m.datasets})

    def requirements(self) -> list[RuleRequirement]:
        """Per rule, what activation needs: the datasets serving it and the fields it reads."""
        out = [RuleRequirement(rule.info, {d: c.fields for d, c in rule.conditions.items()},
                               alerts=rule.emits, placeholders=rule.placeholders)
               for rule in self.rules]
        out.extend(RuleRequirement(info, {}) for info in self.unserved)
        # Kept off for want of placeholder values: reported with that reason, never active.
        out.extend(RuleRequirement(r.info, {}, placeholders=r.placeholders) for r in self.inactive)
        return out


@dataclass(frozen=True)
class RuleRequirement:
    """A rule's datasets (empty: no dataset serves its logsource) and needed fields in each.

    Needed fields are the union over AND and the intersection over OR branches; fields only
    tested under `not` are not needed.
    """

    info: RuleInfo
    fields: dict[str, frozenset[str]]
    alerts: bool = True  # False: a base rule that alerts only through its correlations
    placeholders: frozenset[str] = frozenset()  # `|expand` names no pipeline resolved


def placeholders_of(rule: SigmaRule | None) -> frozenset[str]:
    """Names of `|expand` placeholders left unresolved in a processed rule."""
    if rule is None:
        return frozenset()
    names: set[str] = set()

    def walk(node: Any) -> None:
        for item in getattr(node, "detection_items", ()):
            if hasattr(item, "detection_items"):
                walk(item)
                continue
            for value in item.value:
                for text in value.values if isinstance(value, SigmaExpansion) else [value]:
                    names.update(part.name for part in getattr(text, "s", ())
                                 if isinstance(part, Placeholder))

    for detection in rule.detection.detections.values():
        walk(detection)
    return frozenset(names)
