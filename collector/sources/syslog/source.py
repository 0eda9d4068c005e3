"""Syslog over TCP and TLS (RFC 6587 / RFC 5425): a stream source whose frames are syslog
messages, newline-framed or octet-counted (decided per connection with `framing: auto`).

Messages are parsed by `parsers.syslog`; one that is not syslog is kept whole in `message` with
`vigil.parse_error`, never dropped.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field

from collector.sources.base import SourceContext
from collector.sources.stream import StreamSource, StreamSourceConfig
from collector.sources.syslog.framing import Frame, FrameDecoder
from core.events import Event
from parsers.syslog import parse_syslog


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value!r}") from None
    return value


TimezoneName = Annotated[str, AfterValidator(_known_zone)]
TIMEZONE_FIELD = Field("UTC", description="zone of RFC 3164 timestamps, which carry none")


def syslog_events(payloads: list[bytes], received_at: datetime, tz: tzinfo) -> list[Event]:
    """Parse messages that were received together."""
    return [parse_syslog(data, received_at=received_at, tz=tz) for data in payloads]


class SyslogTcpConfig(StreamSourceConfig):
    type: Literal["syslog_tcp"] = "syslog_tcp"
    framing: Literal["auto", "newline", "octet_counting"] = Field(
        "auto", description="auto: octet counting if a connection starts with `<len> <`")
    timezone: TimezoneName = TIMEZONE_FIELD


class SyslogTcpSource(StreamSource):
    """`type: syslog_tcp`: newline or octet-counted syslog over TCP, TLS with `tls:`."""

    config_model = SyslogTcpConfig
    config: SyslogTcpConfig

    def __init__(self, context: SourceContext) -> None:
        super().__init__(context)
        self.tz: tzinfo = ZoneInfo(self.config.timezone)

    def new_decoder(self) -> FrameDecoder:
        return FrameDecoder(self.config.max_message_bytes, self.config.framing)

    def decode(self, frames: list[Frame]) -> list[Event]:
        return syslog_events([f.data for f in frames], self.context.clock(), self.tz)
