"""The durable `EventQueue`: per-partition segment files, fsync policy, replay after restart.

Appends are plain `os.write` calls on the event loop (a killed process loses nothing the OS
has); fsync, checkpoints and segment deletion run on one I/O thread in background rounds
(`rounds.py`), which group-commit every append made since the previous round. Readers see only
durable records, so no sink ever holds an event the journal could lose.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from collector.journal.config import QueueConfig
from collector.journal.errors import (
    JournalClosedError,
    JournalError,
    JournalLockedError,
    JournalWriteError,
)
from collector.journal.files import FileLayer
from collector.journal.handoff import HandOff
from collector.journal.layout import (
    CHECKPOINT_FILE,
    EPOCH_FILE,
    LOCK_FILE,
    PARTITION_RE,
    partition_dirs,
    read_checkpoints,
)
from collector.journal.partition import Partition
from collector.journal.rounds import BackgroundRounds
from collector.journal.segment import Damage
from collector.journal.sync import write_error
from core.events import Batch, Event
from core.telemetry import Telemetry

log = logging.getLogger(__name__)


class Journal(BackgroundRounds, HandOff):
    """Implements `collector.queue.EventQueue` on disk; see the module docstring."""

    def __init__(self, directory: Path, config: QueueConfig | None = None, *,
                 max_events: int = 200_000, telemetry: Telemetry | None = None,
                 files: FileLayer | None = None) -> None:
        self.directory = Path(directory)
        self.config = config or QueueConfig()
        self.files = files or FileLayer()
        self.telemetry = telemetry or Telemetry()
        self.files.mkdir(self.directory)
        lock_fd = self.files.lock(self.directory / LOCK_FILE)
        if lock_fd is None:
            raise JournalLockedError(self.directory)
        self._lock_fd: int | None = lock_fd
        self._init_rounds()
        self.max_events = self.max_bytes = self.partition_max_events = 0
        self.partition_max_bytes = 0
        self.resume_ratio = 0.8
        self.reconfigure(self.config, max_events)
        self.epoch = ""
        self._partitions: dict[str, Partition] = {}
        self._order: deque[str] = deque()
        self._listeners: list[tuple[str | None, Callable[[], None],
                                    Callable[[], bool] | None]] = []
        self._closed = False
        self._stopping = False
        self._stopped = False
        self.damage: list[Damage] = []
        self._opened_end: dict[str, int] = {}
        self._epoch_pending = False  # the epoch file could not be written at open
        # A cluster's collector sets it: `wait_durable` then also waits for the hand-off
        # downstream (JetStream storing the events), which decides when senders hear back.
        self.forwarded: Callable[[str, int], Awaitable[None]] | None = None
        try:
            self.epoch = self._load_epoch()
            self._open_partitions()
        except BaseException:
            self._release()
            raise

    # -- opening ------------------------------------------------------------------------

    def reconfigure(self, config: QueueConfig, default_max_events: int) -> None:
        """Apply bounds and policies of a (reloaded) configuration; files stay as they are."""
        self.config = config
        self.max_events = config.max_events or default_max_events
        self.max_bytes = config.max_bytes
        self.partition_max_events = config.partition_max_events or max(1, self.max_events // 2)
        self.partition_max_bytes = config.partition_max_bytes or max(1, self.max_bytes // 2)
        self.resume_ratio = config.resume_ratio
        if getattr(self, "_partitions", None) is not None:
            self._notify_capacity()

    def set_bound(self, max_events: int, *, resume_ratio: float | None = None) -> None:
        """MemoryQueue's method: the total bound (`limits.queue_max_events`) on reload."""
        if self.config.max_events is None:
            self.max_events = max_events
            if self.config.partition_max_events is None:
                self.partition_max_events = max(1, max_events // 2)
        if resume_ratio is not None:
            self.resume_ratio = resume_ratio
        self._notify_capacity()

    def _load_epoch(self) -> str:
        path = self.directory / EPOCH_FILE
        try:
            epoch = path.read_text().strip()
            if re.fullmatch(r"[a-z0-9]{1,32}", epoch):
                return epoch
            log.warning("journal epoch file unreadable; starting a new epoch",
                        extra={"file": str(path)})
        except FileNotFoundError:
            pass
        # Names the offset space: lake files from an older journal never collide with ours.
        epoch = f"j{time.time_ns() // 1_000_000:x}{secrets.token_hex(2)}"
        try:
            self.files.write_atomic(path, epoch.encode())
        except OSError as exc:
            # A first start on a full disk still starts: the epoch is saved before the first
            # append (which fails, with backpressure, until it can be).
            log.warning("journal epoch not saved yet; saved before the first append",
                        extra={"file": str(path), "error": str(exc)})
            self._epoch_pending = True
        return epoch

    def _save_epoch(self) -> None:
        try:
            self.files.write_atomic(self.directory / EPOCH_FILE, self.epoch.encode())
        except OSError as exc:
            error = write_error(exc, "epoch")
            self._write_failed(error)
            raise error from exc
        self._epoch_pending = False

    def _open_partitions(self) -> None:
        checkpoints = read_checkpoints(self.directory / CHECKPOINT_FILE, self.epoch)
        started = time.monotonic()
        for directory in partition_dirs(self.directory):
            partition = Partition(directory.name, directory, self.files, self.config.segment_bytes)
            found = partition.load(checkpoints.get(directory.name))
            for damage in found:
                self._report_damage(partition.name, damage, at_open=True)
            if partition.repair is not None:
                self._report_repair(partition)
            self._partitions[partition.name] = partition
            self._order.append(partition.name)
        self._checkpointed_at = time.monotonic()
        self._opened_end = {name: p.next_offset for name, p in self._partitions.items()}
        self._update_gauges()
        log.info("journal opened", extra={
            "path": str(self.directory), "epoch": self.epoch,
            "partitions": len(self._partitions), "pending_events": self.pending(),
            "disk_bytes": self.disk_bytes(), "damaged_ranges": len(self.damage),
            "seconds": round(time.monotonic() - started, 3)})

    def _report_damage(self, partition: str, damage: Damage, *, at_open: bool) -> None:
        self.damage.append(damage)
        self.telemetry.journal_damaged_records.labels(partition).inc(damage.records)
        self.telemetry.journal_damaged_bytes.labels(partition).inc(damage.length)
        self.telemetry.journal_damaged_events.labels(partition).inc(damage.events)
        log.error("journal damage skipped: %s", damage.describe(), extra={
            "partition": partition, "file": str(damage.path), "byte_offset": damage.pos,
            "bytes": damage.length, "records": damage.records, "events": damage.events,
            "events_estimated": damage.estimated, "at_open": at_open,
            "lost_from": damage.lost_from, "lost_to": damage.lost_to})

    def replay_end(self, partition: str) -> int:
        """The partition's end offset when the journal was opened: offsets below it may have
        been processed (and committed by sinks) by an earlier run."""
        return self._opened_end.get(partition, 0)

    def _report_repair(self, partition: Partition) -> None:
        repair = partition.repair
        assert repair is not None
        self.telemetry.journal_checkpoint_repairs.labels(partition.name, repair.reason).inc()
        what = ("journal checkpoint missing" if repair.reason == "missing" else
                "journal checkpoint past the end of its segments")
        extra = {"partition": partition.name, "reason": repair.reason,
                 "segments_end": repair.segments_end, "replayed_offsets": repair.replayed,
                 "acked": partition.acked}
        if repair.claimed_acked is not None:
            extra["claimed_acked"] = repair.claimed_acked
        log.warning("%s; replaying the partition from its oldest segment (sinks skip what they "
                    "already committed)", what, extra=extra)

    def _partition(self, name: str) -> Partition:
        partition = self._partitions.get(name)
        if partition is not None:
            return partition
        if not PARTITION_RE.fullmatch(name) or name in (LOCK_FILE, EPOCH_FILE):
            raise JournalError(f"invalid journal partition name {name!r}")
        directory = self.directory / name
        try:
            self.files.mkdir(directory)
            self.files.fsync_dir(self.directory)
        except OSError as exc:
            error = write_error(exc, "partition creation")
            self._write_failed(error)
            raise error from exc
        partition = Partition(name, directory, self.files, self.config.segment_bytes)
        self._partitions[name] = partition
        self._order.append(name)
        return partition

    # -- EventQueue ---------------------------------------------------------------------

    def append(self, partition: str, events: list[Event],
               shared: Mapping[str, Any] | None = None) -> int:
        """Write `events` as one record, with what they all share (`shared`, stored once and
        put back into each event when read); returns the offset of the last one.

        Raises JournalWriteError (JournalFullError when the disk is full) with nothing partial
        left behind, JournalEncodeError for a value it cannot store, JournalClosedError after
        close()."""
        if self._closed:
            raise JournalClosedError("queue is closed")
        self._ensure_task()  # before anything can fail: the probe of a failure runs there
        if self._epoch_pending:
            self._save_epoch()
        p = self._partition(partition)
        if not events:
            return p.next_offset - 1
        before = p.disk_bytes()
        try:
            last = p.append(events, shared)
        except JournalWriteError as exc:
            self._write_failed(exc)
            raise
        if self._failing is not None:
            self._recovered()
        self.telemetry.journal_appended_events.labels(partition).inc(len(events))
        self.telemetry.journal_appended_bytes.labels(partition).inc(p.disk_bytes() - before)
        mode = self.config.fsync_mode()
        if mode == "always" and self._sync_wanted is not None:
            self._sync_wanted.set()
        elif mode == "never" and self._readable is not None:
            self._readable.set()
        return last

    async def read(self, max_events: int) -> Batch | None:
        """The next batch of durable events of one partition, round robin across partitions."""
        while True:
            self._ensure_task()
            batch = self._take(max_events)
            if batch is not None:
                return batch
            if self._closed and all(p.all_read() for p in self._partitions.values()):
                return None
            assert self._readable is not None
            self._readable.clear()
            await self._readable.wait()

    def read_nowait(self, max_events: int) -> Batch | None:
        """The next batch that is readable now, or None (never waits)."""
        self._ensure_task()
        return self._take(max_events)

    async def sync(self) -> None:
        """Wait until everything appended so far is durable under the policy."""
        for name, p in list(self._partitions.items()):
            if p.next_offset > p.durable_end:
                await self.wait_durable(name, p.next_offset - 1)

    def _take(self, max_events: int) -> Batch | None:
        mode = self.config.fsync_mode()
        order = self._order
        for _ in range(len(order)):
            partition = self._partitions[order[0]]
            order.rotate(-1)
            visible = partition.published_end(mode)
            if not partition.readable(visible):
                continue
            batch = partition.take(max_events, visible, self._on_read_damage(partition.name))
            if batch is not None:
                return batch
        return None

    def _on_read_damage(self, partition: str) -> Callable[[Damage], None]:
        return lambda damage: self._report_damage(partition, damage, at_open=False)

    async def wait_durable(self, partition: str, offset: int) -> None:
        """Return once `partition` is fsynced up to `offset` under the policy (`always`: the
        next group commit; `interval_ms`: the next background fsync; `never`: at once), and
        then, with `forwarded` set, once it says the events were handed off downstream.
        Raises JournalWriteError when that fsync failed."""
        await self._wait_fsynced(partition, offset)
        if self.forwarded is not None:
            await self.forwarded(partition, offset)

    async def _wait_fsynced(self, partition: str, offset: int) -> None:
        p = self._partitions.get(partition)
        if p is None or offset < p.durable_end or self.config.fsync_mode() == "never":
            return
        self._ensure_task()
        assert self._loop is not None and self._sync_wanted is not None
        future: asyncio.Future[None] = self._loop.create_future()
        p.waiters.append((offset, future))
        if self.config.fsync_mode() == "always":
            self._sync_wanted.set()
        await future

    def ack(self, partition: str, offset: int) -> None:
        """Everything of `partition` up to `offset` is committed by every sink."""
        p = self._partitions.get(partition)
        if p is not None and p.ack(offset):
            self._notify_capacity()

    def over_bound(self, partition: str | None = None) -> bool:
        """True while sources should hold back: writes failing, the total bound, or (given a
        partition) that partition's own bound."""
        if self._failing is not None:
            return True
        if self.pending() >= self.max_events or self.disk_bytes() >= self.max_bytes:
            return True
        if partition is None:
            return False
        p = self._partitions.get(partition)
        return p is not None and (p.pending() >= self.partition_max_events
                                  or p.disk_bytes() >= self.partition_max_bytes)

    def held_back(self) -> list[str]:
        """The partitions whose sources are held back now (their own bound or the total)."""
        return [name for name in self._partitions if self.over_bound(name)]

    def _under_resume(self, partition: str | None) -> bool:
        ratio = self.resume_ratio
        if self._failing is not None or self.pending() > self.max_events * ratio \
                or self.disk_bytes() > self.max_bytes * ratio:
            return False
        p = self._partitions.get(partition) if partition is not None else None
        return p is None or (p.pending() <= self.partition_max_events * ratio
                             and p.disk_bytes() <= self.partition_max_bytes * ratio)

    def add_capacity_listener(self, callback: Callable[[], None],
                              partition: str | None = None,
                              until: Callable[[], bool] | None = None) -> None:
        """Call `callback` once when the journal (or `partition`) is back under its bound and
        writes work again (and `until()` holds: a source's own share, say)."""
        self._listeners.append((partition, callback, until))
        self._notify_capacity()

    def _notify_capacity(self) -> None:
        if not self._listeners:
            return
        waiting, self._listeners = self._listeners, []
        for partition, callback, until in waiting:
            if self._under_resume(partition) and (until is None or until()):
                callback()
            else:
                self._listeners.append((partition, callback, until))

    def pending(self, partition: str | None = None) -> int:
        """Events appended but not yet acknowledged (in total, or of one partition)."""
        if partition is not None:
            p = self._partitions.get(partition)
            return p.pending() if p is not None else 0
        return sum(p.pending() for p in self._partitions.values())

    def disk_bytes(self, partition: str | None = None) -> int:
        """Segment bytes on disk (in total, or of one partition)."""
        if partition is not None:
            p = self._partitions.get(partition)
            return p.disk_bytes() if p is not None else 0
        return sum(p.disk_bytes() for p in self._partitions.values())

    def partitions(self) -> list[str]:
        return list(self._partitions)

    def acked(self, partition: str) -> int:
        """The acknowledged position of a partition (-1 when nothing is)."""
        p = self._partitions.get(partition)
        return p.acked if p is not None else -1

    def close(self) -> None:
        """No more appends; readers drain what is left (once durable) and then get None."""
        self._closed = True
        if self._sync_wanted is not None:
            self._sync_wanted.set()
        if self._readable is not None:
            self._readable.set()

    async def aclose(self) -> None:
        """close(), then a last fsync and checkpoint; releases files and the lock. The daemon
        calls it after the final acknowledgements."""
        self.close()
        if self._stopped:
            return
        self._stopping = True
        task = self._task
        if task is not None and not task.done() and self._loop is asyncio.get_running_loop():
            assert self._sync_wanted is not None
            self._sync_wanted.set()
            await task
        else:
            await self._round(force_checkpoint=True)
        self._release()

    def abandon(self) -> None:
        """Drop everything like a killed process: no fsync, no checkpoint (for crash tests)."""
        if self._task is not None:
            self._task.cancel()
        self._release()

    def _release(self) -> None:
        self._stopped = True
        self._executor.shutdown(wait=True)
        for partition in getattr(self, "_partitions", {}).values():
            partition.close_files()
            for _, future in partition.waiters:
                if not future.done():
                    future.set_exception(JournalClosedError("journal closed before the fsync"))
            partition.waiters.clear()
        if self._lock_fd is not None:
            self.files.unlock(self._lock_fd)
            self._lock_fd = None

    # -- figures ------------------------------------------------------------------------

    def _update_gauges(self) -> None:
        t = self.telemetry
        for name, p in self._partitions.items():
            t.journal_pending_events.labels(name).set(p.pending())
            t.journal_disk_bytes.labels(name).set(p.disk_bytes())
            t.journal_backpressure.labels(name).set(1 if self.over_bound(name) else 0)

    def health(self) -> dict[str, Any]:
        """Detail for /readyz: bounds, backpressure, failures, fsync timings, per partition."""
        self._update_gauges()
        rounds = self.fsync_rounds
        held_back = self.held_back()
        return {
            "type": "journal", "path": str(self.directory), "epoch": self.epoch,
            "fsync": self.config.fsync_mode(),
            "pending_events": self.pending(), "capacity_events": self.max_events,
            "disk_bytes": self.disk_bytes(), "capacity_bytes": self.max_bytes,
            # True when any source is held back: the whole journal or a tenant at its bound.
            "backpressure": self.over_bound() or bool(held_back),
            "backpressure_partitions": held_back,
            "failing": str(self._failing) if self._failing is not None else None,
            "fsync_ms": {"rounds": rounds,
                         "last": round(self.fsync_seconds_last * 1000, 3),
                         "avg": round(self.fsync_seconds_total * 1000 / rounds, 3) if rounds else 0,
                         "max": round(self.fsync_seconds_max * 1000, 3)},
            "damaged_ranges": len(self.damage),
            "partitions": {name: {**p.stats(), "backpressure": self.over_bound(name)}
                           for name, p in self._partitions.items()},
        }
