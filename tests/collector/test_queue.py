"""The EventQueue contract (collector/queue.py), run against MemoryQueue and the journal under
every fsync policy, so both implementations keep the same semantics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from collector.journal import Journal
from collector.queue import MemoryQueue

JournalFactory = Callable[..., Journal]

POLICIES: dict[str, Any] = {"always": "always", "interval": {"interval_ms": 5}, "never": "never"}


@pytest.fixture(params=["memory", *[f"journal-{name}" for name in POLICIES]])
def make_queue(request: pytest.FixtureRequest, open_journal: JournalFactory
               ) -> Callable[[int], Any]:
    if request.param == "memory":
        return MemoryQueue
    policy = POLICIES[request.param.removeprefix("journal-")]
    return lambda max_events: open_journal(fsync=policy, max_events=max_events)


async def test_offsets_and_round_robin(make_queue: Callable[[int], Any]) -> None:
    queue = make_queue(100)
    assert queue.append("a", [{"n": 1}, {"n": 2}, {"n": 3}]) == 2
    assert queue.append("b", [{"n": 4}]) == 0
    first = await queue.read(2)
    second = await queue.read(2)
    third = await queue.read(2)
    assert (first.partition, first.first_offset, first.last_offset) == ("a", 0, 1)
    assert first.events == [{"n": 1}, {"n": 2}]
    assert (second.partition, second.first_offset) == ("b", 0)
    assert (third.partition, third.first_offset, third.last_offset) == ("a", 2, 2)
    assert queue.pending() == 4
    queue.ack("a", 1)
    assert queue.pending() == 2
    queue.ack("a", 1)  # repeated acks are harmless
    assert queue.pending() == 2
    queue.ack("a", 2)
    queue.ack("b", 0)
    assert queue.pending() == 0


async def test_backpressure_listener_called_when_drained(make_queue: Callable[[int], Any]
                                                         ) -> None:
    queue = make_queue(10)
    queue.append("a", [{}] * 10)
    assert queue.over_bound()
    resumed = []
    queue.add_capacity_listener(lambda: resumed.append(True))
    batch = await queue.read(5)
    assert not resumed  # read is not enough: the events are still in flight
    queue.ack("a", batch.last_offset)
    assert resumed == [True]
    assert not queue.over_bound()


async def test_close_drains_then_returns_none(make_queue: Callable[[int], Any]) -> None:
    queue = make_queue(10)
    queue.append("a", [{}])
    queue.close()
    assert (await queue.read(10)) is not None
    assert (await queue.read(10)) is None
    with pytest.raises(RuntimeError):
        queue.append("a", [{}])


async def test_wait_durable_then_read(make_queue: Callable[[int], Any]) -> None:
    queue = make_queue(100)
    last = queue.append("a", [{"n": i} for i in range(5)])
    await queue.wait_durable("a", last)
    batch = await queue.read(100)
    assert [e["n"] for e in batch.events] == [0, 1, 2, 3, 4]
    assert (batch.first_offset, batch.last_offset) == (0, 4)


async def test_ack_beyond_read_is_clamped(make_queue: Callable[[int], Any]) -> None:
    queue = make_queue(100)
    queue.append("a", [{}] * 4)
    batch = await queue.read(2)
    queue.ack("a", 3)  # positions not yet read cannot be acknowledged
    assert queue.pending() == 2
    assert batch.last_offset == 1
