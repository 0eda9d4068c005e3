"""The process model: one main process and `vigil.workers` worker processes.

The main process keeps the listeners, tenant routing, journal appends and the control plane;
each worker process owns journal partitions (tenants) and runs their pipelines, detection and
sinks, reading the partitions' segment files itself (`collector.journal.follower`). `pool.py`
starts, feeds and restarts the workers, `child.py` is a worker process, `channel.py` the
messages between them, `state.py` the per-process detection state files.
"""

from __future__ import annotations

import os

from collector.config.models import GlobalConfig


def worker_count(settings: GlobalConfig) -> int:
    """Worker processes to run: 0 for the single-process model (one worker, or the memory
    queue, which another process cannot read)."""
    wanted = settings.workers or os.cpu_count() or 1
    if wanted < 2 or settings.queue.type == "memory":
        return 0
    return wanted
