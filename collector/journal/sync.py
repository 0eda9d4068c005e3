"""A partition's background round (`SyncJob`: fsync its segments and directory, then delete
what the persisted checkpoint acknowledged) and the typed error of a failed journal write. The
journal's I/O thread runs the jobs (`collector.journal.rounds`); `Partition` makes them.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from collector.journal.errors import JournalFullError, JournalWriteError
from collector.journal.files import FileLayer
from collector.journal.segment import Segment

if TYPE_CHECKING:
    from collector.journal.partition import Partition

log = logging.getLogger("collector.journal.partition")  # the messages' logger stays the same

_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def write_error(exc: OSError, what: str) -> JournalWriteError:
    """The typed error for a failed write: JournalFullError when the disk is full."""
    cls = JournalFullError if exc.errno in _FULL_ERRNOS else JournalWriteError
    return cls(f"journal {what} failed: {exc.strerror or exc}", errno=exc.errno)


@dataclass
class SyncJob:
    """What one background round does for a partition, on the I/O thread."""

    partition: Partition
    fds: list[int]
    target_end: int  # offsets below this are durable once the fds are synced
    sync_dir: bool
    checkpoint: dict[str, int] | None  # the positions to persist (None: unchanged)
    delete: list[Segment]  # fully acknowledged under the persisted positions
    fsync: bool
    error: OSError | None = None
    checkpoint_saved: bool = False
    deleted: list[Segment] = field(default_factory=list)
    seconds: float = 0.0

    def sync(self, files: FileLayer) -> None:
        started = time.perf_counter()
        try:
            if self.fsync:
                for fd in self.fds:
                    files.fsync(fd)
            if self.sync_dir:
                files.fsync_dir(self.partition.directory)
        except OSError as exc:
            self.error = exc
        self.seconds = time.perf_counter() - started

    def delete_acknowledged(self, files: FileLayer) -> None:
        """Runs only once the checkpoint covering these segments is durable."""
        for segment in self.delete:
            try:
                files.unlink(segment.path)
            except OSError as exc:
                log.warning("journal segment not deleted", extra={"file": str(segment.path),
                                                                  "error": str(exc)})
                continue
            self.deleted.append(segment)
        if self.deleted:
            with contextlib.suppress(OSError):  # a replayed unlink is harmless
                files.fsync_dir(self.partition.directory)
