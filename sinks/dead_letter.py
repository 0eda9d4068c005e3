"""The dead-letter area: events a pipeline step failed on, kept with the reason for replay.

Layout: `<root>/tenant=<t>/date=YYYY-MM-DD/<epoch>-<first>-<last>.jsonl`, one JSON object per
line: the event as it left the queue (`event`), the `pipeline`, the `step`, the `error` and
`failed_at`. JSON lines rather than Parquet: records are few, heterogeneous, read by people, and
replayed event by event. `vigil dlq replay` renames a file `*.jsonl.replay`; the running daemon
appends its events to the queue (the journal) and, once they are durable, renames it
`*.jsonl.replayed`, so it is kept for audit but never replayed twice. A daemon killed between
the append and the rename replays that file again after restart (at least once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import Field

from core.config import SinkConfig
from core.durable import commit_file
from core.events import (
    DEAD_LETTERS,
    OFFSET,
    RECEIVED_AT,
    TENANT,
    TIMESTAMP,
    Batch,
    Event,
    json_text,
)
from core.provenance import path_component
from core.sink import SinkContext
from core.telemetry import tenant_label
from sinks.buffer import FileBuffer, FlushPolicy
from sinks.commits import remove_file, temporary_name, trimmed_name
from sinks.files import PartitionedFileSink

REPLAY_SUFFIX = ".replay"
REPLAYED_SUFFIX = ".replayed"
# Fields that are datetimes in an event as sources produce it, restored on replay.
_DATETIME_FIELDS = (TIMESTAMP, RECEIVED_AT)


class DeadLetterConfig(SinkConfig):
    type: Literal["dead_letter"] = "dead_letter"
    path: Path | None = Field(None, description="dead-letter root; default <data_dir>/dlq")
    flush: FlushPolicy = FlushPolicy(max_rows=10_000, max_seconds=2.0)


def dead_letter_root(data_dir: Path, sinks: Iterable[SinkConfig] = ()) -> Path:
    """Where dead letters live: the `path` of a configured dead_letter sink, else
    `<data_dir>/dlq`."""
    for sink in sinks:
        if isinstance(sink, DeadLetterConfig) and sink.path is not None:
            return sink.path
    return data_dir / "dlq"


def encode_record(record: Event) -> bytes:
    """One JSON line; values JSON cannot hold become strings rather than failing the file, and
    a record orjson refuses (nested deeper than its limit, invalid text) is written by
    `json_text`: the dead letter is where poison goes, so it must take anything."""
    try:
        return orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE)
    except (orjson.JSONEncodeError, TypeError, ValueError):
        return (json_text(record) + "\n").encode()


class DeadLetterSink(PartitionedFileSink):
    """`type: dead_letter` (the daemon adds one at `<data_dir>/dlq` when none is configured)."""

    config_model = DeadLetterConfig
    accepts = frozenset({DEAD_LETTERS})
    extension = "jsonl"

    def __init__(self, sink_id: str, config: DeadLetterConfig, context: SinkContext) -> None:
        super().__init__(sink_id, config, context,
                         config.path or dead_letter_root(context.data_dir), config.flush)

    def partition_key(self, batch: Batch, event: Event) -> tuple[str, str]:
        failed_at = event.get(TIMESTAMP)
        if not isinstance(failed_at, datetime):
            failed_at = datetime.now(UTC)
        # The tenant is the batch's journal partition, never a field of the record.
        return (batch.partition,
                f"{failed_at.year:04d}-{failed_at.month:02d}-{failed_at.day:02d}")

    def directory(self, key: tuple[str, str]) -> tuple[Path, str]:
        tenant, date = key
        return (self.root / f"tenant={path_component('tenant', tenant)}"
                / f"date={path_component('date', date)}", "dead_letter")

    def event_size(self, event: Event) -> int:
        original = event.get("event")
        message = original.get("message") if isinstance(original, dict) else None
        return 300 + (len(message) if isinstance(message, str) else 0)

    async def write_buffer(self, buffer: FileBuffer, target: Path) -> int:
        return await asyncio.to_thread(_write_lines, buffer.events, target)

    def committed(self, buffer: FileBuffer, size: int) -> None:
        self.telemetry.dead_letter_files.labels(tenant_label(buffer.tenant)).inc()

    def trim_file(self, path: Path, keep: dict[str, int]) -> int:
        kept: list[bytes] = []
        removed = 0
        top = -1
        for line in path.read_bytes().splitlines(keepends=True):
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:  # deeper than orjson reads: keep it, untrimmed
                kept.append(line)
                continue
            original = record.get("event") or {}
            offset = original.get(OFFSET)
            limit = keep.get(str(record.get(TENANT)))
            if isinstance(offset, int) and limit is not None and offset > limit:
                removed += 1
                continue
            kept.append(line)
            top = max(top, offset if isinstance(offset, int) else -1)
        if not kept:
            remove_file(path)
        elif removed:
            target = trimmed_name(path, top) if top >= 0 else path
            tmp = temporary_name(target)
            tmp.write_bytes(b"".join(kept))
            commit_file(tmp, target)
            if target != path:
                remove_file(path)
        return removed


def _write_lines(records: list[Event], target: Path) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(target)
    with open(tmp, "wb") as handle:
        handle.write(b"".join(encode_record(r) for r in records))
    return commit_file(tmp, target)


@dataclass
class DeadLetter:
    """One record read back from the dead-letter area."""

    file: Path
    line: int
    tenant: str
    pipeline: str
    step: str
    error: str
    failed_at: str
    event: Event


def restore_event(stored: dict[str, Any]) -> Event:
    """The event as it was queued: timestamps back to datetimes; its old queue offset goes (it
    is queued again under a new one)."""
    event = dict(stored)
    event.pop(OFFSET, None)
    for name in _DATETIME_FIELDS:
        value = event.get(name)
        if isinstance(value, str):
            try:
                event[name] = datetime.fromisoformat(value)
            except ValueError:
                event.pop(name)
    return event


def dead_letter_files(root: Path, tenant: str | None = None, *, suffixes: tuple[str, ...] = ("",)
                      ) -> list[Path]:
    """Dead-letter files, oldest date first; `tenant` narrows to one tenant's area; `suffixes`
    picks the state: "" waiting, REPLAY_SUFFIX marked for replay, REPLAYED_SUFFIX done."""
    base = root / f"tenant={tenant}" if tenant else root
    found = {p for suffix in suffixes for p in base.glob(f"**/*.jsonl{suffix}")
             if not p.name.startswith(".")}
    return sorted(found, key=lambda p: (p.parent.name, p.name))


def read_dead_letters(path: Path) -> Iterator[DeadLetter]:
    """The records of one file; a line that is not a record is skipped (the file is ours, so
    that only happens if someone edited it)."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(record, dict) or not isinstance(record.get("event"), dict):
                continue
            yield DeadLetter(path, number, str(record.get(TENANT)), str(record.get("pipeline")),
                             str(record.get("step")), str(record.get("error")),
                             str(record.get("failed_at")), record["event"])


def mark_for_replay(path: Path) -> Path:
    """Hand a waiting file to the daemon for replay."""
    target = path.with_name(path.name + REPLAY_SUFFIX)
    path.rename(target)
    return target


def mark_replayed(path: Path) -> Path:
    """Rename a replayed file (waiting or marked) so it is kept but never replayed again."""
    name = path.name.removesuffix(REPLAY_SUFFIX)
    target = path.with_name(name + REPLAYED_SUFFIX)
    path.rename(target)
    return target
