"""The `console` fixture: a real daemon with users and alerts (see console.kit); `browser`: a
headless Chromium on the module's `daemon` fixture (see console.browser)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from console.browser import ARTEFACTS, Chromium
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


@pytest.fixture
def browser(daemon: ConsoleDaemon, request: pytest.FixtureRequest) -> Iterator[Chromium]:
    # Kept out of tmp_path: pytest removes old temporary directories, these are for people.
    window = Chromium(daemon, ARTEFACTS / request.node.name)
    try:
        yield window
    finally:
        window.close()
