"""The benchmark workload: reproducible, within its size bounds, in its mix, parseable by Vigil's
syslog parser, and the JSON variant carries the same events."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime

from support.daemon import REPO

from benchmarks import workload
from parsers.syslog import parse_syslog

N = 5000


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    first = workload.syslog_lines(N, seed=7)
    assert workload.syslog_lines(N, seed=7) == first
    assert workload.syslog_lines(N, seed=8) != first
    assert workload.json_lines(300, seed=7) == workload.json_lines(300, seed=7)


def test_cli_output_is_byte_identical_across_processes() -> None:
    """A new process has a new hash seed, so this catches any dependence on set/dict order."""
    def run(fmt: str) -> bytes:
        return subprocess.run(
            [sys.executable, "-m", "benchmarks.workload", "--events", "2000", "--format", fmt,
             "--seed", "3"], cwd=REPO, capture_output=True, check=True, timeout=60).stdout

    syslog = run("syslog")
    assert hashlib.sha256(syslog).digest() == hashlib.sha256(run("syslog")).digest()
    assert syslog == workload.newline_framed(workload.syslog_lines(2000, seed=3))
    assert run("json") == workload.newline_framed(workload.json_lines(2000, seed=3))


def test_lines_are_within_bounds_and_follow_the_mix() -> None:
    events = workload.events(N, seed=1)
    kinds = Counter(e.kind for e in events)
    for kind, share in workload.MIX.items():
        assert abs(kinds[kind] / N - share) < 0.03, (kind, kinds[kind])
    for event in events:
        low, high = workload.line_bounds(event.kind)
        assert low <= len(workload.render_syslog(event)) <= high, event
    headers = Counter(e.header for e in events)
    assert headers["rfc3164"] > N / 2
    assert 0 < headers["rfc5424"] < N / 5
    assert headers["fortios"] == kinds["fortigate"]


def test_content_is_varied_and_realistic() -> None:
    events = workload.events(N, seed=1)
    sshd = [e.message for e in events if e.kind == "sshd"]
    assert any(m.startswith("Failed password for invalid user ") for m in sshd)
    assert any(m.startswith("Accepted password for ") for m in sshd)
    assert any(m.startswith("Accepted publickey for ") for m in sshd)
    assert len({m.split(" from ")[1].split()[0] for m in sshd if " from " in m}) > 200
    assert len({e.hostname for e in events}) > 30
    forti = next(e.message for e in events if e.kind == "fortigate")
    keys = [pair.split("=", 1)[0] for pair in forti.split()]
    for key in ("date", "time", "devname", "devid", "logid", "type", "subtype", "level", "vd",
                "srcip", "srcport", "srcintf", "dstip", "dstport", "dstintf", "policyid",
                "sessionid", "proto", "action", "service", "sentbyte", "rcvdbyte"):
        assert key in keys, key
    assert 'type="traffic" subtype="forward"' in forti
    nginx = next(e for e in events if e.kind == "nginx")
    assert nginx.appname == "nginx" and ' HTTP/1.1" ' in nginx.message


def test_vigil_parses_every_line_into_the_generated_fields() -> None:
    received = datetime(2024, 6, 1, tzinfo=UTC)
    for event, line in zip(workload.events(N, seed=2), workload.syslog_lines(N, seed=2),
                           strict=True):
        parsed = parse_syslog(line, received_at=received)
        assert "vigil.parse_error" not in parsed, line
        assert parsed["message"] == event.message
        assert parsed["log.syslog.priority"] == event.priority
        if event.header != "fortios":
            assert parsed["host.hostname"] == event.hostname
            assert parsed["log.syslog.appname"] == event.appname
            assert parsed.get("process.pid") == event.pid
            assert parsed["@timestamp"] == event.timestamp.replace(
                microsecond=event.timestamp.microsecond if event.header == "rfc5424" else 0)


def test_json_lines_carry_the_same_events() -> None:
    for event, raw in zip(workload.events(500, seed=4), workload.json_lines(500, seed=4),
                          strict=True):
        record = json.loads(raw)
        assert record["message"] == event.message
        assert record["host.hostname"] == event.hostname
        assert datetime.fromisoformat(record["@timestamp"]) == event.timestamp
        assert record.get("log.syslog.appname") == event.appname
        assert record.get("process.pid") == event.pid


def test_octet_counted_framing_round_trips() -> None:
    lines = workload.syslog_lines(50, seed=5)
    stream = workload.octet_counted(lines)
    out, rest = [], stream
    while rest:
        length, _, rest = rest.partition(b" ")
        out.append(rest[:int(length)])
        rest = rest[int(length):]
    assert out == lines
