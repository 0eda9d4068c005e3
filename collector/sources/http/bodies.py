"""Request bodies into events: `/v1/logs` (a JSON object, a JSON array or NDJSON) and Splunk
HEC (`/services/collector/event`: concatenated envelopes; `/services/collector/raw`: lines).

Malformed input is never thrown away: each bad line, element or envelope becomes an event with
`vigil.parse_error`, and the problems are listed so the reply can name them.
"""

from __future__ import annotations

import base64
import json
import re
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from collector.sources.json_events import (
    MOVED_PREFIX,
    event_from_json_line,
    event_from_object,
    json_kind,
    parse_timestamp,
    unparsed_event,
)
from core.events import (
    MESSAGE,
    ORIGINAL_BASE64,
    PARSE_ERROR,
    TIMESTAMP,
    Event,
    decode_text,
)
from core.nesting import (
    DEFAULT_MAX_DEPTH,
    json_text,
    may_nest_over,
    nesting_over,
    too_deep_event,
    too_deep_reason,
)

MAX_REPORTED_ERRORS = 100


class BodyTooLarge(Exception):
    """The body, or what it inflates to, is over the limit."""


class BadEncoding(Exception):
    """The body is not valid for its Content-Encoding."""


_FIRST_PIECE = 64
_MAX_PIECE = 1 << 20
_NOT_ZERO = re.compile(rb"[^\x00]")
DEFAULT_MAX_MEMBERS = 10_000
INFLATE_SECONDS = 10.0


def inflate_gzip(body: bytes, limit: int, max_members: int = DEFAULT_MAX_MEMBERS,
                 seconds: float = INFLATE_SECONDS) -> bytes:
    """Gunzip one or more members without ever holding more than `limit` + 1 bytes, in time
    linear in the body: each member is fed in pieces that start small and double, so what
    zlib copies as `unused_data` at a member's end is at most about that member's own size
    (feeding the whole remainder to every member made many tiny members quadratic). More than
    `max_members` members, or more than `seconds` of work, is refused (BadEncoding)."""
    out = bytearray()
    view = memoryview(body)
    end = len(body)
    deadline = time.monotonic() + seconds
    members = 0
    pos = 0
    while True:
        found = _NOT_ZERO.search(body, pos)  # members may be padded with zeros
        if found is None:
            break
        pos = found.start()
        members += 1
        if members > max_members:
            raise BadEncoding(f"gzip body has more than {max_members} members")
        if time.monotonic() > deadline:
            raise BadEncoding(f"gzip body took more than {seconds:g} s to inflate")
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        piece = _FIRST_PIECE
        while True:
            data = view[pos:pos + piece]
            try:
                out += inflater.decompress(data, limit + 1 - len(out))
            except zlib.error as exc:
                raise BadEncoding(f"body is not valid gzip: {exc}") from None
            if len(out) > limit:
                raise BodyTooLarge
            if inflater.unconsumed_tail:  # stopped by the limit, not by the end of the data
                raise BodyTooLarge
            if inflater.eof:
                pos += len(data) - len(inflater.unused_data)
                break
            pos += len(data)
            if pos >= end:
                raise BadEncoding("body is not valid gzip: truncated stream")
            piece = min(piece * 2, _MAX_PIECE)
    return bytes(out)


@dataclass
class Decoded:
    """Events from one body, and what was malformed in it (already kept as events)."""

    events: list[Event] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)
    invalid: int = 0

    def problem(self, where: str, index: int, message: str) -> None:
        self.invalid += 1
        if len(self.problems) < MAX_REPORTED_ERRORS:
            self.problems.append({where: index, "error": message})


def decode_logs(body: bytes, received_at: datetime,
                max_depth: int = DEFAULT_MAX_DEPTH) -> Decoded:
    """`/v1/logs`: one JSON object, a JSON array of objects, or NDJSON (one object a line).
    An object nested deeper than `max_depth` is kept as text for the dead letter, named."""
    decoded = Decoded()
    try:
        whole = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _ndjson(body, received_at, decoded, max_depth)
    deep = may_nest_over(body, max_depth)  # else no walk is needed
    if isinstance(whole, dict):
        if deep and nesting_over(whole, max_depth):
            decoded.events.append(too_deep_event(body.decode("utf-8", "replace"), received_at,
                                                 max_depth))
            decoded.problem("line", 1, too_deep_reason(max_depth))
        else:
            decoded.events.append(event_from_object(whole, received_at, None))
    elif isinstance(whole, list):
        for index, item in enumerate(whole):
            if isinstance(item, dict) and deep and nesting_over(item, max_depth):
                decoded.events.append(too_deep_event(json_text(item), received_at, max_depth))
                decoded.problem("element", index, too_deep_reason(max_depth))
            elif isinstance(item, dict):
                decoded.events.append(event_from_object(item, received_at, None))
            else:
                reason = f"not a JSON object but {json_kind(item)}"
                decoded.events.append(unparsed_event(_dump(item), received_at, reason))
                decoded.problem("element", index, reason)
    else:
        reason = f"not a JSON object but {json_kind(whole)}"
        decoded.events.append(unparsed_event(body.decode("utf-8", "replace"), received_at,
                                             reason))
        decoded.problem("line", 1, reason)
    return decoded


def _ndjson(body: bytes, received_at: datetime, decoded: Decoded, max_depth: int) -> Decoded:
    for number, line in enumerate(body.split(b"\n"), 1):
        line = line.removesuffix(b"\r")
        if not line.strip():
            continue
        event = event_from_json_line(line, received_at, max_depth)
        if PARSE_ERROR in event:
            decoded.problem("line", number, event[PARSE_ERROR])
        decoded.events.append(event)
    return decoded


def _dump(value: Any) -> str:
    return json_text(value)  # however deep a kept value is


@dataclass
class HecDecoded(Decoded):
    """HEC replies name the first bad envelope (0-based) and the reason in HEC's terms."""

    first_invalid: int | None = None
    hec_text: str = ""
    hec_code: int = 0

    def invalid_envelope(self, number: int, text: str, code: int, message: str) -> None:
        if self.first_invalid is None:
            self.first_invalid, self.hec_text, self.hec_code = number, text, code
        self.problem("event", number, message)


def decode_hec_events(body: bytes, received_at: datetime, defaults: dict[str, str],
                      max_depth: int = DEFAULT_MAX_DEPTH) -> HecDecoded:
    """Concatenated HEC envelopes (`{"event": ..., "time": ..., "host": ...}` ...). An
    envelope whose event nests deeper than `max_depth` is kept as text for the dead letter."""
    decoded = HecDecoded()
    try:
        text, escaped = body.decode("utf-8"), False
    except UnicodeDecodeError:  # bytes kept as surrogates, to give each event its own back
        text, escaped = body.decode("utf-8", "surrogateescape"), True
    decoder = json.JSONDecoder()
    pos, end, number = 0, len(text), 0
    while True:
        while pos < end and text[pos] in " \t\r\n":
            pos += 1
        if pos >= end:
            break
        start = pos
        try:
            envelope, pos = decoder.raw_decode(text, pos)
        except RecursionError:  # nested far past max_depth: the end cannot be found either
            reason = too_deep_reason(max_depth)
            decoded.events.append(too_deep_event(text[start:], received_at, max_depth))
            decoded.invalid_envelope(number, f"Invalid data format: {reason}", 6, reason)
            if escaped:
                _restore_bytes(decoded.events, -1, text[start:])
            break
        except json.JSONDecodeError as exc:
            # The next envelope cannot be found reliably: the rest is one kept event.
            reason = f"invalid JSON: {exc.msg} at char {exc.pos}"
            decoded.events.append(unparsed_event(text[pos:], received_at, reason))
            decoded.invalid_envelope(number, "Invalid data format", 6, reason)
            if escaped:
                _restore_bytes(decoded.events, -1, text[pos:])
            break
        if isinstance(envelope, dict) and nesting_over(envelope, max_depth + 1):
            reason = too_deep_reason(max_depth)
            decoded.events.append(too_deep_event(text[start:pos], received_at, max_depth))
            decoded.invalid_envelope(number, f"Invalid data format: {reason}", 6, reason)
        elif not isinstance(envelope, dict):
            reason = f"envelope is not a JSON object but {json_kind(envelope)}"
            decoded.events.append(unparsed_event(_dump(envelope), received_at, reason))
            decoded.invalid_envelope(number, "Invalid data format", 6, reason)
        elif "event" not in envelope:
            reason = "envelope has no `event` field"
            kept = event_from_object(envelope, received_at, None)
            kept[PARSE_ERROR] = reason
            decoded.events.append(kept)
            decoded.invalid_envelope(number, "Event field is required", 12, reason)
        elif envelope["event"] in ("", None):
            reason = "envelope's `event` field is blank"
            kept = event_from_object(envelope, received_at, None)
            kept[PARSE_ERROR] = reason
            decoded.events.append(kept)
            decoded.invalid_envelope(number, "Event field cannot be blank", 13, reason)
        else:
            decoded.events.append(hec_event(envelope, received_at, defaults))
        if escaped:
            _restore_bytes(decoded.events, -1, text[start:pos])
        number += 1
    return decoded


def _restore_bytes(events: list[Event], index: int, span: str) -> None:
    """An event decoded from text holding bytes that are not UTF-8 (as surrogates): its text
    gets U+FFFD in their place and `ORIGINAL_BASE64` the envelope's original bytes."""
    original = span.encode("utf-8", "surrogateescape")
    try:
        original.decode("utf-8")
    except UnicodeDecodeError:
        events[index] = _replaced(events[index])
        events[index][ORIGINAL_BASE64] = base64.b64encode(original).decode("ascii")


def _replaced(value: Any) -> Any:
    """`value` with surrogate-escaped bytes as U+FFFD, in keys and strings at any depth (the
    depth was bounded before)."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(value, dict):
        return {_replaced(k): _replaced(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replaced(v) for v in value]
    return value


def hec_event(envelope: dict[str, Any], received_at: datetime,
              defaults: dict[str, str]) -> Event:
    """One HEC envelope: `event` (an object's keys as they are, else `message`), `time` ->
    `@timestamp`, `host` -> `host.hostname`, `source`/`sourcetype`/`index` -> `splunk.*`,
    indexed `fields` -> `splunk.fields.<name>`."""
    payload = envelope["event"]
    if isinstance(payload, dict):
        event = event_from_object(payload, received_at, None)  # the envelope was checked
    else:
        message = payload if isinstance(payload, str) else _dump(payload)
        event = {TIMESTAMP: received_at, MESSAGE: message}
    if "time" in envelope:
        stamp = parse_timestamp(envelope["time"])
        if stamp is None:
            event[MOVED_PREFIX + "splunk.time"] = envelope["time"]
        else:
            event[TIMESTAMP] = stamp
    _hec_meta(event, envelope, defaults)
    fields = envelope.get("fields")
    if isinstance(fields, dict):
        for name, value in fields.items():
            event[f"splunk.fields.{name}"] = value
    elif fields is not None:
        event["splunk.fields"] = fields
    return event


def _hec_meta(event: Event, values: dict[str, Any], defaults: dict[str, str]) -> None:
    host = values.get("host", defaults.get("host"))
    if host is not None:
        event["host.hostname"] = host
    for key in ("source", "sourcetype", "index"):
        value = values.get(key, defaults.get(key))
        if value is not None:
            event[f"splunk.{key}"] = value


def decode_hec_raw(body: bytes, received_at: datetime, defaults: dict[str, str]) -> Decoded:
    """`/services/collector/raw`: each non-empty line is one event's `message`."""
    decoded = Decoded()
    for line in body.split(b"\n"):
        line = line.rstrip(b"\r")
        if not line.strip():
            continue
        text, original = decode_text(line)
        event: Event = {TIMESTAMP: received_at, MESSAGE: text}
        if original is not None:
            event[ORIGINAL_BASE64] = original
        _hec_meta(event, {}, defaults)
        decoded.events.append(event)
    return decoded
