"""MemoryQueue: offsets per partition, round-robin reads, acknowledgement and backpressure."""

from __future__ import annotations

import pytest

from collector.queue import MemoryQueue


async def test_offsets_and_round_robin() -> None:
    queue = MemoryQueue(100)
    assert queue.append("a", [{"n": 1}, {"n": 2}, {"n": 3}]) == 2
    assert queue.append("b", [{"n": 4}]) == 0
    first = await queue.read(2)
    second = await queue.read(2)
    third = await queue.read(2)
    assert (first.partition, first.first_offset, first.last_offset) == ("a", 0, 1)
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


async def test_backpressure_listener_called_when_drained() -> None:
    queue = MemoryQueue(10)
    queue.append("a", [{}] * 10)
    assert queue.over_bound()
    resumed = []
    queue.add_capacity_listener(lambda: resumed.append(True))
    batch = await queue.read(5)
    assert not resumed  # read is not enough: the events are still in flight
    queue.ack("a", batch.last_offset)
    assert resumed == [True]
    assert not queue.over_bound()


async def test_close_drains_then_returns_none() -> None:
    queue = MemoryQueue(10)
    queue.append("a", [{}])
    queue.close()
    assert (await queue.read(10)) is not None
    assert (await queue.read(10)) is None
    with pytest.raises(RuntimeError):
        queue.append("a", [{}])
