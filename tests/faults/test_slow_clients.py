"""Slow and vanishing HTTP clients: bodies sent slowly are cut by a read timeout, one peer cannot
hold every connection slot, a well-behaved client still gets through, and none of it logs an
ERROR traceback (one rate-limited line per cause instead)."""

from __future__ import annotations

import hashlib
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from support.daemon import VigilProcess, wait_for, write_conf

TOKEN = "slow-token-0123456789abcdef"


def config(**http: Any) -> dict[str, Any]:
    return {
        "vigil": {"control": {"address": "127.0.0.1:0"}},
        "tenants": {"demo": {"name": "Demo"}},
        "sources": {"http": {"type": "http", "address": "127.0.0.1:0", "tokens": {"demo": {
            "tenant": "demo", "sha256": hashlib.sha256(TOKEN.encode()).hexdigest()}}, **http}},
        "sinks": {"lake": {"type": "parquet_lake", "flush": {"max_seconds": 0.2}}},
    }


def slow_request(address: tuple[str, int], source_ip: str = "127.0.0.2") -> socket.socket:
    """A request whose headers arrived and whose body has only begun."""
    conn = socket.socket()
    conn.bind((source_ip, 0))
    conn.settimeout(5)
    conn.connect(address)
    conn.sendall(f"POST /v1/logs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                 "Content-Length: 100000\r\n\r\n".encode() + b'{"a": "')
    return conn


def post(address: tuple[str, int]) -> int:
    request = urllib.request.Request(f"http://{address[0]}:{address[1]}/v1/logs",
                                     data=b'{"message": "well-behaved"}', method="POST",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0


def reset(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def errors_in(log: str) -> list[str]:
    return [line for line in log.splitlines()
            if "level=error" in line or "Traceback" in line]


def test_clients_vanishing_mid_body_log_no_error_tracebacks(tmp_path: Path) -> None:
    write_conf(tmp_path / "conf.d", config())
    daemon = VigilProcess(tmp_path / "conf.d", tmp_path / "data").start()
    try:
        address = daemon.source_address("http")
        conns = [slow_request(address, "127.0.0.1") for _ in range(20)]
        wait_for(lambda: daemon.readyz()[1]["sources"]["http"]["connections"] >= 20, 10,
                 message="20 open connections")
        for conn in conns:
            reset(conn)
        wait_for(lambda: daemon.readyz()[1]["sources"]["http"]["connections"] == 0, 10,
                 message="the connections gone")
        assert post(address) == 200
        assert errors_in(daemon.log()) == []
    finally:
        daemon.kill()


def test_slow_body_flood_leaves_room_for_a_well_behaved_client(tmp_path: Path) -> None:
    write_conf(tmp_path / "conf.d", config(max_connections=64, max_connections_per_peer=16,
                                           header_timeout_seconds=1, body_timeout_seconds=1))
    daemon = VigilProcess(tmp_path / "conf.d", tmp_path / "data").start()
    stop = threading.Event()
    try:
        address = daemon.source_address("http")
        flood: list[socket.socket] = []

        def keep_flooding() -> None:  # new slow bodies as fast as old ones are cut
            while not stop.is_set():
                try:
                    conn = slow_request(address)
                except OSError:
                    continue
                flood.append(conn)
                for old in list(flood[:-200]):
                    old.close()
                    flood.remove(old)
                time.sleep(0.005)

        flooder = threading.Thread(target=keep_flooding, daemon=True)
        flooder.start()
        wait_for(lambda: len(flood) >= 100, 20, message="the flood")
        statuses = [post(address) for _ in range(20)]
        assert statuses == [200] * 20, statuses
        wait_for(lambda: daemon.metric("vigil_component_errors_total",
                                       error_type="read_timeout") >= 1, 10,
                 message="slow bodies cut by the read timeout")
        assert daemon.metric("vigil_component_discarded_events_total",
                             reason="max_connections_per_peer") >= 1
        assert errors_in(daemon.log()) == []
        refusals = [line for line in daemon.log().splitlines()
                    if "connection refused" in line and "cause=max_connections_per_peer" in line]
        assert 1 <= len(refusals) <= 5, refusals
    finally:
        stop.set()
        daemon.kill()


def test_a_request_head_sent_slowly_is_cut_by_the_header_timeout(tmp_path: Path) -> None:
    write_conf(tmp_path / "conf.d", config(header_timeout_seconds=1))
    daemon = VigilProcess(tmp_path / "conf.d", tmp_path / "data").start()
    try:
        conn = socket.create_connection(daemon.source_address("http"), timeout=10)
        conn.sendall(b"POST /v1/logs HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 8:  # one header line a second would go on forever
            try:
                conn.sendall(b"X-Slow: 1\r\n")
                if conn.recv(1, socket.MSG_DONTWAIT) == b"":
                    closed = True
                    break
            except BlockingIOError:
                pass
            except OSError:
                closed = True
                break
            time.sleep(0.2)
        conn.close()
        assert closed and time.monotonic() - started < 4
        assert errors_in(daemon.log()) == []
    finally:
        daemon.kill()


def test_malformed_requests_are_counted_and_logged_once_without_tracebacks(
        tmp_path: Path) -> None:
    write_conf(tmp_path / "conf.d", config())
    daemon = VigilProcess(tmp_path / "conf.d", tmp_path / "data").start()
    try:
        address = daemon.source_address("http")
        for _ in range(10):
            with socket.create_connection(address, timeout=5) as conn:
                conn.sendall(b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
                assert b" 400 " in conn.recv(100)
        wait_for(lambda: daemon.metric("vigil_component_errors_total",
                                       error_type="bad_request") == 10, 10,
                 message="ten malformed requests counted")
        assert post(address) == 200
        assert errors_in(daemon.log()) == []
        lines = [line for line in daemon.log().splitlines() if "malformed HTTP request" in line]
        assert len(lines) == 1, lines
    finally:
        daemon.kill()
