"""The pipeline worker: queue -> processing -> sinks -> acknowledgement.

A queue position is acknowledged only once every sink has committed every event before it, so
what the queue still holds after a crash is exactly what the sinks may not have.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from collector.events import DATASET, OFFSET, TENANT, Batch
from collector.queue import EventQueue
from sinks.base import Sink

log = logging.getLogger(__name__)

BatchProcessor = Callable[[Batch], list[Batch]]


class FloorHolder(Protocol):
    """Anything besides the sinks that must commit before a position is acknowledged (the
    detection stage's saved state)."""

    def uncommitted_floor(self, partition: str) -> int | None: ...


def split_by_dataset(batch: Batch) -> list[Batch]:
    """One batch per dataset, keeping the offsets of the batch they came from."""
    groups: dict[str, list] = {}
    for event in batch.events:
        dataset = event.get(DATASET) or "unknown"
        group = groups.get(dataset)
        if group is None:
            groups[dataset] = [event]
        else:
            group.append(event)
    return [Batch(batch.partition, events, batch.first_offset, batch.last_offset, dataset)
            for dataset, events in groups.items()]


class Worker:
    """Reads batches from the queue and drives them through processing and the sinks."""

    def __init__(self, queue: EventQueue, sinks: dict[str, Sink], batch_max_events: int,
                 processor: BatchProcessor = split_by_dataset) -> None:
        self.queue = queue
        self.sinks = sinks
        self.batch_max_events = batch_max_events
        self.processor = processor
        self.holders: list[FloorHolder] = []
        # Held while a batch is in the sinks; a reload swaps components only between batches.
        self.lock = asyncio.Lock()
        self._written: dict[str, int] = {}
        self._failing: set[str] = set()  # sinks whose last flush failed

    async def run(self) -> None:
        """Process until the queue is closed and drained."""
        while True:
            batch = await self.queue.read(self.batch_max_events)
            if batch is None:
                return
            async with self.lock:
                self.handle(batch)
                # A tenant at its bound waits for acknowledgements: commit now rather than at
                # the flush policy's next deadline (files get smaller, throughput does not drop).
                await self.flush(force=self.queue.over_bound(batch.partition))

    def handle(self, batch: Batch) -> None:
        # Each event carries its queue offset into the sinks: a replay after a crash trims what
        # was committed past the acknowledged position by it, and alerts point back with it.
        # Its tenant is the partition it was journaled in, whatever the record says.
        tenant = batch.partition
        for offset, event in enumerate(batch.events, batch.first_offset):
            event[OFFSET] = offset
            event[TENANT] = tenant
        for out in self.processor(batch):
            self.write_out(out)
        self._written[batch.partition] = batch.last_offset

    def write_out(self, batch: Batch) -> None:
        """Hand a processed batch to every sink that takes its kind."""
        for sink in self.sinks.values():
            if batch.kind in sink.accepts:
                sink.write(batch)

    async def flush(self, *, force: bool = False) -> None:
        """Commit what is due in every sink, then acknowledge what all of them committed."""
        for sink_id, sink in self.sinks.items():
            try:
                await sink.flush(force=force)
            except Exception as exc:
                if sink_id not in self._failing:
                    # Once per episode: a full disk fails every flush until space returns.
                    self._failing.add(sink_id)
                    log.error("sink flush failed; events stay buffered and unacknowledged, "
                              "retried at every flush", extra={"sink": sink_id,
                                                               "error": str(exc)[:300]})
            else:
                self._failing.discard(sink_id)
        self.acknowledge()

    def acknowledge(self) -> None:
        for partition, last in self._written.items():
            holders = [*self.sinks.values(), *self.holders]
            floors = [f for h in holders if (f := h.uncommitted_floor(partition)) is not None]
            self.queue.ack(partition, min(floors) - 1 if floors else last)
