"""From the bytes of an S3 object to events: gzip inflated as it streams in, then split by
format. A JSON document's `Records` array (CloudTrail) or a top-level array becomes one event
per element; JSON lines and text lines are split as they arrive, so a large object never sits
in memory whole. Each record's keys are kept as they are (`collector.sources.json_events`).

Everything here is synchronous: the source runs it on a worker thread together with the
download, so the event loop never waits on the network or on a large decode.
"""

from __future__ import annotations

import functools
import zlib
from datetime import datetime
from typing import Any, Literal, Protocol

import orjson

from collector.sources.json_events import unparsed_event
from collector.sources.pull import split_records
from core.events import Event, keep_original

Format = Literal["auto", "json", "ndjson", "lines"]
Compression = Literal["auto", "gzip", "none"]
GZIP_MAGIC = b"\x1f\x8b"
CHUNK_BYTES = 1024 * 1024


class ObjectFailure(Exception):
    """The object cannot be read or decoded; `reason` says why (for the dead letter)."""

    def __init__(self, reason: str, *, transient: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


class Inflater:
    """gzip (every member of a concatenated stream) or identity, decided from the first bytes
    when `compression` is auto."""

    def __init__(self, compression: Compression) -> None:
        self.compression = compression
        self._decided: bool | None = None if compression == "auto" else compression == "gzip"
        self._head = b""
        self._zlib: Any = None
        self.inflated = 0

    def feed(self, data: bytes) -> bytes:
        if self._decided is None:
            self._head += data
            if len(self._head) < 2:
                return b""
            self._decided = self._head.startswith(GZIP_MAGIC)
            data, self._head = self._head, b""
        out = self._inflate(data) if self._decided else data
        self.inflated += len(out)
        return out

    def finish(self) -> bytes:
        """What is left; ObjectFailure when a gzip stream ended before its end."""
        if self._decided is None:  # fewer than two bytes in all
            data, self._head = self._head, b""
            return data
        if self._decided and self._zlib is not None and not self._zlib.eof:
            raise ObjectFailure("gzip stream truncated (the object ends inside a member)")
        return b""

    def _inflate(self, data: bytes) -> bytes:
        parts = []
        while data:
            if self._zlib is None or self._zlib.eof:
                if self._zlib is not None and not data.strip(b"\0"):
                    break  # padding after the last member
                self._zlib = zlib.decompressobj(wbits=31)
            try:
                parts.append(self._zlib.decompress(data))
            except zlib.error as exc:
                raise ObjectFailure(f"not valid gzip: {exc}") from None
            data = self._zlib.unused_data if self._zlib.eof else b""
        return b"".join(parts)


class RecordDecoder:
    """Splits decompressed bytes into events according to `format` (see the module doc)."""

    def __init__(self, fmt: Format, received_at: datetime, max_document_bytes: int) -> None:
        self.received_at = received_at
        self.max_document_bytes = max_document_bytes
        # auto decides on the first line: "lines", "ndjson" or "document".
        self.mode: str | None = {"auto": None, "json": "document", "ndjson": "ndjson",
                                 "lines": "lines"}[fmt]
        self.strict = fmt == "json"
        self._pending = b""
        self._document: list[bytes] = []
        self._document_bytes = 0

    def feed(self, data: bytes) -> list[Event]:
        if self.mode == "document":
            self._collect(data)
            return []
        self._pending += data
        if self.mode is None:
            self._decide(final=False)
            if self.mode is None:
                return []
            if self.mode == "document":
                data, self._pending = self._pending, b""
                self._collect(data)
                return []
        cut = self._pending.rfind(b"\n")
        if cut < 0:
            if len(self._pending) > self.max_document_bytes:
                raise ObjectFailure(f"a line longer than {self.max_document_bytes} bytes")
            return []
        lines, self._pending = self._pending[:cut], self._pending[cut + 1:]
        return self._lines(lines.split(b"\n"))

    def finish(self) -> list[Event]:
        if self.mode is None:
            self._decide(final=True)
        if self.mode == "document":
            if self._pending:
                self._collect(self._pending)
                self._pending = b""
            return self._decode_document()
        rest, self._pending = self._pending, b""
        return self._lines([rest]) if rest else []

    # -- deciding the format (auto) -------------------------------------------------------

    def _decide(self, *, final: bool) -> None:
        text = self._pending.lstrip()
        if not text:
            if final:
                self.mode = "lines"
            return
        if text[:1] not in (b"{", b"["):
            self.mode = "lines"
            return
        end = text.find(b"\n")
        if end < 0 and not final:
            if len(text) > self.max_document_bytes:
                raise ObjectFailure(f"a JSON line longer than {self.max_document_bytes} bytes")
            return
        first = text if end < 0 else text[:end]
        try:
            orjson.loads(first)
        except orjson.JSONDecodeError:
            # A JSON document spread over lines (pretty-printed): read it whole.
            self.mode = "document"
            return
        self.mode = "ndjson"

    # -- decoding --------------------------------------------------------------------------

    def _lines(self, lines: list[bytes]) -> list[Event]:
        events: list[Event] = []
        now = self.received_at
        if self.mode == "lines":
            for line in lines:
                line = line.rstrip(b"\r")
                if line.strip():
                    events.append(keep_original({"@timestamp": now,
                                                 "message": line.decode("utf-8", "replace")},
                                                line))
            return events
        for line in lines:
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                events.append(keep_original(unparsed_event(
                    line.decode("utf-8", "replace"), now, f"invalid JSON: {exc}"), line))
                continue
            events += split_records(value, "Records", now, functools.partial(bytes, line))
        return events

    def _collect(self, data: bytes) -> None:
        self._document_bytes += len(data)
        if self._document_bytes > self.max_document_bytes:
            raise ObjectFailure(f"JSON document over {self.max_document_bytes} bytes "
                                "(max_document_bytes); write JSON lines instead")
        self._document.append(data)

    def _decode_document(self) -> list[Event]:
        raw = b"".join(self._document)
        self._document = []
        if not raw.strip():
            return []
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            if self.strict:
                raise ObjectFailure(f"not a JSON document: {exc}") from None
            # auto: neither one JSON value per line nor one document; keep every line,
            # marked where it does not parse.
            self.mode = "ndjson"
            return self._lines(raw.split(b"\n"))
        return split_records(value, "Records", self.received_at, lambda: raw)


class Body(Protocol):
    def read(self, amt: int | None = ...) -> bytes: ...


class ObjectReader:
    """Reads a streaming body chunk by chunk and hands out events in batches."""

    def __init__(self, body: Body, decoder: RecordDecoder, inflater: Inflater) -> None:
        self.body = body
        self.decoder = decoder
        self.inflater = inflater
        self.read_bytes = 0
        self.done = False
        self._exhausted = False
        self._ready: list[Event] = []

    def next_batch(self, max_events: int) -> list[Event]:
        """Up to `max_events` events; fewer only once the object is exhausted (`done`)."""
        events = self._ready
        while not self._exhausted and len(events) < max_events:
            chunk = self.body.read(CHUNK_BYTES)
            if not chunk:
                self._exhausted = True
                events += self.decoder.feed(self.inflater.finish())
                events += self.decoder.finish()
                break
            self.read_bytes += len(chunk)
            events += self.decoder.feed(self.inflater.feed(chunk))
        batch, self._ready = events[:max_events], events[max_events:]
        self.done = self._exhausted and not self._ready
        return batch
