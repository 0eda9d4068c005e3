"""Listening sources in-process on real loopback sockets (asyncio's loop; the daemon tests run
them on uvloop): TCP framing per connection, limits, idle timeout, backpressure, TLS and mTLS
with failed handshakes counted, UDP, and JSON lines."""

from __future__ import annotations

import asyncio
import socket
import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support.daemon import wait_until

from collector.queue import MemoryQueue
from collector.routing import TenantRouter
from collector.sources.base import Source, SourceContext
from collector.sources.tls import self_signed_pair
from core.events import PARSE_ERROR, TRUNCATED
from core.registry import resolve
from core.telemetry import Telemetry

NOW = datetime(2024, 5, 14, 9, 30, tzinfo=UTC)


class Rig:
    """A source with a real queue and telemetry, as the daemon builds it."""

    def __init__(self, type_name: str, settings: dict[str, Any], *, queue_bound: int = 100_000,
                 data_dir: Path | None = None) -> None:
        cls = resolve("source", type_name)
        self.config = cls.config_model.model_validate(
            {"type": type_name, "address": "127.0.0.1:0", "tenant": "demo", **settings})
        self.queue = MemoryQueue(queue_bound)
        self.telemetry = Telemetry()
        self.context = SourceContext("src", self.config, self.queue,
                                     self.telemetry.component("src", "source", type_name),
                                     TenantRouter.from_config(self.config, {"demo"}),
                                     lambda: NOW, data_dir=data_dir, conf_dir=data_dir)
        self.source: Source = cls(self.context)

    def address(self) -> tuple[str, int]:
        host, _, port = self.source.health()["address"].rpartition(":")
        return host, int(port)

    def events(self) -> list[dict[str, Any]]:
        return [e for partition in self.queue._queued.values() for e in partition]

    def metric(self, name: str, **labels: str) -> float:
        return self.telemetry.sample(name, component_id="src", component_kind="source",
                                     component_type=self.config.type, **labels)

@pytest.fixture
async def rigs():
    started: list[Rig] = []

    async def start(type_name: str, **kwargs: Any) -> Rig:
        rig = Rig(type_name, **kwargs)
        await rig.source.start()
        started.append(rig)
        return rig

    yield start
    for rig in started:
        await rig.source.stop()


async def send(address: tuple[str, int], data: bytes, **kwargs: Any) -> None:
    _, writer = await asyncio.open_connection(*address, **kwargs)
    writer.write(data)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def test_each_connection_picks_its_own_framing(rigs) -> None:
    rig = await rigs("syslog_tcp", settings={})
    msg = b"<165>1 2024-05-14T09:00:00Z web1 app 42 ID1 - hello\nworld"
    lines = b"<13>May 14 09:00:00 h1 a: newline one\n<13>May 14 09:00:01 h1 a: two\n"
    octets = str(len(msg)).encode() + b" " + msg
    await asyncio.gather(send(rig.address(), lines), send(rig.address(), octets))
    await wait_until(lambda: len(rig.events()) == 3)
    by_message = {e["message"]: e for e in rig.events()}
    assert by_message["hello\nworld"]["process.pid"] == 42  # a newline inside an octet frame
    assert by_message["newline one"]["host.hostname"] == "h1"
    assert all(e["vigil.tenant"] == "demo" and e["vigil.source"] == "src" for e in rig.events())
    assert rig.metric("vigil_component_received_events_total", tenant="demo") == 3
    assert rig.metric("vigil_component_received_bytes_total", tenant="demo") == \
        len(lines) + len(octets)


async def test_max_connections_evicts_the_oldest_idle_connection(rigs) -> None:
    rig = await rigs("syslog_tcp", settings={"max_connections": 2})
    held = []
    for n in range(2):
        held.append(await asyncio.open_connection(*rig.address()))
        held[-1][1].write(b"<13>May 14 09:00:00 h a: held %d\n" % n)
        await wait_until(lambda n=n: len(rig.events()) == n + 1)
    reader, writer = await asyncio.open_connection(*rig.address())
    assert await asyncio.wait_for(held[0][0].read(), 5) == b""  # the oldest idle made room
    writer.write(b"<13>May 14 09:00:00 h a: newest\n")
    await wait_until(lambda: len(rig.events()) == 3)
    assert rig.metric("vigil_component_closed_connections_total", reason="idle_evicted") == 1
    assert rig.source.health()["connections"] == 2
    for _, w in held:
        w.close()
    writer.close()
    await wait_until(lambda: rig.metric("vigil_component_open_connections") == 0)


async def test_idle_connection_is_closed_and_its_unterminated_line_kept(rigs) -> None:
    rig = await rigs("syslog_tcp", settings={"idle_timeout_seconds": 0.2})
    reader, writer = await asyncio.open_connection(*rig.address())
    writer.write(b"<13>May 14 09:00:00 h a: no newline at the end")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    await wait_until(lambda: len(rig.events()) == 1)
    assert rig.events()[0]["message"] == "no newline at the end"
    writer.close()


async def test_a_reset_connection_keeps_its_unterminated_line(rigs) -> None:
    rig = await rigs("syslog_tcp", settings={})
    with socket.create_connection(rig.address()) as sock:
        sock.sendall(b"<13>May 14 09:00:00 h a: complete\n<13>May 14 09:00:00 h a: cut off by RST")
        await wait_until(lambda: len(rig.events()) == 1)
        # SO_LINGER 0: close() sends RST instead of FIN
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    await wait_until(lambda: len(rig.events()) == 2)
    assert [e["message"] for e in rig.events()] == ["complete", "cut off by RST"]


async def test_a_fast_sender_is_paused_and_memory_stays_bounded(rigs) -> None:
    """The queue holds at most its bound plus what one read delivered; the sender is slowed by
    TCP, and every line still arrives, in order."""
    bound = 500
    rig = await rigs("syslog_tcp", settings={}, queue_bound=bound)
    total, line_len = 30_000, len(b"<13>May 14 09:00:00 h a: 000000\n")
    payload = b"".join(b"<13>May 14 09:00:00 h a: %06d\n" % i for i in range(total))
    received: list[str] = []
    peak, paused_seen = 0, False

    async def consume() -> None:
        nonlocal peak, paused_seen
        while len(received) < total:
            peak = max(peak, rig.queue.pending())
            paused_seen = paused_seen or rig.source.health()["paused_connections"] == 1
            batch = await rig.queue.read(100)
            assert batch is not None
            received.extend(e["message"] for e in batch.events)
            await asyncio.sleep(0.001)  # the pipeline is slower than the sender
            rig.queue.ack(batch.partition, batch.last_offset)

    await asyncio.wait_for(asyncio.gather(send(rig.address(), payload), consume()), 60)
    assert paused_seen
    assert peak <= bound + 300_000 // line_len  # one read of the socket at most
    assert received == [f"{i:06d}" for i in range(total)]


async def refused(address: tuple[str, int], context: ssl.SSLContext) -> bool:
    """True when the server ends the connection without taking data (with TLS 1.3 the client's
    side of the handshake completes before the server's refusal arrives)."""
    try:
        reader, writer = await asyncio.open_connection(*address, ssl=context)
        writer.write(b"<13>May 14 09:00:00 h a: must not arrive\n")
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 5) == b""
    except (ssl.SSLError, ConnectionError):
        return True


async def test_tls_with_client_certificates(rigs, tmp_path: Path) -> None:
    client_cert, client_key = self_signed_pair(tmp_path / "client", "client")
    rig = await rigs("syslog_tcp", data_dir=tmp_path, settings={
        "tls": {"self_signed": True, "ca_file": str(client_cert), "client_auth": "required"}})
    server_cert = tmp_path / "tls" / "src.crt"
    trusted = ssl.create_default_context(cafile=server_cert)
    trusted.load_cert_chain(client_cert, client_key)
    await send(rig.address(), b"<13>May 14 09:00:00 h a: over mTLS\n", ssl=trusted)
    await wait_until(lambda: len(rig.events()) == 1)
    assert rig.events()[0]["message"] == "over mTLS"

    anonymous = ssl.create_default_context(cafile=server_cert)  # no client certificate
    stranger = ssl.create_default_context(cafile=server_cert)
    stranger.load_cert_chain(*self_signed_pair(tmp_path / "other", "other"))
    for context in (anonymous, stranger):
        assert await refused(rig.address(), context)
    reader, writer = await asyncio.open_connection(*rig.address())
    writer.write(b"<13>May 14 09:00:00 h a: plain text to a TLS port\n")
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    await wait_until(lambda: rig.metric("vigil_component_errors_total", error_type="tls_handshake",
                                        stage="receive") == 3)
    assert len(rig.events()) == 1
    await wait_until(lambda: rig.metric("vigil_component_open_connections") == 0)


async def test_udp_datagrams_cut_oversize_and_pause_when_full(rigs) -> None:
    rig = await rigs("syslog_udp", settings={"max_message_bytes": 50,
                                             "receive_buffer_bytes": 1 << 20}, queue_bound=3)
    assert rig.source.health()["receive_buffer_bytes"] >= 1 << 20
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.sendto(b"<13>May 14 09:00:00 h a: first\n", rig.address())
        client.sendto(b"<13>May 14 09:00:00 h a: " + b"x" * 100, rig.address())
        client.sendto(b"\n", rig.address())
        client.sendto(b"garbage that is not syslog", rig.address())
        await wait_until(lambda: len(rig.events()) == 3)
        first, long, garbage = rig.events()
        assert first["message"] == "first" and first["host.hostname"] == "h"
        assert long[TRUNCATED] is True and long["message"] == "x" * 25
        assert garbage[PARSE_ERROR] == "no syslog PRI or timestamp"
        assert rig.metric("vigil_component_discarded_events_total", reason="empty") == 1
        assert rig.metric("vigil_component_errors_total", error_type="oversize",
                          stage="receive") == 1
        assert rig.metric("vigil_component_errors_total", error_type="parse",
                          stage="receive") == 1
        # the queue is at its bound: the source stops reading and the kernel buffer holds on
        await wait_until(lambda: rig.source.health()["paused"])
        client.sendto(b"<13>May 14 09:00:00 h a: waits in the kernel", rig.address())
        batch = await rig.queue.read(10)
        rig.queue.ack(batch.partition, batch.last_offset)
        await wait_until(lambda: len(rig.events()) == 1 and not rig.source.health()["paused"])
        assert rig.events()[0]["message"] == "waits in the kernel"


async def test_json_lines_keep_bad_lines(rigs) -> None:
    rig = await rigs("tcp_lines", settings={"codec": "json", "max_message_bytes": 40})
    await send(rig.address(), b'{"user.name": "alice", "n": 1}\nnot json\n'
                              b'{"long": "' + b"z" * 50 + b'"}\n[1, 2]\n')
    await wait_until(lambda: len(rig.events()) == 4)
    good, bad, long, array = rig.events()
    assert good["user.name"] == "alice" and good["n"] == 1 and good["vigil.dataset"] == "json"
    assert bad["message"] == "not json" and bad[PARSE_ERROR].startswith("invalid JSON")
    assert long[TRUNCATED] is True and PARSE_ERROR in long
    assert array[PARSE_ERROR] == "not a JSON object but an array"
    assert rig.metric("vigil_component_errors_total", error_type="parse", stage="receive") == 3
