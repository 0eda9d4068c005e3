"""Which Sigma logsources each dataset serves and how Sigma field names map to its event fields.

Each mapping is a pySigma processing pipeline in `rules/mappings/*.yml` (package data). Its
processing items whose id starts with `logsource_` declare the served logsources (their rule
conditions) and may add the conditions that select them inside the dataset (Sysmon channel and
event ids); its `vars.vigil` block names the datasets it serves, the keyword fields, fallback
prefixes (`winlog.event_data.X` falling back to `winlog.user_data.X`) and weak fields.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml
from sigma.correlations import SigmaCorrelationRule
from sigma.processing.conditions import rule_conditions
from sigma.processing.conditions.base import RuleProcessingCondition
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaLogSource, SigmaRule

from rules.compiler.fields import DEFAULT_WEAK_SHARE, FieldResolver

MAPPINGS_DIR = Path(__file__).parent / "mappings"
LOGSOURCE_PREFIX = "logsource_"


@dataclass
class ExactLogsourceCondition(RuleProcessingCondition):
    """`{type: logsource_exact, product: linux}`: the rule's logsource is exactly this one (an
    unnamed category or service must be absent from the rule too). pySigma's `logsource`
    condition ignores what it does not name, so `product: linux` alone would also claim every
    `linux` + `process_creation` rule; keyword rules written for "any log of the product" need
    the exact form."""

    category: str | None = None
    product: str | None = None
    service: str | None = None

    def match(self, rule: SigmaRule | SigmaCorrelationRule) -> bool:
        logsource = getattr(rule, "logsource", None)
        if logsource is None:
            return False
        return (logsource.category, logsource.product, logsource.service) == (
            self.category, self.product, self.service)


# pySigma types its registry as a read-only Mapping; it is a dict that plugins extend.
cast(dict[str, type[RuleProcessingCondition]], rule_conditions).setdefault(
    "logsource_exact", ExactLogsourceCondition)


@dataclass
class Mapping:
    """One processing pipeline and the datasets it serves."""

    name: str
    pipeline: ProcessingPipeline
    datasets: tuple[str, ...]
    resolver: FieldResolver
    digest: str = ""  # sha256 of the pipeline file ("": built in code; the rule cache is off)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _field_cache: dict[tuple[Any, ...], tuple[str, ...]] = field(default_factory=dict, repr=False)

    def serves(self, rule: SigmaRule) -> bool:
        """True when a `logsource_` item of this pipeline matches the rule's logsource."""
        return any(
            item.identifier and item.identifier.startswith(LOGSOURCE_PREFIX)
            and item.match_rule_conditions(rule)
            for item in self.pipeline.items
        )

    def apply(self, rule: SigmaRule) -> SigmaRule:
        """Apply the pipeline to `rule` in place (pipelines keep per-run state: serialised)."""
        with self._lock:
            self.pipeline.apply(rule)
        return rule

    def map_field(self, sigma_field: str, logsource: SigmaLogSource) -> tuple[str, ...]:
        """Event field names a Sigma field of a rule's logsource maps to (group-by, aliases)."""
        key = (sigma_field, logsource.product, logsource.category, logsource.service)
        cached = self._field_cache.get(key)
        if cached is not None:
            return cached
        probe = SigmaRule.from_dict({
            "title": "field probe",
            "logsource": {k: v for k, v in (("product", key[1]), ("category", key[2]),
                                              ("service", key[3])) if v},
            "detection": {"probe": {sigma_field: "x"}, "condition": "probe"},
        })
        self.apply(probe)
        names = tuple(_fields_of(probe.detection.detections["probe"]))
        mapped: tuple[str, ...] = ()
        for name in names:
            mapped += self.resolver.keys(name)
        self._field_cache[key] = mapped or (sigma_field,)
        return self._field_cache[key]


def _weak_fields(value: Any) -> dict[str, float]:
    """`weak_fields` as a list (each passing most events) or a map field -> share of events."""
    if isinstance(value, dict):
        return {str(k): float(v) for k, v in value.items()}
    return {str(k): DEFAULT_WEAK_SHARE for k in value or ()}


def _fields_of(detection: SigmaDetection) -> Iterable[str]:
    for item in detection.detection_items:
        if isinstance(item, SigmaDetection):
            yield from _fields_of(item)
        elif isinstance(item, SigmaDetectionItem) and item.field:
            yield item.field


def load_mapping(path: Path) -> Mapping:
    """Load one mapping pipeline file."""
    data = path.read_bytes()
    # libyaml's safe loader (pySigma's from_yaml uses the pure-Python one): a faster start.
    pipeline = ProcessingPipeline.from_dict(
        yaml.load(data.decode("utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    meta = (pipeline.vars or {}).get("vigil", {})
    fallback = tuple((str(k), str(v)) for k, v in (meta.get("fallback") or {}).items())
    resolver = FieldResolver(
        keyword_fields=tuple(meta.get("keyword_fields") or ("message",)),
        fallback=fallback,
        weak_fields=_weak_fields(meta.get("weak_fields")),
    )
    datasets = tuple(meta.get("datasets") or (path.stem,))
    return Mapping(name=path.stem, pipeline=pipeline, datasets=datasets, resolver=resolver,
                   digest=hashlib.sha256(data).hexdigest())


def shipped_mappings() -> list[Mapping]:
    """The mappings shipped with Vigil, loaded fresh (each holds its own pipeline state)."""
    return [load_mapping(path) for path in sorted(MAPPINGS_DIR.glob("*.yml"))]


def dataset_names(mappings: Iterable[Mapping]) -> list[str]:
    """Every dataset served by the given mappings."""
    return sorted({name for m in mappings for name in m.datasets})
