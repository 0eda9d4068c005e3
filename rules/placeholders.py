"""Sigma `|expand` placeholders (`%known_cdcs%`) resolved from configured values.

A placeholder stands for a list the deployment must supply (hosts, accounts, paths). Values
come from `vigil.detection.placeholders` (every tenant) and `tenants.<id>.rules.placeholders`
(that tenant; a name set there replaces the global list). A rule whose placeholders all have
values compiles with them; a global rule that only some tenants can resolve (or whose list a
tenant replaces) compiles once per such tenant, owned by it. Where a placeholder has no value
the rule is never compiled with a wildcard in its place (it would match everything, or, in a
filter, hide everything): it is kept inactive with that reason (`RuleSet.inactive`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import ValueListPlaceholderTransformation
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import Placeholder, SigmaString

# owner (None: every tenant) -> placeholder name -> values
PlaceholderValues = Mapping[str | None, Mapping[str, Sequence[str]]]


@dataclass(frozen=True)
class Resolution:
    """How one rule's placeholders resolve: for everyone, per tenant, and who lacks what."""

    names: frozenset[str]
    everyone: SigmaRule | None = None           # resolved from the global values
    tenants: dict[str, SigmaRule] = field(default_factory=dict)  # resolved per tenant
    missing: dict[str | None, list[str]] = field(default_factory=dict)  # owner -> names

    def reason(self) -> str:
        parts = []
        for owner, names in sorted(self.missing.items(), key=lambda kv: kv[0] or ""):
            where = "every tenant" if owner is None else f"tenant {owner}"
            parts.append(f"{', '.join('%' + n + '%' for n in names)} has no value for {where}")
        return ("placeholder " + "; ".join(parts) + " (set vigil.detection.placeholders or "
                "tenants.<id>.rules.placeholders)")


def placeholder_names(rule: SigmaRule) -> frozenset[str]:
    """Names of the `|expand` placeholders a rule's detections use."""
    return frozenset(_names(rule.detection.detections.values()))


def _names(detections: object) -> Iterator[str]:
    for item in detections:  # type: ignore[attr-defined]
        if isinstance(item, SigmaDetection):
            yield from _names(item.detection_items)
        elif isinstance(item, SigmaDetectionItem):
            for value in item.value:
                if isinstance(value, SigmaString):
                    for part in value.s:
                        if isinstance(part, Placeholder):
                            yield part.name


def resolve(rule: SigmaRule, owner: str | None, values: PlaceholderValues,
            tenants: Sequence[str]) -> Resolution:
    """Resolve `rule`'s placeholders for its owner (a tenant's rule) or for everyone and, where
    the global values fall short, for each tenant whose own values complete them."""
    names = placeholder_names(rule)
    shared = _given(values.get(None))
    if owner is not None:
        own = {**shared, **_given(values.get(owner))}
        lacking = sorted(n for n in names if n not in own)
        if lacking:
            return Resolution(names, missing={owner: lacking})
        return Resolution(names, tenants={owner: _apply(rule, own, names)})
    lacking = sorted(n for n in names if n not in shared)
    overridden = any(names & set(_given(values.get(tenant))) for tenant in tenants)
    if not lacking and not overridden:
        return Resolution(names, everyone=_apply(rule, shared, names))
    resolved: dict[str, SigmaRule] = {}
    missing: dict[str | None, list[str]] = {}
    for tenant in tenants:
        own = {**shared, **_given(values.get(tenant))}
        still = sorted(n for n in names if n not in own)
        if still:
            missing[tenant] = still
        else:
            resolved[tenant] = _apply(rule, own, names)
    if not tenants:
        missing[None] = lacking
    return Resolution(names, tenants=resolved, missing=missing)


def _given(values: Mapping[str, Sequence[str]] | None) -> dict[str, Sequence[str]]:
    """The names with at least one value (an empty list cannot be expanded: no value)."""
    return {name: listed for name, listed in (values or {}).items() if listed}


def _apply(rule: SigmaRule, values: Mapping[str, Sequence[str]],
           names: frozenset[str]) -> SigmaRule:
    target = copy.deepcopy(rule)
    pipeline = ProcessingPipeline(
        items=[ProcessingItem(ValueListPlaceholderTransformation(include=sorted(names)))],
        vars={name: [str(v) for v in values[name]] for name in names})
    pipeline.apply(target)
    return target
