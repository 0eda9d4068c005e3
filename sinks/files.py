"""Sinks that buffer events per partition directory and commit each buffer as one file.

A buffer is flushed by rows, bytes or age, whichever comes first. A file is written under a
temporary name, fsynced and renamed (then the directory fsynced), so a reader never sees a
partial file; its name carries the queue epoch and offsets it holds. This module owns the
buffering, the flush and the isolation of failed writes (retry, poison rows, quarantine);
`sinks.commits` owns the committed files' names and the write-ahead manifest (its docstring
says how a replay writes each event once). Invariant relied on: the rows of a file belong to
one queue partition (its tenant).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import abstractmethod
from bisect import bisect_right
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, ClassVar

from core.errors import is_environmental
from core.events import OFFSET, Batch, Event
from core.sink import Sink, SinkContext
from core.telemetry import ComponentTelemetry
from sinks.buffer import FileBuffer, FlushPolicy, WriteFailure
from sinks.commits import (
    CommitManifest,
    ManifestEntry,
    committed_ranges,
    manifest_path,
    other_manifests,
    temporary_name,
)

log = logging.getLogger(__name__)

# A flush the disk (or another environmental cause) refused is tried again this much later.
RETRY_SECONDS = 1.0
# A failed commit the environment does not explain is retried after 0.5 s, 1 s, 2 s, ...
# up to 30 s; if no single row explains it either, it is quarantined after MAX_ATTEMPTS.
RETRY_BASE_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0
MAX_ATTEMPTS = 5


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
        self._failures: dict[Hashable, WriteFailure] = {}
        self._lock = asyncio.Lock()
        self.acknowledged = context.acknowledged
        self.manifest = CommitManifest(manifest_path(context.data_dir, sink_id, context.slot))
        # Replays: the queue's end per partition at open, the committed ranges per partition
        # key seen while replaying, and the events skipped as already committed.
        self.replay_end = context.replay_end
        self._committed: dict[Hashable, list[tuple[int, int]]] = {}
        self._skipped: dict[str, int] = {}
        self.storage = context.telemetry.storage
        self._prepared = True  # False while start's recovery waits for the disk
        self._retry_at = 0.0  # after a failed flush, no attempt before this (monotonic)

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

    @abstractmethod
    def trim_file(self, path: Path, keep: dict[str, int]) -> int:
        """Rewrite `path` keeping only rows whose `vigil.offset` is at or below `keep` of their
        partition (deleting the file when none remain); returns the rows removed."""

    def buffered(self, buffer: FileBuffer, start: int) -> None:
        """`buffer.events[start:]` just arrived in one batch (subclasses start converting them
        here, off the event loop)."""

    def event_size(self, event: Event) -> int:
        """A cheap estimate of an event's size for the byte bound."""
        message = event.get("message")
        return 200 + (len(message) if isinstance(message, str) else 0)

    async def start(self) -> None:
        """Undo what a previous run committed past the acknowledged position. A disk that
        refuses is counted and the start completes: the first flush tries again, and nothing
        is committed before it succeeds."""
        try:
            await self._prepare()
        except Exception as exc:
            self._prepared = False
            self.storage.failed(self.sink_id, exc)

    async def _prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.acknowledged is not None:
            if self.context.recover:
                await asyncio.to_thread(self.recover, self.acknowledged)
            else:
                self.manifest.entries = self.manifest.load()
        self._prepared = True

    def recover(self, acknowledged: Callable[[str], int]) -> None:
        """Trim files committed past the acknowledged position by a previous run."""
        trimmed = files = 0
        owns = self.context.owns
        # Another process's manifest may hold our partitions (`vigil.workers` changed).
        others = [entry for path in other_manifests(self.manifest.path)
                  for entry in CommitManifest(path).load()
                  if owns is None or all(owns(p) for p in entry.offsets)]
        for entry in [*self.manifest.load(), *others]:
            if entry.acknowledged_by(acknowledged):
                continue
            if owns is not None and not all(owns(p) for p in entry.offsets):
                continue
            path = self.root / entry.file
            temporary_name(path).unlink(missing_ok=True)
            if not path.exists():
                continue
            keep = {p: acknowledged(p) for p in entry.offsets}
            try:
                trimmed += self.trim_file(path, keep)
            except Exception:
                # The trimmed copy's temporary name is the file's own, renamed: remove it too.
                for tmp in path.parent.glob(f".{path.name.split('-', 1)[0]}-*.tmp"):
                    tmp.unlink(missing_ok=True)
                raise
            files += 1
        self.manifest.prune(acknowledged, force=True)
        if files:
            log.info("trimmed files committed past the acknowledged position; the replay "
                     "writes those rows again", extra={"sink": self.sink_id, "files": files,
                                                       "rows": trimmed})

    def write(self, batch: Batch) -> None:
        now = self.monotonic()
        buffers = self._buffers
        partition_key = self.partition_key
        end = self.replay_end(batch.partition) if self.replay_end is not None else 0
        # Names are trusted only once the start-up trim ran (it renames what it cuts); until
        # then events are kept and checked when it has (`_drop_committed`).
        replaying = batch.first_offset < end and self._prepared
        poison: list[tuple[Event, Exception]] = []
        # Each buffer this batch reaches, with where its events from this batch start.
        touched: dict[int, tuple[FileBuffer, int]] = {}
        last: FileBuffer | None = None
        for event in batch.events:
            try:
                key = partition_key(batch, event)
                if replaying and self._already_committed(key, event.get(OFFSET)):
                    self._skipped[batch.partition] = self._skipped.get(batch.partition, 0) + 1
                    continue
                buffer = buffers.get(key)
                if buffer is None:
                    directory, dataset = self.directory(key)
                    buffer = buffers[key] = FileBuffer(directory, dataset, batch.partition,
                                                       opened=now)
                size = self.event_size(event)
            except Exception as exc:  # this event cannot be placed: poison, not a stop
                poison.append((event, exc))
                continue
            if buffer is not last:
                touched.setdefault(id(buffer), (buffer, len(buffer.events)))
                last = buffer
            buffer.events.append(event)
            buffer.size += size
            span = buffer.offsets.get(batch.partition)
            if span is None:
                buffer.offsets[batch.partition] = [batch.first_offset, batch.last_offset]
            else:
                # Dead letters of poison rows arrive after newer batches: keep the whole span.
                span[0] = min(span[0], batch.first_offset)
                span[1] = max(span[1], batch.last_offset)
        for buffer, start in touched.values():
            self.buffered(buffer, start)
        if (replaying and batch.last_offset >= end - 1) or (
                not replaying and batch.partition in self._skipped):  # a gap ended the replay
            self._replay_done(batch.partition)
        if poison:
            self._reject(batch.partition, poison)

    def _already_committed(self, key: Hashable, offset: Any) -> bool:
        """Whether a replayed event's offset lies in a committed file of its directory."""
        ranges = self._committed.get(key)
        if ranges is None:
            ranges = self._committed[key] = self.committed_ranges(self.directory(key)[0])
        if not ranges or not isinstance(offset, int):
            return False
        index = bisect_right(ranges, (offset, float("inf"))) - 1
        return index >= 0 and ranges[index][0] <= offset <= ranges[index][1]

    def forget_committed(self) -> None:
        """Drop the committed ranges cached for replays (a queue about to replay a partition
        whose files another process, or this one, committed since)."""
        self._committed.clear()

    def committed_ranges(self, directory: Path) -> list[tuple[int, int]]:
        """The offsets committed files of this epoch in `directory` cover (sorted, disjoint)."""
        return committed_ranges(directory, self.epoch)

    def _drop_committed(self) -> None:
        """After a late start-up trim: drop buffered replayed events the names now cover."""
        if self.replay_end is None:
            return
        for key, buffer in list(self._buffers.items()):
            partition = next(iter(buffer.offsets))
            end = self.replay_end(partition)
            kept = [e for e in buffer.events if not (
                isinstance(offset := e.get(OFFSET), int) and offset < end
                and self._already_committed(key, offset))]
            if len(kept) != len(buffer.events):
                self._skipped[partition] = (self._skipped.get(partition, 0)
                                            + len(buffer.events) - len(kept))
                buffer.events = kept
                buffer.prepared.clear()
                if not kept:
                    del self._buffers[key]
        for partition in list(self._skipped):
            self._replay_done(partition)

    def _replay_done(self, partition: str) -> None:
        skipped = self._skipped.pop(partition, 0)
        if not self._skipped:
            self._committed.clear()
        if skipped:
            self.telemetry.replayed_already_committed.labels(self.sink_id, partition).inc(skipped)
            log.warning("replayed events already in committed files skipped, not written again",
                        extra={"sink": self.sink_id, "partition": partition, "events": skipped})

    def _reject(self, partition: str, poison: list[tuple[Event, Exception]],
                scope: str = "event") -> None:
        """Hand events this sink cannot store to the dead letter (raise without a handler)."""
        reject = self.context.reject
        if reject is None:
            raise poison[0][1]
        by_reason: dict[int, list[Event]] = {}
        reasons: dict[int, Exception] = {}
        for event, exc in poison:
            by_reason.setdefault(id(exc), []).append(event)
            reasons[id(exc)] = exc
        for key, events in by_reason.items():
            reject(partition, events, self.sink_id, reasons[key], scope)

    def find_poison(self, buffer: FileBuffer) -> list[tuple[Event, Exception]]:
        """After a buffer failed to convert: the events that fail on their own, with why
        (subclasses that convert events override this)."""
        return []

    def is_environmental(self, exc: BaseException) -> bool:
        """A failure of the disk or a service, retried, rather than of the events."""
        return is_environmental(exc)

    def _due(self, buffer: FileBuffer, now: float) -> bool:
        policy = self.flush_policy
        return (len(buffer.events) >= policy.max_rows or buffer.size >= policy.max_bytes
                or now - buffer.opened >= policy.max_seconds)

    def has_due(self) -> bool:
        now = self.monotonic()
        return any(self._due(b, now) for b in self._buffers.values())

    async def flush(self, *, force: bool = False) -> None:
        """Commit the buffers that are due (all with `force`). A write the disk refuses keeps
        its buffer (its offsets stay unacknowledged, so the journal's bound pauses the
        sources), is counted and logged once per episode, and is retried a second later."""
        await self._flush(force=force)

    async def _flush(self, *, force: bool = False, final: bool = False) -> None:
        """Commit due buffers (at stop, `final`: all, whatever their backoff). Poison rows are
        dead-lettered and the rest written; a failure that no single row explains is retried
        with backoff, and after MAX_ATTEMPTS (unless environmental) quarantined."""
        if not final and self._retry_at > self.monotonic():
            return  # a refused write is retried at most once a second, not once per batch
        try:
            if not self._prepared:
                await self._prepare()
                self._drop_committed()
            if self.acknowledged is not None:
                self.manifest.prune(self.acknowledged)
            await self._flush_due(force, final)
        except Exception as exc:
            if self.is_environmental(exc):
                self._retry_at = self.monotonic() + RETRY_SECONDS
            self.storage.failed(self.sink_id, exc)
            raise
        self._retry_at = 0.0
        self.storage.succeeded(self.sink_id)

    async def _flush_due(self, force: bool, final: bool) -> None:
        async with self._lock:
            now = self.monotonic()
            due = [k for k, b in self._buffers.items() if (force or self._due(b, now))
                   and (final or k not in self._failures or self._failures[k].retry_at <= now)]
            for key in due:
                buffer = self._buffers.pop(key)
                self._flushing[key] = buffer
                try:
                    await self._commit_or_isolate(key, buffer)
                except Exception as exc:
                    # Keep the events, in front of anything that arrived meanwhile.
                    newer = self._buffers.pop(key, None)
                    if newer is not None:
                        buffer.absorb(newer)
                    self._buffers[key] = buffer
                    self.metrics.error("write_failed", "flush")
                    if not self._failed(key, buffer, exc):
                        raise
                finally:
                    self._flushing.pop(key, None)

    async def _commit_or_isolate(self, key: Hashable, buffer: FileBuffer) -> None:
        try:
            await self._commit(buffer)
        except Exception as exc:
            if self.is_environmental(exc) or self.context.reject is None:
                raise
            # Row by row: off the loop (a large buffer takes seconds).
            poison = await asyncio.to_thread(self.find_poison, buffer)
            if not poison:
                raise
            ids = {id(event) for event, _ in poison}
            buffer.events = [e for e in buffer.events if id(e) not in ids]
            self._reject(self._partition_of(buffer), poison)
            if buffer.events:
                await self._commit(buffer)
        self._recovered(key)

    @staticmethod
    def _partition_of(buffer: FileBuffer) -> str:
        # The rows of a file belong to one queue partition (see the module docstring).
        return next(iter(buffer.offsets), buffer.tenant)

    def _failed(self, key: Hashable, buffer: FileBuffer, exc: Exception) -> bool:
        """Record a failed attempt: backoff, one log line per episode. True when the buffer was
        quarantined to the dead letter (the failure is handled), False to re-raise."""
        environmental = self.is_environmental(exc)
        failure = self._failures.get(key)
        if failure is None:
            failure = self._failures[key] = WriteFailure()
            if not environmental:  # the disk's failures are logged once by `self.storage`
                log.error("sink write failed; retrying with backoff (logged once until it "
                          "recovers)", exc_info=exc, extra={"sink": self.sink_id,
                                                           "directory": str(buffer.directory)})
        failure.attempts += 1
        # Space coming back is worth noticing at once; anything else backs off.
        failure.retry_at = self.monotonic() + (RETRY_SECONDS if environmental else min(
            RETRY_BASE_SECONDS * 2 ** (failure.attempts - 1), RETRY_MAX_SECONDS))
        if failure.attempts < MAX_ATTEMPTS or environmental or self.context.reject is None:
            return False
        # Not the environment, not one row: the same buffer keeps failing. Quarantine it so
        # the position advances instead of blocking the tenant for ever.
        self._buffers.pop(key, None)
        del self._failures[key]
        self._reject(self._partition_of(buffer), [(e, exc) for e in buffer.events], "batch")
        log.error("sink write kept failing; buffer quarantined to the dead letter",
                  extra={"sink": self.sink_id, "directory": str(buffer.directory),
                         "rows": len(buffer.events), "attempts": failure.attempts})
        return True

    def _recovered(self, key: Hashable) -> None:
        failure = self._failures.pop(key, None)
        if failure is not None:
            log.info("sink write recovered", extra={"sink": self.sink_id,
                                                    "attempts": failure.attempts})

    async def _commit(self, buffer: FileBuffer) -> None:
        first = min(span[0] for span in buffer.offsets.values())
        last = max(span[1] for span in buffer.offsets.values())
        target = buffer.directory / f"{self.epoch}-{first:012d}-{last:012d}.{self.extension}"
        if self.acknowledged is not None:
            entry = ManifestEntry(str(target.relative_to(self.root)),
                                  {p: list(span) for p, span in buffer.offsets.items()})
            await asyncio.to_thread(self.manifest.record, entry)
        try:
            size = await self.write_buffer(buffer, target)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary_name(target).unlink(missing_ok=True)
            raise
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

    def discard(self, partition: str) -> int:
        """Buffers of `partition` are dropped (a buffer is one directory, so one tenant's);
        one being written cannot be recalled and completes."""
        dropped = 0
        for key, buffer in list(self._buffers.items()):
            if partition in buffer.offsets:
                dropped += len(buffer.events)
                del self._buffers[key]
                self._failures.pop(key, None)
        return dropped

    def buffered_events(self) -> int:
        return sum(len(b.events) for b in self._buffers.values())

    async def stop(self) -> None:
        for partition in list(self._skipped):
            self._replay_done(partition)
        await self._flush(force=True, final=True)

    def health(self) -> dict[str, Any]:
        return {"path": str(self.root), "buffered_events": self.buffered_events(),
                "open_partitions": len(self._buffers)}
