"""Fixtures shared by every test package."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.daemon import VigilProcess

from collector.config import load_config
from core.errors import ConfigErrors

CONF_NAME = "30-pipelines.yaml"


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator:
    """Start real daemons on a conf.d and data dir under tmp_path; all are killed at the end."""
    started: list[VigilProcess] = []

    def start(conf_dir: Path | None = None, data_dir: Path | None = None) -> VigilProcess:
        process = VigilProcess(conf_dir or tmp_path / "conf.d", data_dir or tmp_path / "data")
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def write_conf(tmp_path: Path) -> Callable[[str], Path]:
    """Write a dedented conf.d file (30-pipelines.yaml) into tmp_path; returns its path."""

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
