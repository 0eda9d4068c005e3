"""A reload that cannot bind a new listener changes nothing: every running source keeps
serving on its old address, the failure is counted, and /readyz tells the truth. /readyz is
503 whenever a configured source is not running."""

from __future__ import annotations

import hashlib
import signal
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from support.daemon import VigilProcess, basic_config, wait_for, write_conf

from collector.runtime import Daemon

TOKEN = "reload-bind-token"


def config(http_address: str = "127.0.0.1:0", tcp_address: str = "127.0.0.1:0"
           ) -> dict[str, Any]:
    sections = basic_config(flush_seconds=0.2)
    sections["sources"]["syslog_tcp"]["address"] = tcp_address
    sections["sources"]["http"] = {
        "type": "http", "address": http_address,
        "tokens": {"demo": {"tenant": "demo",
                            "sha256": hashlib.sha256(TOKEN.encode()).hexdigest()}}}
    return sections


def post(address: tuple[str, int], body: bytes) -> int:
    request = urllib.request.Request(
        f"http://{address[0]}:{address[1]}/v1/logs", data=body, method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_reload_onto_a_taken_port_keeps_the_old_listeners(tmp_path: Path) -> None:
    write_conf(tmp_path / "conf.d", config())
    daemon = VigilProcess(tmp_path / "conf.d", tmp_path / "data").start()
    taken = socket.socket()
    try:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        http_before = daemon.source_address("http")
        tcp_before = daemon.source_address("syslog_tcp")
        # Both sources change; the TCP one binds fine, the HTTP one cannot.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = f"127.0.0.1:{probe.getsockname()[1]}"
        write_conf(tmp_path / "conf.d", config(http_address=busy, tcp_address=free))
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: daemon.metric("vigil_config_reloads_total", result="failure") == 1,
                 timeout=20, message="the failed reload")
        assert "reload failed while applying" in daemon.log()
        assert post(http_before, b'{"message": "after the failed reload"}') == 200
        with socket.create_connection(tcp_before) as sock:
            sock.sendall(b"<13>Nov 22 10:00:00 h a: tcp after the failed reload\n")
        wait_for(lambda: daemon.metric("vigil_component_received_events_total",
                                       component_id="syslog_tcp") == 1,
                 message="the old TCP listener still serving")
        status, ready = daemon.readyz()
        assert status == 200
        assert daemon.source_address("http") == http_before
        assert daemon.source_address("syslog_tcp") == tcp_before
        assert all(s["running"] for s in ready["sources"].values())
        # The port frees up: the next reload applies.
        taken.close()
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: daemon.metric("vigil_config_reloads_total", result="success") == 1,
                 timeout=20, message="the reload once the port is free")
        assert daemon.source_address("http") == ("127.0.0.1", int(busy.rpartition(":")[2]))
        assert post(daemon.source_address("http"), b'{"message": "on the new port"}') == 200
        assert daemon.stop() == 0
    finally:
        taken.close()
        daemon.kill()


async def test_readyz_is_503_when_a_configured_source_is_not_running(tmp_path: Path) -> None:
    write_conf(tmp_path / "conf.d", config())
    daemon = Daemon(tmp_path / "conf.d", data_dir=tmp_path / "data")
    await daemon.start()
    try:
        ready, detail = daemon.readiness()
        assert ready and detail["sources"]["http"]["running"] is True
        await daemon.sources["http"].stop()
        ready, detail = daemon.readiness()
        assert not ready
        assert detail["sources"]["http"]["running"] is False
        assert detail["not_running"] == ["http"]
    finally:
        daemon.request_stop()
        await daemon.shutdown()
