"""The Parquet lake: Hive-partitioned files written through DuckDB from Arrow tables.

Layout: `<root>/<dataset>/tenant=<t>/date=YYYY-MM-DD/hour=HH/<epoch>-<first>-<last>.parquet`.
Events are buffered per partition directory and flushed by rows, bytes or age, whichever comes
first. A file is written under a temporary name, fsynced and renamed, so a reader never sees a
partial file; its name carries the queue offsets it holds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa
from pydantic import Field

from collector.config.models import SinkConfig, StrictModel
from collector.events import DATASET, TENANT, TIMESTAMP, Batch, Event
from collector.telemetry import ComponentTelemetry
from sinks.base import Sink, SinkContext
from sinks.lake.schema import events_to_table

log = logging.getLogger(__name__)

# Partition values come from the path; keeping them out of the file avoids a clash with the
# hive columns when a reader unions both.
_PATH_COLUMNS = frozenset({DATASET})


class FlushPolicy(StrictModel):
    max_rows: int = Field(50_000, gt=0, description="flush a partition buffer at this many rows")
    max_bytes: int = Field(64 * 1024 * 1024, gt=0, description="... or this many (estimated) bytes")
    max_seconds: float = Field(10.0, gt=0, description="... or when its oldest event is this old")


class LakeConfig(SinkConfig):
    type: Literal["parquet_lake"] = "parquet_lake"
    path: Path | None = Field(None, description="lake root; default <data_dir>/lake")
    flush: FlushPolicy = FlushPolicy()
    compression: Literal["zstd", "snappy", "gzip", "uncompressed"] = "zstd"


@dataclass
class _Buffer:
    directory: Path
    dataset: str
    tenant: str
    events: list[Event] = field(default_factory=list)
    offsets: dict[str, list[int]] = field(default_factory=dict)  # partition -> [first, last]
    size: int = 0
    opened: float = 0.0


def partition_dir(root: Path, dataset: str, tenant: str, ts: datetime) -> Path:
    """The Hive partition directory of an event."""
    ts = ts.astimezone(UTC)
    return root / dataset / f"tenant={tenant}" / f"date={ts:%Y-%m-%d}" / f"hour={ts:%H}"


class LakeWriter:
    """Writes Arrow tables to Parquet with DuckDB on one dedicated thread."""

    def __init__(self, compression: str) -> None:
        self.compression = compression
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lake-writer")
        self._local = threading.local()

    def _connection(self) -> duckdb.DuckDBPyConnection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = duckdb.connect(":memory:")
            con.execute("SET preserve_insertion_order = true")
        return con

    def write_sync(self, table: pa.Table, target: Path) -> int:
        """Write `table` to `target` atomically; returns the file size."""
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        con = self._connection()
        con.register("lake_batch", table)
        try:
            quoted = str(tmp).replace("'", "''")
            con.execute(f"COPY lake_batch TO '{quoted}' "
                        f"(FORMAT parquet, COMPRESSION {self.compression})")
        finally:
            con.unregister("lake_batch")
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return target.stat().st_size

    async def write(self, table: pa.Table, target: Path) -> int:
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self.write_sync, table, target)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


class LakeSink(Sink):
    """`type: parquet_lake`."""

    config_model = LakeConfig

    config: LakeConfig

    def __init__(self, sink_id: str, config: LakeConfig, context: SinkContext) -> None:
        super().__init__(sink_id, config, context)
        self.root = config.path or context.data_dir / "lake"
        self.epoch = context.epoch
        self.telemetry = context.telemetry
        self.metrics: ComponentTelemetry = self.telemetry.component(sink_id, "sink", config.type)
        self.schemas = context.schemas
        self.monotonic = context.monotonic
        self.writer = LakeWriter(config.compression)
        self._buffers: dict[Path, _Buffer] = {}
        self._flushing: dict[Path, _Buffer] = {}
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def write(self, batch: Batch) -> None:
        now = self.monotonic()
        buffers = self._buffers
        dataset = batch.dataset or "unknown"
        for event in batch.events:
            ts = event.get(TIMESTAMP)
            if not isinstance(ts, datetime):
                ts = datetime.now(UTC)
                event[TIMESTAMP] = ts
            tenant = event.get(TENANT) or batch.partition
            directory = partition_dir(self.root, dataset, tenant, ts)
            buffer = buffers.get(directory)
            if buffer is None:
                buffer = buffers[directory] = _Buffer(directory, dataset, tenant, opened=now)
            buffer.events.append(event)
            message = event.get("message")
            buffer.size += 200 + (len(message) if isinstance(message, str) else 0)
            span = buffer.offsets.get(batch.partition)
            if span is None:
                buffer.offsets[batch.partition] = [batch.first_offset, batch.last_offset]
            else:
                span[1] = batch.last_offset

    def _due(self, buffer: _Buffer, now: float) -> bool:
        policy = self.config.flush
        return (len(buffer.events) >= policy.max_rows or buffer.size >= policy.max_bytes
                or now - buffer.opened >= policy.max_seconds)

    def has_due(self) -> bool:
        now = self.monotonic()
        return any(self._due(b, now) for b in self._buffers.values())

    async def flush(self, *, force: bool = False) -> None:
        async with self._lock:
            now = self.monotonic()
            due = [d for d, b in self._buffers.items() if force or self._due(b, now)]
            for directory in due:
                buffer = self._buffers.pop(directory)
                self._flushing[directory] = buffer
                try:
                    await self._write_buffer(buffer)
                except Exception:
                    # Keep the events: put them back in front of anything newer.
                    newer = self._buffers.pop(directory, None)
                    if newer is not None:
                        buffer.events.extend(newer.events)
                        for p, (first, last) in newer.offsets.items():
                            buffer.offsets.setdefault(p, [first, last])[1] = last
                    self._buffers[directory] = buffer
                    self.metrics.error("write_failed", "flush")
                    log.exception("lake write failed; will retry",
                                  extra={"sink": self.sink_id, "directory": str(directory)})
                    raise
                finally:
                    self._flushing.pop(directory, None)

    async def _write_buffer(self, buffer: _Buffer) -> None:
        fields = self.schemas.fields(buffer.dataset)
        table, failures = events_to_table(buffer.events, fields, _PATH_COLUMNS)
        if failures:
            self.metrics.error("type_conversion", "flush", failures)
        first = min(span[0] for span in buffer.offsets.values())
        last = max(span[1] for span in buffer.offsets.values())
        name = f"{self.epoch}-{first:012d}-{last:012d}.parquet"
        size = await self.writer.write(table, buffer.directory / name)
        rows = len(buffer.events)
        self.telemetry.lake_files.labels(buffer.dataset, buffer.tenant).inc()
        self.telemetry.lake_rows.labels(buffer.dataset, buffer.tenant).inc(rows)
        self.telemetry.lake_bytes.labels(buffer.dataset, buffer.tenant).inc(size)
        self.metrics.sent(rows, buffer.tenant)
        log.debug("lake file written", extra={"file": str(buffer.directory / name), "rows": rows})

    def uncommitted_floor(self, partition: str) -> int | None:
        floors = [b.offsets[partition][0] for group in (self._buffers, self._flushing)
                  for b in group.values() if partition in b.offsets]
        return min(floors) if floors else None

    def buffered_events(self) -> int:
        return sum(len(b.events) for b in self._buffers.values())

    async def stop(self) -> None:
        await self.flush(force=True)
        self.writer.close()

    def health(self) -> dict[str, Any]:
        return {"path": str(self.root), "buffered_events": self.buffered_events(),
                "open_partitions": len(self._buffers)}
