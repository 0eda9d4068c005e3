"""Durability of the real daemon: a full disk under the journal gives backpressure and a clear,
counted error, loses nothing, and heals when space returns."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from pathlib import Path

from support.daemon import REPO, VigilProcess, basic_config, lake_count, wait_for, write_conf
from support.tmpfs import small_tmpfs


def test_disk_full_gives_backpressure_and_recovers(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path, "4m") as disk:
        config = basic_config(flush_seconds=30)  # nothing acknowledged: the journal keeps all
        config["vigil"]["queue"] = {"path": str(disk / "journal"), "segment_bytes": 65536,
                                    "probe_interval_ms": 100}
        write_conf(tmp_path / "conf.d", config)
        daemon = VigilProcess(tmp_path / "conf.d", tmp_path / "data").start()
        try:
            ballast = disk / "ballast"
            ballast.write_bytes(b"\0" * (4 * 1024 * 1024 - 300 * 1024))  # leave ~300 KiB
            lines = [f"<13>Nov 23 10:00:00 h app: line {i} ".encode() + b"x" * 150 + b"\n"
                     for i in range(8000)]  # ~3 MB in the journal: cannot fit in 300 KiB
            sent = threading.Event()

            def send() -> None:
                with socket.create_connection(daemon.source_address("syslog_tcp")) as sock:
                    sock.sendall(b"".join(lines))  # blocks while the daemon stops reading
                sent.set()

            sender = threading.Thread(target=send, daemon=True)
            sender.start()
            wait_for(lambda: daemon.metric("vigil_journal_write_errors_total") >= 1,
                     timeout=20, message="the journal to hit the full disk")
            status, ready = daemon.readyz()
            assert ready["queue"]["failing"] and ready["queue"]["backpressure"] is True
            assert daemon.metric("vigil_journal_failing") == 1
            source = ready["sources"]["syslog_tcp"]
            assert source["paused_connections"] == 1 and source["held_events"] > 0
            assert "queue refused events; holding them and pausing" in daemon.log()
            assert daemon.proc is not None and daemon.proc.poll() is None
            os.unlink(ballast)  # space returns
            wait_for(sent.is_set, timeout=30, message="the sender to get everything through")
            wait_for(lambda: daemon.metric("vigil_journal_failing") == 0, timeout=10,
                     message="the journal to recover by itself")
            wait_for(lambda: daemon.metric("vigil_component_received_events_total") == 8000,
                     timeout=20, message="all lines received")
            assert daemon.stop() == 0
        finally:
            daemon.kill()
        assert lake_count(tmp_path / "data") == 8000


def test_a_flooding_tenant_is_held_back_alone(tmp_path: Path) -> None:
    """Per-tenant bounds: the flooding tenant's connection pauses at its share of the journal
    while the quiet tenant's keeps flowing; nothing is lost either way. The flood is SSH
    failures, which feed the brute-force correlation: their offsets wait for the detection
    state save (an hour here), so the flood stays over its share; the quiet tenant's lines
    change no state and are acknowledged as soon as the lake commits them."""
    config = basic_config(tenant="flood", flush_seconds=0.2)
    config["tenants"]["quiet"] = {"name": "Quiet"}
    config["sources"]["quiet_tcp"] = {"type": "syslog_tcp", "address": "127.0.0.1:0",
                                      "tenant": "quiet"}
    config["vigil"]["queue"] = {"max_events": 100_000, "partition_max_events": 500}
    config["vigil"]["detection"] = {"state_interval": "1h"}
    write_conf(tmp_path / "conf.d", config)
    shutil.copy(REPO / "conf.d" / "30-linux-auth.yaml", tmp_path / "conf.d")
    shutil.copytree(REPO / "conf.d" / "enrich", tmp_path / "conf.d" / "enrich")
    daemon = VigilProcess(tmp_path / "conf.d", tmp_path / "data").start()
    try:
        flood = socket.create_connection(daemon.source_address("syslog_tcp"))
        flood.sendall(b"".join(f"<38>Nov 23 10:00:00 web1 sshd[7]: Failed password for root "
                               f"from 10.9.{i // 250}.{i % 250} port 22 ssh2\n".encode()
                               for i in range(5000)))

        def paused(source: str) -> int:
            return daemon.readyz()[1]["sources"][source]["paused_connections"]

        wait_for(lambda: paused("syslog_tcp") == 1, message="the flooding connection paused")
        with socket.create_connection(daemon.source_address("quiet_tcp")) as quiet:
            quiet.sendall(b"".join(f"<13>Nov 23 10:00:00 h q: quiet {i}\n".encode()
                                   for i in range(300)))
            wait_for(lambda: daemon.metric("vigil_component_received_events_total",
                                           component_id="quiet_tcp") == 300,
                     message="the quiet tenant's events, read while the flood waits")
            assert paused("quiet_tcp") == 0 and paused("syslog_tcp") == 1
            partitions = daemon.readyz()[1]["queue"]["partitions"]
            assert partitions["flood"]["backpressure"] is True
            assert partitions["quiet"]["backpressure"] is False
        assert daemon.stop() == 0  # the stop reads what the flood had sent, then closes
        flood.close()
    finally:
        daemon.kill()
    assert lake_count(tmp_path / "data") == 5000 + 300
