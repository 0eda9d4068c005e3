"""Events from Event Hubs event bodies: Azure diagnostic settings and the activity log export
JSON `{"records": [...]}` (one event per record, keys as they are, for the identity and
activity pipelines); other JSON objects are one event; other bodies are kept in `message`."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import orjson

from collector.sources.pull import split_records
from core.events import MESSAGE, PARSE_ERROR, TIMESTAMP, Event


def events_from_body(body: bytes, fmt: Literal["auto", "json", "text"],
                     enqueued_at: datetime) -> list[Event]:
    """The events one Event Hubs event carries; `enqueued_at` stands in for their time."""
    if fmt != "text":
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if fmt == "json":
                return [{TIMESTAMP: enqueued_at, MESSAGE: body.decode("utf-8", "replace"),
                         PARSE_ERROR: f"invalid JSON: {exc}"}]
        else:
            if fmt == "json" or isinstance(value, dict | list):
                return split_records(value, "records", enqueued_at, lambda: body)
    try:
        return [{TIMESTAMP: enqueued_at, MESSAGE: body.decode("utf-8")}]
    except UnicodeDecodeError:
        return [{TIMESTAMP: enqueued_at, MESSAGE: body.decode("utf-8", "replace"),
                 PARSE_ERROR: "body is not UTF-8 text"}]
