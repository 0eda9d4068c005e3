"""Events from JSON that senders wrote (TCP JSON lines, HTTP bodies): the decoded object's keys
as they are (flattening is a pipeline's job), with Vigil's reserved keys protected.

Keys a sender may not set (`vigil.*`: tenant, source, dataset are decided here, and a top-level
`vigil` object, which flattening would turn into such keys) are kept under `payload.<key>`; an
`@timestamp` that is not a time Vigil can read is kept as `payload.@timestamp` and the receive
time used instead. Nothing the sender wrote is dropped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from core.events import MESSAGE, PARSE_ERROR, TIMESTAMP, Event, keep_original
from core.nesting import (
    DEFAULT_MAX_DEPTH,
    json_text,
    may_nest_over,
    nesting_over,
    too_deep_event,
)
from core.provenance import MOVED_PREFIX, SENDER_NAMESPACE

RESERVED_PREFIX = "vigil."
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def event_from_object(obj: dict[str, Any], received_at: datetime,
                      max_depth: int | None = DEFAULT_MAX_DEPTH) -> Event:
    """An event from one decoded JSON object; one nested deeper than `max_depth` is kept as
    text for the dead letter (None: the caller checked already)."""
    if max_depth is not None and nesting_over(obj, max_depth):
        return too_deep_event(json_text(obj), received_at, max_depth)
    event: Event = {}
    for key, value in obj.items():
        if key.startswith(RESERVED_PREFIX) or key == SENDER_NAMESPACE:
            key = MOVED_PREFIX + key
        event[key] = value
    stamp = event.get(TIMESTAMP)
    if stamp is None:
        event[TIMESTAMP] = received_at
    elif not isinstance(stamp, datetime):
        parsed = parse_timestamp(stamp)
        if parsed is None:
            event[MOVED_PREFIX + TIMESTAMP] = stamp
            parsed = received_at
        event[TIMESTAMP] = parsed
    return event


def unparsed_event(text: str, received_at: datetime, reason: str) -> Event:
    """Input that could not be decoded, kept whole and marked."""
    return {TIMESTAMP: received_at, MESSAGE: text, PARSE_ERROR: reason}


def event_from_json_line(line: bytes, received_at: datetime,
                         max_depth: int = DEFAULT_MAX_DEPTH) -> Event:
    """One JSON-lines record; anything but a JSON object is kept in `message`, marked; one
    nested deeper than `max_depth` is kept as text for the dead letter."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        if is_depth_error(exc):
            return too_deep_event(line.decode("utf-8", "replace"), received_at, max_depth)
        return keep_original(unparsed_event(line.decode("utf-8", "replace"), received_at,
                                            describe_json_error(exc)), line)
    if not isinstance(value, dict):
        return keep_original(unparsed_event(line.decode("utf-8", "replace"), received_at,
                                            f"not a JSON object but {json_kind(value)}"), line)
    if may_nest_over(line, max_depth) and nesting_over(value, max_depth):
        return too_deep_event(line.decode("utf-8", "replace"), received_at, max_depth)
    return event_from_object(value, received_at, None)


def describe_json_error(exc: orjson.JSONDecodeError) -> str:
    """orjson's refusal in words for the sender (it says `str is not valid UTF-8` of bytes)."""
    message = exc.msg
    if "not valid UTF-8" in message:
        return "invalid JSON: the text is not valid UTF-8"
    if message.startswith("Input is a zero-length"):
        return "invalid JSON: empty"
    return f"invalid JSON at column {exc.colno}: {message}"


def is_depth_error(exc: Exception) -> bool:
    """orjson's refusal of input nested past its own limit (1024)."""
    return "depth limit" in str(exc) or "ecursion" in str(exc)


def json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def parse_timestamp(value: Any) -> datetime | None:
    """An aware UTC datetime from ISO 8601 text or a Unix time in s, ms, us or ns; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            return _from_epoch(float(text))
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            return None
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    return None


def _from_epoch(number: float) -> datetime | None:
    if number != number or number < 0:  # NaN, or before 1970
        return None
    magnitude = abs(number)
    # Senders mix units; pick the one that lands in a plausible era (before year ~5138).
    for divisor in (1.0, 1e3, 1e6, 1e9):
        if magnitude / divisor < 1e11:
            try:
                return _EPOCH + timedelta(seconds=number / divisor)
            except OverflowError:
                return None
    return None
