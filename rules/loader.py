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
import gc
import io
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.filters import SigmaFilter
from sigma.modifiers import SigmaWideModifier, modifier_mapping
from sigma.rule import SigmaDetections, SigmaRule

from core.config import parse_duration
from rules.cache import (
    Marks,
    RuleCache,
    content_digest,
    engine_fingerprint,
    record_outputs,
    replay_outputs,
)
from rules.compiler.condition import CompiledCondition, compile_condition
from rules.compiler.ir import CompileError
from rules.datasets import Mapping, shipped_mappings
from rules.match import RuleInfo, attack_from_tags, severity_of
from rules.new_value import NewValueSpec
from rules.placeholders import PlaceholderValues, placeholder_names, resolve
from rules.ruleset import (  # re-exported: callers import the load's types from here
    CompiledRule,
    InactiveRule,
    LoadError,
    RuleRequirement,
    RuleSet,
    RuleSource,
    placeholders_of,
)

__all__ = ["CompiledRule", "InactiveRule", "LoadError", "RuleRequirement", "RuleSet",
           "RuleSource", "load_rules", "read_sources", "rule_info"]

log = logging.getLogger(__name__)

# The Sigma specification names `utf16le` as an alias of `wide`; pySigma 2.0 only knows `wide`.
modifier_mapping.setdefault("utf16le", SigmaWideModifier)

RULE_SUFFIXES = (".yml", ".yaml")


def rule_files(path: Path) -> list[Path]:
    """Sigma files under a path (the path itself when it is a file)."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file())


Owned = tuple[Any, str | None]  # a pySigma rule/filter/correlation and its owner tenant

# libyaml's safe loader: the same documents as PyYAML's pure-Python one (which pySigma's
# `from_yaml` uses) at a fraction of the cost; reading YAML was most of a cold SigmaHQ load.
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_file(path: Path, tenant: str | None, data: bytes | None = None
              ) -> tuple[list[Owned], list[LoadError]]:
    """Parse one file (its `data` when already read); (sigma object, owner) pairs and errors."""
    objects: list[Owned] = []
    errors: list[LoadError] = []
    try:
        text = (data if data is not None else path.read_bytes()).decode("utf-8")
        collection = SigmaCollection.from_dicts(
            _yaml_documents(text, path), collect_errors=True,
            source=SigmaRuleLocation(path), collect_filters=True, resolve_references=False)
    except (SigmaError, ValueError, TypeError, UnicodeDecodeError) as exc:
        return objects, [LoadError(str(path), _reason(exc))]
    except Exception as exc:  # noqa: BLE001 - e.g. yaml.YAMLError, OSError: one bad file only
        return objects, [LoadError(str(path), _reason(exc))]
    attached = {id(e) for obj in [*collection.rules, *collection.filters] for e in obj.errors}
    for error in collection.errors:
        if id(error) not in attached:  # the collection repeats its rules' errors
            errors.append(LoadError(str(path), _reason(error)))
    for obj in [*collection.rules, *collection.filters]:
        if obj.errors:
            for error in obj.errors:
                errors.append(LoadError(str(path), _reason(error), _label(obj)))
            continue
        objects.append((obj, tenant))
    return objects, errors


def read_sources(sources: Iterable[RuleSource]) -> tuple[list[Owned], list[LoadError]]:
    """Parse every file; return (sigma object, owner) pairs and the errors found."""
    objects: list[Owned] = []
    errors: list[LoadError] = []
    for source in sources:
        if not source.path.exists():
            errors.append(LoadError(str(source.path), "no such file or directory"))
            continue
        for path in rule_files(source.path):
            found, failed = read_file(path, source.tenant)
            objects.extend(found)
            errors.extend(failed)
    return objects, errors


def _yaml_documents(text: str, path: Path) -> list[Any]:
    """The file's YAML documents; a file libyaml refuses is read again by PyYAML's own loader,
    so the error reported is the one pySigma's reader gives (with the file's name)."""
    try:
        return list(yaml.load_all(text, Loader=_YAML_LOADER))
    except yaml.YAMLError:
        stream = io.StringIO(text)
        stream.name = str(path)  # type: ignore[misc]  # PyYAML names the file in its errors
        return list(yaml.safe_load_all(stream))


@dataclass
class _Load:
    """One `load_rules` call: the rule set being built and what is resolved at the end."""

    ruleset: RuleSet
    placeholders: PlaceholderValues
    tenants: Sequence[str]
    cache: RuleCache | None
    context: str  # digest of the placeholder values and tenants (cache key of `|expand` files)
    read_errors: list[LoadError] = field(default_factory=list)
    deferred: list[Owned] = field(default_factory=list)  # correlations and filters


def load_rules(sources: Sequence[RuleSource | Path | str],
               mappings: Sequence[Mapping] | None = None, *,
               placeholders: PlaceholderValues | None = None,
               tenants: Sequence[str] = (), cache_dir: Path | None = None) -> RuleSet:
    """Load and compile rules from files/directories; errors are collected, never raised.
    `placeholders` (owner -> name -> values) resolve `|expand` placeholders; `tenants` are the
    tenants a global rule may be compiled for when only their own values resolve it;
    `cache_dir` holds the compiled-rule cache (rules/cache.py; None: compile everything)."""
    # A load allocates millions of long-lived objects and frees few: the cyclic collector's
    # passes over them cost more than the load itself, so it is paused for the load.
    with _collector_paused():
        return _load_rules(sources, mappings, placeholders, tenants, cache_dir)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _load_rules(sources: Sequence[RuleSource | Path | str], mappings: Sequence[Mapping] | None,
                placeholders: PlaceholderValues | None, tenants: Sequence[str],
                cache_dir: Path | None) -> RuleSet:
    normalised = [s if isinstance(s, RuleSource) else RuleSource(Path(s)) for s in sources]
    ruleset = RuleSet(mappings=list(mappings or shipped_mappings()))
    context = content_digest(orjson.dumps(
        [sorted((owner or "", sorted(values.items())) for owner, values in
                (placeholders or {}).items()), sorted(tenants)]))
    load = _Load(ruleset, placeholders or {}, tenants, _open_cache(cache_dir, ruleset), context)
    for source in normalised:
        if not source.path.exists():
            load.read_errors.append(LoadError(str(source.path), "no such file or directory"))
            continue
        for path in rule_files(source.path):
            _load_file(load, path, source.tenant)
    ruleset.errors[:0] = load.read_errors  # file errors first, then rule errors, as reported

    from rules.correlation.rule import CorrelationRule  # correlation imports the loader's types

    for obj, tenant in load.deferred:
        if isinstance(obj, SigmaCorrelationRule):
            try:
                correlation = CorrelationRule.build(obj, tenant, ruleset)
            except (SigmaError, CompileError, KeyError, ValueError) as exc:
                ruleset.errors.append(LoadError(_file(obj), _reason(exc), _label(obj)))
                continue
            ruleset.correlations.append(correlation)
    _set_emits(ruleset)

    for obj, tenant in load.deferred:
        if isinstance(obj, SigmaFilter):
            ruleset.filters += 1
            _attach_filter(ruleset, obj, tenant)
    for error in ruleset.errors:
        log.warning("sigma rule skipped", extra={"file": error.file, "rule": error.rule,
                                                  "reason": error.reason})
    if load.cache is not None:
        load.cache.save()
        ruleset.cache = load.cache.stats
    return ruleset


def _open_cache(directory: Path | None, ruleset: RuleSet) -> RuleCache | None:
    if directory is None or any(not m.digest for m in ruleset.mappings):
        return None  # mappings built in code have no content to key on
    return RuleCache(directory, engine_fingerprint(
        [(m.name, m.digest, m.datasets) for m in ruleset.mappings]))


def _load_file(load: _Load, path: Path, tenant: str | None) -> None:
    """Compile one file's rules (or take them from the cache); defer correlations and filters."""
    ruleset, cache = load.ruleset, load.cache
    data: bytes | None = None
    key = digest = ""
    if cache is not None:
        with contextlib.suppress(OSError):  # read_file reports it
            data = path.read_bytes()
        if data is not None:
            key, digest = RuleCache.key(path, tenant), content_digest(data)
            outputs = cache.lookup(key, digest, load.context)
            if outputs is not None:
                try:
                    replay_outputs(ruleset, outputs, load.read_errors)
                except (ValueError, TypeError, KeyError, AttributeError, re.error,
                        SigmaError) as exc:
                    cache.invalid_entry(key, _reason(exc))
                else:
                    cache.stats.hits += 1
                    return
    marks = Marks.of(ruleset, load.read_errors)
    objects, errors = read_file(path, tenant, data)
    load.read_errors.extend(errors)
    expands = False
    for obj, owner in objects:
        if not isinstance(obj, SigmaRule):
            load.deferred.append((obj, owner))
        elif placeholder_names(obj):
            expands = True
            _compile_placeholder_rule(ruleset, obj, owner, load.placeholders, load.tenants)
        else:
            _compile_rule(ruleset, obj, owner)
    if cache is None or data is None:
        return
    if any(not isinstance(obj, SigmaRule) for obj, _ in objects):
        cache.stats.uncached += 1  # resolved against the other files at every load
        return
    cache.stats.misses += 1
    cache.store(key, digest, load.context if expands else None,
                record_outputs(ruleset, marks, load.read_errors))


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
    compiled.logsource = sigma_rule.logsource  # unchanged by the mapping pipelines
    compiled.placeholders = placeholders_of(sigma_rule)  # those left unresolved (processed)
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
        if rule.logsource is None or rule.logsource not in sigma_filter.logsource:
            continue
        if not (isinstance(targets, str) or any(
                ref.reference in (rule.info.id, rule.info.name, rule.info.title)
                for ref in targets)):
            continue
        per_dataset = rule.exclusions.setdefault(tenant, {})
        for dataset, mapping in rule.mappings.items():
            probe = SigmaRule(
                title=f"filter {sigma_filter.title}", logsource=rule.logsource,
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
