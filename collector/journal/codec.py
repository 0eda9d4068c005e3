"""Event encoding and the on-disk record frame.

A record is one append: `magic | crc32c | length | first_offset | count | payload`, and the
CRC32C covers everything after itself. The payload is a msgpack map `{"s": shared, "e":
events}`: `shared` holds what every event of the append has in common (the provenance the
source stamps: tenant, source, receive time, the dataset when the source fixes it), stored once
and put back into each event when read. Records of the previous version hold a bare msgpack
list of events; both are read. Aware datetimes use msgpack's Timestamp extension (read back as
UTC, which every event time is).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgpack
from crc32c import crc32c

from collector.journal.errors import JournalEncodeError
from core.events import OFFSET, TENANT, Event, json_text

RECORD_MAGIC = b"\xd7VJr"
# magic, crc, payload length, first offset, event count
_HEADER = struct.Struct("<4sIIQI")
HEADER_SIZE = _HEADER.size
_CRC_FROM = 8  # the CRC covers the header from the length on, and the payload

SEGMENT_MAGIC = b"VIGILJ01"
SEGMENT_HEADER_SIZE = len(SEGMENT_MAGIC)

# A length field beyond this is damage, not a record (one append is far smaller).
MAX_RECORD_BYTES = 256 * 1024 * 1024

# Set on an event whose values the journal had to store as text.
ENCODING_ERROR = "vigil.encoding_error"

_EXT_NAIVE_DATETIME = 1
_EXT_BIG_INT = 2


def _default(value: Any) -> Any:
    # Only types the C packer refuses arrive here.
    if isinstance(value, datetime):  # naive: aware ones are Timestamps
        return msgpack.ExtType(_EXT_NAIVE_DATETIME, value.isoformat().encode())
    if isinstance(value, int):  # beyond 64 bits
        return msgpack.ExtType(_EXT_BIG_INT, str(value).encode())
    if isinstance(value, (set, frozenset)):
        raise TypeError(f"cannot store a {type(value).__name__}")
    raise TypeError(f"cannot store a value of type {type(value).__name__}")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _EXT_NAIVE_DATETIME:
        return datetime.fromisoformat(data.decode())
    if code == _EXT_BIG_INT:
        return int(data)
    return msgpack.ExtType(code, data)


_packer = msgpack.Packer(default=_default, datetime=True, autoreset=True)

# Keys of the payload map.
_SHARED = "s"
_EVENTS = "e"


def encode_events(events: list[Event], shared: Mapping[str, Any] | None = None) -> bytes:
    """The payload of one record: `events` and what they share (stored once). An event msgpack
    refuses (text with lone surrogates, nesting past its limit) does not fail the append, which
    a sender would retry for ever (HTTP 503, a held TCP stream): its unstorable values are kept
    as JSON text, marked `vigil.encoding_error`."""
    common = dict(shared) if shared else {}
    try:
        return _packer.pack({_SHARED: common, _EVENTS: events})
    except (TypeError, OverflowError) as exc:  # a type no input produces: a bug, refused
        raise JournalEncodeError(f"event cannot be journaled: {exc}") from exc
    except ValueError:  # UnicodeEncodeError, the nesting limit: what senders can send
        pass
    try:
        return _packer.pack({_SHARED: common, _EVENTS: [e if _packs(e) else storable_event(e)
                                                        for e in events]})
    except (TypeError, ValueError, OverflowError) as exc:
        raise JournalEncodeError(f"event cannot be journaled: {exc}") from exc


def _packs(value: Any) -> bool:
    try:
        _packer.pack(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def storable_event(event: Event) -> Event:
    """`event` with each value msgpack refuses as JSON text (ASCII-escaped), and keys that are
    not valid text escaped; the fields changed are named in `vigil.encoding_error`."""
    safe: Event = {}
    changed = []
    for key, value in event.items():
        name = key if isinstance(key, str) and _packs(key) else json_text(key).strip('"')
        if name != key:
            changed.append(name)
        if _packs(value):
            safe[name] = value
        else:
            safe[name] = json_text(value)
            changed.append(name)
    safe[ENCODING_ERROR] = "kept as JSON text (invalid text or nesting too deep): " + \
        ", ".join(changed)[:500]
    return safe


def decode_events(payload: bytes | memoryview) -> list[Event]:
    """The events of a payload, each with what the record stores as shared (the shared values
    win over an event's own: they are the daemon's stamps); a bare list is the previous
    version's payload, every event stamped."""
    decoded = msgpack.unpackb(payload, timestamp=3, ext_hook=_ext_hook, raw=False,
                              strict_map_key=False)
    if isinstance(decoded, list):
        return decoded
    events: list[Event] = decoded[_EVENTS]
    shared = decoded[_SHARED]
    if shared:
        for event in events:
            event.update(shared)
    return events


def encode_record(first_offset: int, events: list[Event],
                  shared: Mapping[str, Any] | None = None) -> bytes:
    """One framed record holding `events` from `first_offset` on, with what they share."""
    payload = encode_events(events, shared)
    tail = _HEADER.pack(RECORD_MAGIC, 0, len(payload), first_offset, len(events))[_CRC_FROM:]
    crc = crc32c(payload, value=crc32c(tail))
    return b"".join((RECORD_MAGIC, struct.pack("<I", crc), tail, payload))


class RecordOriginals:
    """Events of a batch read from the journal as they left it (with the worker's stamps:
    `vigil.tenant` the partition, `vigil.offset`), decoded again from the payloads they were
    read from: the pipelines dead-letter a failed event's input without copying every event.
    A record is decoded at most once more, and only when one of its events is asked for."""

    __slots__ = ("partition", "first_offset", "_records", "_decoded")

    def __init__(self, partition: str, first_offset: int) -> None:
        self.partition = partition
        self.first_offset = first_offset
        self._records: list[tuple[int, bytes | memoryview]] = []  # (first offset, payload)
        self._decoded: dict[int, list[Event]] = {}

    def add(self, record_first: int, payload: bytes | memoryview) -> None:
        """A record some of the batch's events come from (in offset order)."""
        self._records.append((record_first, payload))

    @property
    def records(self) -> list[tuple[int, bytes | memoryview]]:
        """(first offset, payload) of each record the batch's events come from, in order (the
        first may begin before the batch: a record a batch ended inside)."""
        return self._records

    def __call__(self, index: int) -> Event:
        offset = self.first_offset + index
        for record_first, payload in reversed(self._records):
            if record_first <= offset:
                events = self._decoded.get(record_first)
                if events is None:
                    events = self._decoded[record_first] = decode_events(payload)
                event = events[offset - record_first]
                event[OFFSET] = offset
                event[TENANT] = self.partition
                return event
        raise IndexError(f"offset {offset} is not in this batch's records")


@dataclass(frozen=True, slots=True)
class RecordRef:
    """A verified record inside a buffer: where it is and what offsets it holds."""

    pos: int  # byte position of the record start
    end: int  # byte position just after it
    first_offset: int
    count: int
    payload_start: int

    @property
    def end_offset(self) -> int:
        return self.first_offset + self.count


OK, INCOMPLETE, BAD = 0, 1, 2


def parse_at(buf: bytes | memoryview, pos: int, base: int = 0
             ) -> tuple[int, RecordRef | None, int]:
    """Check the record at `pos` of `buf` (whose byte 0 is file position `base`).

    Returns (OK, record, 0), (INCOMPLETE, None, bytes needed from pos) when the buffer ends
    inside a plausible record, or (BAD, None, 0).
    """
    available = len(buf) - pos
    if available < HEADER_SIZE:
        if bytes(buf[pos:pos + min(available, 4)]) != RECORD_MAGIC[:min(available, 4)]:
            return BAD, None, 0
        return INCOMPLETE, None, HEADER_SIZE
    magic, crc, length, first, count = _HEADER.unpack_from(buf, pos)
    if magic != RECORD_MAGIC or length > MAX_RECORD_BYTES or count == 0:
        return BAD, None, 0
    end = pos + HEADER_SIZE + length
    if end > len(buf):
        return INCOMPLETE, None, HEADER_SIZE + length
    # memoryview slices: the CRC runs over the buffer without copying the payload.
    view = memoryview(buf)
    header_crc = crc32c(view[pos + _CRC_FROM:pos + HEADER_SIZE])
    actual = crc32c(view[pos + HEADER_SIZE:end], value=header_crc)
    if actual != crc:
        return BAD, None, 0
    return OK, RecordRef(base + pos, base + end, first, count, base + pos + HEADER_SIZE), 0


def resync(buf: bytes | memoryview, pos: int, min_offset: int, base: int = 0) -> RecordRef | None:
    """The next intact record after damage at `pos`, whose offsets do not go backwards."""
    data = bytes(buf) if isinstance(buf, memoryview) else buf
    at = pos
    while True:
        at = data.find(RECORD_MAGIC, at + 1)
        if at < 0:
            return None
        status, record, _ = parse_at(data, at, base)
        if status == OK and record is not None and record.first_offset >= min_offset:
            return record
