"""Fixtures for the enrichment steps: real MaxMind databases built with mmdb-writer and a way
to build one step as the pipeline runner does (`config_errors` is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.registry import resolve
from core.step import Step, StepConfig, StepContext
from enrichers.geoip_testdb import write_example_databases


@pytest.fixture(scope="session")
def geoip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding Vigil-Test-City.mmdb and Vigil-Test-ASN.mmdb (read-only use)."""
    directory = tmp_path_factory.mktemp("geoip")
    write_example_databases(directory)
    return directory


def _make_step(conf_dir: Path, spec: dict[str, Any]) -> Step:
    cls = resolve("step", spec["type"])
    config: StepConfig = cls.config_model.model_validate(spec)
    context = StepContext(conf_dir, data_dir=conf_dir)
    assert config.semantic_errors(context) == []
    return cls(config, context)  # type: ignore[no-any-return]


@pytest.fixture
def make_step(tmp_path: Path) -> Callable[[dict[str, Any]], Any]:
    """Validate one step's config like the loader does (semantic checks included) and build it
    with conf.d = tmp_path."""
    return lambda spec: _make_step(tmp_path, spec)
