"""Real logs: loghub's OpenSSH_2k.log through the shipped Linux auth pipeline and the built-in
brute-force and spraying rules. The alerts and their group keys must equal a count computed
here in plain Python from the raw lines (regex, sliding windows, suppression), independently
of the pipeline and the rule engine."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.daemon import REPO, SHARED_DATA

from collector.config import load_config
from collector.detection.stage import BUILTIN_RULES, DetectionStage
from collector.offline import OfflineRun
from core.events import ALERTS
from rules.loader import load_rules

LOG = SHARED_DATA / "loghub" / "OpenSSH" / "OpenSSH_2k.log"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
MONTHS = {m: i for i, m in enumerate(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)}
FAILED = re.compile(r"^(\w{3}) +(\d+) (\d\d):(\d\d):(\d\d) \S+ sshd\[\d+\]: (?:message repeated "
                    r"(\d+) times: \[ )?Failed \S+ for (?:invalid user )?(.+?) from (\S+) port ")
SUPPRESSION = timedelta(hours=1)

pytestmark = pytest.mark.skipif(not LOG.exists(),
                                reason=f"{LOG} is absent (../shared/data is not beside the repo)")


def failures() -> list[tuple[datetime, str, str, int]]:
    """(time, user, source ip, failures) of every failed login line, in file order; a line
    syslogd folded (`message repeated N times`) stands for N failures."""
    out = []
    for line in LOG.read_text().splitlines():
        found = FAILED.match(line)
        if found:
            month, day, hour, minute, second, repeated, user, ip = found.groups()
            when = datetime(2025, MONTHS[month], int(day), int(hour), int(minute), int(second),
                            tzinfo=UTC)
            out.append((when, user, ip, int(repeated or 1)))
    return out


def windows_fire(events: list[tuple[datetime, str, str, int]], span: timedelta, threshold: int,
                 distinct_users: bool) -> list[tuple[str, datetime]]:
    """Per source ip, a sliding window of `span` ending at each event; it fires when it holds
    `threshold` failures (or distinct users) and starts again empty: (ip, first event time)."""
    held: dict[str, list[tuple[datetime, str, int]]] = defaultdict(list)
    fired = []
    for when, user, ip, weight in events:
        window = [(t, u, w) for t, u, w in held[ip] if t >= when - span] + [(when, user, weight)]
        measured = len({u for _, u, _ in window}) if distinct_users else \
            sum(w for _, _, w in window)
        if measured >= threshold:
            fired.append((ip, window[0][0]))
            window = []
        held[ip] = window
    return fired


def fold(fired: list[tuple[str, datetime]]) -> list[tuple[str, datetime, int]]:
    """Fires of one key within an hour of its alert's first fire are one alert: (ip, first, n)."""
    alerts: list[list] = []
    current: dict[str, list] = {}
    for ip, first in fired:
        alert = current.get(ip)
        if alert is not None and first < alert[1] + SUPPRESSION:
            alert[2] += 1
        else:
            alert = current[ip] = [ip, first, 1]
            alerts.append(alert)
    return sorted((a[0], a[1], a[2]) for a in alerts)


def test_brute_force_and_spraying_alerts_equal_an_independent_count(tmp_path: Path) -> None:
    events = failures()
    assert len(events) == 524  # 522 single failures + 2 "message repeated" lines
    assert sum(weight for *_, weight in events) > 524
    expected = {
        "SSH brute force from one source":
            fold(windows_fire(events, timedelta(minutes=5), 10, distinct_users=False)),
        "SSH password spraying from one source":
            fold(windows_fire(events, timedelta(minutes=10), 5, distinct_users=True)),
    }
    assert expected["SSH brute force from one source"], "the log holds brute forces"

    config = load_config(REPO / "conf.d")
    offline = OfflineRun(config, REPO / "conf.d", clock=lambda: NOW)
    stage = DetectionStage(config, REPO / "conf.d", tmp_path, None, lambda: NOW,
                           load_rules([BUILTIN_RULES]))
    try:
        batches = offline.process_lines("syslog_tcp", LOG.read_bytes().splitlines(),
                                        tenant="demo")
    finally:
        offline.close()
    latest: dict[str, dict] = {}
    for batch in stage.process(batches):
        if batch.kind == ALERTS:
            for alert in batch.events:
                latest[alert["alert.id"]] = alert  # an alert is re-emitted as it grows
    found: dict[str, list[tuple[str, datetime, int]]] = defaultdict(list)
    for alert in latest.values():
        ip = json.loads(alert["alert.group_key"])["source.address"]
        found[alert["rule.name"]].append((ip, alert["alert.first_seen"], alert["alert.count"]))
    for title, alerts in expected.items():
        assert sorted(found[title]) == alerts, title
    # PAM's own failure lines are counted apart (rules/library/linux_ssh.yml): on this log,
    # where sshd writes both, those correlations fire too, under their own titles.
    assert set(found) <= {*expected, "SSH login succeeded after failures from the same source",
                          "SSH brute force from one source (PAM failures)",
                          "SSH password spraying from one source (PAM failures)"}
