"""The process model: one main process and `vigil.workers` worker processes.

The main process keeps the listeners, tenant routing, journal appends and the control plane;
each worker process owns journal partitions (tenants) and runs their pipelines, detection and
sinks, reading the partitions' segment files itself (`collector.journal.follower`). `pool.py`
starts, feeds and restarts the workers, `child.py` is a worker process, `channel.py` the
messages between them, `state.py` the per-process detection state files.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from typing import NoReturn

from collector.config.models import GlobalConfig


def worker_count(settings: GlobalConfig) -> int:
    """Worker processes to run: 0 for the single-process model (one worker, or the memory
    queue, which another process cannot read)."""
    wanted = settings.workers or os.cpu_count() or 1
    if wanted < 2 or settings.queue.type == "memory":
        return 0
    return wanted


def leave(code: int) -> NoReturn:
    """End a daemon process (main or worker) whose shutdown has finished: logs and stdio are
    flushed, then `os._exit`, skipping the interpreter's teardown. Destroying the modules and
    objects of a process that loaded pyarrow, DuckDB and the rules took 0.3-0.5 s per process
    after the last byte was committed: most of a stop with nothing pending. While another
    thread still runs, the ordinary exit joins it first."""
    if threading.active_count() > 1:
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed or broken: nothing to say
            stream.flush()
    os._exit(code)
