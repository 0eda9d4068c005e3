"""Fixtures for step tests: write a conf.d in tmp_path, load it the way `vigil validate` does,
and build its pipelines the way the daemon does."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collector.config import load_config
from collector.config.models import ValidationContext
from collector.errors import ConfigErrors
from collector.pipeline.runner import PipelineSet, build_pipelines

NOW = datetime(2024, 5, 14, 9, 30, tzinfo=UTC)
CONF_NAME = "30-pipelines.yaml"


@pytest.fixture
def write_conf(tmp_path: Path) -> Callable[[str], Path]:
    """Write a dedented conf.d file into tmp_path; returns its path."""

    def write(text: str) -> Path:
        path = tmp_path / CONF_NAME
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    return write


@pytest.fixture
def config_errors(tmp_path: Path, write_conf: Callable[[str], Path]
                  ) -> Callable[[str], list[str]]:
    """Every error `load_config` reports for the given conf.d text, as printed."""

    def errors(text: str) -> list[str]:
        write_conf(text)
        with pytest.raises(ConfigErrors) as info:
            load_config(tmp_path)
        return [str(e) for e in info.value.errors]

    return errors


@pytest.fixture
def build(tmp_path: Path, write_conf: Callable[[str], Path]) -> Callable[[str], PipelineSet]:
    """Load a conf.d text and build its pipelines (clock fixed at NOW)."""

    def make(text: str) -> PipelineSet:
        write_conf(text)
        config = load_config(tmp_path)
        return build_pipelines(config.pipelines.items(), ValidationContext(tmp_path),
                               data_dir=tmp_path, clock=lambda: NOW)

    return make
