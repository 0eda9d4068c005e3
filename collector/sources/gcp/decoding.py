"""Events from Pub/Sub message data: a Cloud Logging LogEntry (what a log sink publishes, one
entry per message: audit logs and every other log) keeps its keys as they are, for the
pipelines to map; its `timestamp` becomes `@timestamp`. Other data is kept in `message`."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import orjson

from collector.sources.json_events import event_from_object, json_kind, parse_timestamp
from core.events import MESSAGE, PARSE_ERROR, TIMESTAMP, Event, keep_original


def event_from_data(data: bytes, fmt: Literal["auto", "json", "text"],
                    published_at: datetime) -> Event:
    """One event from one message's data; `published_at` stands in for a missing time."""
    if fmt != "text":
        problem: str | None
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            value, problem = None, f"invalid JSON: {exc}"
        else:
            problem = None if isinstance(value, dict) else \
                f"not a JSON object but {json_kind(value)}"
        if isinstance(value, dict):
            event = event_from_object(value, published_at)
            if "@timestamp" not in value and isinstance(value.get("timestamp"), str):
                # A LogEntry's time of the logged occurrence (RFC 3339).
                event[TIMESTAMP] = parse_timestamp(value["timestamp"]) or published_at
            return event
        if fmt == "json":
            return keep_original({TIMESTAMP: published_at,
                                  MESSAGE: data.decode("utf-8", "replace"),
                                  PARSE_ERROR: problem}, data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return keep_original({TIMESTAMP: published_at, MESSAGE: data.decode("utf-8", "replace"),
                              PARSE_ERROR: "data is not UTF-8 text"}, data)
    return {TIMESTAMP: published_at, MESSAGE: text}
