"""The Parquet lake: Hive-partitioned files written through DuckDB from Arrow tables.

Layout: `<root>/<dataset>/tenant=<t>/date=YYYY-MM-DD/hour=HH/<epoch>-<first>-<last>.parquet`.
Buffering and the flush policy come from `sinks.files`, atomic, offset-named files from
`sinks.commits`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa
from pydantic import Field

from core.config import SinkConfig
from core.durable import commit_file
from core.events import ALERTS, EVENTS, TIMESTAMP, Batch, Event
from core.provenance import path_component
from core.sink import SinkContext
from core.telemetry import tenant_label
from sinks.commits import remove_file, temporary_name, trimmed_name
from sinks.files import FileBuffer, FlushPolicy, PartitionedFileSink
from sinks.lake.schema import events_to_table


class LakeConfig(SinkConfig):
    type: Literal["parquet_lake"] = "parquet_lake"
    path: Path | None = Field(None, description="lake root; default <data_dir>/lake")
    flush: FlushPolicy = FlushPolicy()
    compression: Literal["zstd", "snappy", "gzip", "uncompressed"] = "zstd"


def lake_root(data_dir: Path, sinks: Iterable[SinkConfig] = ()) -> Path:
    """Where the lake is: the `path` of a configured parquet_lake sink, else `<data_dir>/lake`."""
    for sink in sinks:
        if isinstance(sink, LakeConfig) and sink.path is not None:
            return sink.path
    return data_dir / "lake"


def partition_dir(root: Path, dataset: str, tenant: str, ts: datetime) -> Path:
    """The Hive partition directory of an event; every component is checked again here
    (raises UnsafePathComponent), so no value can name a directory outside the lake."""
    ts = ts.astimezone(UTC)
    return (root / path_component("dataset", dataset)
            / f"tenant={path_component('tenant', tenant)}"
            / f"date={path_component('date', f'{ts.year:04d}-{ts.month:02d}-{ts.day:02d}')}"
            / f"hour={path_component('hour', f'{ts.hour:02d}')}")


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
        tmp = temporary_name(target)
        con = self._connection()
        con.register("lake_batch", table)
        try:
            quoted = str(tmp).replace("'", "''")
            con.execute(f"COPY lake_batch TO '{quoted}' "
                        f"(FORMAT parquet, COMPRESSION {self.compression})")
        finally:
            con.unregister("lake_batch")
        return commit_file(tmp, target)

    def trim_sync(self, path: Path, keep: dict[str, int]) -> int:
        """Keep the rows of `path` whose offset is at or below `keep[tenant]`; rows removed."""
        con = duckdb.connect(":memory:")
        try:
            source = str(path).replace("'", "''")
            columns = {row[0] for row in con.execute(
                f"DESCRIBE SELECT * FROM read_parquet('{source}')").fetchall()}
            if "vigil.offset" not in columns:
                return 0  # written before rows carried offsets: nothing to trim by
            where = " OR ".join('("vigil.tenant" = ? AND "vigil.offset" <= ?)' for _ in keep)
            params = [v for item in keep.items() for v in item]
            counts = con.execute(
                f'SELECT count(*), count(*) FILTER (WHERE {where}), max("vigil.offset") '
                f"FILTER (WHERE {where}) FROM read_parquet('{source}')", params * 2).fetchone()
            assert counts is not None  # an aggregate always yields one row
            total, kept, top = counts
            removed = int(total) - int(kept)
            if not kept:
                remove_file(path)
                return removed
            target = trimmed_name(path, int(top))
            tmp = temporary_name(target)
            quoted = str(tmp).replace("'", "''")
            con.execute(f"COPY (SELECT * FROM read_parquet('{source}') WHERE {where}) TO "
                        f"'{quoted}' (FORMAT parquet, COMPRESSION {self.compression})", params)
            commit_file(tmp, target)
            if target != path:
                remove_file(path)
            return removed
        finally:
            con.close()

    async def write(self, table: pa.Table, target: Path) -> int:
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self.write_sync, table, target)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


class LakeSink(PartitionedFileSink):
    """`type: parquet_lake`."""

    config_model = LakeConfig
    accepts = frozenset({EVENTS, ALERTS})
    extension = "parquet"

    config: LakeConfig

    def __init__(self, sink_id: str, config: LakeConfig, context: SinkContext) -> None:
        super().__init__(sink_id, config, context, lake_root(context.data_dir, [config]),
                         config.flush)
        self.schemas = context.schemas
        self.writer = LakeWriter(config.compression)

    def partition_key(self, batch: Batch, event: Event) -> tuple[str, str, int, int, int, int]:
        ts = event.get(TIMESTAMP)
        if not isinstance(ts, datetime):
            ts = event[TIMESTAMP] = datetime.now(UTC)
        elif ts.tzinfo is not UTC:
            ts = ts.astimezone(UTC)
        # The tenant is the batch's journal partition, never a field of the event.
        return (batch.dataset or "unknown", batch.partition, ts.year, ts.month, ts.day, ts.hour)

    def directory(self, key: tuple[str, str, int, int, int, int]) -> tuple[Path, str]:
        dataset, tenant, year, month, day, hour = key
        hour_start = datetime(year, month, day, hour, tzinfo=UTC)
        return partition_dir(self.root, dataset, tenant, hour_start), dataset

    async def write_buffer(self, buffer: FileBuffer, target: Path) -> int:
        fields = self.schemas.fields(buffer.dataset)
        table, failures = events_to_table(buffer.events, fields)
        if failures:
            self.metrics.error("type_conversion", "flush", failures)
        return await self.writer.write(table, target)

    def find_poison(self, buffer: FileBuffer) -> list[tuple[Event, Exception]]:
        """The rows that do not convert on their own (e.g. nesting deeper than the encoder's
        limit): converted one by one, only after the whole buffer failed."""
        fields = self.schemas.fields(buffer.dataset)
        poison = []
        for event in buffer.events:
            try:
                events_to_table([event], fields)
            except Exception as exc:
                poison.append((event, exc))
        return poison

    def is_environmental(self, exc: BaseException) -> bool:
        return super().is_environmental(exc) or isinstance(exc, duckdb.IOException)

    def trim_file(self, path: Path, keep: dict[str, int]) -> int:
        return self.writer.trim_sync(path, keep)

    def committed(self, buffer: FileBuffer, size: int) -> None:
        labels = (buffer.dataset, tenant_label(buffer.tenant))
        self.telemetry.lake_files.labels(*labels).inc()
        self.telemetry.lake_rows.labels(*labels).inc(len(buffer.events))
        self.telemetry.lake_bytes.labels(*labels).inc(size)

    async def stop(self) -> None:
        await super().stop()
        self.writer.close()
