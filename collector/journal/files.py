"""The journal's file-system layer: every call that touches the disk goes through `FileLayer`.

Tests substitute a subclass that fails like a full or broken disk (ENOSPC, EIO) so the journal's
error paths run without a real full disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


class FileLayer:
    """Thin wrappers over os calls on regular files and directories."""

    def open_append(self, path: Path, *, create: bool) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
        if create:
            flags |= os.O_CREAT | os.O_EXCL
        return os.open(path, flags, 0o640)

    def open_read(self, path: Path) -> int:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        return os.write(fd, data)

    def write_all(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = self.write(fd, view)
            view = view[written:]

    def pread(self, fd: int, size: int, pos: int) -> bytes:
        return os.pread(fd, size, pos)

    def truncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    def truncate_path(self, path: Path, size: int) -> None:
        os.truncate(path, size)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def fsync_dir(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self, fd: int) -> None:
        with contextlib.suppress(OSError):
            os.close(fd)

    def size(self, path: Path) -> int:
        return path.stat().st_size

    def read_file(self, path: Path) -> bytes:
        return path.read_bytes()

    def mkdir(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)

    def unlink(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def write_atomic(self, path: Path, data: bytes) -> None:
        """tmp + fsync + rename + directory fsync: the file is the old or the new, whole."""
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
        try:
            self.write_all(fd, data)
            self.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        self.fsync_dir(path.parent)

    def probe(self, directory: Path, size: int) -> None:
        """Write, fsync and remove `size` bytes: raises OSError while the disk still fails."""
        path = directory / ".probe"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
        try:
            self.write_all(fd, bytes(size))
            self.fsync(fd)
        finally:
            os.close(fd)
            self.unlink(path)

    def lock(self, path: Path) -> int | None:
        """An exclusive lock held by the returned fd; None when another process holds it."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def unlock(self, fd: int) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        self.close(fd)
