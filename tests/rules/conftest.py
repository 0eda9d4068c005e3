"""Fixtures for the rules tests: write Sigma YAML to a directory and build an engine on it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from rules.engine import DetectionEngine
from rules.loader import RuleSource, load_rules

AUTH = {"product": "linux", "service": "auth"}


def write_rule(directory: Path, file: str, detection: dict[str, Any], *,
               logsource: dict[str, str] | None = None, **extra: Any) -> Path:
    """Write one Sigma rule file; `extra` adds top-level keys (id, level, tags, ...)."""
    rule = {"title": extra.pop("title", file), "id": extra.pop("id", None),
            "logsource": logsource or AUTH, "detection": detection, **extra}
    rule = {k: v for k, v in rule.items() if v is not None}
    path = directory / f"{file}.yml"
    path.write_text(yaml.safe_dump(rule, sort_keys=False), encoding="utf-8")
    return path


def write_docs(directory: Path, name: str, *docs: dict[str, Any]) -> Path:
    """Write several YAML documents (rules, correlations, filters) into one file."""
    path = directory / f"{name}.yml"
    path.write_text(yaml.safe_dump_all(list(docs), sort_keys=False), encoding="utf-8")
    return path


def engine_on(*sources: Path | RuleSource, **kwargs: Any) -> DetectionEngine:
    ruleset = load_rules(list(sources))
    assert not ruleset.errors, [str(e) for e in ruleset.errors]
    return DetectionEngine(ruleset, **kwargs)


@pytest.fixture
def sigma() -> SimpleNamespace:
    """`sigma.write_rule`, `sigma.write_docs`, `sigma.engine_on` (tests import nothing here)."""
    return SimpleNamespace(write_rule=write_rule, write_docs=write_docs, engine_on=engine_on,
                           AUTH=AUTH)
