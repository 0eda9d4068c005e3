"""Arrow columns built per batch on the lake's writer thread, assembled into a file's table at
flush: the event loop hands events over and never converts them.

A buffer's batches become `TableChunk`s as they arrive (`build_chunk`, in slices of
`SLICE_ROWS` rows so the writer thread never holds the GIL for more than a few milliseconds at
a time); `assemble` concatenates them at flush. A row that no column can hold (poison) is found
while its batch is built, kept out of the chunk and handed back with its exception for the dead
letter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from core.events import Event
from core.schema import FieldType
from sinks.lake.schema import arrow_schema

# Rows converted in one call into pyarrow (which holds the GIL throughout): ~4 ms of FortiGate
# events on a loaded core, so the event loop waits at most that long for the interpreter.
SLICE_ROWS = 256

Converter = Callable[[list[Event], dict[str, FieldType]], tuple[pa.Table, int]]


@dataclass
class TableChunk:
    """The Arrow rows of some buffered events: `tables` hold every event but the `poison` ones
    (in order), `failures` counts values that became null. `error` is set when the events
    failed as a whole and no single row explains it (the flush converts them again)."""

    events: int
    tables: list[pa.Table] = field(default_factory=list)
    failures: int = 0
    poison: list[tuple[Event, Exception]] = field(default_factory=list)
    error: Exception | None = None

    @property
    def rows(self) -> int:
        return sum(t.num_rows for t in self.tables)


def build_chunk(events: list[Event], fields: dict[str, FieldType], convert: Converter,
                slice_rows: int = SLICE_ROWS) -> TableChunk:
    """Convert `events` (never raises: a failure is recorded in the chunk)."""
    chunk = TableChunk(len(events))
    for start in range(0, len(events), slice_rows):
        part = events[start:start + slice_rows]
        try:
            table, failures = convert(part, fields)
        except Exception as whole:
            try:
                table, failures = _isolate(part, fields, convert, chunk.poison, whole)
            except Exception as exc:
                chunk.error = exc
                return chunk
        chunk.failures += failures
        if table.num_rows:
            chunk.tables.append(table)
    return chunk


def _isolate(part: list[Event], fields: dict[str, FieldType], convert: Converter,
             poison: list[tuple[Event, Exception]], whole: Exception) -> tuple[pa.Table, int]:
    """The rows of `part` that convert, with the ones that do not on their own added to
    `poison`; raises `whole` (what the slice failed with) when no row is to blame."""
    kept = []
    for event in part:
        try:
            convert([event], fields)
        except Exception as exc:
            poison.append((event, exc))
        else:
            kept.append(event)
    if len(kept) == len(part):
        raise whole
    return convert(kept, fields)


def assemble(chunks: list[TableChunk], fields: dict[str, FieldType]) -> pa.Table:
    """One table of every chunk's rows in order: columns sorted by name, a column a chunk
    lacks is null there. Raises when the chunks' types disagree (the schema changed by a
    reload between batches: the caller converts the events again)."""
    tables = [t for chunk in chunks for t in chunk.tables]
    if not tables:
        return arrow_schema((), fields).empty_table()
    table = pa.concat_tables(tables, promote_options="default")
    names = sorted(table.column_names)
    return table if names == table.column_names else table.select(names)
