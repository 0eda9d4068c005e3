"""Durable file writes: a file replaced atomically, its contents and its name fsynced; and the
failure episodes of every writer that persists something (state files, sink files, the alert
store), so a full or failing disk pauses a writer and is retried instead of stopping the daemon.

Every state file (detection state, coverage, checkpoints) and every committed sink file goes
through here, so a crash leaves either the old file or the new one, never a torn one, and a
failed write leaves no temporary file behind.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.telemetry import Telemetry

log = logging.getLogger(__name__)

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit_file(tmp: Path, target: Path) -> int:
    """fsync `tmp`, rename it to `target`, fsync the directory; returns the file size."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    fsync_directory(target.parent)
    return target.stat().st_size


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` durably (hidden temporary name in the same directory); on
    failure the temporary file is removed and `path` is as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
        commit_file(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def storage_error_type(exc: BaseException) -> str:
    """`no_space`, `io_error` or `other`, for OSError, SQLite and DuckDB errors alike."""
    number = getattr(exc, "errno", None)
    if number in _NO_SPACE:
        return "no_space"
    if number == errno.EIO:
        return "io_error"
    text = str(exc).lower()
    if "no space left" in text or "disk is full" in text or "disk quota" in text:
        return "no_space"
    if "i/o error" in text or "input/output error" in text:
        return "io_error"
    return "other"


class WriteEpisodes:
    """Failure episodes of a daemon's writers: the first failure of an episode is logged, every
    failure is counted (`vigil_storage_write_errors_total{writer,error_type}`), the writer is
    reported failing (`vigil_storage_failing{writer}`, /readyz) until a write succeeds, which
    ends the episode with one log line. Writers keep what they could not write and retry."""

    def __init__(self, telemetry: Telemetry | None = None) -> None:
        self.telemetry = telemetry
        self._failing: dict[str, tuple[str, str, int]] = {}  # writer -> (type, error, count)

    def failed(self, writer: str, exc: BaseException) -> None:
        kind = storage_error_type(exc)
        if self.telemetry is not None:
            self.telemetry.storage_write_errors.labels(writer, kind).inc()
        episode = self._failing.get(writer)
        if episode is None:
            # An error that is not the disk's (a bug) keeps its traceback.
            log.error("%s writes failing; retrying until they succeed", writer,
                      exc_info=exc if kind == "other" else None,
                      extra={"writer": writer, "error_type": kind, "error": str(exc)[:300]})
            if self.telemetry is not None:
                self.telemetry.storage_failing.labels(writer).set(1)
            self._failing[writer] = (kind, str(exc)[:300], 1)
        else:
            self._failing[writer] = (episode[0], episode[1], episode[2] + 1)

    def succeeded(self, writer: str) -> None:
        episode = self._failing.pop(writer, None)
        if episode is None:
            return
        log.warning("%s writes recovered", writer,
                    extra={"writer": writer, "failed_writes": episode[2]})
        if self.telemetry is not None:
            self.telemetry.storage_failing.labels(writer).set(0)

    def failing(self) -> dict[str, str]:
        """Writers in a failure episode, with the type of their last error."""
        return {writer: kind for writer, (kind, _, _) in self._failing.items()}
