"""The journal's background rounds, on one I/O thread: fsync (group commit under `always`, a
timer under `interval_ms`), checkpoints of acknowledged positions, deletion of acknowledged
segments, and the probe that ends a write-failure episode once space returns.

`BackgroundRounds` is the part of `Journal` that runs them; the journal owns the partitions,
bounds and the queue interface, and wakes the rounds through `_sync_wanted`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from collector.journal.config import QueueConfig
from collector.journal.errors import JournalFullError, JournalWriteError
from collector.journal.files import FileLayer
from collector.journal.layout import CHECKPOINT_FILE
from collector.journal.partition import Partition
from collector.journal.sync import SyncJob, write_error
from core.telemetry import Telemetry

log = logging.getLogger(__name__)

PROBE_BYTES = 64 * 1024


class BackgroundRounds:
    """Fsync, checkpoint, deletion and probing rounds of a `Journal`, and its failure episodes."""

    # Owned by the journal.
    directory: Path
    config: QueueConfig
    files: FileLayer
    telemetry: Telemetry
    epoch: str
    _partitions: dict[str, Partition]
    _stopping: bool
    _stopped: bool

    def _init_rounds(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-sync")
        self._failing: JournalWriteError | None = None
        self._failed_appends = 0
        self._next_probe = 0.0
        self._checkpointed_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._sync_wanted: asyncio.Event | None = None
        self._readable: asyncio.Event | None = None
        self.fsync_rounds = 0
        self.fsync_seconds_total = 0.0
        self.fsync_seconds_max = 0.0
        self.fsync_seconds_last = 0.0

    def _notify_capacity(self) -> None:
        raise NotImplementedError  # the journal's: listeners waiting for capacity

    def _update_gauges(self) -> None:
        raise NotImplementedError  # the journal's: per-partition gauges

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

