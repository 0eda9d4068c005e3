"""Long runs (marked slow): a fuzz run of random frames through the real TCP source, and a
sender that outpaces a real daemon's pipeline while the daemon's memory is sampled from /proc.

Run with `pytest -m slow -s tests/integration/test_sources_load.py` to see the figures.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.daemon import VigilProcess, wait_for, write_conf

from collector.queue import MemoryQueue
from collector.routing import TenantRouter
from collector.sources.base import SourceContext
from collector.sources.syslog.source import SyslogTcpSource
from core.events import MESSAGE, PARSE_ERROR
from core.telemetry import Telemetry

pytestmark = pytest.mark.slow

NOW = datetime(2024, 5, 14, 9, 30, tzinfo=UTC)
FUZZ_FRAMES = int(__import__("os").environ.get("FUZZ_FRAMES", 100_000))
CONNECTIONS = 8


def random_frame(rng: random.Random, newline_safe: bool) -> bytes:
    """Random bytes, syslog-shaped lines, and syslog lines with bytes flipped."""
    kind = rng.random()
    if kind < 0.3:
        frame = rng.randbytes(rng.randint(1, 400))
    else:
        host = "".join(rng.choices("abcdefghij-.0123456789", k=rng.randint(1, 12)))
        if kind < 0.6:
            frame = (f"<{rng.randint(0, 200)}>{rng.choice(['Jan', 'Feb', 'Dec', 'Xyz'])} "
                     f"{rng.randint(0, 33):>2} {rng.randint(0, 24):02d}:{rng.randint(0, 60):02d}:"
                     f"{rng.randint(0, 60):02d} {host} app[{rng.randint(0, 99999)}]: "
                     ).encode() + rng.randbytes(rng.randint(0, 200))
        else:
            frame = (f'<{rng.randint(0, 191)}>1 2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}'
                     f"T0{rng.randint(0, 9)}:00:00.{rng.randint(0, 999999)}"
                     f"{rng.choice(['Z', '+05:30', '-99:99', ''])} {host} app - ID "
                     f'[id@1 a="{rng.randint(0, 9)}\\"" b="x"]{rng.choice(["", "[", " ", "]"])}'
                     ).encode() + rng.randbytes(rng.randint(0, 100))
        if rng.random() < 0.5:
            flipped = bytearray(frame)
            for _ in range(rng.randint(1, 4)):
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            frame = bytes(flipped)
    if newline_safe:
        frame = frame.replace(b"\n", b" ")
    # Trailing CR/LF belong to the framing (stripped from octet frames too), so a frame made
    # of nothing else would carry no message.
    return frame.rstrip(b"\r\n") or b"x"


async def test_fuzz_100k_random_frames_through_the_tcp_source() -> None:
    """Every frame becomes exactly one event (none lost, none split, none merged), nothing
    raises out of the source, and what was not syslog is kept whole and marked."""
    config = SyslogTcpSource.config_model.model_validate(
        {"type": "syslog_tcp", "address": "127.0.0.1:0", "tenant": "demo"})
    queue = MemoryQueue(10 * FUZZ_FRAMES)
    telemetry = Telemetry()
    context = SourceContext("fuzz", config, queue,
                            telemetry.component("fuzz", "source", "syslog_tcp"),
                            TenantRouter.from_config(config, {"demo"}), lambda: NOW)
    source = SyslogTcpSource(context)
    await source.start()
    host, _, port = source.bound_address().rpartition(":")
    rng = random.Random(20240514)
    streams: list[tuple[bytes, list[bytes]]] = []
    per_connection = FUZZ_FRAMES // CONNECTIONS
    for index in range(CONNECTIONS):
        octets = index % 2 == 0
        frames = [b"<13>May 14 09:00:00 h a: first"]  # "<" first: no accidental detection
        frames += [random_frame(rng, newline_safe=not octets) for _ in range(per_connection - 1)]
        if octets:
            data = b"".join(str(len(f)).encode() + b" " + f for f in frames)
        else:
            data = b"".join(f + b"\n" for f in frames)
        streams.append((data, frames))

    async def send(data: bytes) -> None:
        _, writer = await asyncio.open_connection(host, int(port))
        position = 0
        while position < len(data):  # writes of random sizes: frames are cut anywhere
            size = rng.randint(1, 65536)
            writer.write(data[position:position + size])
            position += size
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    started = time.perf_counter()
    await asyncio.gather(*(send(data) for data, _ in streams))
    total = sum(len(frames) for _, frames in streams)
    deadline = time.monotonic() + 90
    while queue.pending() < total and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    await source.stop()

    events = list(queue._queued["demo"])
    assert len(events) == total == FUZZ_FRAMES
    assert telemetry.sample("vigil_component_received_bytes_total", component_id="fuzz",
                            component_kind="source", component_type="syslog_tcp",
                            tenant="demo") == \
        sum(len(data) for data, _ in streams)
    assert telemetry.sample("vigil_component_errors_total", component_id="fuzz",
                            component_kind="source", component_type="syslog_tcp",
                            error_type="framing", stage="receive") == 0
    by_text: dict[str, int] = {}
    for _, frames in streams:
        for frame in frames:
            text = frame.decode("utf-8", "replace").removeprefix("\ufeff")
            by_text[text] = by_text.get(text, 0) + 1
    unparsed = [e for e in events if PARSE_ERROR in e and "log.syslog.priority" not in e]
    for event in unparsed:  # kept whole: exactly some frame that was sent
        assert event[MESSAGE] in by_text
    print(f"\nfuzz: {total} random frames over {CONNECTIONS} TCP connections "
          f"({sum(len(d) for d, _ in streams) / 1e6:.1f} MB) -> {len(events)} events in "
          f"{elapsed:.1f} s ({total / elapsed:,.0f} frames/s); {len(unparsed)} kept unparsed")


def vm_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.timeout(900)
@pytest.mark.parametrize("queue", ["memory", "journal"])
def test_a_fast_sender_is_slowed_and_daemon_memory_stays_bounded(tmp_path: Path,
                                                                  queue: str) -> None:
    """A tiny queue bound and a lake that writes a Parquet file every 1,000 rows make the
    pipeline the bottleneck; a sender pushing ~120 MB (1M lines) as fast as TCP lets it is
    slowed to the pipeline's pace and the daemon's RSS stays flat instead of growing with the
    volume."""
    bound, lines = 2000, 1_000_000
    write_conf(tmp_path / "conf.d", {
        "vigil": {"control": {"address": "127.0.0.1:0"},
                  "queue": {"type": queue},
                  "limits": {"queue_max_events": bound, "batch_max_events": 500}},
        "tenants": {"demo": {"name": "Demo"}},
        "sources": {"syslog_tcp": {"type": "syslog_tcp", "address": "127.0.0.1:0",
                                   "tenant": "demo"}},
        "sinks": {"lake": {"type": "parquet_lake",
                           "flush": {"max_rows": 1000, "max_seconds": 1}}},
    })
    daemon = VigilProcess(tmp_path / "conf.d", tmp_path / "data").start()
    try:
        pid = daemon.proc.pid
        line = b"<38>May 14 09:00:00 web01 sshd[4242]: Failed password for invalid user admin " \
               b"from 203.0.113.%03d port 22 ssh2 seq %07d\n"
        payload = b"".join(line % (i % 256, i) for i in range(lines))
        baseline = vm_rss_mb(pid)
        samples: list[tuple[float, float, int]] = []  # (seconds, RSS MB, bytes sent so far)
        sent = 0
        done = threading.Event()
        started = time.monotonic()

        def sample() -> None:
            while not done.is_set():
                samples.append((time.monotonic() - started, vm_rss_mb(pid), sent))
                time.sleep(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        with socket.create_connection(daemon.source_address("syslog_tcp")) as sock:
            view = memoryview(payload)
            while sent < len(payload):
                sent += sock.send(view[sent:sent + (1 << 20)])
        send_seconds = time.monotonic() - started
        wait_for(lambda: daemon.metric("vigil_component_received_events_total",
                                       component_id="syslog_tcp") == lines, timeout=800,
                 interval=0.5, message="every line read")
        paused = daemon.readyz()[1]
        done.set()
        sampler.join(5)
        total_seconds = time.monotonic() - started
    finally:
        daemon.kill()
    peak = max(rss for _, rss, _ in samples)
    first_half = max((rss for _, rss, s in samples if s <= len(payload) / 2), default=baseline)
    second_half = max((rss for _, rss, s in samples if s > len(payload) / 2), default=peak)
    rate = lines / total_seconds
    print(f"\nbackpressure ({queue} queue): {len(payload) / 1e6:.0f} MB ({lines} lines) sent in "
          f"{send_seconds:.1f} s by a sender that could do >500 MB/s; pipeline "
          f"{rate:,.0f} events/s; RSS baseline {baseline:.0f} MB, peak {peak:.0f} MB "
          f"(first half {first_half:.0f}, second half {second_half:.0f}); queue bound {bound}")
    assert paused["queue"]["capacity_events"] == bound
    assert send_seconds > len(payload) / 500e6 * 5  # the sender was held back by TCP
    assert peak - baseline < 150  # ~120 MB went through; nothing like it stayed in memory
    assert second_half - first_half < 40  # memory does not grow with the volume
