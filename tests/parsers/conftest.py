"""Fixtures for step tests: build the pipelines of a conf.d text the way the daemon does
(`write_conf` and `config_errors` are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collector.config import load_config
from collector.pipeline.runner import PipelineSet, build_pipelines
from core.config import ValidationContext

NOW = datetime(2024, 5, 14, 9, 30, tzinfo=UTC)


@pytest.fixture
def build(tmp_path: Path, write_conf: Callable[[str], Path]) -> Callable[[str], PipelineSet]:
    """Load a conf.d text and build its pipelines (clock fixed at NOW)."""

    def make(text: str) -> PipelineSet:
        write_conf(text)
        config = load_config(tmp_path)
        return build_pipelines(config.pipelines.items(), ValidationContext(tmp_path),
                               data_dir=tmp_path, clock=lambda: NOW)

    return make
