"""Fixtures for collector tests: journals opened under tmp_path and always released (the queue
contract in test_queue.py and the journal's own tests in journal/)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from collector.journal import FileLayer, Journal, QueueConfig
from core.telemetry import Telemetry

JournalFactory = Callable[..., Journal]


@pytest.fixture
async def open_journal(tmp_path: Path) -> AsyncIterator[JournalFactory]:
    """open_journal(**QueueConfig fields, files=..., telemetry=..., max_events=...)"""
    opened: list[Journal] = []

    def factory(directory: Path | None = None, *, files: FileLayer | None = None,
                telemetry: Telemetry | None = None, max_events: int = 200_000,
                **config: Any) -> Journal:
        journal = Journal(directory or tmp_path / "journal", QueueConfig(**config),
                          max_events=max_events, telemetry=telemetry, files=files)
        opened.append(journal)
        return journal

    yield factory
    for journal in opened:
        if not journal._stopped:
            journal.abandon()
