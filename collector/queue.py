"""The queue between sources and pipeline workers, partitioned by tenant.

`EventQueue` is the interface the durable journal implements later: append per partition,
read a batch, acknowledge a position once every sink has committed what precedes it.
`MemoryQueue` is the in-memory implementation: bounded, with backpressure listeners.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from core.events import Batch, Event


class EventQueue(Protocol):
    """What sources and workers rely on; the journal provides the same methods."""

    epoch: str  # names the offset space: offsets are unique (and stable) within one epoch

    def append(self, partition: str, events: list[Event],
               shared: Mapping[str, Any] | None = None) -> int:
        """Add events to a partition, each with the fields of `shared` (what they all have in
        common, the source's provenance stamps: the journal stores it once per append);
        returns the offset of the last one."""

    async def read(self, max_events: int) -> Batch | None:
        """The next batch of one partition, waiting for data; None once closed and empty."""

    async def wait_durable(self, partition: str, offset: int) -> None:
        """Return once everything appended to `partition` up to `offset` would survive a crash
        (the journal's fsync policy); sources acknowledge their peers only after this."""

    def ack(self, partition: str, offset: int) -> None:
        """Every event of `partition` up to `offset` (inclusive) is committed by every sink."""

    def over_bound(self, partition: str | None = None) -> bool:
        """True while sources should stop reading (backpressure): the queue as a whole, or with
        `partition`, that tenant's share (one flooding tenant is held back alone)."""

    def add_capacity_listener(self, callback: Callable[[], None],
                              partition: str | None = None,
                              until: Callable[[], bool] | None = None) -> None:
        """Call `callback` once when the queue (or `partition`) drops back under its bound and
        `until()`, when given, holds."""

    def pending(self) -> int:
        """Events appended but not yet acknowledged."""

    def close(self) -> None:
        """No more appends; readers drain what is left and then get None."""


class MemoryQueue:
    """In-memory, bounded queue; partitions are read round-robin so no tenant starves."""

    def __init__(self, max_events: int, *, resume_ratio: float = 0.8) -> None:
        # Offsets restart with the process, so each run is its own epoch.
        self.epoch = f"m{time.time_ns() // 1_000_000:x}{os.getpid():x}"
        self.max_events = max_events
        self._resume_at = int(max_events * resume_ratio)
        self._queued: dict[str, deque[Event]] = {}
        self._next_offset: dict[str, int] = {}
        self._read_offset: dict[str, int] = {}
        self._acked: dict[str, int] = {}
        self._order: deque[str] = deque()
        self._queued_count = 0
        self._in_flight = 0
        self._wakeup = asyncio.Event()
        self._listeners: list[tuple[Callable[[], None], Callable[[], bool] | None]] = []
        self._closed = False

    def append(self, partition: str, events: list[Event],
               shared: Mapping[str, Any] | None = None) -> int:
        if self._closed:
            raise RuntimeError("queue is closed")
        if shared:
            for event in events:
                event.update(shared)
        queued = self._queued.get(partition)
        if queued is None:
            queued = self._queued[partition] = deque()
            self._next_offset[partition] = 0
            self._read_offset[partition] = 0
            self._acked[partition] = -1
            self._order.append(partition)
        queued.extend(events)
        self._next_offset[partition] += len(events)
        self._queued_count += len(events)
        self._wakeup.set()
        return self._next_offset[partition] - 1

    async def read(self, max_events: int) -> Batch | None:
        while True:
            batch = self._take(max_events)
            if batch is not None:
                return batch
            if self._closed:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()

    def read_nowait(self, max_events: int) -> Batch | None:
        """The next batch if one is queued (offline runs drain the queue without a loop)."""
        return self._take(max_events)

    def _take(self, max_events: int) -> Batch | None:
        for _ in range(len(self._order)):
            partition = self._order[0]
            self._order.rotate(-1)
            queued = self._queued[partition]
            if not queued:
                continue
            n = min(max_events, len(queued))
            events = [queued.popleft() for _ in range(n)]
            first = self._read_offset[partition]
            self._read_offset[partition] = first + n
            self._queued_count -= n
            self._in_flight += n
            return Batch(partition, events, first, first + n - 1)
        return None

    async def wait_durable(self, partition: str, offset: int) -> None:
        # Memory is never durable; there is nothing to wait for. The journal waits for fsync.
        return None

    def ack(self, partition: str, offset: int) -> None:
        previous = self._acked.get(partition, -1)
        if offset <= previous:
            return
        offset = min(offset, self._read_offset[partition] - 1)
        self._in_flight -= offset - previous
        self._acked[partition] = offset
        self._notify_capacity()

    def over_bound(self, partition: str | None = None) -> bool:
        # One bound for everything: per-tenant bounds are the journal's.
        return self.pending() >= self.max_events

    def set_bound(self, max_events: int, *, resume_ratio: float = 0.8) -> None:
        self.max_events = max_events
        self._resume_at = int(max_events * resume_ratio)
        self._notify_capacity()

    def add_capacity_listener(self, callback: Callable[[], None],
                              partition: str | None = None,
                              until: Callable[[], bool] | None = None) -> None:
        self._listeners.append((callback, until))
        self._notify_capacity()

    def _notify_capacity(self) -> None:
        if self._listeners and self.pending() <= self._resume_at:
            listeners, self._listeners = self._listeners, []
            for callback, until in listeners:
                if until is None or until():
                    callback()
                else:
                    self._listeners.append((callback, until))

    def pending(self) -> int:
        return self._queued_count + self._in_flight

    def queued(self) -> int:
        return self._queued_count

    def close(self) -> None:
        self._closed = True
        self._wakeup.set()
