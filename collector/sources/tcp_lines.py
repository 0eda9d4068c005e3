"""Raw TCP lines (e.g. JSON lines from an agent): newline framing, the same limits, TLS and
backpressure as syslog over TCP.

With `codec: json` each line is decoded into an event (the object's keys as they are); a line
that is not a JSON object is kept in `message` with `vigil.parse_error`. With `codec: text` the
line is the `message`. Bytes that are not UTF-8 are kept, base64, in `event.original_base64`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from collector.sources.json_events import event_from_json_line
from collector.sources.stream import StreamSource, StreamSourceConfig
from collector.sources.syslog.framing import Frame, FrameDecoder
from core.events import MESSAGE, ORIGINAL_BASE64, TIMESTAMP, Event, decode_text
from core.nesting import DEFAULT_MAX_DEPTH, MAX_MAX_DEPTH


class TcpLinesConfig(StreamSourceConfig):
    type: Literal["tcp_lines"] = "tcp_lines"
    codec: Literal["json", "text"] = Field("json", description="how each line is decoded")
    dataset: str = Field("json", description="dataset events have until a pipeline assigns one")
    max_depth: int = Field(
        DEFAULT_MAX_DEPTH, ge=1, le=MAX_MAX_DEPTH, description="codec json: a line nested "
        "deeper goes to the dead letter with the reason (counted as `too_deep`)")


class TcpLinesSource(StreamSource):
    """`type: tcp_lines`: newline-delimited records over TCP."""

    config_model = TcpLinesConfig
    config: TcpLinesConfig

    def new_decoder(self) -> FrameDecoder:
        return FrameDecoder(self.config.max_message_bytes, "newline")

    def decode(self, frames: list[Frame]) -> list[Event]:
        received_at = self.context.clock()
        if self.config.codec == "json":
            depth = self.config.max_depth
            return [event_from_json_line(frame.data, received_at, depth) for frame in frames]
        return [text_event(frame.data, received_at) for frame in frames]


def text_event(data: bytes, received_at: datetime) -> Event:
    """A line as `message`; bytes that are not UTF-8 are also kept in `event.original_base64`."""
    text, original = decode_text(data)
    event: Event = {TIMESTAMP: received_at, MESSAGE: text}
    if original is not None:
        event[ORIGINAL_BASE64] = original
    return event
