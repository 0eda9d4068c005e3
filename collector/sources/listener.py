"""A TCP listener shared by the stream sources and HTTP ingest: who may connect (`allowed_cidrs`),
connection limits (in all and per peer) and count, and optional TLS in which every failed
handshake is logged and counted. Refusals are counted each and logged once a minute per cause.

`create_server(ssl=...)` hides a failed handshake from the protocol (it never sees the
connection), and uvloop delivers the ClientHello before a `start_tls` could take over, so TLS
connections are served by the standard library's `SSLProtocol` created here with our own
handshake waiter; it runs on uvloop's transports like on asyncio's.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from asyncio import sslproto
from collections.abc import Callable
from typing import Any, cast

from collector.config.models import split_address
from collector.logs import LogThrottle
from collector.sources.base import SourceContext

log = logging.getLogger(__name__)


class TcpListener:
    """Accepts connections for one source; each admitted connection is served by a fresh
    protocol from `protocol_factory` (behind TLS when `tls` is given)."""

    def __init__(self, context: SourceContext, address: str,
                 protocol_factory: Callable[[], asyncio.BaseProtocol], *, max_connections: int,
                 tls: ssl.SSLContext | None = None, handshake_timeout: float = 10.0,
                 allowed_cidrs: list[str] | tuple[str, ...] = (),
                 max_connections_per_peer: int | None = None) -> None:
        self.context = context
        self.address = address
        self.protocol_factory = protocol_factory
        self.max_connections = max_connections
        self.max_per_peer = max_connections_per_peer
        self.allowed = tuple(ipaddress.ip_network(c, strict=False) for c in allowed_cidrs)
        self.per_peer: dict[str | None, int] = {}
        self.throttle = LogThrottle()
        self.tls = tls
        self.handshake_timeout = handshake_timeout
        self.connections: set[PlainConnection | TlsConnection] = set()
        self.server: asyncio.AbstractServer | None = None

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
        """Count a new connection, or refuse (abort) it: a sender outside `allowed_cidrs`, or
        the source or this peer at its connection limit."""
        peer = connection.peer
        if self.allowed and not self._allowed(peer):
            self.context.telemetry.error("peer_not_allowed", "receive")
            self._refused("peer_not_allowed", "connection refused: sender not in allowed_cidrs",
                          peer)
        elif len(self.connections) >= self.max_connections:
            self.context.telemetry.discarded("max_connections")
            self._refused("max_connections", "connection refused: too many connections", peer,
                          max_connections=self.max_connections)
        elif self.max_per_peer is not None and self.per_peer.get(peer, 0) >= self.max_per_peer:
            self.context.telemetry.discarded("max_connections_per_peer")
            self._refused("max_connections_per_peer", "connection refused: too many "
                          "connections from one peer (max_connections_per_peer)", peer,
                          max_connections_per_peer=self.max_per_peer)
        else:
            self.connections.add(connection)
            self.per_peer[peer] = self.per_peer.get(peer, 0) + 1
            self.context.telemetry.connection_opened()
            return True
        cast(asyncio.Transport, transport).abort()
        return False

    def _allowed(self, peer: str | None) -> bool:
        try:
            address = ipaddress.ip_address(peer or "")
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.allowed)

    def _refused(self, cause: str, message: str, peer: str | None, **extra: Any) -> None:
        skipped = self.throttle.ready(cause)
        if skipped is not None:
            log.warning(message, extra={"source": self.context.source_id, "peer": peer,
                                        "refused_since_last_line": skipped, **extra})

    def release(self, connection: PlainConnection | TlsConnection) -> None:
        if connection in self.connections:
            self.connections.discard(connection)
            left = self.per_peer.get(connection.peer, 1) - 1
            if left > 0:
                self.per_peer[connection.peer] = left
            else:
                self.per_peer.pop(connection.peer, None)
            self.context.telemetry.connection_closed()

    def handshake_failed(self, peer: str | None, exc: BaseException) -> None:
        self.context.telemetry.error("tls_handshake", "receive")
        log.warning("TLS handshake failed", extra={"source": self.context.source_id,
                                                   "peer": peer, "reason": _reason(exc)})


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
