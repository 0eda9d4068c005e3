"""The event and the batch: the units every stage passes along.

An event is a flat dict with dotted ECS-style keys; `@timestamp` and `vigil.received_at` are
timezone-aware UTC datetimes. A batch is a list of events of one tenant (journal partition),
with the offsets it covers, so acknowledgement can follow it through every stage.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Event = dict[str, Any]

# Reserved provenance keys.
TENANT = "vigil.tenant"
DATASET = "vigil.dataset"
SOURCE = "vigil.source"
RECEIVED_AT = "vigil.received_at"
PARSE_ERROR = "vigil.parse_error"
TRUNCATED = "vigil.truncated"
OFFSET = "vigil.offset"
# Set by a source on input it could not turn into events (e.g. an S3 object that does not
# decompress): the reason; the pipelines send such an event straight to the dead letter.
SOURCE_FAILURE = "vigil.source_failure"

TIMESTAMP = "@timestamp"
MESSAGE = "message"
# The bytes a sender sent, base64, when they are not UTF-8 (the text fields hold U+FFFD).
ORIGINAL_BASE64 = "event.original_base64"


# The partition of events whose tenant could not be decided (never a tenant id: those are slugs).
QUARANTINE = "_quarantine"

# Batch kinds: what a batch holds, so each sink takes only what it stores.
EVENTS = "events"
DEAD_LETTERS = "dead_letter"
ALERTS = "alerts"
# Datasets the daemon writes itself (detection's alerts in the lake): no source, sender or
# pipeline may put events into them.
RESERVED_DATASETS = frozenset({"alerts"})


@dataclass(slots=True)
class Batch:
    """Events of one partition (tenant) with the journal offsets they span (inclusive).

    `originals`, when the queue can give it, returns event `i` of the batch as it left the
    queue (the journal decodes its record again), so a stage that changes events in place can
    still dead-letter the input of one that fails without copying every event beforehand."""

    partition: str
    events: list[Event]
    first_offset: int
    last_offset: int
    dataset: str | None = None
    kind: str = EVENTS
    meta: dict[str, Any] = field(default_factory=dict)
    originals: Callable[[int], Event] | None = None

    def __len__(self) -> int:
        return len(self.events)


# The one stage signature (pipelines, detection): a batch in; out, the batches of what it kept
# (one per dataset), a `dead_letter` batch of what failed (each record with its reason) and any
# batches it derived (`alerts`), all of the input's partition and offset range. A stage never
# raises for one bad event; a stage that changed nothing may return the input batch itself.
Stage = Callable[[Batch], list[Batch]]


def decode_text(data: bytes | bytearray) -> tuple[str, str | None]:
    """Bytes from a sender as text, and when they are not valid UTF-8 (decoded with U+FFFD),
    the original bytes as base64 for `ORIGINAL_BASE64`, so nothing is lost for forensics."""
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace"), base64.b64encode(data).decode("ascii")


def keep_original(event: Event, data: bytes | bytearray) -> Event:
    """`event` with `ORIGINAL_BASE64` set when `data`, the bytes it came from, is not UTF-8."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        event[ORIGINAL_BASE64] = base64.b64encode(data).decode("ascii")
    return event


def as_datetime(value: Any) -> datetime | None:
    """An event time (a datetime or ISO 8601 text) as an aware datetime, a naive one taken as
    UTC; None for anything else."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


class _Token(str):
    """Text `json_text` emits as it is (punctuation, keys)."""


def json_text(value: Any) -> str:
    """JSON text of any value at any depth: iterative (no recursion limit), keys and values
    JSON cannot hold as strings, text escaped to ASCII (lone surrogates survive)."""
    parts: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Token):
            parts.append(item)
        elif isinstance(item, dict):
            parts.append("{")
            stack.append(_Token("}"))
            entries = list(item.items())
            for index in range(len(entries) - 1, -1, -1):
                key, member = entries[index]
                stack.append(member)
                stack.append(_Token(("," if index else "") + json.dumps(str(key)) + ":"))
        elif isinstance(item, (list, tuple)):
            parts.append("[")
            stack.append(_Token("]"))
            for index in range(len(item) - 1, -1, -1):
                stack.append(item[index])
                if index:
                    stack.append(_Token(","))
        elif item is None or isinstance(item, (str, bool, int)):
            parts.append(json.dumps(item))
        elif isinstance(item, float):
            parts.append(json.dumps(item) if item == item and abs(item) != float("inf")
                         else "null")
        elif isinstance(item, datetime):
            parts.append(json.dumps(item.isoformat()))
        else:
            parts.append(json.dumps(str(item)))
    return "".join(parts)
