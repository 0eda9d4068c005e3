"""The journal record format: provenance every event of an append shares is stored once and put
back into each event when read; segments the previous version wrote (a bare msgpack list of
stamped events per record) are still read; a batch gives back each event as it was read."""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgpack
import pytest
from crc32c import crc32c

import collector.journal.partition as partition_module
from collector.journal import Journal
from collector.journal.codec import (
    _HEADER,
    RECORD_MAGIC,
    _default,
    decode_events,
    encode_events,
)
from collector.queue import MemoryQueue
from core.events import DATASET, OFFSET, RECEIVED_AT, SOURCE, TENANT, Event

Factory = Callable[..., Journal]
Drain = Callable[..., Any]

RECEIVED = datetime(2026, 11, 23, 12, 0, 0, 250000, tzinfo=UTC)
SHARED: Event = {TENANT: "acme", SOURCE: "syslog_tcp", RECEIVED_AT: RECEIVED,
                 DATASET: "syslog"}


def parsed(n: int) -> Event:
    return {"@timestamp": RECEIVED, "message": f"line {n}", "host.name": "web-01",
            "log.syslog.appname": "sshd"}


def old_encode_record(first_offset: int, events: list[Event]) -> bytes:
    """The previous version's `encode_record`: the payload a msgpack list of stamped events."""
    payload = msgpack.Packer(default=_default, datetime=True).pack(events)
    tail = _HEADER.pack(RECORD_MAGIC, 0, len(payload), first_offset, len(events))[8:]
    crc = crc32c(payload, value=crc32c(tail))
    return b"".join((RECORD_MAGIC, struct.pack("<I", crc), tail, payload))


def test_shared_provenance_is_stored_once_and_put_back_into_every_event() -> None:
    events = [parsed(n) for n in range(50)]
    payload = encode_events(events, SHARED)
    raw = msgpack.unpackb(payload, timestamp=3, strict_map_key=False)
    assert raw["s"] == SHARED
    assert all(TENANT not in e and RECEIVED_AT not in e for e in raw["e"])
    stamped = [{**e, **SHARED} for e in events]
    assert len(payload) < len(encode_events(stamped))
    decoded = decode_events(payload)
    assert decoded == stamped
    # One receive time object for the record, not one datetime decoded per event.
    assert decoded[0][RECEIVED_AT] is decoded[-1][RECEIVED_AT]


def test_shared_values_win_over_an_events_own() -> None:
    decoded = decode_events(encode_events([{TENANT: "forged", "m": 1}], SHARED))
    assert decoded == [{TENANT: "acme", "m": 1, SOURCE: "syslog_tcp", RECEIVED_AT: RECEIVED,
                        DATASET: "syslog"}]


def test_an_old_payload_decodes_as_before() -> None:
    stamped = [{**parsed(n), **SHARED} for n in range(3)]
    old_payload = msgpack.Packer(default=_default, datetime=True).pack(stamped)
    assert decode_events(old_payload) == stamped


async def test_segments_written_by_the_previous_version_are_read(
        tmp_path: Path, open_journal: Factory, drain: Drain,
        monkeypatch: pytest.MonkeyPatch) -> None:
    old_events = [{**parsed(n), **SHARED} for n in range(5)]
    with monkeypatch.context() as patched:
        patched.setattr(partition_module, "encode_record",
                        lambda first, events, shared=None: old_encode_record(first, events))
        journal = open_journal(segment_bytes=64 * 1024)
        journal.append("acme", old_events)
        await journal.aclose()
    reopened = open_journal(segment_bytes=64 * 1024)
    new_events = [parsed(n) for n in range(5, 8)]
    reopened.append("acme", new_events, SHARED)  # a new record after the old one
    got = await drain(reopened)
    assert [o for _, o, _ in got] == list(range(8))
    assert [e for _, _, e in got] == old_events + [{**e, **SHARED} for e in new_events]


async def test_a_batch_gives_back_each_event_as_it_was_read(open_journal: Factory) -> None:
    journal = open_journal(segment_bytes=64 * 1024, fsync="never")
    journal.append("acme", [parsed(n) for n in range(4)], SHARED)
    journal.append("acme", [parsed(n) for n in range(4, 6)], SHARED)
    batch = journal.read_nowait(5)  # the second record only in part: the rest is left over
    assert batch is not None and batch.originals is not None
    for event in batch.events:
        event["message"] = "changed by a step"
        event[TENANT] = "changed"
    original = batch.originals(4)
    assert original == {**parsed(4), **SHARED, OFFSET: 4}
    assert batch.originals(0)["message"] == "line 0"
    rest = journal.read_nowait(5)
    assert rest is not None and rest.first_offset == 5 and rest.originals is not None
    assert rest.originals(0) == {**parsed(5), **SHARED, OFFSET: 5}
    await journal.aclose()


def test_the_memory_queue_stamps_what_is_shared_into_each_event() -> None:
    queue = MemoryQueue(100)
    events = [parsed(n) for n in range(3)]
    queue.append("acme", events, SHARED)
    batch = queue.read_nowait(10)
    assert batch is not None
    assert batch.events == [{**parsed(n), **SHARED} for n in range(3)]
