"""Running a configuration's sources and pipelines without sockets or sinks.

`vigil process` and `vigil test` hand lines to a configured source's decoder as if they had
arrived on it, route and stamp them with the source's real `SourceContext`, queue them in a
`MemoryQueue`, and run the configured pipelines: the same code paths as the daemon, minus the
network and the lake.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from collector.config import VigilConfig
from collector.pipeline.runner import PipelineSet, build_pipelines
from collector.queue import MemoryQueue
from collector.routing import TenantRouter
from collector.sources.base import Source, SourceContext
from core.config import ValidationContext
from core.events import DEAD_LETTERS, OFFSET, Batch, Event
from core.registry import resolve
from core.telemetry import Telemetry


class UnknownSource(LookupError):
    """A source id the configuration does not declare."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class OfflineRun:
    """One configuration, built for offline processing."""

    def __init__(self, config: VigilConfig, conf_dir: Path, *,
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self.config = config
        self.conf_dir = conf_dir.resolve()
        self.clock = clock
        self.telemetry = Telemetry()
        # Steps may keep state under the data dir; an offline run must not touch the daemon's.
        self._scratch = tempfile.TemporaryDirectory(prefix="vigil-offline-")
        self.data_dir = Path(self._scratch.name)
        self.pipelines: PipelineSet = build_pipelines(
            config.pipelines.items(), ValidationContext(self.conf_dir), data_dir=self.data_dir,
            telemetry=self.telemetry, clock=lambda: self.clock())
        self.queue = MemoryQueue(1 << 62)
        self._sources: dict[str, Source] = {}

    def source(self, source_id: str) -> Source:
        """The configured source, built (not started) on the offline queue."""
        found = self._sources.get(source_id)
        if found is not None:
            return found
        source_config = self.config.sources.get(source_id)
        if source_config is None:
            valid = ", ".join(sorted(self.config.sources)) or "none"
            raise UnknownSource(f"unknown source {source_id!r}; configured sources: {valid}")
        context = SourceContext(
            source_id, source_config, self.queue,
            self.telemetry.component(source_id, "source", source_config.type),
            TenantRouter.from_config(source_config, set(self.config.tenants)),
            lambda: self.clock(), data_dir=self.data_dir, conf_dir=self.conf_dir)
        source: Source = resolve("source", source_config.type)(context)
        self._sources[source_id] = source
        return source

    def process_lines(self, source_id: str, lines: Iterable[bytes], *, tenant: str | None = None,
                      peer: str | None = None) -> list[Batch]:
        """The batches the pipelines produce from `lines` (one batch per dataset and tenant,
        plus dead-letter batches)."""
        source = self.source(source_id)
        events = source.decode_lines(list(lines))
        source.context.emit(events, peer, tenant)
        return self.drain()

    def drain(self) -> list[Batch]:
        out: list[Batch] = []
        while (batch := self.queue.read_nowait(10_000)) is not None:
            for offset, event in enumerate(batch.events, batch.first_offset):
                event[OFFSET] = offset  # as the daemon's worker does
            out.extend(self.pipelines.process(batch))
            self.queue.ack(batch.partition, batch.last_offset)
        return out

    def close(self) -> None:
        self.pipelines.close()
        self._scratch.cleanup()


def split_dead_letters(batches: list[Batch]) -> tuple[list[Event], list[Event]]:
    """(events, dead-letter records) of processed batches, in order."""
    events = [e for b in batches if b.kind != DEAD_LETTERS for e in b.events]
    dead = [e for b in batches if b.kind == DEAD_LETTERS for e in b.events]
    return events, dead
