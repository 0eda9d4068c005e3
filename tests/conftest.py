"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.daemon import VigilProcess


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
