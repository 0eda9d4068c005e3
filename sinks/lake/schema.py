"""Arrow column types of lake datasets and the conversion of events into Arrow tables.

Field types and value coercion are in `core.schema`: fields a dataset declares get their declared
type, every other field is a string column (non-string values JSON-encoded).
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from core.events import TIMESTAMP, Event
from core.schema import CONVERTERS, FieldType

ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "ip": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "list": pa.list_(pa.string()),
}


def arrow_schema(names: Iterable[str], fields: dict[str, FieldType]) -> pa.Schema:
    """The Arrow schema of columns `names` (sorted) typed by `fields` (strings otherwise)."""
    return pa.schema([(name, ARROW_TYPES[fields.get(name, "string")]) for name in sorted(names)])


def events_to_table(events: list[Event], fields: dict[str, FieldType],
                    drop: frozenset[str] = frozenset()) -> tuple[pa.Table, int]:
    """An Arrow table of `events` typed by `fields`; also returns how many values failed
    conversion (those cells are null). Raises only on a value no column can hold (poison)."""
    names: set[str] = {TIMESTAMP}
    for event in events:
        names.update(event)
    schema = arrow_schema(names - drop, fields)
    try:
        # Every column's builder filled in C by pyarrow's struct converter (missing keys become
        # nulls) when every value fits its column: about twice as fast as `Table.from_pylist`.
        rows = pa.array(events, type=pa.struct(list(schema)))
        return pa.Table.from_struct_array(rows), 0
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        pass
    arrays, failures = [], 0
    for column in schema:
        field_type = fields.get(column.name, "string")
        values = [e.get(column.name) for e in events]
        try:
            array = pa.array(values, type=column.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            convert = CONVERTERS[field_type]
            converted = [None if v is None else convert(v) for v in values]
            failures += sum(1 for v, c in zip(values, converted, strict=True)
                            if v is not None and c is None)
            array = pa.array(converted, type=column.type)
        arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=schema), failures
