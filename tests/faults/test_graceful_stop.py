"""A graceful stop or a reload costs nothing a TCP sender already sent: data the daemon had not
read yet (connections paused by backpressure, bytes waiting in kernel buffers) is read into the
journal before the connection closes."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

from support.daemon import VigilProcess, basic_config, lake_count, wait_for, write_conf

LINE = b"<13>Nov 22 10:00:00 host app: stop test line %d " + b"x" * 60 + b"\n"


def paused_config(**source: Any) -> dict[str, Any]:
    """A tenant bound small enough that a few hundred KB pause every connection, and a lake that
    flushes only at stop, so nothing is acknowledged and the bound stays reached."""
    config = basic_config(flush_seconds=600, **source)
    config["vigil"]["queue"] = {"partition_max_events": 300}
    return config


def send_all(address: tuple[str, int], first: int, count: int, done: threading.Event,
             close: bool) -> socket.socket:
    sock = socket.create_connection(address)

    def run() -> None:
        sock.sendall(b"".join(LINE % i for i in range(first, first + count)))
        if close:
            sock.shutdown(socket.SHUT_WR)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return sock


def test_sigterm_reads_what_paused_connections_hold(tmp_path: Path) -> None:
    write_conf(tmp_path / "conf.d", paused_config())
    daemon = VigilProcess(tmp_path / "conf.d", tmp_path / "data").start()
    socks = []
    try:
        address = daemon.source_address("syslog_tcp")
        per_connection, connections = 8000, 3  # ~0.9 MB each: fits in the kernel's buffers
        sent = [threading.Event() for _ in range(connections)]
        for n in range(connections):
            socks.append(send_all(address, n * per_connection, per_connection, sent[n],
                                  close=n == 0))
        for done in sent:
            wait_for(done.is_set, timeout=30, message="every byte handed to the kernel")
        status, ready = daemon.readyz()
        assert ready["sources"]["syslog_tcp"]["paused_connections"] == connections
        assert daemon.stop(timeout=40) == 0
    finally:
        daemon.kill()
        for sock in socks:
            sock.close()
    total = per_connection * connections
    # What the journal kept is processed at the next start; the stop flushes it to the lake.
    config = paused_config()
    config["vigil"]["queue"] = {}
    write_conf(tmp_path / "conf.d", config)
    again = VigilProcess(tmp_path / "conf.d", tmp_path / "data").start()
    try:
        assert again.stop(timeout=60) == 0
    finally:
        again.kill()
    assert lake_count(tmp_path / "data") == total
    assert "connections drained" in daemon.log()


def test_sighup_changing_a_tcp_source_loses_nothing(tmp_path: Path) -> None:
    """The reload comes while the connection is paused with megabytes in the kernel's buffers
    (a small tenant bound, the lake flushing every 1,000 rows)."""

    def config(**source: Any) -> dict[str, Any]:
        sections = basic_config(flush_seconds=0.1, **source)
        sections["sinks"]["lake"]["flush"]["max_rows"] = 1000
        sections["vigil"]["queue"] = {"partition_max_events": 2000}
        return sections

    write_conf(tmp_path / "conf.d", config())
    daemon = VigilProcess(tmp_path / "conf.d", tmp_path / "data").start()
    total, before = 40_000, 20_000
    reloaded = threading.Event()
    progress: dict[str, Any] = {"sent": 0, "error": None}
    try:
        address = daemon.source_address("syslog_tcp")

        def send() -> None:
            try:
                with socket.create_connection(address) as sock:
                    for start in range(0, total, 500):
                        if start == before:
                            reloaded.wait(30)
                        sock.sendall(b"".join(LINE % i for i in range(start, start + 500)))
                        progress["sent"] = start + 500
            except OSError as exc:
                progress["error"] = exc

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        wait_for(lambda: progress["sent"] >= before, timeout=30, message="load before the reload")
        assert daemon.readyz()[1]["sources"]["syslog_tcp"]["paused_connections"] == 1
        write_conf(tmp_path / "conf.d", config(max_message_bytes=4096, idle_timeout_seconds=300))
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: daemon.metric("vigil_config_reloads_total", result="success") == 1,
                 timeout=20, message="the applied reload")
        reloaded.set()
        sender.join(60)
        assert progress["error"] is None, f"the reload reset the connection: {progress['error']}"
        assert progress["sent"] == total
        wait_for(lambda: daemon.metric("vigil_component_received_events_total",
                                       component_id="syslog_tcp") == total,
                 timeout=60, message="every line read")
        assert daemon.stop(timeout=60) == 0
    finally:
        daemon.kill()
    assert lake_count(tmp_path / "data") == total


def test_a_sender_that_never_stops_is_cut_at_the_drain_deadline(tmp_path: Path) -> None:
    write_conf(tmp_path / "conf.d", paused_config(drain_timeout_seconds=1))
    daemon = VigilProcess(tmp_path / "conf.d", tmp_path / "data").start()
    stop = threading.Event()
    try:
        sock = socket.create_connection(daemon.source_address("syslog_tcp"))

        def flood() -> None:
            try:
                while not stop.is_set():
                    sock.sendall(LINE * 1000)
            except OSError:
                pass

        threading.Thread(target=flood, daemon=True).start()
        wait_for(lambda: daemon.readyz()[1]["sources"]["syslog_tcp"]["paused_connections"],
                 message="the sender paused")
        started = time.monotonic()
        assert daemon.stop(timeout=40) == 0
        assert time.monotonic() - started < 1 + 10  # the deadline, plus the rest of the stop
        assert "drain deadline reached: connections closed with data unread" in daemon.log()
    finally:
        stop.set()
        daemon.kill()
        sock.close()
