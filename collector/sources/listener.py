"""A TCP listener shared by the stream sources and HTTP ingest: who may connect
(`allowed_cidrs`), connection limits (per source and per peer; with `evict_idle` the oldest
idle connection makes room) and count, and optional TLS in which every failed handshake is
logged and counted. Refusals are counted each and logged once a minute per cause.

`create_server(ssl=...)` hides a failed handshake from the protocol (it never sees the
connection), and uvloop delivers the ClientHello before a `start_tls` could take over, so TLS
connections are served by the standard library's `SSLProtocol` created here with our own
handshake waiter; it runs on uvloop's transports like on asyncio's.
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import logging
import ssl
import struct
import termios
from asyncio import sslproto
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

from collector.logs import RateLimitedLog
from collector.sources.base import SourceContext
from core.config import split_address

log = logging.getLogger(__name__)


def unread_bytes(transport: asyncio.BaseTransport | None) -> int:
    """Bytes the kernel holds for us on the transport's socket (FIONREAD): data a sender
    already sent that the daemon has not read."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return 0
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except (OSError, ValueError):
        return 0
    return int(struct.unpack("i", raw)[0])


class TcpListener:
    """Accepts connections for one source; each admitted connection is served by a fresh
    protocol from `protocol_factory` (behind TLS when `tls` is given)."""

    def __init__(self, context: SourceContext, address: str,
                 protocol_factory: Callable[[], asyncio.BaseProtocol], *, max_connections: int,
                 max_connections_per_peer: int | None = None, evict_idle: bool = False,
                 tls: ssl.SSLContext | None = None, handshake_timeout: float = 10.0,
                 allowed_cidrs: list[str] | tuple[str, ...] = ()) -> None:
        self.connections: set[PlainConnection | TlsConnection] = set()
        self.per_peer: Counter[str | None] = Counter()
        self.server: asyncio.AbstractServer | None = None
        self.notes = RateLimitedLog(log)
        self.configure(context, address, protocol_factory, max_connections=max_connections,
                       max_connections_per_peer=max_connections_per_peer,
                       evict_idle=evict_idle, tls=tls, handshake_timeout=handshake_timeout,
                       allowed_cidrs=allowed_cidrs)

    def configure(self, context: SourceContext, address: str,
                  protocol_factory: Callable[[], asyncio.BaseProtocol], *,
                  max_connections: int, max_connections_per_peer: int | None = None,
                  evict_idle: bool = False, tls: ssl.SSLContext | None = None,
                  handshake_timeout: float = 10.0,
                  allowed_cidrs: list[str] | tuple[str, ...] = ()) -> None:
        """Settings for connections accepted from now on (a reload keeps the bound socket)."""
        self.context = context
        self.address = address
        self.protocol_factory = protocol_factory
        self.max_connections = max_connections
        self.max_connections_per_peer = max_connections_per_peer
        self.evict_idle = evict_idle
        self.allowed = tuple(ipaddress.ip_network(c, strict=False) for c in allowed_cidrs)
        self.tls = tls
        self.handshake_timeout = handshake_timeout

    def adopt(self, old: TcpListener) -> None:
        """Take over the open connections of `old` (a reload that moved the source)."""
        for connection in old.connections:
            connection.listener = self
            self.connections.add(connection)
            self.per_peer[connection.peer] += 1
        old.connections.clear()
        old.per_peer.clear()

    async def start(self) -> None:
        host, port = split_address(self.address)
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self._accept, host, port, reuse_address=True,
                                               backlog=1024)

    def _accept(self) -> asyncio.BaseProtocol:
        return PlainConnection(self) if self.tls is None else TlsConnection(self)

    def bound_address(self) -> str | None:
        if self.server is None:
            return None
        sockets = cast(asyncio.Server, self.server).sockets  # uvloop's Server is no subclass
        if not sockets:
            return None
        host, port = sockets[0].getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def close(self) -> None:
        """Stop accepting; open connections stay until their owner closes them."""
        if self.server is not None:
            self.server.close()

    def serving(self) -> bool:
        return self.server is not None and self.server.is_serving()

    def abort_handshakes(self) -> None:
        """Drop connections still in their TLS handshake (nothing of theirs was read)."""
        for connection in list(self.connections):
            if isinstance(connection, TlsConnection) and not connection.handshake_done:
                connection.abort()

    async def wait_closed(self) -> None:
        if self.server is not None:
            await self.server.wait_closed()

    def admit(self, connection: PlainConnection | TlsConnection,
              transport: asyncio.BaseTransport) -> bool:
        """Count a new connection, or refuse (abort) it when its sender is outside
        `allowed_cidrs`. At a limit (the peer's, then the source's) the oldest idle
        connection (of that peer) is closed to make room when `evict_idle`; without one the
        new connection is refused (aborted)."""
        peer = connection.peer
        per_peer = self.max_connections_per_peer
        cause = None
        if self.allowed and not self._allowed(peer):
            self.context.telemetry.error("peer_not_allowed", "receive")
            self.notes.log(logging.WARNING, "peer_not_allowed",
                           "connection refused: sender not in allowed_cidrs",
                           source=self.context.source_id, peer=peer)
            cast(asyncio.Transport, transport).abort()
            return False
        if per_peer is not None and self.per_peer[peer] >= per_peer \
                and not self._evict_oldest_idle(peer, of_peer=True):
            cause = "max_connections_per_peer"
        elif len(self.connections) >= self.max_connections \
                and not self._evict_oldest_idle(peer, of_peer=False):
            cause = "max_connections"
        if cause is not None:
            self.context.telemetry.discarded(cause)
            self.notes.log(logging.WARNING, cause, "connection refused: too many connections",
                           source=self.context.source_id, peer=peer,
                           max_connections=self.max_connections,
                           max_connections_per_peer=per_peer)
            cast(asyncio.Transport, transport).abort()
            return False
        self.connections.add(connection)
        self.per_peer[peer] += 1
        self.context.telemetry.connection_opened()
        return True

    def _allowed(self, peer: str | None) -> bool:
        try:
            address = ipaddress.ip_address(peer or "")
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.allowed)

    def _evict_oldest_idle(self, peer: str | None, *, of_peer: bool) -> bool:
        """Close the connection (of `peer`, with `of_peer`) idle the longest; False when none
        is idle (every one has unread data or is mid-handshake)."""
        if not self.evict_idle:
            return False
        candidates = sorted(
            ((since, c) for c in self.connections
             if (not of_peer or c.peer == peer) and (since := c.idle_since()) is not None),
            key=lambda item: item[0])
        for _, victim in candidates:
            if victim.evict():
                self.release(victim)
                self.context.telemetry.connection_ended("idle_evicted")
                self.notes.log(logging.WARNING, "idle_evicted",
                               "idle connection evicted to make room for a new one",
                               source=self.context.source_id, peer=victim.peer,
                               max_connections=self.max_connections,
                               max_connections_per_peer=self.max_connections_per_peer)
                return True
        return False

    def release(self, connection: PlainConnection | TlsConnection) -> None:
        if connection in self.connections:
            self.connections.discard(connection)
            self.per_peer[connection.peer] -= 1
            if self.per_peer[connection.peer] <= 0:
                del self.per_peer[connection.peer]
            self.context.telemetry.connection_closed()

    def handshake_failed(self, peer: str | None, exc: BaseException) -> None:
        self.context.telemetry.error("tls_handshake", "receive")
        self.notes.log(logging.WARNING, "tls_handshake:" + _reason(exc), "TLS handshake failed",
                       source=self.context.source_id, peer=peer, reason=_reason(exc))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return str(exc) or type(exc).__name__


def _peer(transport: asyncio.BaseTransport) -> str | None:
    peername = transport.get_extra_info("peername")
    return peername[0] if peername else None


class PlainConnection(asyncio.Protocol):
    """Admission in front of a source's protocol; forwards every callback to it."""

    def __init__(self, listener: TcpListener) -> None:
        self.listener = listener
        self.inner: Any = None
        self.peer: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.peer = _peer(transport)
        if self.listener.admit(self, transport):
            self.inner = self.listener.protocol_factory()
            self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def idle_since(self) -> float | None:
        """When the source's protocol last read from an idle connection (None: not idle, or a
        protocol that cannot tell)."""
        idle_since = getattr(self.inner, "idle_since", None)
        return cast(float | None, idle_since()) if idle_since is not None else None

    def evict(self) -> bool:
        evict = getattr(self.inner, "evict", None)
        return bool(evict()) if evict is not None else False

    def eof_received(self) -> bool | None:
        return cast(bool | None, self.inner.eof_received()) if self.inner else None

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.release(self)
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()


class TlsConnection(sslproto.SSLProtocol):
    """A TLS connection: admitted and counted from accept on; the source's protocol sees it
    only once the handshake succeeded; a failed handshake is counted with its reason."""

    def __init__(self, listener: TcpListener) -> None:
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        assert listener.tls is not None
        # typeshed says int; the implementation takes any number of seconds.
        super().__init__(loop, listener.protocol_factory(), listener.tls, waiter,
                         server_side=True,
                         ssl_handshake_timeout=cast(int, listener.handshake_timeout))
        waiter.add_done_callback(self._handshake_finished)
        self.listener = listener
        self.peer: str | None = None
        self.raw_transport: asyncio.BaseTransport | None = None
        self.handshake_done = False
        self.admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.peer = _peer(transport)
        self.raw_transport = transport
        self.admitted = self.listener.admit(self, transport)
        if self.admitted:
            super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.listener.release(self)
        if self.admitted:
            super().connection_lost(exc)

    def _handshake_finished(self, waiter: asyncio.Future[Any]) -> None:
        if waiter.cancelled():
            return
        error = waiter.exception()
        if error is None:
            self.handshake_done = True
        else:
            self.listener.handshake_failed(self.peer, error)

    def abort(self) -> None:
        if self.raw_transport is not None:
            cast(asyncio.Transport, self.raw_transport).abort()

    def idle_since(self) -> float | None:
        if not self.handshake_done:
            return None
        idle_since = getattr(self._app_protocol, "idle_since", None)
        return cast(float | None, idle_since()) if idle_since is not None else None

    def evict(self) -> bool:
        evict = getattr(self._app_protocol, "evict", None)
        return bool(evict()) if evict is not None else False
