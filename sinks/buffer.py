"""What a file sink holds before a commit: the events bound for one partition directory with
the queue offsets they came from (`FileBuffer`), the flush policy that makes it due, and the
retry state of a buffer whose commit failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from core.config import StrictModel
from core.events import Event


class FlushPolicy(StrictModel):
    max_rows: int = Field(50_000, gt=0, description="flush a partition buffer at this many rows")
    max_bytes: int = Field(64 * 1024 * 1024, gt=0, description="... or this many (estimated) bytes")
    max_seconds: float = Field(10.0, gt=0, description="... or when its oldest event is this old")


@dataclass
class FileBuffer:
    """Events bound for one partition directory, with the queue offsets they came from."""

    directory: Path
    dataset: str
    tenant: str
    events: list[Event] = field(default_factory=list)
    offsets: dict[str, list[int]] = field(default_factory=dict)  # partition -> [first, last]
    size: int = 0
    opened: float = 0.0
    # Work a sink started on the events as they arrived (the lake's Arrow chunks, built on its
    # writer thread), in order; cleared whenever events are taken out.
    prepared: list[Any] = field(default_factory=list)

    def absorb(self, newer: FileBuffer) -> None:
        """Take a newer buffer's events after ours (a failed write is retried with both)."""
        self.events.extend(newer.events)
        self.prepared.extend(newer.prepared)
        self.size += newer.size
        for partition, (first, last) in newer.offsets.items():
            span = self.offsets.setdefault(partition, [first, last])
            span[0], span[1] = min(span[0], first), max(span[1], last)


@dataclass
class WriteFailure:
    """A buffer whose commit failed: attempts so far and when to try again."""

    attempts: int = 0
    retry_at: float = 0.0
