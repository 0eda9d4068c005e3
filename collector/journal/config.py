"""The `vigil.queue` settings: which queue, the journal's fsync policy and its bounds.

YAML: `queue: {type: journal, fsync: always}` or `fsync: {interval_ms: 50}` or `fsync: never`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from collector.config.models import StrictModel

MIB = 1024 * 1024


class FsyncInterval(StrictModel):
    interval_ms: int = Field(gt=0, le=60_000,
                             description="fsync every N ms; durable waits wait for the next one")


FsyncPolicy = Literal["always", "never"] | FsyncInterval


class QueueConfig(StrictModel):
    """Where events wait between sources and pipelines."""

    type: Literal["memory", "journal"] = Field(
        "journal", description="`journal` (durable, on disk) or `memory` (lost on restart)")
    path: Path | None = Field(None, description="journal directory; default <data_dir>/journal")
    fsync: FsyncPolicy = Field(
        "always",
        description="`always` (group commit: a durable wait returns after its fsync), "
                    "`{interval_ms: N}` (a background fsync every N ms), or `never` (the OS "
                    "decides; a power loss can lose acknowledged events: unsafe)")
    segment_bytes: int = Field(16 * MIB, ge=64 * 1024,
                               description="a segment file rolls over past this size")
    max_events: int | None = Field(
        None, gt=0, description="unacknowledged events in total before backpressure; "
                                "default vigil.limits.queue_max_events")
    max_bytes: int = Field(4096 * MIB, gt=0,
                           description="journal bytes on disk in total before backpressure")
    partition_max_events: int | None = Field(
        None, gt=0, description="unacknowledged events of one tenant before that tenant gets "
                                "backpressure; default a quarter of max_events")
    partition_max_bytes: int | None = Field(
        None, gt=0, description="journal bytes of one tenant before backpressure; "
                                "default a quarter of max_bytes")
    resume_ratio: float = Field(0.8, gt=0, lt=1,
                                description="backpressure ends below this share of a bound")
    checkpoint_interval_ms: int = Field(
        200, gt=0, description="how often acknowledged positions are persisted (a crash replays "
                               "at most this much already-committed data)")
    probe_interval_ms: int = Field(
        1000, gt=0, description="while writes fail, how often to test whether the disk recovered")

    def fsync_mode(self) -> str:
        return self.fsync if isinstance(self.fsync, str) else "interval"

    def fsync_interval(self) -> float:
        """Seconds between background fsyncs (interval mode)."""
        return self.fsync.interval_ms / 1000 if isinstance(self.fsync, FsyncInterval) else 0.0
