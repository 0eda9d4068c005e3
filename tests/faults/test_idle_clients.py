"""Idle and abandoned TCP connections cannot crowd out senders: at the connection limit the
oldest idle connection makes room, a peer over its own limit loses its oldest idle connection,
and paused connections whose clients went away are reaped by the idle timeout."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from typing import Any

from support.daemon import REPO, VigilProcess, basic_config, wait_for, write_conf


def received(daemon: VigilProcess) -> float:
    return daemon.metric("vigil_component_received_events_total", component_id="syslog_tcp")


def connections(daemon: VigilProcess) -> int:
    return int(daemon.readyz()[1]["sources"]["syslog_tcp"]["connections"])


def start(tmp_path: Path, config: dict[str, Any]) -> VigilProcess:
    write_conf(tmp_path / "conf.d", config)
    return VigilProcess(tmp_path / "conf.d", tmp_path / "data").start()


def test_an_idle_flood_at_the_limit_lets_a_sender_through(tmp_path: Path) -> None:
    daemon = start(tmp_path, basic_config(flush_seconds=0.2, max_connections=50))
    idle: list[socket.socket] = []
    try:
        address = daemon.source_address("syslog_tcp")
        for _ in range(50):
            idle.append(socket.create_connection(address))
        wait_for(lambda: connections(daemon) == 50, message="the limit filled by idle clients")
        for n in range(5):  # five well-behaved senders that stay connected
            sock = socket.create_connection(address)
            idle.append(sock)
            sock.sendall(b"<13>Nov 22 10:00:00 h app: well-behaved %d\n" % n)
            wait_for(lambda n=n: received(daemon) == n + 1, message=f"sender {n} read")
        assert connections(daemon) <= 50
        evicted = [line for line in daemon.log_lines if "idle connection evicted" in line]
        assert len(evicted) == 1, "one rate-limited line for the cause, not one per eviction"
        assert daemon.metric("vigil_component_closed_connections_total",
                             reason="idle_evicted") == 5
    finally:
        for sock in idle:
            sock.close()
        daemon.kill()


def test_a_peer_over_its_own_limit_loses_its_oldest_idle_connection(tmp_path: Path) -> None:
    daemon = start(tmp_path, basic_config(flush_seconds=0.2, max_connections=100,
                                          max_connections_per_peer=10))
    socks: list[socket.socket] = []
    try:
        address = daemon.source_address("syslog_tcp")
        for _ in range(30):
            socks.append(socket.create_connection(address))
            wait_for(lambda: connections(daemon) <= 10, message="the peer held to its limit")
        with socket.create_connection(address) as sock:
            sock.sendall(b"<13>Nov 22 10:00:00 h app: from the same peer\n")
        wait_for(lambda: received(daemon) == 1, message="the newest connection served")
        assert connections(daemon) <= 10
    finally:
        for sock in socks:
            sock.close()
        daemon.kill()


def test_paused_connections_closed_by_their_clients_are_reaped(tmp_path: Path) -> None:
    """SSH failures feed the brute-force correlation, so their offsets wait for the detection
    state save (an hour here): the tenant stays at its bound and its connections stay paused."""
    config = basic_config(flush_seconds=0.2, idle_timeout_seconds=1)
    config["vigil"]["queue"] = {"partition_max_events": 100}
    config["vigil"]["detection"] = {"state_interval": "1h"}
    write_conf(tmp_path / "conf.d", config)
    shutil.copy(REPO / "conf.d" / "30-linux-auth.yaml", tmp_path / "conf.d")
    shutil.copytree(REPO / "conf.d" / "enrich", tmp_path / "conf.d" / "enrich")
    daemon = VigilProcess(tmp_path / "conf.d", tmp_path / "data").start()
    socks: list[socket.socket] = []
    try:
        address = daemon.source_address("syslog_tcp")

        def failures(first: int, count: int) -> bytes:
            return b"".join(f"<38>Nov 23 10:00:00 web1 sshd[7]: Failed password for root "
                            f"from 10.9.{i // 250}.{i % 250} port 22 ssh2\n".encode()
                            for i in range(first, first + count))

        flood = socket.create_connection(address)
        flood.sendall(failures(0, 2000))  # the tenant's bound is reached and stays reached
        socks.append(flood)
        wait_for(lambda: daemon.readyz()[1]["queue"]["partitions"]["demo"]["backpressure"],
                 message="the tenant over its bound")
        for n in range(20):
            sock = socket.create_connection(address)
            sock.sendall(failures(10_000 + n, 1))
            socks.append(sock)
        wait_for(lambda: daemon.readyz()[1]["sources"]["syslog_tcp"]["paused_connections"] == 21,
                 message="every connection paused")
        for sock in socks[1:]:
            sock.close()  # the clients go away while the daemon is not reading
        wait_for(lambda: connections(daemon) == 1, timeout=15,
                 message="the abandoned paused connections reaped")
        # The flood still has unread bytes: it waits for room, it is not idle.
        assert daemon.readyz()[1]["sources"]["syslog_tcp"]["paused_connections"] == 1
        assert daemon.stop() == 0
    finally:
        for sock in socks:
            sock.close()
        daemon.kill()
