"""The foundation end to end: a real daemon subprocess, real clients over loopback, DuckDB reading
the lake it wrote."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from support.daemon import VigilProcess, basic_config, lake_rows, wait_for, write_conf


def start(tmp_path: Path, **source: object) -> VigilProcess:
    write_conf(tmp_path / "conf.d", basic_config(flush_seconds=0.2, **source))
    return VigilProcess(tmp_path / "conf.d", tmp_path / "data").start()


def rows(daemon: VigilProcess, query: str = "SELECT * FROM lake ORDER BY message") -> list[dict]:
    return lake_rows(daemon.data_dir, query)


def count(daemon: VigilProcess) -> int:
    found = rows(daemon, "SELECT count(*) AS n FROM lake")
    return int(found[0]["n"]) if found else 0


def send_lines(address: tuple[str, int], lines: list[bytes]) -> None:
    with socket.create_connection(address) as sock:
        sock.sendall(b"".join(line + b"\n" for line in lines))


@pytest.fixture
def daemon(tmp_path: Path):
    process = start(tmp_path)
    yield process
    process.kill()


@pytest.mark.skipif(shutil.which("logger") is None, reason="util-linux `logger` is not installed")
def test_logger_message_becomes_a_lake_row_under_its_tenant(daemon: VigilProcess) -> None:
    host, port = daemon.source_address("syslog_tcp")
    subprocess.run(["logger", "-n", host, "-P", str(port), "-T", "-t", "vigiltest",
                    "hello from logger"], check=True, timeout=10)
    wait_for(lambda: count(daemon) == 1, message="the logger message in the lake")
    (row,) = rows(daemon)
    assert row["tenant"] == "demo"
    assert row["message"] == "hello from logger"
    assert row["log.syslog.appname"] == "vigiltest"
    assert row["log.syslog.severity.code"] == 5  # logger's default user.notice
    files = list((daemon.data_dir / "lake").rglob("*.parquet"))
    assert len(files) == 1
    assert re.search(r"lake/syslog/tenant=demo/date=\d{4}-\d{2}-\d{2}/hour=\d{2}/[^/]+\.parquet$",
                     files[0].as_posix())


def test_metrics_count_exactly_the_events_sent(daemon: VigilProcess, tmp_path: Path) -> None:
    address = daemon.source_address("syslog_tcp")
    lines = [f"<13>Nov 22 10:00:{i % 60:02d} host app[{i}]: event {i}".encode() for i in range(300)]
    send_lines(address, lines[:100])
    send_lines(address, lines[100:])
    wait_for(lambda: count(daemon) == 300, message="300 rows")
    source = {"component_id": "syslog_tcp", "tenant": "demo"}
    assert daemon.metric("vigil_component_received_events_total", **source) == 300
    assert daemon.metric("vigil_component_sent_events_total", component_id="lake",
                         tenant="demo") == 300
    assert daemon.metric("vigil_lake_rows_written_total", tenant="demo") == 300
    assert daemon.metric("vigil_component_received_bytes_total", component_id="syslog_tcp") == \
        sum(len(line) + 1 for line in lines)
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt install prometheus); counters checked")
    exposition = daemon.metrics().encode()
    check = subprocess.run([promtool, "check", "metrics"], input=exposition,
                           capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()


def test_bad_input_is_kept_and_marked(daemon: VigilProcess) -> None:
    """Not syslog, invalid UTF-8, an overlong line: all kept, marked, the daemon unharmed."""
    address = daemon.source_address("syslog_tcp")
    send_lines(address, [b"not syslog at all \xff\xfe", b"<13>Nov 22 10:00:00 h a: " + b"x" * 70000,
                         b"<13>Nov 22 10:00:00 h a: fine"])
    wait_for(lambda: count(daemon) == 3, message="three rows")
    found = {r["message"][:10]: r for r in rows(daemon)}
    assert found["not syslog"]["vigil.parse_error"] == "no syslog PRI or timestamp"
    assert "\ufffd" in found["not syslog"]["message"]
    long = found["x" * 10]
    assert long["vigil.truncated"] is True and len(long["message"]) < 65536
    assert found["fine"]["vigil.parse_error"] is None


class Sender(threading.Thread):
    """Sends numbered lines over one connection until stopped or `limit` is reached (raise it
    with `allow`); records what it sent."""

    def __init__(self, address: tuple[str, int], name: str, limit: float = float("inf")) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(address)
        self.name = name
        self.sent = 0
        self.limit = limit
        self.more = threading.Condition()
        self.halt = threading.Event()
        self.error: Exception | None = None

    def allow(self, n: int) -> None:
        with self.more:
            self.limit = self.sent + n
            self.more.notify()

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                with self.more:
                    while self.sent >= self.limit and not self.halt.is_set():
                        self.more.wait()
                chunk = b"".join(f"<14>Nov 22 10:00:00 h load: {self.name} {self.sent + i}\n"
                                 .encode() for i in range(50))
                self.sock.sendall(chunk)
                self.sent += 50
        except OSError as exc:
            self.error = exc

    def finish(self) -> None:
        with self.more:
            self.halt.set()
            self.more.notify()
        self.join(10)
        self.sock.close()


def sequence_numbers(daemon: VigilProcess, name: str) -> list[int]:
    found = rows(daemon, f"SELECT message FROM lake WHERE message LIKE '{name} %'")
    return sorted(int(r["message"].split()[1]) for r in found)


def test_sighup_with_broken_config_keeps_serving(daemon: VigilProcess) -> None:
    config = daemon.conf_dir / "10-test.yaml"
    good = config.read_text()
    (daemon.conf_dir / "20-broken.yaml").write_text("sources:\n  extra:\n    type: syslog_tpc\n")
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: daemon.metric("vigil_config_reloads_total", result="failure") == 1,
             message="the rejected reload")
    assert ("20-broken.yaml:3:11: sources.extra.type: unknown source type 'syslog_tpc'"
            in daemon.log())
    assert config.read_text() == good
    send_lines(daemon.source_address("syslog_tcp"), [b"<13>Nov 22 10:00:00 h a: still here"])
    wait_for(lambda: count(daemon) == 1, message="an event after the rejected reload")
    assert daemon.readyz()[0] == 200


def test_sighup_applies_a_valid_change_without_losing_events(daemon: VigilProcess) -> None:
    address = daemon.source_address("syslog_tcp")
    sender = Sender(address, "reload", limit=20000)
    sender.start()
    wait_for(lambda: sender.sent > 1000, message="load before the reload")
    config = basic_config(flush_seconds=0.2)
    config["sources"]["second"] = {"type": "syslog_tcp", "address": "127.0.0.1:0",
                                   "tenant": "demo"}
    config["sinks"]["lake"]["flush"]["max_rows"] = 5000  # a changed sink is swapped too
    write_conf(daemon.conf_dir, config)
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: daemon.metric("vigil_config_reloads_total", result="success") == 1,
             message="the applied reload")
    send_lines(daemon.source_address("second"), [b"<13>Nov 22 10:00:00 h a: via second"])
    sender.allow(5000)
    wait_for(lambda: sender.sent == sender.limit, message="load after the reload")
    sender.finish()
    assert sender.error is None, f"the unchanged listener dropped its connection: {sender.error}"
    wait_for(lambda: daemon.metric("vigil_component_received_events_total",
                                   component_id="syslog_tcp") == sender.sent,
             message="every line sent read by the daemon")
    assert daemon.stop() == 0
    assert sequence_numbers(daemon, "reload") == list(range(sender.sent))
    assert rows(daemon, "SELECT count(*) AS n FROM lake WHERE message = 'via second'")[0]["n"] == 1


def test_sigterm_under_load_commits_everything_read(tmp_path: Path) -> None:
    write_conf(tmp_path / "conf.d", basic_config(flush_seconds=30))  # nothing flushed by time
    daemon = VigilProcess(tmp_path / "conf.d", tmp_path / "data").start()
    try:
        address = daemon.source_address("syslog_tcp")
        senders = [Sender(address, f"conn{i}", limit=30000) for i in range(3)]
        for sender in senders:
            sender.start()
        wait_for(lambda: daemon.metric("vigil_component_received_events_total") > 5000,
                 message="load")
        daemon.signal(signal.SIGTERM)
        code = daemon.proc.wait(30)
        for sender in senders:
            sender.finish()
    finally:
        daemon.kill()
    assert code == 0, daemon.log()
    stopped = next(line for line in daemon.log_lines if "vigil stopped" in line)
    received = int(re.search(r"received_events=(\d+)", stopped).group(1))
    assert received > 5000
    assert count(daemon) == received
    for sender in senders:
        # TCP is ordered: whatever the daemon read of a connection is a gap-free prefix.
        numbers = sequence_numbers(daemon, sender.name)
        assert numbers == list(range(len(numbers)))


def test_garbage_on_tcp_is_kept_and_logged_once_per_peer_and_cause(daemon: VigilProcess
                                                                   ) -> None:
    """Unparsable lines are kept (marked) and counted; the log says so once per sender and
    cause in a minute, without their content (issue 18: garbage used to log nothing)."""
    send_lines(daemon.source_address("syslog_tcp"),
               [b"garbage line %d with secret-ish text" % i for i in range(100)])
    wait_for(lambda: count(daemon) == 100, message="the 100 garbage lines in the lake")
    assert daemon.metric("vigil_component_errors_total", error_type="parse") == 100
    assert daemon.stop() == 0
    lines = [line for line in daemon.log().splitlines() if "input kept unparsed" in line]
    assert len(lines) == 1, lines
    assert "peer=127.0.0.1" in lines[0] and "no syslog PRI or timestamp" in lines[0]
    assert "secret-ish" not in daemon.log()
