"""Real logs through the shipped conf.d: loghub's OpenSSH_2k.log and Apache_2k.log, each line
compared field by field with loghub's structured CSV (its templates say where the user, the
address and the port are). Skipped when ../shared/data is absent."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pipelines.loghub import OPENSSH_FIELDS, openssh_expectations, structured_lines
from support.daemon import REPO, SHARED_DATA

from collector.config import load_config
from collector.offline import OfflineRun, split_dead_letters
from core.events import Event

CONF = REPO / "conf.d"
LOGHUB = SHARED_DATA / "loghub"
# The OpenSSH sample spans December; read in early January its year is the previous one.
RECEIVED = datetime(2024, 1, 5, tzinfo=UTC)


def run_file(path: Path) -> tuple[list[bytes], list[Event], list[Event]]:
    """The file's lines as the syslog_tcp source receives them, through every pipeline."""
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared loghub data is not checked out)")
    lines = path.read_bytes().splitlines()
    offline = OfflineRun(load_config(CONF), CONF, clock=lambda: RECEIVED)
    try:
        events, dead = split_dead_letters(offline.process_lines("syslog_tcp", lines))
    finally:
        offline.close()
    return lines, events, dead


@pytest.fixture(scope="module")
def openssh() -> tuple[list[bytes], list[Event], list[Event]]:
    return run_file(LOGHUB / "OpenSSH" / "OpenSSH_2k.log")


def test_openssh_lines_parse_into_linux_auth(openssh: tuple[list[bytes], list[Event],
                                                            list[Event]]) -> None:
    lines, events, dead = openssh
    assert not dead, [(d["step"], d["error"], d["event"].get("message")) for d in dead[:5]]
    parsed = [e for e in events if e["vigil.dataset"] == "linux.auth"]
    assert len(parsed) >= 0.99 * len(lines)
    # Every line, not just 99 %: each also has an action (none fell to the catch-all).
    assert len(parsed) == len(lines) == 2000
    unrecognised = [e["message"] for e in parsed if "event.action" not in e]
    assert not unrecognised, unrecognised[:5]
    assert all(e["host.hostname"] == "LabSZ" and e["process.name"] == "sshd" for e in parsed)


def test_openssh_values_equal_loghub_structured_csv(
        openssh: tuple[list[bytes], list[Event], list[Event]]) -> None:
    """For each line, every user / address / port / count its template holds is extracted
    exactly, and no line gets one its template does not hold."""
    _, events, _ = openssh
    rows = list(structured_lines(LOGHUB / "OpenSSH" / "OpenSSH_2k.log_structured.csv"))
    assert len(rows) == len(events)
    mismatches: list[str] = []
    compared: Counter[str] = Counter()
    checked = ("user.name", "source.ip", "source.port", "source.domain", "event.count")
    for row, event in zip(rows, events, strict=True):
        assert event["message"].strip() == row.content.strip(), row.line_id
        expected = openssh_expectations(row)
        for name in checked:
            got: Any = event.get(name)
            if name in expected:
                compared[name] += 1
                if got != expected[name]:
                    mismatches.append(f"line {row.line_id} ({row.event_id}) {name}: expected "
                                      f"{expected[name]!r}, got {got!r}")
            elif got is not None:
                mismatches.append(f"line {row.line_id} ({row.event_id}) {name}: expected "
                                  f"absent, got {got!r}")
    assert not mismatches, "\n".join(mismatches)
    # What the comparison covered (2000 lines; see tests/pipelines/loghub.py for the rules).
    assert compared == {"source.ip": 1732, "user.name": 1142, "source.port": 525,
                        "source.domain": 92, "event.count": 19}
    assert {row.event_id for row in rows} <= set(OPENSSH_FIELDS)


def test_openssh_login_outcomes_follow_the_verb(
        openssh: tuple[list[bytes], list[Event], list[Event]]) -> None:
    _, events, _ = openssh
    logins = [e for e in events if e.get("event.action") == "ssh_login"]
    assert logins
    for event in logins:
        verb = event["system.auth.ssh.event"]
        assert event["event.outcome"] == {"Accepted": "success", "Failed": "failure"}[verb]


def test_apache_error_log_parses_with_loghub_levels() -> None:
    """Acceptance for Apache_2k.log (bare error-log lines, no syslog header): every line in
    apache.error without a dead letter, with log.level, the time and the client address of
    the structured CSV, and `message` the text after the `[client ...]` prefix."""
    base = LOGHUB / "Apache"
    lines, events, dead = run_file(base / "Apache_2k.log")
    assert not dead
    assert len(events) == len(lines) == 2000
    with (base / "Apache_2k.log_structured.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    problems: list[str] = []
    clients = 0
    for row, event in zip(rows, events, strict=True):
        line = row["LineId"]
        if event["vigil.dataset"] != "apache.error" or "vigil.parse_error" in event:
            problems.append(f"line {line}: {event['vigil.dataset']} "
                            f"{event.get('vigil.parse_error')}")
        if event.get("log.level") != row["Level"]:
            problems.append(f"line {line}: level {event.get('log.level')!r} != {row['Level']!r}")
        when = datetime.strptime(row["Time"], "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC)
        if event["@timestamp"] != when:
            problems.append(f"line {line}: time {event['@timestamp']} != {when}")
        content = row["Content"]
        if content.startswith("[client "):
            client, _, content = content[len("[client "):].partition("] ")
            clients += 1
            if event.get("source.ip") != client:
                problems.append(f"line {line}: client {event.get('source.ip')!r} != {client!r}")
        if event["message"].strip() != content.strip():
            problems.append(f"line {line}: message {event['message']!r} != {content!r}")
    assert not problems, "\n".join(problems[:20])
    assert Counter(row["Level"] for row in rows) == {"notice": 1405, "error": 595}
    assert clients > 0
