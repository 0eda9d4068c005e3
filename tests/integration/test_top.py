"""`vigil top` against the real daemon: per-component and per-tenant totals and rates read
from its /metrics, as a snapshot (--once) in JSON and as rich text."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from support.daemon import VigilProcess, basic_config, lake_count, wait_for, write_conf


def _top(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "collector.cli", "top", "-c", str(conf),
                           "--once", "--interval", "0.2", *args],
                          capture_output=True, text=True, timeout=60)


def test_top_shows_sources_tenants_and_queue(tmp_path: Path) -> None:
    conf = tmp_path / "conf.d"
    write_conf(conf, basic_config(flush_seconds=0.2))
    daemon = VigilProcess(conf, tmp_path / "data").start()
    try:
        with socket.create_connection(daemon.source_address("syslog_tcp")) as sock:
            sock.sendall(b"".join(b"<13>Dec  6 06:00:00 h app: line %d\n" % i
                                  for i in range(50)))
        wait_for(lambda: lake_count(daemon.data_dir) == 50, message="50 rows in the lake")
        url = f"http://{daemon.control}/metrics"
        result = _top(conf, "--url", url, "--json")
        assert result.returncode == 0, result.stderr
        view = json.loads(result.stdout)
        source = next(c for c in view["components"]
                      if c["kind"] == "source" and c["id"] == "syslog_tcp")
        assert source["received"] == 50
        assert {"tenant": "demo", "received": 50}.items() <= next(
            t for t in view["tenants"] if t["tenant"] == "demo").items()
        assert set(view["queue"]) == {"events", "capacity", "backpressure"}
        assert view["queue"]["capacity"] > 0

        text = _top(conf, "--url", url)
        assert text.returncode == 0, text.stderr
        assert "syslog_tcp" in text.stdout and "demo" in text.stdout
        assert "queue" in text.stdout
    finally:
        assert daemon.stop() == 0


def test_top_without_a_daemon_says_so_in_one_line(tmp_path: Path) -> None:
    conf = tmp_path / "conf.d"
    write_conf(conf, basic_config())
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = _top(conf, "--url", f"http://127.0.0.1:{port}/metrics")
    assert result.returncode == 69
    assert result.stderr.startswith(f"vigil top: cannot read http://127.0.0.1:{port}/metrics")
    assert len(result.stderr.strip().splitlines()) == 1
