"""The pipeline worker: queue -> processing -> sinks -> acknowledgement.

A queue position is acknowledged only once every sink has committed every event before it, so
what the queue still holds after a crash is exactly what the sinks may not have.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from collector.poison import PoisonReport, offset_span, poison_record
from collector.queue import EventQueue
from core.events import DATASET, DEAD_LETTERS, OFFSET, TENANT, Batch, Event
from core.sink import Sink
from core.telemetry import Telemetry

log = logging.getLogger(__name__)

BatchProcessor = Callable[[Batch], list[Batch]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


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
                 processor: BatchProcessor = split_by_dataset, *,
                 telemetry: Telemetry | None = None,
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self.queue = queue
        self.sinks = sinks
        self.batch_max_events = batch_max_events
        self.processor = processor
        self.telemetry = telemetry
        self.clock = clock
        self.report = PoisonReport(telemetry)
        self.holders: list[FloorHolder] = []
        # Held while a batch is in the sinks; a reload swaps components only between batches.
        self.lock = asyncio.Lock()
        self._written: dict[str, int] = {}
        # Set by a cluster worker: called before every commit, it discards what is no longer
        # this process's to commit (`discard`).
        self.fence: Callable[[], None] | None = None

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
        try:
            outs = self.processor(batch)
        except Exception:
            outs = self._process_each(batch)
        for out in outs:
            self.write_out(out)
        self._written[batch.partition] = batch.last_offset

    def _process_each(self, batch: Batch) -> list[Batch]:
        """The processor raised on a batch (outside the stages' own per-event handling): each
        event alone; the ones it raises on again go to the dead letter."""
        outs: list[Batch] = []
        for event in batch.events:
            offset = event[OFFSET]
            try:
                outs.extend(self.processor(Batch(batch.partition, [event], offset, offset,
                                                 batch.dataset, batch.kind)))
            except Exception as exc:
                self.reject(batch.partition, [event], "worker", exc)
        return outs

    def write_out(self, batch: Batch) -> None:
        """Hand a processed batch to every sink that takes its kind."""
        for sink_id, sink in self.sinks.items():
            if batch.kind in sink.accepts:
                try:
                    sink.write(batch)
                except Exception as exc:
                    if batch.kind == DEAD_LETTERS:  # nowhere left to send it: keep it queued
                        raise
                    self.reject(batch.partition, batch.events, sink_id, exc, "batch")

    def reject(self, partition: str, events: list[Event], component: str, exc: BaseException,
               scope: str = "event") -> None:
        """Send events a component raised on to the dead letter with the reason (never back to
        `component`); their offsets stay unacknowledged until the dead letter commits."""
        if not events:
            return
        now = self.clock()
        records = [poison_record(e, partition, component, exc, now) for e in events]
        first, last = offset_span(events, (0, 0))
        self.report(component, partition, len(events), exc, scope)
        if self.telemetry is not None:
            self.telemetry.dead_letters(partition, len(events))
        dead = Batch(partition, records, first, last, None, kind=DEAD_LETTERS)
        for sink_id, sink in self.sinks.items():
            if DEAD_LETTERS in sink.accepts and sink_id != component:
                sink.write(dead)

    async def flush(self, *, force: bool = False) -> None:
        """Commit what is due in every sink, then acknowledge what all of them committed."""
        if self.fence is not None:
            self.fence()
        for sink_id, sink in self.sinks.items():
            try:
                await sink.flush(force=force)
            except Exception:
                # The sink logs its own failures once per episode and retries with backoff.
                log.debug("sink flush failed; events stay buffered and unacknowledged",
                          extra={"sink": sink_id})
        self.acknowledge()

    def discard(self, partition: str) -> int:
        """What the sinks hold of `partition` is dropped, not committed, and nothing more of it
        is acknowledged here: the partition is no longer this process's (a cluster worker's
        shard whose lease lapsed; the stream gives its records to the next owner)."""
        self._written.pop(partition, None)
        return sum(sink.discard(partition) for sink in self.sinks.values())

    def acknowledge(self) -> None:
        for partition, last in self._written.items():
            holders = [*self.sinks.values(), *self.holders]
            floors = [f for h in holders if (f := h.uncommitted_floor(partition)) is not None]
            self.queue.ack(partition, min(floors) - 1 if floors else last)
