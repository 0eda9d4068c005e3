"""Syslog over TCP: a listener whose connections frame, parse and emit syslog messages.

Each connection is an `asyncio.Protocol` that stops reading while the queue is over its bound
and resumes when it drains, so a fast sender is slowed down instead of growing memory.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import tzinfo
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from collector.config.models import Address, SourceConfig, split_address
from collector.events import TRUNCATED, Event
from collector.sources.base import Source, SourceContext
from collector.sources.syslog.framing import FrameDecoder
from parsers.syslog import parse_syslog

log = logging.getLogger(__name__)


class SyslogTcpConfig(SourceConfig):
    type: Literal["syslog_tcp"] = "syslog_tcp"
    address: Address = Field(description="HOST:PORT to listen on")
    max_message_bytes: int = Field(65536, gt=0, description="longer messages are cut and marked")
    max_connections: int = Field(1024, gt=0, description="further connections are refused")
    framing: Literal["auto", "newline", "octet_counting"] = "auto"
    timezone: str = Field("UTC", description="zone of RFC 3164 timestamps, which carry none")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}") from None
        return value


class SyslogStreamProtocol(asyncio.Protocol):
    """One TCP connection: bytes -> frames -> events -> queue, with flow control."""

    def __init__(self, source: SyslogTcpSource) -> None:
        self.source = source
        self.context = source.context
        self.decoder = FrameDecoder(source.config.max_message_bytes, source.config.framing)
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peername = transport.get_extra_info("peername")
        self.peer = peername[0] if peername else None
        if len(self.source.connections) >= self.source.config.max_connections:
            self.context.telemetry.discarded("max_connections")
            log.warning("connection refused: too many connections",
                        extra={"source": self.context.source_id, "peer": self.peer})
            self.transport.abort()
            return
        self.source.connections.add(self)
        self.context.telemetry.connection_opened()

    def data_received(self, data: bytes) -> None:
        self.context.telemetry.received_bytes(len(data))
        frames = self.decoder.feed(data)
        if frames:
            self.context.emit(self.source.events_from(frames), self.peer)
        if not self.paused and self.context.queue.over_bound():
            self._pause()

    def eof_received(self) -> bool:
        frames = self.decoder.close()
        if frames:
            self.context.emit(self.source.events_from(frames), self.peer)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.source.connections:
            self.source.connections.discard(self)
            self.context.telemetry.connection_closed()
        if self.decoder.errors:
            self.context.telemetry.error("framing", "receive", self.decoder.errors)

    def _pause(self) -> None:
        assert self.transport is not None
        self.paused = True
        self.transport.pause_reading()
        self.context.queue.add_capacity_listener(self._resume)

    def _resume(self) -> None:
        self.paused = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def shutdown(self) -> None:
        """Stop reading and close; a line the peer had not finished is not an event yet."""
        if self.transport is not None:
            self.transport.close()


class SyslogTcpSource(Source):
    """`type: syslog_tcp`: newline or octet-counted syslog over TCP."""

    config_model = SyslogTcpConfig
    config: SyslogTcpConfig

    def __init__(self, context: SourceContext) -> None:
        super().__init__(context)
        self.connections: set[SyslogStreamProtocol] = set()
        self.server: asyncio.AbstractServer | None = None
        self.tz: tzinfo = ZoneInfo(self.config.timezone)

    def events_from(self, frames: list[Any]) -> list[Event]:
        """Parse frames into events stamped with the time they were received."""
        received_at = self.context.clock()
        tz = self.tz
        events = []
        for frame in frames:
            event = parse_syslog(frame.data, received_at=received_at, tz=tz)
            if frame.truncated:
                event[TRUNCATED] = True
            events.append(event)
        return events

    async def start(self) -> None:
        host, port = split_address(self.config.address)
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: SyslogStreamProtocol(self), host, port, reuse_address=True, backlog=1024)
        log.info("listening", extra={"source": self.context.source_id,
                                     "address": self.bound_address()})

    def bound_address(self) -> str:
        assert self.server is not None
        sockets = cast(asyncio.Server, self.server).sockets  # uvloop's Server is not a subclass
        host, port = sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for connection in list(self.connections):
            connection.shutdown()
        if self.server is not None:
            await self.server.wait_closed()

    def health(self) -> dict[str, Any]:
        return {"address": self.bound_address() if self.server else None,
                "connections": len(self.connections),
                "paused_connections": sum(1 for c in self.connections if c.paused)}
