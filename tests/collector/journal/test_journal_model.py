"""A hypothesis state machine drives append / read / ack / clean restart / crash sequences
against the journal and checks every step against a plain in-memory model."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from collector.journal import Journal, QueueConfig

PARTITIONS = ("acme", "globex", "_quarantine")
BASE = datetime(2024, 1, 1, tzinfo=UTC)
# Checkpoints are written only by a clean close, so a crash returns exactly to that position.
CONFIG = QueueConfig(segment_bytes=64 * 1024, checkpoint_interval_ms=3_600_000)


class JournalModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.directory = Path(tempfile.mkdtemp(prefix="journal-model-"))
        self.journal = Journal(self.directory, CONFIG)
        self.events: dict[str, list[dict[str, Any]]] = {p: [] for p in PARTITIONS}
        self.read_next = dict.fromkeys(PARTITIONS, 0)
        self.acked = dict.fromkeys(PARTITIONS, -1)
        self.persisted = dict.fromkeys(PARTITIONS, -1)
        self.counter = 0

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    @rule(partition=st.sampled_from(PARTITIONS), count=st.integers(1, 40),
          big=st.booleans())
    def append(self, partition: str, count: int, big: bool) -> None:
        batch = []
        for _ in range(count):
            self.counter += 1
            batch.append({"n": self.counter, "@timestamp": BASE + timedelta(seconds=self.counter),
                          "message": "x" * (3000 if big else 20), "tags": [partition]})
        offset = self.journal.append(partition, [dict(e) for e in batch])
        self.events[partition].extend(batch)
        assert offset == len(self.events[partition]) - 1

    @rule(max_events=st.integers(1, 70))
    def read(self, max_events: int) -> None:
        self.run(self.journal.sync())
        batch = self.journal.read_nowait(max_events)
        unread = {p: len(self.events[p]) - self.read_next[p] for p in PARTITIONS}
        if batch is None:
            assert not any(unread.values())
            return
        p = batch.partition
        assert batch.first_offset == self.read_next[p]
        assert len(batch) == min(max_events, unread[p])
        assert batch.last_offset == batch.first_offset + len(batch) - 1
        assert batch.events == self.events[p][batch.first_offset:batch.last_offset + 1]
        self.read_next[p] = batch.last_offset + 1

    @rule(partition=st.sampled_from(PARTITIONS), back=st.integers(0, 30))
    def ack(self, partition: str, back: int) -> None:
        offset = self.read_next[partition] - 1 - back
        self.journal.ack(partition, offset)
        self.acked[partition] = max(self.acked[partition], offset)

    @rule()
    def restart(self) -> None:
        self.run(self.journal.aclose())
        self.journal = Journal(self.directory, CONFIG)
        self.persisted = dict(self.acked)
        self.read_next = {p: self.acked[p] + 1 for p in PARTITIONS}

    @precondition(lambda self: self.counter > 0)
    @rule()
    def crash(self) -> None:
        self.run(self.journal.sync())  # what the OS holds survives a killed process
        self.abandon()
        self.journal = Journal(self.directory, CONFIG)
        self.acked = dict(self.persisted)
        self.read_next = {p: self.acked[p] + 1 for p in PARTITIONS}

    @invariant()
    def pending_matches(self) -> None:
        for p in PARTITIONS:
            assert self.journal.pending(p) == len(self.events[p]) - self.acked[p] - 1
            assert self.journal.acked(p) == self.acked[p] or self.journal.acked(p) == -1 == \
                self.acked[p]

    def abandon(self) -> None:
        task = self.journal._task
        self.journal.abandon()
        if task is not None:  # let the cancelled background task finish on its loop
            self.run(asyncio.gather(task, return_exceptions=True))

    def teardown(self) -> None:
        self.abandon()
        self.loop.close()
        shutil.rmtree(self.directory, ignore_errors=True)


JournalModel.TestCase.settings = settings(
    max_examples=25, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
test_journal_against_model = JournalModel.TestCase
