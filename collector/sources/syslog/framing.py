"""Splitting a TCP byte stream into syslog frames: newline framing and RFC 6587 octet counting.

With `framing: auto` each connection decides on its first frame: `<digits> SP <` is octet
counting (the length prefix of RFC 6587 followed by a PRI), anything else is newline framing.
Frames longer than the limit are cut, marked truncated, and the rest of the frame is skipped
and counted, so one huge line can neither exhaust memory nor shift the framing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Framing = Literal["auto", "newline", "octet_counting"]

_OCTET_START = re.compile(rb"[1-9][0-9]{0,9} <")
_LENGTH_DIGITS = 10


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
        self.errors = 0            # malformed octet-count headers
        self.discarded_bytes = 0   # bytes skipped after a frame was cut
        self._skip = 0             # octet counting: bytes of a cut frame still to skip
        self._skip_line = False    # newline: discarding until the end of an overlong line

    def feed(self, data: bytes) -> list[Frame]:
        self.buffer += data
        if self.framing == "auto" and not self._decide():
            return []
        if self.framing == "octet_counting":
            return self._octets()
        return self._lines()

    def close(self) -> list[Frame]:
        """End of stream: an unterminated last line is still a message; a short octet frame
        is kept, marked truncated."""
        frames = self.feed(b"")
        rest = bytes(self.buffer).rstrip(b"\r\n")
        self.buffer.clear()
        if rest and not self._skip_line:
            if self.framing == "octet_counting":
                self.errors += 1
                frames.append(Frame(rest[: self.max], True))
            else:
                frames.append(Frame(rest[: self.max], len(rest) > self.max))
        return frames

    def _decide(self) -> bool:
        buf = self.buffer
        if not buf:
            return False
        if buf[:1].isdigit():
            if _OCTET_START.match(buf):
                self.framing = "octet_counting"
                return True
            if len(buf) < _LENGTH_DIGITS + 2 and buf.isdigit():
                return False  # could still become "123 <"; wait for more bytes
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
                self._skip_line = False
            else:
                line = bytes(buf[start:nl])
                if line.endswith(b"\r"):
                    line = line[:-1]
                if line:
                    if len(line) > self.max:
                        self.discarded_bytes += len(line) - self.max
                        frames.append(Frame(line[: self.max], True))
                    else:
                        frames.append(Frame(line))
            start = nl + 1
        del buf[:start]
        if len(buf) > self.max:
            if self._skip_line:
                self.discarded_bytes += len(buf)
            else:
                frames.append(Frame(bytes(buf[: self.max]), True))
                self.discarded_bytes += len(buf) - self.max
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
            while buf[:1] in (b"\n", b"\r"):  # tolerate a trailer some senders add
                del buf[:1]
            space = buf.find(b" ", 0, _LENGTH_DIGITS + 1)
            if space < 0:
                if len(buf) > _LENGTH_DIGITS or not bytes(buf).isdigit():
                    return self._fall_back(frames)
                break
            digits = bytes(buf[:space])
            if not digits.isdigit() or digits.startswith(b"0"):
                return self._fall_back(frames)
            length = int(digits)
            body_start = space + 1
            if length > self.max:
                available = len(buf) - body_start
                if available < self.max:
                    break
                frames.append(Frame(bytes(buf[body_start: body_start + self.max]), True))
                consumed = min(length, available)
                del buf[: body_start + consumed]
                self.discarded_bytes += consumed - self.max
                self._skip = length - consumed
                continue
            if len(buf) - body_start < length:
                break
            frame = bytes(buf[body_start: body_start + length])
            del buf[: body_start + length]
            frame = frame.rstrip(b"\r\n")
            if frame:
                frames.append(Frame(frame))
        return frames

    def _fall_back(self, frames: list[Frame]) -> list[Frame]:
        """A malformed length header: count it and read the rest of the connection as
        newline-framed lines, so nothing the peer sent is dropped."""
        self.errors += 1
        self.framing = "newline"
        return frames + self._lines()
