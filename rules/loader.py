"""Load Sigma rules, filters and correlations from directories and compile them per dataset.

Each source is a file or directory (global, or owned by one tenant). Files are read with
`SigmaCollection.load_ruleset(..., collect_errors=True)` one at a time, so a file that fails to
parse, or a rule with errors, is reported as a `LoadError` (file and reason) and skipped; loading
never fails as a whole. Sigma filters become exclusions on the rules they target (kept per owner,
so a tenant's filter never hides another tenant's alerts); correlations are resolved against the
global rules plus their owner's rules.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.filters import SigmaFilter
from sigma.modifiers import SigmaWideModifier, modifier_mapping
from sigma.rule import SigmaDetections, SigmaRule
from sigma.types import Placeholder, SigmaExpansion

from core.config import parse_duration
from rules.compiler.condition import CompiledCondition, compile_condition
from rules.compiler.fields import Predicate
from rules.compiler.ir import CompileError
from rules.datasets import Mapping, shipped_mappings
from rules.match import RuleInfo, attack_from_tags, severity_of
from rules.new_value import NewValueSpec
from rules.placeholders import PlaceholderValues, placeholder_names, resolve

log = logging.getLogger(__name__)

# The Sigma specification names `utf16le` as an alias of `wide`; pySigma 2.0 only knows `wide`.
modifier_mapping.setdefault("utf16le", SigmaWideModifier)

RULE_SUFFIXES = (".yml", ".yaml")


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
    sigma: SigmaRule | None = field(default=None, repr=False)
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
                               alerts=rule.emits, placeholders=placeholders_of(rule.sigma))
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


def rule_files(path: Path) -> list[Path]:
    """Sigma files under a path (the path itself when it is a file)."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file())


Owned = tuple[Any, str | None]  # a pySigma rule/filter/correlation and its owner tenant


def read_sources(sources: Iterable[RuleSource]) -> tuple[list[Owned], list[LoadError]]:
    """Parse every file; return (sigma object, owner) pairs and the errors found."""
    objects: list[Owned] = []
    errors: list[LoadError] = []
    for source in sources:
        if not source.path.exists():
            errors.append(LoadError(str(source.path), "no such file or directory"))
            continue
        for path in rule_files(source.path):
            try:
                collection = SigmaCollection.load_ruleset(
                    [path], collect_errors=True, resolve_references=False)
            except (SigmaError, ValueError, TypeError, UnicodeDecodeError) as exc:
                errors.append(LoadError(str(path), _reason(exc)))
                continue
            except Exception as exc:  # noqa: BLE001 - e.g. yaml.YAMLError: one bad file only
                errors.append(LoadError(str(path), _reason(exc)))
                continue
            attached = {id(e) for obj in [*collection.rules, *collection.filters]
                        for e in obj.errors}
            for error in collection.errors:
                if id(error) not in attached:  # the collection repeats its rules' errors
                    errors.append(LoadError(str(path), _reason(error)))
            for obj in [*collection.rules, *collection.filters]:
                if obj.errors:
                    for error in obj.errors:
                        errors.append(LoadError(str(path), _reason(error), _label(obj)))
                    continue
                objects.append((obj, source.tenant))
    return objects, errors


def load_rules(sources: Sequence[RuleSource | Path | str],
               mappings: Sequence[Mapping] | None = None, *,
               placeholders: PlaceholderValues | None = None,
               tenants: Sequence[str] = ()) -> RuleSet:
    """Load and compile rules from files/directories; errors are collected, never raised.
    `placeholders` (owner -> name -> values) resolve `|expand` placeholders; `tenants` are the
    tenants a global rule may be compiled for when only their own values resolve it."""
    normalised = [s if isinstance(s, RuleSource) else RuleSource(Path(s)) for s in sources]
    objects, errors = read_sources(normalised)
    ruleset = RuleSet(errors=errors, mappings=list(mappings or shipped_mappings()))

    sigma_rules = [(o, t) for o, t in objects if isinstance(o, SigmaRule)]
    for sigma_rule, tenant in sigma_rules:
        if placeholder_names(sigma_rule):
            _compile_placeholder_rule(ruleset, sigma_rule, tenant, placeholders or {}, tenants)
        else:
            _compile_rule(ruleset, sigma_rule, tenant)

    from rules.correlation.rule import CorrelationRule  # correlation imports the loader's types

    for obj, tenant in objects:
        if isinstance(obj, SigmaCorrelationRule):
            try:
                correlation = CorrelationRule.build(obj, tenant, ruleset)
            except (SigmaError, CompileError, KeyError, ValueError) as exc:
                ruleset.errors.append(LoadError(_file(obj), _reason(exc), _label(obj)))
                continue
            ruleset.correlations.append(correlation)
    _set_emits(ruleset)

    for obj, tenant in objects:
        if isinstance(obj, SigmaFilter):
            ruleset.filters += 1
            _attach_filter(ruleset, obj, tenant)
    for error in ruleset.errors:
        log.warning("sigma rule skipped", extra={"file": error.file, "rule": error.rule,
                                                  "reason": error.reason})
    return ruleset


def _compile_placeholder_rule(ruleset: RuleSet, sigma_rule: SigmaRule, tenant: str | None,
                              values: PlaceholderValues, tenants: Sequence[str]) -> None:
    """Compile a rule using `|expand` placeholders with the configured values: for everyone,
    or once per tenant able to resolve it; never with a wildcard where a value is missing."""
    if not any(m.serves(sigma_rule) for m in ruleset.mappings):
        ruleset.unserved.append(rule_info(sigma_rule, tenant))
        return
    try:
        resolution = resolve(sigma_rule, tenant, values, tenants)
    except (SigmaError, ValueError) as exc:
        info = rule_info(sigma_rule, tenant)
        ruleset.errors.append(LoadError(info.file, _reason(exc), info.id))
        return
    if resolution.everyone is not None:
        _compile_rule(ruleset, resolution.everyone, None)
    for owner, resolved in resolution.tenants.items():
        _compile_rule(ruleset, resolved, owner)
    if resolution.missing:
        info = rule_info(sigma_rule, tenant)
        owners = tuple(sorted(resolution.missing, key=lambda o: o or ""))
        names = frozenset(n for missing in resolution.missing.values() for n in missing)
        ruleset.inactive.append(InactiveRule(info, resolution.reason(), owners, names))
        log.warning("sigma rule inactive", extra={"file": info.file, "rule": info.id,
                                                  "reason": resolution.reason()})


def _compile_rule(ruleset: RuleSet, sigma_rule: SigmaRule, tenant: str | None) -> None:
    info = rule_info(sigma_rule, tenant)
    serving = [m for m in ruleset.mappings if m.serves(sigma_rule)]
    if not serving:
        ruleset.unserved.append(info)
        return
    try:
        new_value = NewValueSpec.from_rule(sigma_rule.custom_attributes)
        vigil = sigma_rule.custom_attributes.get("vigil")
        if isinstance(vigil, dict) and vigil.get("suppression") is not None:
            parse_duration(vigil["suppression"])
    except ValueError as exc:
        ruleset.errors.append(LoadError(info.file, str(exc), info.id))
        return
    if new_value is not None and not info.suppress_by:
        # One alert per key and value learned, not one per rule and window.
        info = dataclasses.replace(info, suppress_by=new_value.group_by + new_value.fields)
    compiled = CompiledRule(info=info, position=len(ruleset.rules), new_value=new_value)
    copies = [sigma_rule] + [copy.deepcopy(sigma_rule) for _ in serving[1:]]
    for mapping, target in zip(serving, copies, strict=True):
        try:
            mapping.apply(target)
            condition = compile_rule_condition(target, mapping)
        except (SigmaError, CompileError, ValueError, TypeError) as exc:
            ruleset.errors.append(LoadError(info.file, _reason(exc), info.id))
            return
        for dataset in mapping.datasets:
            compiled.conditions[dataset] = condition
            compiled.mappings[dataset] = mapping
    compiled.sigma = sigma_rule  # processed; its logsource (all filters need) is unchanged
    ruleset.rules.append(compiled)


def compile_rule_condition(rule: SigmaRule, mapping: Mapping) -> CompiledCondition:
    """Compile a processed rule's conditions (several conditions are OR-ed)."""
    from sigma.conditions import ConditionOR

    trees = [condition.parsed for condition in rule.detection.parsed_condition]
    tree = trees[0] if len(trees) == 1 else ConditionOR(trees)  # type: ignore[arg-type]
    return compile_condition(tree, mapping.resolver)


def rule_info(rule: SigmaRule | SigmaCorrelationRule, tenant: str | None) -> RuleInfo:
    """Metadata of a pySigma rule object."""
    tags = tuple(str(tag) for tag in rule.tags)
    tactics, techniques = attack_from_tags(list(tags))
    level = rule.level.name.lower() if rule.level is not None else ""
    logsource = getattr(rule, "logsource", None)
    kind = "rule" if isinstance(rule, SigmaRule) else str(rule.type.name).lower()
    return RuleInfo(
        id=str(rule.id) if rule.id is not None else (rule.name or f"{_file(rule)}:{rule.title}"),
        title=rule.title, level=level or "medium", severity=severity_of(level), kind=kind,
        status=rule.status.name.lower() if rule.status is not None else "",
        description=rule.description or "", references=tuple(rule.references or ()),
        falsepositives=tuple(str(f) for f in rule.falsepositives or ()), tags=tags,
        tactics=tactics, techniques=techniques, runbook=runbook_of(rule),
        product=logsource.product if logsource else None,
        category=logsource.category if logsource else None,
        service=logsource.service if logsource else None,
        file=_file(rule), tenant=tenant, name=rule.name, **_suppression(rule),
    )


def _suppression(rule: SigmaRule | SigmaCorrelationRule) -> dict[str, Any]:
    """`vigil.suppress_by` / `vigil.suppression` custom attributes (invalid ones ignored: the
    rule still loads with the defaults)."""
    vigil = rule.custom_attributes.get("vigil")
    if not isinstance(vigil, dict):
        return {}
    out: dict[str, Any] = {}
    fields = vigil.get("suppress_by")
    if isinstance(fields, str):
        out["suppress_by"] = (fields,)
    elif isinstance(fields, list):
        out["suppress_by"] = tuple(str(f) for f in fields)
    if vigil.get("suppression") is not None:
        with contextlib.suppress(ValueError):  # reported by _compile_rule
            out["suppression_seconds"] = parse_duration(vigil["suppression"]).total_seconds()
    return out


def runbook_of(rule: SigmaRule | SigmaCorrelationRule) -> str | None:
    """A custom `runbook:` attribute, else a reference written `runbook: <url>`."""
    custom = rule.custom_attributes.get("runbook")
    if isinstance(custom, str) and custom.strip():
        return custom.strip()
    for reference in rule.references or ():
        label, sep, rest = str(reference).partition(":")
        if sep and label.strip().lower() == "runbook" and rest.strip():
            return rest.strip()
    return None


def _set_emits(ruleset: RuleSet) -> None:
    generating: dict[int, set[str | None]] = {}
    for correlation in ruleset.correlations:
        owner = correlation.info.tenant
        for rule in correlation.base_rules:
            if correlation not in rule.correlations:
                rule.correlations.append(correlation)
            if correlation.generate:
                generating.setdefault(rule.position, set()).add(owner)
            else:
                rule.silenced.add(owner)
    # Any correlation with `generate: true` keeps the rule alerting for its owner (everyone, for
    # a global one). A global silencing still wins over a tenant's generate: a known limit.
    for position, owners in generating.items():
        rule = ruleset.rules[position]
        if None in owners:
            rule.silenced.clear()
        else:
            rule.silenced -= owners


def _attach_filter(ruleset: RuleSet, sigma_filter: SigmaFilter, tenant: str | None) -> None:
    targets = sigma_filter.filter.rules
    for rule in ruleset.rules:
        if tenant is not None and rule.info.tenant not in (None, tenant):
            continue
        assert rule.sigma is not None
        if rule.sigma.logsource not in sigma_filter.logsource:
            continue
        if not (isinstance(targets, str) or any(
                ref.reference in (rule.info.id, rule.info.name, rule.info.title)
                for ref in targets)):
            continue
        per_dataset = rule.exclusions.setdefault(tenant, {})
        for dataset, mapping in rule.mappings.items():
            probe = SigmaRule(
                title=f"filter {sigma_filter.title}", logsource=rule.sigma.logsource,
                detection=SigmaDetections(
                    detections=copy.deepcopy(sigma_filter.filter.detections),
                    condition=list(sigma_filter.filter.condition)),
            )
            try:
                mapping.apply(probe)
                condition = compile_rule_condition(probe, mapping)
            except (SigmaError, CompileError, ValueError, TypeError) as exc:
                ruleset.errors.append(LoadError(_file(sigma_filter), _reason(exc),
                                                str(sigma_filter.id or sigma_filter.title)))
                return
            per_dataset.setdefault(dataset, []).append(condition.predicate)


def _file(rule: Any) -> str:
    source = getattr(rule, "source", None)
    path = getattr(source, "path", None)
    return str(path) if path is not None else ""


def _label(rule: Any) -> str | None:
    if getattr(rule, "id", None) is not None:
        return str(rule.id)
    return getattr(rule, "title", None) or None


def _reason(exc: BaseException) -> str:
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__
