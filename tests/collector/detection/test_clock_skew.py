"""One device with its clock an hour ahead, through the detection stage: the other hosts' SSH
correlations fire as without it, the device is flagged in a gauge (one label per tenant), in
`vigil coverage` and by a data-source-health alert through the alert path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from support.daemon import REPO

from collector.commands.coverage import print_report
from collector.config import load_config
from collector.detection.health import CLOCK_SKEW_RULE
from collector.detection.stage import BUILTIN_RULES, DetectionStage
from core.events import ALERTS, Batch
from core.telemetry import Telemetry
from rules.coverage import coverage_report
from rules.loader import load_rules

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RULESET = load_rules([BUILTIN_RULES])
CONFIG = load_config(REPO / "conf.d")
BRUTE_FORCE = "SSH brute force from one source"


def stage(tmp_path: Path, telemetry: Telemetry | None = None) -> DetectionStage:
    return DetectionStage(CONFIG, REPO / "conf.d", tmp_path, telemetry, lambda: NOW, RULESET,
                          monotonic=lambda: 0.0)


def failure(start: datetime, n: int, ip: str, host: str) -> dict:
    return {"@timestamp": start + timedelta(seconds=n), "event.action": "ssh_login",
            "event.outcome": "failure", "user.name": "root", "source.ip": ip,
            "host.hostname": host, "message": f"Failed password for root from {ip}",
            "vigil.dataset": "linux.auth", "vigil.received_at": NOW + timedelta(seconds=n)}


def attack(start: datetime) -> list[dict]:
    """Ten failures from each of six addresses, spread over two hosts: six brute forces."""
    return [failure(start, 60 * (n // 10) + n % 10, f"203.0.113.{n // 10}",
                    "web1" if n % 2 else "web2") for n in range(60)]


def run(detection: DetectionStage, events: list[dict]) -> list[dict]:
    out = []
    for offset, event in enumerate(events):
        event["vigil.offset"] = offset
        out.extend(detection.process([Batch("acme", [event], offset, offset, "linux.auth")]))
    return [a for b in out if b.kind == ALERTS for a in b.events]


def firings(alerts: list[dict]) -> list[tuple[str, str]]:
    return [(a["alert.group_key"], a["alert.first_seen"]) for a in alerts
            if a["rule.name"] == BRUTE_FORCE]


def skewed(events: list[dict]) -> list[dict]:
    """The same events with one failure from db9, stamped an hour ahead, after the tenth."""
    ahead = failure(events[10]["@timestamp"] + timedelta(hours=1), 0, "198.51.100.7", "db9")
    ahead["vigil.received_at"] = events[10]["vigil.received_at"]
    return [*events[:10], ahead, *events[10:]]


def test_other_hosts_fire_as_without_the_skewed_one_in_a_replay(tmp_path: Path) -> None:
    start = datetime(2025, 12, 10, 6, 55, tzinfo=UTC)  # a year before receipt
    baseline = firings(run(stage(tmp_path / "a"), attack(start)))
    assert len(baseline) == 6
    assert firings(run(stage(tmp_path / "b"), skewed(attack(start)))) == baseline


def test_a_skewed_sender_is_flagged_everywhere(tmp_path: Path) -> None:
    telemetry = Telemetry()
    detection = stage(tmp_path, telemetry)
    events = skewed(attack(NOW - timedelta(minutes=10)))
    for event in events:  # live: received when stamped
        event["vigil.received_at"] = event["@timestamp"]
    events[10]["vigil.received_at"] = events[11]["@timestamp"]
    assert len(firings(run(detection, events))) == 6
    health = [a for b in detection.tick() if b.kind == ALERTS for a in b.events]
    assert [(a["rule.id"], a["vigil.tenant"], a["alert.group_key"]) for a in health] == [
        (CLOCK_SKEW_RULE.id, "acme", '{"host.hostname":"db9"}')]
    assert telemetry.registry.get_sample_value(
        "vigil_detection_skewed_senders", {"tenant": "acme"}) == 1
    # A second tick raises no second alert for the same sender.
    assert [b for b in detection.tick() if b.kind == ALERTS] == []
    report = coverage_report("acme", detection.requirements, detection.coverage.totals("acme"),
                             CONFIG.settings.detection.activation,
                             skewed=detection.engine.correlation.skewed_senders("acme"))
    assert [(s["sender"], s["basis"]) for s in report["clock_skew"]] == [
        ("db9", "receive time")]


def test_coverage_names_the_skewed_sender(tmp_path: Path, capsys: object) -> None:
    detection = stage(tmp_path)
    events = [failure(NOW, n, "203.0.113.1", "web1") for n in range(3)]
    events.append(failure(NOW + timedelta(hours=1), 3, "203.0.113.1", "db9"))
    run(detection, events)
    report = coverage_report("acme", detection.requirements, detection.coverage.totals("acme"),
                             CONFIG.settings.detection.activation,
                             skewed=detection.engine.correlation.skewed_senders("acme"))
    print_report(report)
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "sender clocks off: db9 (3600 s ahead of receive time)" in out
