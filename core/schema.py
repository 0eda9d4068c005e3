"""Field types of datasets: the types a pipeline declares for its fields, the fields every
dataset has, and how a value is coerced to a type (the lake's columns, the `convert` step).

A column keeps one type within a dataset: fields a dataset declares get their declared type,
every other field is a string, so files written at different times always union cleanly.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any, Literal

import orjson

from core.events import as_datetime, json_text

FieldType = Literal["string", "int", "float", "bool", "ip", "timestamp", "list"]


# Fields every dataset has, whatever its pipeline declares.
BASE_SCHEMA: dict[str, FieldType] = {
    "@timestamp": "timestamp",
    "vigil.received_at": "timestamp",
    "vigil.truncated": "bool",
    "vigil.offset": "int",
    "process.pid": "int",
    "log.syslog.priority": "int",
    "log.syslog.facility.code": "int",
    "log.syslog.severity.code": "int",
    "log.syslog.version": "int",
}


class DatasetSchemas:
    """Declared field types per dataset (pipelines register theirs)."""

    def __init__(self) -> None:
        self._schemas: dict[str, dict[str, FieldType]] = {}

    def register(self, dataset: str, fields: dict[str, FieldType]) -> None:
        self._schemas[dataset] = {**BASE_SCHEMA, **fields}

    def reset(self, declared: dict[str, dict[str, FieldType]]) -> None:
        """Replace every declaration (on reload: the pipelines' schemas as now configured)."""
        self._schemas = {dataset: {**BASE_SCHEMA, **fields} for dataset, fields in
                         declared.items()}

    def fields(self, dataset: str) -> dict[str, FieldType]:
        return self._schemas.get(dataset, BASE_SCHEMA)


def _to_string(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (dict, list, tuple)):
        try:
            return orjson.dumps(value, default=str).decode()
        except TypeError:  # integers past 64 bits (JSON allows them) or lone surrogates
            return json_text(value)
    return str(value)


def _to_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _to_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _to_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    return None


def _to_ip(value: Any) -> str | None:
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        return None


def _to_list(value: Any) -> list[str | None] | None:
    if isinstance(value, (list, tuple)):
        return [_to_string(v) for v in value]
    return [_to_string(value)]


CONVERTERS = {"string": _to_string, "int": _to_int, "float": _to_float, "bool": _to_bool,
              "timestamp": as_datetime, "ip": _to_ip, "list": _to_list}
