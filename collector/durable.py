"""Durable file writes: a file replaced atomically, its contents and its name fsynced.

Every state file (detection state, coverage, checkpoints) and every committed sink file goes
through here, so a crash leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import os
from pathlib import Path


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
    """Replace `path` with `data` durably (hidden temporary name in the same directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
    commit_file(tmp, path)
