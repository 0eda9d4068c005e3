"""The daemon's start-up mistakes (a port in use, a journal another daemon holds, nothing to
collect) and a broken reload end in one line naming the component and what to do."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

from support.daemon import REPO, VigilProcess, basic_config, wait_for, write_conf

EX_UNAVAILABLE, EX_TEMPFAIL, EX_CONFIG = 69, 75, 78


def run_daemon(conf: Path, data: Path) -> subprocess.CompletedProcess[str]:
    """`vigil run` that is expected to exit at start-up."""
    return subprocess.run([sys.executable, "-m", "collector.cli", "run", "-c", str(conf),
                           "--data-dir", str(data)], capture_output=True, text=True, cwd=REPO,
                          timeout=60)


def held_port() -> socket.socket:
    """A listening TCP socket on an OS-chosen loopback port, as another program would hold."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_a_source_port_in_use_names_the_source_and_address(tmp_path: Path) -> None:
    with held_port() as sock:
        port = sock.getsockname()[1]
        config = basic_config()
        config["sources"]["syslog_tcp"]["address"] = f"127.0.0.1:{port}"
        write_conf(tmp_path / "conf.d", config)
        result = run_daemon(tmp_path / "conf.d", tmp_path / "data")
    assert "Traceback" not in result.stderr
    assert result.returncode == EX_UNAVAILABLE
    assert result.stderr.splitlines()[-1] == (
        f"vigil: source syslog_tcp: cannot listen on 127.0.0.1:{port}: address already in use; "
        f"stop the program that holds it (ss -ltnup 'sport = :{port}') or change "
        "sources.syslog_tcp.address")


def test_the_control_port_in_use_names_the_control_listener(tmp_path: Path) -> None:
    with held_port() as sock:
        port = sock.getsockname()[1]
        config = basic_config()
        config["vigil"]["control"]["address"] = f"127.0.0.1:{port}"
        write_conf(tmp_path / "conf.d", config)
        result = run_daemon(tmp_path / "conf.d", tmp_path / "data")
    assert "Traceback" not in result.stderr
    assert result.returncode == EX_UNAVAILABLE
    assert result.stderr.splitlines()[-1] == (
        f"vigil: control listener: cannot listen on 127.0.0.1:{port}: address already in use; "
        f"stop the program that holds it (ss -ltnup 'sport = :{port}') or change "
        "vigil.control.address")


def test_a_second_daemon_on_the_same_data_dir_is_told_so(tmp_path: Path) -> None:
    write_conf(tmp_path / "conf.d", basic_config())
    first = VigilProcess(tmp_path / "conf.d", tmp_path / "data").start()
    try:
        result = run_daemon(tmp_path / "conf.d", tmp_path / "data")
    finally:
        assert first.stop() == 0
    assert "Traceback" not in result.stderr
    assert result.returncode == EX_TEMPFAIL
    assert result.stderr.splitlines()[-1] == (
        f"vigil: journal {tmp_path / 'data' / 'journal'}: in use by another process (a running "
        "vigil?); stop it first, or give this one another --data-dir")


def test_a_daemon_with_nothing_to_collect_does_not_start(tmp_path: Path) -> None:
    config = basic_config()
    del config["sources"]
    write_conf(tmp_path / "conf.d", config)
    result = run_daemon(tmp_path / "conf.d", tmp_path / "data")
    assert result.returncode == EX_CONFIG
    assert "vigil started" not in result.stderr
    assert result.stderr.splitlines()[-2:] == [
        f"{tmp_path / 'conf.d'}: no sources configured: this daemon would collect nothing; "
        "declare sources, or set vigil.allow_empty: true on a host that collects nothing on "
        "purpose",
        f"1 error(s) in {tmp_path / 'conf.d'}"]


def test_a_broken_reload_is_one_log_line_with_the_count(tmp_path: Path) -> None:
    conf = tmp_path / "conf.d"
    config = basic_config()
    sources = write_conf(conf, {"sources": config.pop("sources")}, "20-sources.yaml")
    write_conf(conf, config)
    cases = {f"case{i}": {"source": "syslog_tcp", "input": f"<13>Nov 22 10:00:00 h a: {i}",
                          "expect": {"fields": {"message": str(i)}}} for i in range(5)}
    write_conf(conf, {"tests": cases}, "30-tests.yaml")
    daemon = VigilProcess(conf, tmp_path / "data").start()
    try:
        text = sources.read_text()
        assert "  syslog_tcp:\n" in text
        sources.write_text(text.replace("  syslog_tcp:\n", "  syslog_tcp\n", 1))
        line_no = text.splitlines().index("  syslog_tcp:") + 1
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: daemon.metric("vigil_config_reloads_total", result="failure") == 1,
                 message="the rejected reload")
        rejected = [line for line in daemon.log_lines if "reload rejected" in line]
        assert len(rejected) == 1, daemon.log()
        # The five test cases naming syslog_tcp, and "no sources configured".
        assert "errors=1 " in rejected[0] and "following_errors=6 " in rejected[0]
        assert (f"first=\"{sources}:{line_no}:3: YAML syntax error: could not find expected "
                "':' after 'syslog_tcp'\"") in rejected[0]
        assert daemon.readyz()[0] == 200
    finally:
        assert daemon.stop() == 0
