"""The messages between the main process and a worker process: msgpack maps, each framed by
its length, over one Unix socket pair per worker.

Main -> worker: `assign` (partitions with their acknowledged position and replay end),
`durable` (partition -> end offset, and the partitions over their bound), `reload`, `stop`.
Worker -> main: `ready`, `ack` (partition -> acknowledged offset), `status` (metrics samples
and health, every tick), `reloaded`, `done`.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import msgpack

_LENGTH = struct.Struct("<I")
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

Message = dict[str, Any]


class ChannelClosed(Exception):
    """The other process closed its end (it exited or was killed)."""


class Channel:
    """Framed messages over a connected stream socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, sock: socket.socket) -> Channel:
        reader, writer = await asyncio.open_unix_connection(sock=sock,
                                                            limit=MAX_MESSAGE_BYTES)
        return cls(reader, writer)

    def send(self, message: Message) -> None:
        """Queue a message (the transport writes it out; never blocks the loop)."""
        if self.writer.is_closing():
            raise ChannelClosed("channel closed")
        body = msgpack.packb(message)
        self.writer.write(_LENGTH.pack(len(body)) + body)

    async def drain(self) -> None:
        try:
            await self.writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise ChannelClosed(str(exc)) from exc

    async def receive(self) -> Message:
        try:
            head = await self.reader.readexactly(_LENGTH.size)
            (length,) = _LENGTH.unpack(head)
            if length > MAX_MESSAGE_BYTES:
                raise ChannelClosed(f"message of {length} bytes refused")
            body = await self.reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise ChannelClosed(str(exc)) from exc
        message: Message = msgpack.unpackb(body, strict_map_key=False)
        return message

    def close(self) -> None:
        self.writer.close()
