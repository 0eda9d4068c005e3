"""Syslog over UDP (RFC 5426): one datagram is one message.

The socket is read directly (`loop.add_reader`, many datagrams per wake-up, one queue append
per sender per wake-up) rather than through a datagram transport, because uvloop's transport can
neither pause reading nor batch. While the queue is over its bound the source stops reading and
the kernel's receive buffer (`receive_buffer_bytes`) absorbs the burst; what the kernel then
drops is read from /proc/net/udp and counted, so no datagram is lost uncounted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field

from collector.sources.base import Source, SourceContext
from collector.sources.syslog.source import TIMEZONE_FIELD, TimezoneName, syslog_events
from core.config import Address, SourceConfig, split_address
from core.events import TRUNCATED, Event

log = logging.getLogger(__name__)

_DATAGRAMS_PER_WAKEUP = 512   # bounded so one busy socket cannot starve the loop
_MAX_DATAGRAM = 65536         # larger than any UDP payload
_DROPS_POLL_SECONDS = 1.0
_PROC_UDP = (Path("/proc/net/udp"), Path("/proc/net/udp6"))


class SyslogUdpConfig(SourceConfig):
    type: Literal["syslog_udp"] = "syslog_udp"
    address: Address = Field(description="HOST:PORT to listen on")
    max_message_bytes: int = Field(65536, gt=0, description="longer datagrams are cut and marked")
    receive_buffer_bytes: int | None = Field(
        None, gt=0, description="SO_RCVBUF: the kernel buffer that absorbs bursts (capped by "
        "net.core.rmem_max; default: the system's)")
    timezone: TimezoneName = TIMEZONE_FIELD


def kernel_drops(inode: int, tables: tuple[Path, ...] = _PROC_UDP) -> int | None:
    """The kernel's drop counter of the UDP socket with this inode (None if unreadable)."""
    wanted = str(inode)
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
            if len(fields) >= 13 and fields[9] == wanted:
                return int(fields[12])
    return None


class SyslogUdpSource(Source):
    """`type: syslog_udp`: syslog datagrams."""

    config_model = SyslogUdpConfig
    config: SyslogUdpConfig

    def __init__(self, context: SourceContext) -> None:
        super().__init__(context)
        self.tz = ZoneInfo(self.config.timezone)
        self.sock: socket.socket | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.paused = False
        self.receive_buffer: int | None = None
        self._buffer = bytearray(_MAX_DATAGRAM)
        self._inode = 0
        self._drops_seen: int | None = None
        self._drops_timer: asyncio.TimerHandle | None = None

    def decode_lines(self, lines: list[bytes]) -> list[Event]:
        limit = self.config.max_message_bytes
        events = syslog_events([line[:limit] for line in lines], self.context.clock(), self.tz)
        for line, event in zip(lines, events, strict=True):
            if len(line) > limit:
                event[TRUNCATED] = True
        return events

    async def start(self) -> None:
        host, port = split_address(self.config.address)
        loop = self.loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM,
                                       flags=socket.AI_PASSIVE)
        family, _, _, _, sockaddr = infos[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            wanted = self.config.receive_buffer_bytes
            if wanted:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, wanted)
            sock.bind(sockaddr)
        except OSError:
            sock.close()
            raise
        # Linux doubles the value for bookkeeping and caps it at net.core.rmem_max.
        self.receive_buffer = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        if wanted and self.receive_buffer < wanted:
            log.warning("UDP receive buffer capped by the kernel (raise net.core.rmem_max)",
                        extra={"source": self.context.source_id, "wanted_bytes": wanted,
                               "effective_bytes": self.receive_buffer})
        self.sock = sock
        self._inode = os.fstat(sock.fileno()).st_ino
        self._drops_seen = kernel_drops(self._inode)
        loop.add_reader(sock.fileno(), self._readable)
        self._drops_timer = loop.call_later(_DROPS_POLL_SECONDS, self._poll_drops)
        log.info("listening", extra={"source": self.context.source_id,
                                     "address": self.bound_address(), "protocol": "udp",
                                     "receive_buffer_bytes": self.receive_buffer})

    def bound_address(self) -> str | None:
        if self.sock is None:
            return None
        host, port = self.sock.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def _readable(self) -> None:
        sock, view = self.sock, memoryview(self._buffer)
        if sock is None:
            return
        telemetry = self.context.telemetry
        limit = self.config.max_message_bytes
        by_peer: dict[str | None, list[tuple[bytes, bool]]] = {}
        bytes_by_peer: dict[str | None, int] = {}
        for _ in range(_DATAGRAMS_PER_WAKEUP):
            try:
                size, address = sock.recvfrom_into(self._buffer)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                telemetry.discarded("receive_error")
                log.warning("UDP receive error", extra={"source": self.context.source_id,
                                                        "error": str(exc)})
                continue
            peer = address[0] if address else None
            bytes_by_peer[peer] = bytes_by_peer.get(peer, 0) + size
            end = size
            while end and view[end - 1] in (10, 13, 0):  # trailers some senders add
                end -= 1
            if not end:
                telemetry.discarded("empty")
                continue
            datagram = (bytes(view[:min(end, limit)]), end > limit)
            bucket = by_peer.get(peer)
            if bucket is None:
                by_peer[peer] = [datagram]
            else:
                bucket.append(datagram)
        for peer, size in bytes_by_peer.items():
            telemetry.received_bytes(size, self.context.router.tenant_of_peer(peer) or "")
        if by_peer:
            self._emit(by_peer)
        if not self.paused and self.context.over_bound() is not None:
            self._pause()

    def _emit(self, by_peer: dict[str | None, list[tuple[bytes, bool]]]) -> None:
        received_at = self.context.clock()
        truncated = 0
        for peer, datagrams in by_peer.items():
            events = syslog_events([data for data, _ in datagrams], received_at, self.tz)
            for (_, cut), event in zip(datagrams, events, strict=True):
                if cut:
                    event[TRUNCATED] = True
                    truncated += 1
            self.context.count_parse_errors(events, peer)
            # No backpressure over UDP: a tenant over its share loses its own datagrams
            # (counted), not everyone's.
            self.context.emit(events, peer, shed=True)
        if truncated:
            self.context.telemetry.error("oversize", "receive", truncated)

    def _pause(self) -> None:
        if self.sock is None or self.loop is None:
            return
        self.paused = True
        self.loop.remove_reader(self.sock.fileno())
        self.context.when_capacity(self._resume, "")

    def _resume(self) -> None:
        self.paused = False
        if self.sock is not None and self.loop is not None:
            self.loop.add_reader(self.sock.fileno(), self._readable)

    def _poll_drops(self) -> None:
        if self.sock is None or self.loop is None:
            return
        self._count_drops()
        self._drops_timer = self.loop.call_later(_DROPS_POLL_SECONDS, self._poll_drops)

    def _count_drops(self) -> None:
        drops = kernel_drops(self._inode)
        if drops is not None:
            if self._drops_seen is not None and drops > self._drops_seen:
                self.context.telemetry.discarded("kernel_drop", drops - self._drops_seen)
            self._drops_seen = drops

    async def stop(self) -> None:
        if self._drops_timer is not None:
            self._drops_timer.cancel()
        if self.sock is not None and self.loop is not None:
            if not self.paused:
                self.loop.remove_reader(self.sock.fileno())
            self._count_drops()
            self.sock.close()
            self.sock = None

    def health(self) -> dict[str, Any]:
        return {"address": self.bound_address(), "paused": self.paused,
                "receive_buffer_bytes": self.receive_buffer}

