"""Splitting a TCP byte stream into frames: newline framing and RFC 6587 octet counting.

With `framing: auto` each connection decides on its first frame: `<digits> SP <` is octet
counting (the length prefix of RFC 6587 followed by a PRI), anything else is newline framing.
Frames longer than the limit are cut, marked truncated, and the rest of the frame is skipped
and counted, so one huge line can neither exhaust memory nor shift the framing. Every byte fed
is accounted for in exactly one of `frame_bytes`, `delimiter_bytes`, `header_bytes`,
`discarded_bytes` or the bytes still buffered (`pending_bytes()`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Framing = Literal["auto", "newline", "octet_counting"]

_OCTET_START = re.compile(rb"[1-9][0-9]{0,9} <")
_OCTET_PREFIX = re.compile(rb"[1-9][0-9]{0,9} ?")  # could still become `<digits> SP <`
_LENGTH_DIGITS = 10
_CR, _LF = 13, 10


@dataclass(slots=True)
class Frame:
    data: bytes
    truncated: bool = False


class FrameDecoder:
    """Incremental decoder for one connection; `feed` returns the frames completed so far."""

    def __init__(self, max_message_bytes: int, framing: Framing = "auto") -> None:
        self.max = max_message_bytes
        self.framing: Framing = framing
        self.buffer = bytearray()
        self.errors = 0            # malformed octet-count headers, short last octet frames
        self.truncated = 0         # frames cut at `max`
        self.frame_bytes = 0       # bytes handed out in frames
        self.delimiter_bytes = 0   # newlines, CRs, octet-frame trailers, empty lines
        self.header_bytes = 0      # octet-count length prefixes with their space
        self.discarded_bytes = 0   # bytes skipped after a frame was cut
        self._skip = 0             # octet counting: bytes of a cut frame still to skip
        self._skip_line = False    # newline: discarding until the end of an overlong line

    def pending_bytes(self) -> int:
        return len(self.buffer)

    def feed(self, data: bytes) -> list[Frame]:
        self.buffer += data
        if self.framing == "auto" and not self._decide():
            return []
        if self.framing == "octet_counting":
            return self._octets()
        return self._lines()

    def close(self) -> list[Frame]:
        """End of stream: an unterminated last line is still a message; a short octet frame
        is kept, marked truncated, and counted as an error."""
        frames = self.feed(b"")
        buf = self.buffer
        if not buf:
            return frames
        if self._skip_line:
            self.discarded_bytes += len(buf)
        elif self.framing == "octet_counting":
            self.errors += 1
            space = buf.find(b" ")
            body = buf
            if 0 < space <= _LENGTH_DIGITS and buf[:space].isdigit():
                self.header_bytes += space + 1
                body = buf[space + 1:]
            if body:
                self._cut(frames, body, True)
        else:
            stop = len(buf) - 1 if buf[-1] == _CR else len(buf)
            self.delimiter_bytes += len(buf) - stop
            if stop:
                self._cut(frames, buf[:stop], False)
        buf.clear()
        return frames

    def _cut(self, frames: list[Frame], data: bytearray, truncated: bool) -> None:
        """Append `data` as one frame, cut at `max` (the rest counted as discarded)."""
        if len(data) > self.max:
            self.discarded_bytes += len(data) - self.max
            data = data[: self.max]
            truncated = True
        if truncated:
            self.truncated += 1
        self.frame_bytes += len(data)
        frames.append(Frame(bytes(data), truncated))

    def _decide(self) -> bool:
        buf = self.buffer
        if not buf:
            return False
        if _OCTET_START.match(buf):
            self.framing = "octet_counting"
            return True
        if _OCTET_PREFIX.fullmatch(buf):
            return False  # "123" or "123 " could still become "123 <"; wait for more bytes
        self.framing = "newline"
        return True

    def _lines(self) -> list[Frame]:
        frames: list[Frame] = []
        buf = self.buffer
        start = 0
        end = len(buf)
        while start < end:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            if self._skip_line:
                self.discarded_bytes += nl - start
                self.delimiter_bytes += 1
                self._skip_line = False
            else:
                stop = nl - 1 if nl > start and buf[nl - 1] == _CR else nl
                self.delimiter_bytes += nl + 1 - stop
                if stop > start:
                    self._cut(frames, buf[start:stop], False)
            start = nl + 1
        del buf[:start]
        pending = len(buf)
        if not pending:
            return frames
        if self._skip_line:
            # Still inside an overlong line: nothing of it is kept, so nothing is buffered.
            self.discarded_bytes += pending
            buf.clear()
        elif pending > self.max and not (pending == self.max + 1 and buf[-1] == _CR):
            # An unterminated line already longer than a frame may be: cut it now rather than
            # buffer it (a line of exactly `max` bytes may still be waiting for its "\n").
            self._cut(frames, buf, True)
            self._skip_line = True
            buf.clear()
        return frames

    def _octets(self) -> list[Frame]:
        frames: list[Frame] = []
        buf = self.buffer
        while buf:
            if self._skip:
                n = min(self._skip, len(buf))
                del buf[:n]
                self._skip -= n
                self.discarded_bytes += n
                continue
            if buf[0] in (_LF, _CR):  # a trailer some senders add after each frame
                lead = 1
                while lead < len(buf) and buf[lead] in (_LF, _CR):
                    lead += 1
                del buf[:lead]
                self.delimiter_bytes += lead
                continue
            space = buf.find(b" ", 0, _LENGTH_DIGITS + 1)
            if space < 0:
                if len(buf) > _LENGTH_DIGITS or not buf.isdigit():
                    return self._fall_back(frames)
                break  # the rest of the length prefix is still on its way
            if space == 0 or buf[0] == ord("0") or not buf[:space].isdigit():
                return self._fall_back(frames)
            length = int(buf[:space])
            body_start = space + 1
            available = len(buf) - body_start
            if length > self.max:
                if available < self.max:
                    break
                consumed = min(length, available)
                self.header_bytes += body_start
                self.discarded_bytes += consumed - self.max
                self._cut(frames, buf[body_start: body_start + self.max], True)
                del buf[: body_start + consumed]
                self._skip = length - consumed
                continue
            if available < length:
                break
            stop = body_start + length
            while stop > body_start and buf[stop - 1] in (_LF, _CR):
                stop -= 1
            self.header_bytes += body_start
            self.delimiter_bytes += body_start + length - stop
            if stop > body_start:
                self._cut(frames, buf[body_start:stop], False)
            del buf[: body_start + length]
        return frames

    def _fall_back(self, frames: list[Frame]) -> list[Frame]:
        """A malformed length header: count it and read the rest of the connection as
        newline-framed lines, so nothing the peer sent is dropped."""
        self.errors += 1
        self.framing = "newline"
        return frames + self._lines()
