"""Errors the journal raises on purpose; all derive from `VigilError`.

Sources catch `JournalWriteError` on append or durable wait and answer with backpressure
(HTTP 503, no SQS delete) instead of acknowledging.
"""

from __future__ import annotations

from pathlib import Path

from core.errors import ExitCode, OperatorError, VigilError


class JournalError(VigilError):
    """Root of the journal's errors."""


class JournalLockedError(JournalError, OperatorError):
    """Another process (a running daemon) holds the journal."""

    exit_code = ExitCode.TEMPFAIL

    def __init__(self, directory: Path) -> None:
        OperatorError.__init__(self, f"journal {directory}",
                               "in use by another process (a running vigil?)",
                               hint="stop it first, or give this one another --data-dir")


class JournalWriteError(JournalError):
    """An append or fsync failed (disk full, I/O error); nothing partial was left behind."""

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        self.errno = errno
        super().__init__(message)


class JournalFullError(JournalWriteError):
    """The file system has no space left (ENOSPC / EDQUOT)."""


class JournalEncodeError(JournalError):
    """An event holds a value the journal cannot store (nothing was written)."""


class JournalClosedError(JournalError, RuntimeError):
    """Append after `close()`; a RuntimeError like MemoryQueue's, and a VigilError."""
