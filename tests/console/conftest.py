"""The `console` fixture: a real daemon with users and alerts (see console.kit)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from console.kit import ConsoleDaemon, start_daemon


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleDaemon]:
    daemon = start_daemon(tmp_path_factory.mktemp("console"))
    try:
        yield daemon
    finally:
        daemon.process.stop()


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[ConsoleDaemon]:
    """A daemon of the test's own (settings the module's daemon does not have)."""
    daemon = start_daemon(tmp_path, idle="2s")
    try:
        yield daemon
    finally:
        daemon.process.stop()
