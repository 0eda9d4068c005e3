"""A Sigma correlation resolved against the loaded rules: its base rules (global ones plus
the owning tenant's), its condition, and per (base rule, dataset) the event keys its group-by
fields and value field map to. Built by the loader; evaluated by `engine.CorrelationEngine`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
    SigmaExtendedCorrelationCondition,
    SigmaRuleReference,
)

from rules.match import RuleInfo

if TYPE_CHECKING:
    from rules.loader import CompiledRule, RuleSet


@dataclass
class CorrelationRule:
    """A resolved correlation: its base rules and, per (base rule, dataset), the event keys."""

    info: RuleInfo
    type: SigmaCorrelationType
    timespan: float  # seconds
    generate: bool
    base_rules: list[CompiledRule]
    group_names: list[str]
    # (base rule position, dataset) -> per group name, the event keys tried in order
    group_keys: dict[tuple[int, str], list[tuple[str, ...]]] = field(default_factory=dict)
    value_keys: dict[tuple[int, str], tuple[str, ...]] = field(default_factory=dict)
    op: SigmaCorrelationConditionOperator = SigmaCorrelationConditionOperator.GTE
    threshold: float = 1
    percentile: int | None = None
    extended: Any = None  # parsed extended condition (temporal types)
    references: dict[int, str] = field(default_factory=dict)  # base position -> reference text

    @cached_property
    def key(self) -> str:  # read several times per base-rule match: computed once
        return f"{self.info.tenant or ''}/{self.info.id}"

    @classmethod
    def build(cls, sigma: SigmaCorrelationRule, tenant: str | None,
              ruleset: RuleSet) -> CorrelationRule:
        """Resolve references (global rules plus the owner's) and map group-by fields."""
        from rules.loader import rule_info

        info = rule_info(sigma, tenant)
        condition = sigma.condition
        references: list[SigmaRuleReference] = list(sigma.rules or [])
        if isinstance(condition, SigmaExtendedCorrelationCondition) and not references:
            references = [SigmaRuleReference(r) for r in condition.get_referenced_rules()]
        base_rules: list[CompiledRule] = []
        ref_text: dict[int, str] = {}
        for reference in references:
            rule = _find_rule(ruleset, reference.reference, tenant)
            if rule is None:
                raise KeyError(f"referenced rule {reference.reference!r} not found (or no dataset "
                               f"serves its logsource; correlations of correlations unsupported)")
            base_rules.append(rule)
            ref_text[rule.position] = reference.reference
        op, threshold, percentile, fieldref = SigmaCorrelationConditionOperator.GTE, 1.0, None, None
        extended = None
        if isinstance(condition, SigmaCorrelationCondition):
            op, threshold, percentile = condition.op, float(condition.count), condition.percentile
            fieldref = condition.fieldref
        elif isinstance(condition, SigmaExtendedCorrelationCondition):
            extended = condition._parsed
        if isinstance(fieldref, list):
            fieldref = fieldref[0] if fieldref else None
        correlation = cls(info=info, type=sigma.type, timespan=float(sigma.timespan.seconds),
                          generate=bool(sigma.generate), base_rules=base_rules,
                          group_names=list(sigma.group_by or []), op=op, threshold=threshold,
                          percentile=percentile, extended=extended, references=ref_text)
        aliases = {alias.alias: alias for alias in sigma.aliases}
        for rule, reference in zip(base_rules, references, strict=True):
            assert rule.logsource is not None
            for dataset, mapping in rule.mappings.items():
                keys = []
                for name in correlation.group_names:
                    sigma_field = name
                    if name in aliases:
                        sigma_field = _alias_field(aliases[name], reference, rule)
                    keys.append(mapping.map_field(sigma_field, rule.logsource))
                correlation.group_keys[(rule.position, dataset)] = keys
                if fieldref:
                    correlation.value_keys[(rule.position, dataset)] = mapping.map_field(
                        fieldref, rule.logsource)
        if sigma.type in (SigmaCorrelationType.VALUE_COUNT, SigmaCorrelationType.VALUE_SUM,
                          SigmaCorrelationType.VALUE_AVG, SigmaCorrelationType.VALUE_MEDIAN,
                          SigmaCorrelationType.VALUE_PERCENTILE) and not fieldref:
            raise ValueError(f"{sigma.type.name.lower()} correlation needs condition.field")
        return correlation


def _alias_field(alias: Any, reference: SigmaRuleReference, rule: CompiledRule) -> str:
    for ref, sigma_field in alias.mapping.items():
        if ref.reference in (reference.reference, rule.info.id, rule.info.name):
            return str(sigma_field)
    raise KeyError(f"alias {alias.alias!r} has no field for rule {reference.reference!r}")


def _find_rule(ruleset: RuleSet, reference: str, tenant: str | None) -> CompiledRule | None:
    found = None
    for rule in ruleset.rules:
        if reference in (rule.info.id, rule.info.name) and rule.info.tenant in (None, tenant):
            if rule.info.tenant == tenant:
                return rule
            found = rule
    return found
