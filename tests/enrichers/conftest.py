"""Fixtures for the enrichment steps: real MaxMind databases built with mmdb-writer, conf.d
files in tmp_path, and a way to build one step as the pipeline runner does."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from collector.config import load_config
from collector.errors import ConfigErrors
from collector.pipeline.step import Step, StepConfig, StepContext
from collector.registry import resolve
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


@pytest.fixture
def config_errors(tmp_path: Path) -> Callable[[str], list[str]]:
    """Every error `load_config` reports for tmp_path holding `text` as 30-pipelines.yaml."""

    def errors(text: str) -> list[str]:
        (tmp_path / "30-pipelines.yaml").write_text(textwrap.dedent(text).lstrip())
        with pytest.raises(ConfigErrors) as info:
            load_config(tmp_path)
        return [str(e) for e in info.value.errors]

    return errors
