"""The sink interface: buffer batches, commit them durably, and say what is committed.

The worker acknowledges a queue position only when every sink reports everything before it as
committed, so `uncommitted_floor` is the contract that durability rests on.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from core.config import SinkConfig
from core.events import EVENTS, Batch, Event
from core.schema import DatasetSchemas
from core.telemetry import Telemetry

# How a component hands events it cannot process to the dead letter:
# reject(partition, events, component, exception, scope) with scope "event" or "batch".
Reject = Callable[[str, list[Event], str, BaseException, str], None]


@dataclass
class SinkContext:
    """The runtime services a sink is built with."""

    data_dir: Path
    epoch: str  # names the queue's offset space; offsets are unique within it
    telemetry: Telemetry
    schemas: DatasetSchemas
    monotonic: Callable[[], float] = field(default=time.monotonic)
    # The queue's acknowledged position per partition when the queue survives restarts (the
    # journal), so a sink can undo what it committed past it before the replay; None otherwise.
    acknowledged: Callable[[str], int] | None = None
    # True for sinks built when the process starts: only then may a sink undo what a previous
    # run committed past the acknowledged position (a sink rebuilt by a reload must not touch
    # files this process committed moments ago and has not acknowledged yet).
    recover: bool = False
    # The queue's end offset per partition when it was opened (the journal): offsets below it
    # may have been processed by an earlier run, so a sink checks them against what it holds.
    replay_end: Callable[[str], int] | None = None
    # Where a sink sends events it cannot store because its conversion raised on them (poison):
    # `reject(partition, events, sink_id, exception, scope)` dead-letters them with the reason.
    # None (tests of a sink alone): the exception is raised instead.
    reject: Reject | None = None
    # The worker process slot ("w<k>", "" in the single-process model): a file sink keeps its
    # own commit manifest, and at start recovers only the partitions it `owns` (None: all).
    slot: str = ""
    owns: Callable[[str], bool] | None = None


class Sink(ABC):
    """A component that takes batches after the pipelines."""

    config_model: ClassVar[type[SinkConfig]]
    kind: ClassVar[str] = "sink"
    # Batch kinds the sink stores (events, dead_letter, alerts); the worker gives it only these.
    accepts: ClassVar[frozenset[str]] = frozenset({EVENTS})

    def __init__(self, sink_id: str, config: Any, context: SinkContext) -> None:
        self.sink_id = sink_id
        self.config = config
        self.context = context

    @abstractmethod
    async def start(self) -> None:
        """Open files, connections, threads."""

    @abstractmethod
    def write(self, batch: Batch) -> None:
        """Take a batch (buffered; may become due for a flush)."""

    @abstractmethod
    async def flush(self, *, force: bool = False) -> None:
        """Commit what is due by size or age, or everything when `force`."""

    @abstractmethod
    def uncommitted_floor(self, partition: str) -> int | None:
        """Smallest offset of `partition` held but not yet committed; None when all is."""

    def discard(self, partition: str) -> int:
        """Drop what `partition` has buffered and not begun to commit, returning the events
        dropped: its events are no longer this process's to commit (a cluster worker's shard
        lease lapsed; the next owner processes them again from the stream). A sink that holds
        nothing between `write` and `flush` keeps the default."""
        return 0

    @abstractmethod
    async def stop(self) -> None:
        """Commit everything and release resources."""

    def health(self) -> dict[str, Any]:
        return {}
