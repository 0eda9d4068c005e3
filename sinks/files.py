"""Sinks that buffer events per partition directory and commit each buffer as one file.

A buffer is flushed by rows, bytes or age, whichever comes first. A file is written under a
temporary name, fsynced and renamed (then the directory fsynced), so a reader never sees a
partial file; its name carries the queue epoch and offsets it holds, so a batch replayed after a
crash rewrites the same file instead of adding a second one.
"""

from __future__ import annotations

import asyncio
import logging
import os
from abc import abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from collector.config.models import StrictModel
from collector.events import TENANT, Batch, Event
from collector.telemetry import ComponentTelemetry
from sinks.base import Sink, SinkContext

log = logging.getLogger(__name__)


class FlushPolicy(StrictModel):
    max_rows: int = Field(50_000, gt=0, description="flush a partition buffer at this many rows")
    max_bytes: int = Field(64 * 1024 * 1024, gt=0, description="... or this many (estimated) bytes")
    max_seconds: float = Field(10.0, gt=0, description="... or when its oldest event is this old")


@dataclass
class FileBuffer:
    """Events bound for one partition directory, with the queue offsets they came from."""

    directory: Path
    dataset: str
    tenant: str
    events: list[Event] = field(default_factory=list)
    offsets: dict[str, list[int]] = field(default_factory=dict)  # partition -> [first, last]
    size: int = 0
    opened: float = 0.0

    def absorb(self, newer: FileBuffer) -> None:
        """Take a newer buffer's events after ours (a failed write is retried with both)."""
        self.events.extend(newer.events)
        self.size += newer.size
        for partition, (first, last) in newer.offsets.items():
            self.offsets.setdefault(partition, [first, last])[1] = last


def commit_file(tmp: Path, target: Path) -> int:
    """fsync `tmp`, rename it to `target`, fsync the directory; returns the file size."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target.stat().st_size


def temporary_name(target: Path) -> Path:
    """Hidden, so readers globbing `*.parquet` / `*.jsonl` never pick a file being written."""
    return target.with_name(f".{target.name}.tmp")


class PartitionedFileSink(Sink):
    """Buffering, flush policy and acknowledgement bookkeeping; subclasses choose the directory
    of an event and write the file."""

    extension: ClassVar[str]

    def __init__(self, sink_id: str, config: Any, context: SinkContext, root: Path,
                 flush: FlushPolicy) -> None:
        super().__init__(sink_id, config, context)
        self.root = root
        self.flush_policy = flush
        self.epoch = context.epoch
        self.telemetry = context.telemetry
        self.metrics: ComponentTelemetry = self.telemetry.component(sink_id, "sink", config.type)
        self.monotonic = context.monotonic
        self._buffers: dict[Hashable, FileBuffer] = {}
        self._flushing: dict[Hashable, FileBuffer] = {}
        self._lock = asyncio.Lock()

    @abstractmethod
    def partition_key(self, batch: Batch, event: Event) -> Hashable:
        """A cheap key naming the partition directory of `event` (computed per event)."""

    @abstractmethod
    def directory(self, key: Any) -> tuple[Path, str]:
        """The directory a partition key names and the dataset it is counted under (computed
        once per buffer: building paths per event cost a quarter of the daemon's time)."""

    @abstractmethod
    async def write_buffer(self, buffer: FileBuffer, target: Path) -> int:
        """Write the buffer's events to `target` atomically; returns the file size."""

    def event_size(self, event: Event) -> int:
        """A cheap estimate of an event's size for the byte bound."""
        message = event.get("message")
        return 200 + (len(message) if isinstance(message, str) else 0)

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def write(self, batch: Batch) -> None:
        now = self.monotonic()
        buffers = self._buffers
        partition_key = self.partition_key
        for event in batch.events:
            key = partition_key(batch, event)
            buffer = buffers.get(key)
            if buffer is None:
                directory, dataset = self.directory(key)
                tenant = event.get(TENANT) or batch.partition
                buffer = buffers[key] = FileBuffer(directory, dataset, tenant, opened=now)
            buffer.events.append(event)
            buffer.size += self.event_size(event)
            span = buffer.offsets.get(batch.partition)
            if span is None:
                buffer.offsets[batch.partition] = [batch.first_offset, batch.last_offset]
            else:
                span[1] = batch.last_offset

    def _due(self, buffer: FileBuffer, now: float) -> bool:
        policy = self.flush_policy
        return (len(buffer.events) >= policy.max_rows or buffer.size >= policy.max_bytes
                or now - buffer.opened >= policy.max_seconds)

    def has_due(self) -> bool:
        now = self.monotonic()
        return any(self._due(b, now) for b in self._buffers.values())

    async def flush(self, *, force: bool = False) -> None:
        async with self._lock:
            now = self.monotonic()
            due = [k for k, b in self._buffers.items() if force or self._due(b, now)]
            for key in due:
                buffer = self._buffers.pop(key)
                self._flushing[key] = buffer
                try:
                    await self._commit(buffer)
                except Exception:
                    # Keep the events, in front of anything that arrived meanwhile.
                    newer = self._buffers.pop(key, None)
                    if newer is not None:
                        buffer.absorb(newer)
                    self._buffers[key] = buffer
                    self.metrics.error("write_failed", "flush")
                    log.exception("sink write failed; will retry",
                                  extra={"sink": self.sink_id,
                                         "directory": str(buffer.directory)})
                    raise
                finally:
                    self._flushing.pop(key, None)

    async def _commit(self, buffer: FileBuffer) -> None:
        first = min(span[0] for span in buffer.offsets.values())
        last = max(span[1] for span in buffer.offsets.values())
        target = buffer.directory / f"{self.epoch}-{first:012d}-{last:012d}.{self.extension}"
        size = await self.write_buffer(buffer, target)
        self.committed(buffer, size)
        self.metrics.sent(len(buffer.events), buffer.tenant)
        log.debug("file written", extra={"sink": self.sink_id, "file": str(target),
                                         "rows": len(buffer.events)})

    def committed(self, buffer: FileBuffer, size: int) -> None:
        """Count a committed file (subclasses add their own metrics)."""

    def uncommitted_floor(self, partition: str) -> int | None:
        floors = [b.offsets[partition][0] for group in (self._buffers, self._flushing)
                  for b in group.values() if partition in b.offsets]
        return min(floors) if floors else None

    def buffered_events(self) -> int:
        return sum(len(b.events) for b in self._buffers.values())

    async def stop(self) -> None:
        await self.flush(force=True)

    def health(self) -> dict[str, Any]:
        return {"path": str(self.root), "buffered_events": self.buffered_events(),
                "open_partitions": len(self._buffers)}
