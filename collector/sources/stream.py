"""Byte-stream sources (syslog over TCP/TLS, raw TCP lines): one listener, one protocol per
connection that frames, decodes and emits, with the limits every stream source shares.

A connection stops reading while the queue is over its bound and resumes when it drains, so a
fast sender is slowed down by TCP instead of growing the daemon's memory. A connection silent for
`idle_timeout_seconds` is closed (never while it is paused: that silence is ours).
"""

from __future__ import annotations

import asyncio
import logging
from abc import abstractmethod
from typing import Any, cast

from pydantic import Field

from collector.config.models import (
    Address,
    Cidr,
    ConfigIssue,
    SourceConfig,
    ValidationContext,
    split_address,
)
from collector.events import TRUNCATED, Event
from collector.sources.base import Source, SourceContext
from collector.sources.listener import TcpListener
from collector.sources.syslog.framing import Frame, FrameDecoder
from collector.sources.tls import TlsConfig, server_context, tls_file_issues

log = logging.getLogger(__name__)


class StreamSourceConfig(SourceConfig):
    """Settings every TCP stream source has."""

    address: Address = Field(description="HOST:PORT to listen on")
    max_message_bytes: int = Field(65536, gt=0, description="longer messages are cut and marked")
    max_connections: int = Field(1024, gt=0, description="further connections are refused")
    idle_timeout_seconds: float = Field(
        600.0, ge=0, description="close a connection that sent nothing for this long (0: never)")
    tls: TlsConfig | None = Field(None, description="serve TLS (RFC 5425 for syslog)")
    allowed_cidrs: list[Cidr] = Field(
        default_factory=list, description="senders allowed to connect (CIDR blocks); others "
        "are refused and counted (`peer_not_allowed`). Empty: anyone who reaches the address. "
        "Set it on sources without authentication (raw TCP JSON is for trusted relays)")

    def semantic_errors(self, context: ValidationContext) -> list[ConfigIssue]:
        return tls_file_issues(self.tls, context)


class StreamSource(Source):
    """A listener whose connections each run a `StreamProtocol`."""

    config: StreamSourceConfig

    def __init__(self, context: SourceContext) -> None:
        super().__init__(context)
        self.connections: set[StreamProtocol] = set()
        self.listener: TcpListener | None = None

    @abstractmethod
    def new_decoder(self) -> FrameDecoder:
        """A frame decoder for one new connection."""

    @abstractmethod
    def decode(self, frames: list[Frame]) -> list[Event]:
        """Events from frames that arrived together (`vigil.truncated` is set by the caller)."""

    def decode_frames(self, frames: list[Frame]) -> list[Event]:
        """`decode`, with frames that were cut marked `vigil.truncated`."""
        events = self.decode(frames)
        for frame, event in zip(frames, events, strict=True):
            if frame.truncated:
                event[TRUNCATED] = True
        return events

    def decode_lines(self, lines: list[bytes]) -> list[Event]:
        limit = self.config.max_message_bytes
        return self.decode_frames([Frame(line[:limit], len(line) > limit) for line in lines])

    async def start(self) -> None:
        config = self.config
        tls = None
        if config.tls is not None:
            tls = server_context(config.tls, self.context.source_id,
                                 conf_dir=self.context.conf_dir, data_dir=self.context.data_dir,
                                 host=split_address(config.address)[0])
        self.listener = TcpListener(
            self.context, config.address, lambda: StreamProtocol(self),
            max_connections=config.max_connections, tls=tls,
            handshake_timeout=config.tls.handshake_timeout_seconds if config.tls else 10.0,
            allowed_cidrs=config.allowed_cidrs)
        await self.listener.start()
        log.info("listening", extra={"source": self.context.source_id,
                                     "address": self.bound_address(), "tls": tls is not None})

    def bound_address(self) -> str | None:
        return self.listener.bound_address() if self.listener else None

    async def stop(self) -> None:
        if self.listener is None:
            return
        self.listener.close()
        self.listener.abort_handshakes()
        for connection in list(self.connections):
            connection.shutdown()
        await self.listener.wait_closed()

    def health(self) -> dict[str, Any]:
        return {"address": self.bound_address(),
                "tls": self.config.tls is not None,
                "connections": len(self.connections),
                "paused_connections": sum(1 for c in self.connections if c.paused)}


class StreamProtocol(asyncio.Protocol):
    """One connection: bytes -> frames -> events -> queue, with flow control."""

    def __init__(self, source: StreamSource) -> None:
        self.source = source
        self.context = source.context
        self.decoder = source.new_decoder()
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None
        self.tenant = ""  # the tenant of the connection's bytes, when the sender decides it
        self.paused = False
        self.tenants: set[str] = set()
        self.closed = False
        self.stopping = False  # the daemon is closing this connection: nothing more is read
        self.flushed = False   # the peer's end of stream was handled
        self.idle_timeout = source.config.idle_timeout_seconds
        self.last_activity = 0.0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._idle_handle: asyncio.TimerHandle | None = None
        self._reported_errors = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peername = transport.get_extra_info("peername")
        self.peer = peername[0] if peername else None
        self.tenant = self.context.router.tenant_of_peer(self.peer) or ""
        self.source.connections.add(self)
        if self.idle_timeout:
            self.loop = loop = asyncio.get_running_loop()
            self.last_activity = loop.time()
            self._idle_handle = loop.call_later(self.idle_timeout, self._check_idle)

    def data_received(self, data: bytes) -> None:
        if self.loop is not None:
            self.last_activity = self.loop.time()
        self.context.telemetry.received_bytes(len(data), self.tenant)
        frames = self.decoder.feed(data)
        if frames:
            self._emit(frames)
        if self.decoder.errors != self._reported_errors:
            self._report_framing_errors()
        if not self.paused:
            reason = self.context.over_bound(self.tenants)
            if reason is not None:
                self._pause(reason)

    def eof_received(self) -> bool:
        self._flush_partial()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.source.connections.discard(self)
        if self._idle_handle is not None:
            self._idle_handle.cancel()
        if not self.stopping and not self.flushed:
            # The peer reset the connection: what it sent of an unterminated message is kept.
            self._flush_partial()
        self._report_framing_errors()

    def _emit(self, frames: list[Frame]) -> None:
        events = self.source.decode_frames(frames)
        truncated = sum(1 for frame in frames if frame.truncated)
        if truncated:
            self.context.telemetry.error("oversize", "receive", truncated)
        self.context.count_parse_errors(events)
        # The tenants this connection writes to: its backpressure follows their bounds.
        self.tenants.update(self.context.emit(events, self.peer))

    def _flush_partial(self) -> None:
        """The peer is done (EOF, idle, reset): an unterminated last message is still a
        message."""
        self.flushed = True
        frames = self.decoder.close()
        if frames:
            self._emit(frames)
        self._report_framing_errors()

    def _report_framing_errors(self) -> None:
        new = self.decoder.errors - self._reported_errors
        if new:
            self._reported_errors = self.decoder.errors
            self.context.telemetry.error("framing", "receive", new)

    def _pause(self, reason: str) -> None:
        assert self.transport is not None
        self.paused = True
        self.transport.pause_reading()
        self.context.when_capacity(self._resume, reason)

    def _resume(self) -> None:
        self.paused = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _check_idle(self) -> None:
        loop = self.loop
        if self.closed or self.transport is None or loop is None:
            return
        idle = loop.time() - self.last_activity
        if self.paused or idle < self.idle_timeout:
            wait = self.idle_timeout if self.paused else self.idle_timeout - idle
            self._idle_handle = loop.call_later(wait, self._check_idle)
            return
        log.info("closing idle connection", extra={"source": self.context.source_id,
                                                    "peer": self.peer,
                                                    "idle_seconds": round(idle, 1)})
        self._flush_partial()
        self.transport.close()

    def shutdown(self) -> None:
        """Stop reading and close; a line the peer had not finished is not an event yet."""
        self.stopping = True
        if self.transport is not None:
            self.transport.close()
