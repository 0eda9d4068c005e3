"""Arrow column types of lake datasets and the conversion of events into Arrow tables.

Field types and value coercion are in `core.schema`: fields a dataset declares get their declared
type, every other field is a string column (non-string values JSON-encoded).
"""

from __future__ import annotations

import pyarrow as pa

from core.events import Event
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


def events_to_table(events: list[Event], fields: dict[str, FieldType],
                    drop: frozenset[str] = frozenset()) -> tuple[pa.Table, int]:
    """An Arrow table of `events` typed by `fields`; also returns how many values failed
    conversion (those cells are null)."""
    names: dict[str, None] = {"@timestamp": None}
    for event in events:
        names.update(dict.fromkeys(event))
    ordered = [name for name in sorted(names) if name not in drop]
    schema = pa.schema([(name, ARROW_TYPES[fields.get(name, "string")]) for name in ordered])
    try:
        # The whole table in C when every value fits its column (a quarter faster); otherwise
        # column by column below, converting what does not fit.
        return pa.Table.from_pylist(events, schema=schema), 0
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        pass
    columns, arrays, failures = [], [], 0
    for name in ordered:
        field_type = fields.get(name, "string")
        arrow_type = ARROW_TYPES[field_type]
        values = [e.get(name) for e in events]
        try:
            array = pa.array(values, type=arrow_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            convert = CONVERTERS[field_type]
            converted = [None if v is None else convert(v) for v in values]
            failures += sum(1 for v, c in zip(values, converted, strict=True)
                            if v is not None and c is None)
            array = pa.array(converted, type=arrow_type)
        columns.append(name)
        arrays.append(array)
    return pa.Table.from_arrays(arrays, names=columns), failures
