"""Fixtures for journal tests: `drain` (`open_journal` is in tests/collector/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from collector.journal import Journal


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
