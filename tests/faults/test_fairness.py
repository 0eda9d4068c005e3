"""Overload: /readyz says so when a tenant is held back, paused TCP connections come back a few
at a time instead of all at once, and the health endpoints keep answering promptly."""

from __future__ import annotations

import hashlib
import shutil
import socket
import statistics
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from support.daemon import REPO, VigilProcess, basic_config, wait_for, write_conf

LINE = b"<13>Nov 22 10:00:00 host app: flood line " + b"x" * 80 + b"\n"


def ssh_failures(first: int, count: int) -> bytes:
    return b"".join(f"<38>Nov 23 10:00:00 web1 sshd[7]: Failed password for root from "
                    f"10.9.{i // 250}.{i % 250} port 22 ssh2\n".encode()
                    for i in range(first, first + count))


def test_readyz_reports_a_tenant_held_at_its_bound(tmp_path: Path) -> None:
    """SSH failures wait for the detection state save (an hour here): the tenant stays at its
    bound while the journal as a whole has room."""
    config = basic_config(flush_seconds=0.2)
    config["vigil"]["queue"] = {"partition_max_events": 100}
    config["vigil"]["detection"] = {"state_interval": "1h"}
    write_conf(tmp_path / "conf.d", config)
    shutil.copy(REPO / "conf.d" / "30-linux-auth.yaml", tmp_path / "conf.d")
    shutil.copytree(REPO / "conf.d" / "enrich", tmp_path / "conf.d" / "enrich")
    daemon = VigilProcess(tmp_path / "conf.d", tmp_path / "data").start()
    try:
        with socket.create_connection(daemon.source_address("syslog_tcp")) as flood:
            flood.sendall(ssh_failures(0, 1000))
            wait_for(lambda: daemon.readyz()[1]["sources"]["syslog_tcp"]["paused_connections"],
                     message="the flood paused")
            queue = daemon.readyz()[1]["queue"]
            assert queue["partitions"]["demo"]["backpressure"] is True
            assert queue["backpressure"] is True
            assert queue["backpressure_partitions"] == ["demo"]
            wait_for(lambda: daemon.metric("vigil_queue_backpressure") == 1,
                     message="the backpressure gauge set by the next tick")
        assert daemon.stop() == 0
    finally:
        daemon.kill()


def test_health_answers_promptly_while_paused_connections_refill(tmp_path: Path) -> None:
    config = basic_config(flush_seconds=0.05)
    config["sinks"]["lake"]["flush"]["max_rows"] = 2000
    config["vigil"]["queue"] = {"partition_max_events": 2000}
    write_conf(tmp_path / "conf.d", config)
    daemon = VigilProcess(tmp_path / "conf.d", tmp_path / "data").start()
    stop = threading.Event()
    socks: list[socket.socket] = []
    try:
        address = daemon.source_address("syslog_tcp")
        chunk = LINE * 2000

        def flood(sock: socket.socket) -> None:
            try:
                while not stop.is_set():
                    sock.sendall(chunk)
            except OSError:
                pass

        for _ in range(30):
            sock = socket.create_connection(address)
            socks.append(sock)
            threading.Thread(target=flood, args=(sock,), daemon=True).start()
        wait_for(lambda: daemon.readyz()[1]["sources"]["syslog_tcp"]["paused_connections"] >= 10,
                 timeout=30, message="the flood paused")
        latencies = []
        for _ in range(40):
            started = time.monotonic()
            status, _ = daemon.http("/healthz")
            latencies.append(time.monotonic() - started)
            assert status == 200
            time.sleep(0.02)  # spread the probes over the flood (not synchronisation)
        stop.set()
        median, worst = statistics.median(latencies), max(latencies)
        # All paused connections resuming at once stalled the loop for ~1.5 s here.
        assert median < 0.1 and worst < 1.0, f"median {median:.3f}s, max {worst:.3f}s"
    finally:
        stop.set()
        for sock in socks:
            sock.close()
        daemon.kill()


def test_sources_of_a_tenant_share_its_bound(tmp_path: Path) -> None:
    """Ten TCP connections with megabytes waiting in their kernel buffers and one HTTP client
    posting batches, same tenant, for a fixed number of requests: HTTP gets its share of the
    tenant's bound instead of what the TCP refills leave over (here ~90 of 200 requests with
    the paced resume alone, ~180 with shares)."""
    config = basic_config(flush_seconds=0.05)
    config["sinks"]["lake"]["flush"]["max_rows"] = 2000
    config["vigil"]["queue"] = {"partition_max_events": 20_000}
    config["sources"]["http"] = {
        "type": "http", "address": "127.0.0.1:0",
        "tokens": {"demo": {"tenant": "demo",
                            "sha256": hashlib.sha256(b"fair-token").hexdigest()}}}
    write_conf(tmp_path / "conf.d", config)
    daemon = VigilProcess(tmp_path / "conf.d", tmp_path / "data").start()
    stop = threading.Event()
    socks: list[socket.socket] = []
    try:
        address = daemon.source_address("syslog_tcp")
        host, port = daemon.source_address("http")

        def flood(sock: socket.socket) -> None:
            try:
                while not stop.is_set():
                    sock.sendall(LINE * 2000)
            except OSError:
                pass

        for _ in range(10):
            sock = socket.create_connection(address)
            socks.append(sock)
            threading.Thread(target=flood, args=(sock,), daemon=True).start()
        wait_for(lambda: daemon.readyz()[1]["sources"]["syslog_tcp"]["paused_connections"] >= 5,
                 timeout=30, message="the TCP flood held back")
        body = b"\n".join(b'{"message": "http %d"}' % i for i in range(100))
        accepted = 0
        for _ in range(200):
            request = urllib.request.Request(
                f"http://{host}:{port}/v1/logs", data=body, method="POST",
                headers={"Authorization": "Bearer fair-token"})
            try:
                with urllib.request.urlopen(request, timeout=10):
                    accepted += 1
            except urllib.error.HTTPError as exc:
                assert exc.code == 503
                time.sleep(0.01)  # Retry-After, shortened (not synchronisation)
        stop.set()

        def received(source: str) -> float:
            return daemon.metric("vigil_component_received_events_total", component_id=source)

        http, tcp = received("http"), received("syslog_tcp")
        assert accepted >= 150, f"{accepted} of 200 HTTP requests accepted; " \
            f"HTTP {http:.0f} events, TCP {tcp:.0f}"
    finally:
        stop.set()
        for sock in socks:
            sock.close()
        daemon.kill()
