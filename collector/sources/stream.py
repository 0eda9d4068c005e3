"""Byte-stream sources (syslog over TCP/TLS, raw TCP lines): one listener, one protocol per
connection that frames, decodes and emits, with the limits every stream source shares.

A connection stops reading while the queue is over its bound and resumes when it drains, so a
fast sender is slowed down by TCP instead of growing the daemon's memory. A connection silent for
`idle_timeout_seconds` is closed, paused or not, unless the kernel holds unread data for it
(then the silence is ours). Stopping reads every open connection to its end (or until it is
quiet, or `drain_timeout_seconds`) before closing it; a reload that changes a source's settings
hands its connections (and, on the same address, its listening socket) to the new instance.
"""

from __future__ import annotations

import asyncio
import logging
from abc import abstractmethod
from collections import deque
from typing import Any, cast

from pydantic import Field

from collector.logs import RateLimitedLog
from collector.sources.base import Source, SourceContext
from collector.sources.listener import TcpListener, unread_bytes
from collector.sources.syslog.framing import Frame, FrameDecoder
from collector.sources.tls import TlsConfig, server_context, tls_file_issues
from core.config import Address, Cidr, ConfigIssue, SourceConfig, ValidationContext, split_address
from core.events import TRUNCATED, Event

log = logging.getLogger(__name__)

# While draining, a connection with nothing unread and nothing new for this long has given us
# everything it had sent before the stop.
DRAIN_QUIET_SECONDS = 0.3
DRAIN_POLL_SECONDS = 0.05
# When a bound has room again, paused connections resume this many at a time, in the order they
# paused, a short step apart while room remains: resuming all at once lets every connection
# refill from its kernel buffer in the same instant (the bound is overshot by connections x one
# read, other sources of the tenant find it full again, and the loop stalls on that burst).
RESUME_BATCH = 4
RESUME_STEP_SECONDS = 0.002


class StreamSourceConfig(SourceConfig):
    """Settings every TCP stream source has."""

    address: Address = Field(description="HOST:PORT to listen on")
    max_message_bytes: int = Field(65536, gt=0, description="longer messages are cut and marked")
    max_connections: int = Field(
        1024, gt=0, description="at the limit the oldest idle connection is closed to make room; "
        "without one, further connections are refused")
    max_connections_per_peer: int | None = Field(
        None, gt=0, description="connections one sender address may hold (its oldest idle one "
        "makes room); default: max_connections")
    idle_timeout_seconds: float = Field(
        600.0, ge=0, description="close a connection that sent nothing for this long, paused or "
        "not, unless unread data waits in the kernel (0: never)")
    drain_timeout_seconds: float = Field(
        10.0, ge=0, description="on stop or reload, how long open connections are read to their "
        "end before they are closed (bytes cut are counted)")
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
        self.notes = RateLimitedLog(log)
        # Paused connections per bound (a tenant id, "" for the whole queue), oldest first.
        self.waiting: dict[str, deque[StreamProtocol]] = {}

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
        self.listener = self._new_listener()
        await self.listener.start()
        log.info("listening", extra={"source": self.context.source_id,
                                     "address": self.bound_address(),
                                     "tls": self.config.tls is not None})

    def _new_listener(self) -> TcpListener:
        listener = TcpListener(self.context, self.config.address, lambda: StreamProtocol(self),
                               max_connections=1)
        self._configure(listener)
        return listener

    def _configure(self, listener: TcpListener) -> None:
        config = self.config
        tls = None
        if config.tls is not None:
            tls = server_context(config.tls, self.context.source_id,
                                 conf_dir=self.context.conf_dir, data_dir=self.context.data_dir,
                                 host=split_address(config.address)[0])
        listener.configure(
            self.context, config.address, lambda: StreamProtocol(self),
            max_connections=config.max_connections,
            max_connections_per_peer=config.max_connections_per_peer, evict_idle=True, tls=tls,
            handshake_timeout=config.tls.handshake_timeout_seconds if config.tls else 10.0,
            allowed_cidrs=config.allowed_cidrs)

    def bound_address(self) -> str | None:
        return self.listener.bound_address() if self.listener else None

    def running(self) -> bool:
        return self.listener is not None and self.listener.serving()

    # -- reload: take over a running instance's socket and connections --------------------

    def can_take_over(self, previous: Source) -> bool:
        return type(previous) is type(self) and isinstance(previous, StreamSource) \
            and previous.listener is not None

    async def prepare_take_over(self, previous: Source) -> None:
        """Bind what the new settings need (a new address) without touching `previous`; raises
        when it cannot, and `previous` runs on unchanged."""
        assert isinstance(previous, StreamSource)
        if self.config.address != previous.config.address:
            self.listener = self._new_listener()
            await self.listener.start()

    def abort_take_over(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None

    def take_over(self, previous: Source) -> None:
        """Serve `previous`'s open connections (no byte is lost) and, on the same address, its
        listening socket; the previous instance is left with nothing to stop."""
        assert isinstance(previous, StreamSource) and previous.listener is not None
        if self.listener is None:
            self.listener = previous.listener
            self._configure(self.listener)
        else:
            previous.listener.close()
            self.listener.adopt(previous.listener)
        for connection in previous.connections:
            connection.adopt(self)
        self.connections |= previous.connections
        previous.connections = set()
        previous.listener = None
        # Events the journal refused before the reload go first, as they would have.
        held = previous.context
        self.context.held[:0] = held.held
        self.context.held_events += held.held_events
        held.held, held.held_events = [], 0
        log.info("listening", extra={"source": self.context.source_id,
                                     "address": self.bound_address(),
                                     "tls": self.config.tls is not None,
                                     "connections_kept": len(self.connections)})

    # -- stop: read what senders already sent -----------------------------------------

    async def stop(self) -> None:
        if self.listener is None:
            return
        self.listener.close()
        self.listener.abort_handshakes()
        await self.drain(self.config.drain_timeout_seconds)
        await self.listener.wait_closed()

    async def drain(self, timeout: float) -> None:
        """Read every open connection until its peer closes it or it goes quiet with nothing
        unread, then close it; at `timeout` close the rest and count what they still held."""
        if not self.connections:
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + timeout
        drained = len(self.connections)
        for connection in list(self.connections):
            connection.start_draining()
        while True:
            now = loop.time()
            open_connections = [c for c in self.connections if not c.closed]
            for connection in open_connections:
                if connection.drained(now):
                    connection.shutdown()
            if not open_connections or now >= deadline:
                break
            await asyncio.sleep(DRAIN_POLL_SECONDS)
        cut = [c for c in self.connections if not c.closed]
        cut_bytes = sum(unread_bytes(c.transport) for c in cut)
        for connection in cut:
            connection.shutdown()
        if cut:
            self.context.telemetry.connection_ended("drain_deadline", len(cut))
            self.context.telemetry.drain_cut(cut_bytes)
            log.warning("drain deadline reached: connections closed with data unread",
                        extra={"source": self.context.source_id, "connections": len(cut),
                               "unread_bytes": cut_bytes, "drain_timeout_seconds": timeout})
        log.info("connections drained", extra={
            "source": self.context.source_id, "connections": drained - len(cut),
            "seconds": round(loop.time() - started, 3)})

    # -- backpressure: resume paused connections a few at a time, round robin ---------------

    def wait_for_capacity(self, connection: StreamProtocol, reason: str) -> None:
        waiting = self.waiting.get(reason)
        if waiting is None:
            waiting = self.waiting[reason] = deque()
            self.context.when_capacity(lambda: self._resume_next(reason), reason)
        waiting.append(connection)

    def _resume_next(self, reason: str) -> None:
        waiting = self.waiting.get(reason)
        if not waiting:
            self.waiting.pop(reason, None)
            return
        if self.context.held_back(reason):
            self.context.when_capacity(lambda: self._resume_next(reason), reason)
            return
        resumed = 0
        while waiting and resumed < RESUME_BATCH:
            connection = waiting.popleft()
            if connection.paused and not connection.closed:
                connection.resume()
                resumed += 1
        if waiting:
            asyncio.get_running_loop().call_later(RESUME_STEP_SECONDS, self._resume_next, reason)
        else:
            del self.waiting[reason]

    def health(self) -> dict[str, Any]:
        return {"address": self.bound_address(), "running": self.running(),
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
        self.draining = False  # the daemon is stopping: read to the end, whatever the bound
        self.flushed = False   # the peer's end of stream was handled
        self.idle_timeout = source.config.idle_timeout_seconds
        self.loop = asyncio.get_running_loop()
        self.last_activity = self.loop.time()
        self._idle_handle: asyncio.TimerHandle | None = None
        self._reported_errors = 0

    def adopt(self, source: StreamSource) -> None:
        """Go on under a reloaded instance of the source: its routing, limits and timeouts
        (the frame decoder keeps its state, so a message split across the reload is whole)."""
        self.source = source
        self.context = source.context
        self.tenant = self.context.router.tenant_of_peer(self.peer) or ""
        self.idle_timeout = source.config.idle_timeout_seconds
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        if self.idle_timeout and not self.closed:
            self._idle_handle = self.loop.call_later(self.idle_timeout, self._check_idle)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peername = transport.get_extra_info("peername")
        self.peer = peername[0] if peername else None
        self.tenant = self.context.router.tenant_of_peer(self.peer) or ""
        self.source.connections.add(self)
        self.last_activity = self.loop.time()
        if self.idle_timeout:
            self._idle_handle = self.loop.call_later(self.idle_timeout, self._check_idle)

    def data_received(self, data: bytes) -> None:
        self.last_activity = self.loop.time()
        self.context.telemetry.received_bytes(len(data), self.tenant)
        frames = self.decoder.feed(data)
        if frames:
            self._emit(frames)
        if self.decoder.errors != self._reported_errors:
            self._report_framing_errors()
        if not self.paused and not self.draining:
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
        self.context.count_parse_errors(events, self.peer)
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
        self.source.wait_for_capacity(self, reason)

    def resume(self) -> None:
        self.paused = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _check_idle(self) -> None:
        self._idle_handle = None
        if self.closed or self.stopping or self.transport is None:
            return
        idle = self.loop.time() - self.last_activity
        if idle < self.idle_timeout:
            self._idle_handle = self.loop.call_later(self.idle_timeout - idle, self._check_idle)
            return
        if self.paused and unread_bytes(self.transport):
            # The sender is waiting for us, not idle.
            self._idle_handle = self.loop.call_later(self.idle_timeout, self._check_idle)
            return
        self.source.notes.log(logging.INFO, "idle", "closing idle connections",
                              source=self.context.source_id, peer=self.peer,
                              idle_seconds=round(idle, 1), paused=self.paused)
        self.context.telemetry.connection_ended("idle")
        self._flush_partial()
        self.transport.close()

    def idle_since(self) -> float | None:
        """When this connection last gave us data, if it is idle now: None while the kernel
        holds unread data for it (a paused sender waits for us) or once it is closing."""
        if self.closed or self.stopping or self.draining or self.transport is None \
                or unread_bytes(self.transport):
            return None
        return self.last_activity

    def evict(self) -> bool:
        """Close an idle connection to make room for a new one (its unterminated last message
        is kept, as on an idle close)."""
        if self.transport is None or self.closed:
            return False
        self._flush_partial()
        self.stopping = True
        self.transport.close()
        return True

    def start_draining(self) -> None:
        """The daemon is stopping: read everything the peer already sent, bound or not."""
        self.draining = True
        if self.paused:
            self.paused = False
            if self.transport is not None and not self.transport.is_closing():
                self.transport.resume_reading()

    def drained(self, now: float) -> bool:
        """Nothing unread in the kernel and nothing new for a moment."""
        return now - self.last_activity >= DRAIN_QUIET_SECONDS \
            and not unread_bytes(self.transport)

    def shutdown(self) -> None:
        """Stop reading and close; a line the peer had not finished is not an event yet."""
        self.stopping = True
        if self.transport is not None:
            self.transport.close()
