"""Fixtures for journal tests: open journals under tmp_path and always release them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from collector.journal import FileLayer, Journal, QueueConfig
from collector.telemetry import Telemetry

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



@pytest.fixture
def drain() -> Callable[..., Any]:
    """drain(journal, ack=True, max_events=1000, expect=None) -> [(partition, offset, event)]"""
    return _drain


async def _drain(journal: Journal, *, ack: bool = True, max_events: int = 1000,
                expect: int | None = None) -> list[tuple[str, int, Any]]:
    """Read (and acknowledge) everything durable; returns (partition, offset, event)."""
    out: list[tuple[str, int, Any]] = []
    await journal.sync()
    while True:
        batch = journal.read_nowait(max_events)
        if batch is None:
            if expect is None or len(out) >= expect:
                return out
            batch = await journal.read(max_events)
            assert batch is not None
        out.extend((batch.partition, batch.first_offset + i, e)
                   for i, e in enumerate(batch.events))
        if ack:
            journal.ack(batch.partition, batch.last_offset)
