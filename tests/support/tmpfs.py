"""A real, small tmpfs for disk-full tests; skips where mounting is not permitted."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_tmpfs(parent: Path, size: str = "1m") -> Iterator[Path]:
    """Mount a tmpfs of `size` under `parent` for the duration; `pytest.skip` when impossible."""
    mount = shutil.which("mount")
    if mount is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    target = parent / f"tmpfs-{uuid.uuid4().hex[:6]}"
    target.mkdir()
    result = subprocess.run([mount, "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)],
                            capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {result.stderr.strip()}")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)
