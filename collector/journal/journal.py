"""The durable `EventQueue`: per-partition segment files, fsync policy, replay after restart.

Appends are plain `os.write` calls on the event loop (a killed process loses nothing the OS
has); fsync, checkpoints and segment deletion run on one I/O thread in background rounds, which
group-commit every append made since the previous round. Readers see only durable records, so
no sink ever holds an event the journal could lose.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from collector.events import Batch, Event
from collector.journal.config import QueueConfig
from collector.journal.errors import (
    JournalClosedError,
    JournalError,
    JournalFullError,
    JournalLockedError,
    JournalWriteError,
)
from collector.journal.files import FileLayer
from collector.journal.partition import Partition, SyncJob, write_error
from collector.journal.segment import Damage
from collector.telemetry import Telemetry

log = logging.getLogger(__name__)

LOCK_FILE = "LOCK"
EPOCH_FILE = "EPOCH"
CHECKPOINT_FILE = "checkpoints.json"
PARTITION_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
PROBE_BYTES = 64 * 1024


def read_checkpoints(path: Path) -> dict[str, dict[str, int]]:
    """Persisted positions per partition; empty when absent or unreadable (replay all)."""
    try:
        data = json.loads(path.read_bytes())
        return {name: {"acked": int(v["acked"]), "next_offset": int(v["next_offset"])}
                for name, v in data["partitions"].items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        log.warning("journal checkpoint unreadable; replaying every partition from its oldest "
                    "segment", extra={"file": str(path)})
        return {}


def partition_dirs(directory: Path) -> list[Path]:
    """The partition directories of a journal."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_dir() and PARTITION_RE.fullmatch(p.name))


class Journal:
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
            raise JournalLockedError(f"{self.directory} is in use by another process "
                                     "(a running daemon?)")
        self._lock_fd: int | None = lock_fd
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-sync")
        self.max_events = self.max_bytes = self.partition_max_events = 0
        self.partition_max_bytes = 0
        self.resume_ratio = 0.8
        self.reconfigure(self.config, max_events)
        self.epoch = ""
        self._partitions: dict[str, Partition] = {}
        self._order: deque[str] = deque()
        self._listeners: list[tuple[str | None, Callable[[], None]]] = []
        self._failing: JournalWriteError | None = None
        self._failed_appends = 0
        self._next_probe = 0.0
        self._checkpointed_at = 0.0
        self._closed = False
        self._stopping = False
        self._stopped = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._sync_wanted: asyncio.Event | None = None
        self._readable: asyncio.Event | None = None
        self.fsync_rounds = 0
        self.fsync_seconds_total = 0.0
        self.fsync_seconds_max = 0.0
        self.fsync_seconds_last = 0.0
        self.damage: list[Damage] = []
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
        self.files.write_atomic(path, epoch.encode())
        return epoch

    def _open_partitions(self) -> None:
        checkpoints = read_checkpoints(self.directory / CHECKPOINT_FILE)
        started = time.monotonic()
        for directory in partition_dirs(self.directory):
            partition = Partition(directory.name, directory, self.files, self.config.segment_bytes)
            found = partition.load(checkpoints.get(directory.name))
            for damage in found:
                self._report_damage(partition.name, damage, at_open=True)
            self._partitions[partition.name] = partition
            self._order.append(partition.name)
        self._checkpointed_at = time.monotonic()
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
        log.error("journal damage skipped: %s", damage.describe(), extra={
            "partition": partition, "file": str(damage.path), "byte_offset": damage.pos,
            "bytes": damage.length, "records": damage.records, "at_open": at_open,
            "lost_from": damage.lost_from, "lost_to": damage.lost_to})

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

    def append(self, partition: str, events: list[Event]) -> int:
        """Write `events` as one record; returns the offset of the last one.

        Raises JournalWriteError (JournalFullError when the disk is full) with nothing partial
        left behind, JournalEncodeError for a value it cannot store, JournalClosedError after
        close()."""
        if self._closed:
            raise JournalClosedError("queue is closed")
        self._ensure_task()  # before anything can fail: the probe of a failure runs there
        p = self._partition(partition)
        if not events:
            return p.next_offset - 1
        before = p.disk_bytes()
        try:
            last = p.append(events)
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
        next group commit; `interval_ms`: the next background fsync; `never`: at once).
        Raises JournalWriteError when that fsync failed."""
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

    def _under_resume(self, partition: str | None) -> bool:
        ratio = self.resume_ratio
        if self._failing is not None or self.pending() > self.max_events * ratio \
                or self.disk_bytes() > self.max_bytes * ratio:
            return False
        p = self._partitions.get(partition) if partition is not None else None
        return p is None or (p.pending() <= self.partition_max_events * ratio
                             and p.disk_bytes() <= self.partition_max_bytes * ratio)

    def add_capacity_listener(self, callback: Callable[[], None],
                              partition: str | None = None) -> None:
        """Call `callback` once when the journal (or `partition`) is back under its bound and
        writes work again."""
        self._listeners.append((partition, callback))
        self._notify_capacity()

    def _notify_capacity(self) -> None:
        if not self._listeners:
            return
        waiting, self._listeners = self._listeners, []
        for partition, callback in waiting:
            if self._under_resume(partition):
                callback()
            else:
                self._listeners.append((partition, callback))

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

    # -- background rounds: fsync, checkpoint, deletion, probing -----------------------

    def _ensure_task(self) -> None:
        if self._stopped:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # called outside a loop (a test or a CLI); the first await starts it
        if self._loop is loop and self._task is not None and not self._task.done():
            return
        if self._loop is not loop:
            self._loop = loop
            self._sync_wanted = asyncio.Event()
            self._readable = asyncio.Event()
        self._task = loop.create_task(self._background(), name="journal-sync")

    async def _background(self) -> None:
        assert self._sync_wanted is not None
        while not self._stopped:  # abandon() releases the files without a last round
            mode = self.config.fsync_mode()
            wait = (self.config.fsync_interval() if mode == "interval"
                    else self.config.checkpoint_interval_ms / 1000)
            if self._failing is not None:
                wait = min(wait, self.config.probe_interval_ms / 1000)
            if not self._sync_wanted.is_set():
                # asyncio.timeout, not wait_for: on 3.11, wait_for swallows a cancellation that
                # lands as the event is set, and the task then waits on forever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._sync_wanted.wait()
            self._sync_wanted.clear()
            stopping = self._stopping
            try:
                await self._round(force_checkpoint=stopping)
            except Exception:
                log.exception("journal background round failed; retrying")
            if stopping:
                return

    async def _round(self, *, force_checkpoint: bool = False) -> None:
        mode = self.config.fsync_mode()
        now = time.monotonic()
        checkpoint_due = force_checkpoint or (
            now - self._checkpointed_at >= self.config.checkpoint_interval_ms / 1000)
        jobs: list[SyncJob] = []
        changed = False
        for p in self._partitions.values():
            state = {"acked": p.acked, "next_offset": p.next_offset}
            changed = changed or state != p.checkpointed
        write_checkpoint = checkpoint_due and changed
        for p in self._partitions.values():
            if p.unsynced or p.dir_dirty or write_checkpoint or p.next_offset > p.durable_end:
                jobs.append(p.sync_job(fsync=mode != "never", checkpoint=write_checkpoint))
        probe = self._failing is not None and now >= self._next_probe
        if not jobs and not probe:
            return
        checkpoints = {name: p.checkpointed for name, p in self._partitions.items()
                       if p.checkpointed is not None}
        for job in jobs:
            if job.checkpoint is not None:
                checkpoints[job.partition.name] = job.checkpoint

        def work() -> tuple[OSError | None, OSError | None]:
            for job in jobs:
                job.sync(self.files)
            checkpoint_error = None
            if write_checkpoint:
                try:
                    body = json.dumps({"version": 1, "epoch": self.epoch,
                                       "partitions": checkpoints}, sort_keys=True)
                    self.files.write_atomic(self.directory / CHECKPOINT_FILE, body.encode())
                except OSError as exc:
                    checkpoint_error = exc
                else:
                    for job in jobs:
                        job.checkpoint_saved = True
                        job.delete_acknowledged(self.files)
            probe_error = None
            if probe:
                try:
                    self.files.probe(self.directory, PROBE_BYTES)
                except OSError as exc:
                    probe_error = exc
            return checkpoint_error, probe_error

        loop = asyncio.get_running_loop()
        checkpoint_error, probe_error = await loop.run_in_executor(self._executor, work)
        if write_checkpoint and checkpoint_error is None:
            self._checkpointed_at = now
        elif checkpoint_error is not None:
            self._write_failed(write_error(checkpoint_error, "checkpoint"))
        self._finish(jobs)
        if probe:
            if probe_error is None and self._failing is not None:
                self._recovered()
            else:
                self._next_probe = time.monotonic() + self.config.probe_interval_ms / 1000
        self._update_gauges()

    def _finish(self, jobs: list[SyncJob]) -> None:
        advanced = deleted = False
        for job in jobs:
            p = job.partition
            before = p.durable_end
            p.sync_done(job)
            advanced = advanced or p.durable_end > before
            deleted = deleted or bool(job.deleted)
            if job.fsync and job.fds:
                self.fsync_rounds += 1
                self.fsync_seconds_total += job.seconds
                self.fsync_seconds_last = job.seconds
                self.fsync_seconds_max = max(self.fsync_seconds_max, job.seconds)
                self.telemetry.journal_fsync_seconds.observe(job.seconds)
            if job.error is not None:
                error = write_error(job.error, "fsync")
                self._write_failed(error)
                self._resolve(p, job.target_end, error)
            else:
                self._resolve(p, p.durable_end, None)
        if advanced and self._readable is not None:
            self._readable.set()
        if deleted:
            self._notify_capacity()

    @staticmethod
    def _resolve(p: Partition, end: int, error: JournalWriteError | None) -> None:
        if not p.waiters:
            return
        keep: deque[tuple[int, Any]] = deque()
        for offset, future in p.waiters:
            if offset >= end:
                keep.append((offset, future))
            elif not future.done():
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)
        p.waiters = keep

    # -- failure episodes ---------------------------------------------------------------

    def _write_failed(self, error: JournalWriteError) -> None:
        if isinstance(error, JournalFullError):
            kind = "no_space"
        elif error.errno == errno.EIO:
            kind = "io_error"
        else:
            kind = "other"
        self.telemetry.journal_write_errors.labels(kind).inc()
        self._failed_appends += 1
        if self._failing is None:
            # Logged once per episode; every failure is counted.
            log.error("journal writes failing; sources get backpressure until it recovers",
                      extra={"error": str(error), "error_type": kind, "path": str(self.directory)})
            self._failing = error
            self._failed_appends = 1
            self._next_probe = time.monotonic() + self.config.probe_interval_ms / 1000
            self.telemetry.journal_failing.set(1)
            if self._sync_wanted is not None:
                self._sync_wanted.set()  # wake the background loop onto the probe interval

    def _recovered(self) -> None:
        log.warning("journal writes recovered", extra={
            "failed_writes": self._failed_appends, "path": str(self.directory)})
        self._failing = None
        self.telemetry.journal_failing.set(0)
        self._notify_capacity()

    @property
    def failing(self) -> JournalWriteError | None:
        """The error of the current failure episode, None while writes work."""
        return self._failing

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
        return {
            "type": "journal", "path": str(self.directory), "epoch": self.epoch,
            "fsync": self.config.fsync_mode(),
            "pending_events": self.pending(), "capacity_events": self.max_events,
            "disk_bytes": self.disk_bytes(), "capacity_bytes": self.max_bytes,
            "backpressure": self.over_bound(),
            "failing": str(self._failing) if self._failing is not None else None,
            "fsync_ms": {"rounds": rounds,
                         "last": round(self.fsync_seconds_last * 1000, 3),
                         "avg": round(self.fsync_seconds_total * 1000 / rounds, 3) if rounds else 0,
                         "max": round(self.fsync_seconds_max * 1000, 3)},
            "damaged_ranges": len(self.damage),
            "partitions": {name: {**p.stats(), "backpressure": self.over_bound(name)}
                           for name, p in self._partitions.items()},
        }
