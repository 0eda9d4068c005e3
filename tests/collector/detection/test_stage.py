"""The detection stage: per-tenant state, activation from coverage, alert identity across a
crash and replay, and acknowledgement held until state is saved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from support.daemon import REPO

from collector.config import load_config
from collector.detection.stage import BUILTIN_RULES, DetectionStage
from core.events import ALERTS, Batch
from rules.coverage import coverage_report
from rules.loader import load_rules

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RULESET = load_rules([BUILTIN_RULES])
CONFIG = load_config(REPO / "conf.d")
BRUTE_FORCE = "SSH brute force from one source"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def stage(tmp_path: Path, monotonic: Clock | None = None) -> DetectionStage:
    return DetectionStage(CONFIG, REPO / "conf.d", tmp_path, None, lambda: NOW, RULESET,
                          monotonic=monotonic or Clock())


def failure(n: int, ip: str = "203.0.113.9") -> dict:
    return {"@timestamp": NOW - timedelta(minutes=5) + timedelta(seconds=n),
            "event.action": "ssh_login", "event.outcome": "failure", "user.name": "root",
            "source.ip": ip, "message": f"Failed password for root from {ip}",
            "vigil.dataset": "linux.auth"}


def firewall(n: int) -> dict:
    return {"@timestamp": NOW - timedelta(minutes=10), "event.action": "deny",
            "event.type": ["connection", "denied"], "event.outcome": "success",
            "source.ip": "198.18.0.1", "destination.ip": "10.0.0.1", "destination.port": n,
            "vigil.dataset": "fortinet.firewall"}


def alerts(batches: list[Batch]) -> list[dict]:
    return [a for b in batches if b.kind == ALERTS for a in b.events]


def batch(tenant: str, dataset: str, events: list[dict], first: int) -> Batch:
    for offset, event in enumerate(events, first):
        event["vigil.offset"] = offset
        event["vigil.tenant"] = tenant
    return Batch(tenant, events, first, first + len(events) - 1, dataset)


def test_correlation_state_is_per_tenant(tmp_path: Path) -> None:
    detection = stage(tmp_path)
    events = [failure(n) for n in range(16)]
    # The same sixteen failures, split 8/8: neither tenant reaches ten.
    split = detection.process([batch("acme", "linux.auth", events[:8], 0),
                               batch("demo", "linux.auth", events[8:], 0)])
    assert alerts(split) == []
    # Two more for acme make ten for acme alone; demo's eight do not count toward it.
    more = detection.process([batch("acme", "linux.auth", [failure(20), failure(21)], 8)])
    (alert,) = alerts(more)
    assert (alert["rule.name"], alert["vigil.tenant"], alert["alert.value"]) == \
        (BRUTE_FORCE, "acme", 10)
    assert alert["alert.dedup_key"].startswith("acme|")


def test_rules_activate_when_the_tenant_sends_the_data(tmp_path: Path) -> None:
    detection = stage(tmp_path)
    detection.process([batch("fw", "fortinet.firewall", [firewall(n) for n in range(3)], 0)])
    report = coverage_report("fw", detection.alerting_requirements,
                             detection.coverage.totals("fw"), CONFIG.settings.detection.activation)
    assert report["categories"]["perimeter_security"]["present"] is True
    auth = report["categories"]["authentication"]
    # 2 new-value rules, the 3 SSH correlations and the 2 PAM ones need linux.auth
    assert auth["present"] is False and auth["rules_it_would_activate"] == 7
    assert BRUTE_FORCE in auth["rules"] and len(auth["rules"]) == 7  # named, for the map
    active = {title for _, title, _ in report["active"]}
    assert "Spike of denied connections from one source" in active
    assert BRUTE_FORCE not in active
    # The same stage, no restart: authentication events switch the SSH rules on.
    fired = detection.process([batch("fw", "linux.auth", [failure(n) for n in range(10)], 3)])
    assert [a["rule.name"] for a in alerts(fired)] == [BRUTE_FORCE]
    report = coverage_report("fw", detection.alerting_requirements,
                             detection.coverage.totals("fw"), CONFIG.settings.detection.activation)
    assert report["categories"]["authentication"]["present"] is True
    assert BRUTE_FORCE in {title for _, title, _ in report["active"]}


def test_a_replay_after_a_crash_reuses_the_alert_and_counts_nothing_twice(tmp_path: Path) -> None:
    monotonic = Clock()
    first = stage(tmp_path, monotonic)
    events = [failure(n) for n in range(10)]
    (alert,) = alerts(first.process([batch("demo", "linux.auth", events[:5], 0)]) +
                      first.process([batch("demo", "linux.auth", events[5:], 5)]))
    assert first.uncommitted_floor("demo") == 0  # nothing acknowledgeable before a save
    monotonic.now += 10
    first.tick()  # state_interval (5 s) passed: saved
    assert first.uncommitted_floor("demo") is None
    # The journal had acknowledged up to offset 4 only: the restarted daemon replays 5..9.
    second = stage(tmp_path, monotonic)
    second.restore()
    replayed = alerts(second.process([batch("demo", "linux.auth",
                                            [failure(n) for n in range(5, 10)], 5)]))
    # No second correlation fire: the window had fired and was cleared before the save.
    assert replayed == []
    repeat = second.process([batch("demo", "linux.auth", [failure(n) for n in range(10, 20)],
                                   10)])
    (again,) = alerts(repeat)
    assert again["alert.id"] == alert["alert.id"]  # within the hour: folded into the alert
    assert (again["alert.count"], again["alert.suppressed"]) == (2, 1)


def test_state_survives_a_restart_mid_window(tmp_path: Path) -> None:
    monotonic = Clock()
    first = stage(tmp_path, monotonic)
    assert alerts(first.process([batch("demo", "linux.auth",
                                       [failure(n) for n in range(6)], 0)])) == []
    first.close()
    second = stage(tmp_path, monotonic)
    second.restore()
    # A replay of offsets already in the window counts nothing; four new failures complete it.
    assert alerts(second.process([batch("demo", "linux.auth",
                                        [failure(n) for n in range(4, 6)], 4)])) == []
    (alert,) = alerts(second.process([batch("demo", "linux.auth",
                                            [failure(n) for n in range(6, 10)], 6)]))
    assert alert["alert.value"] == 10


def test_a_tenant_forgotten_when_its_shard_left_restarts_from_its_checkpoint_only(
        tmp_path: Path) -> None:
    """A cluster worker that handed a tenant over keeps none of its state: should the tenant
    come back, it continues from the checkpoint, not from what the worker held before."""
    from collector.detection.stage import STATE_VERSION
    from rules.state import Ownership, merge_detection

    detection = stage(tmp_path)
    saved: list[dict] = []
    detection.on_saved = saved.append
    detection.process([batch("acme", "linux.auth", [failure(n) for n in range(6)], 0),
                       batch("demo", "linux.auth", [failure(n) for n in range(3)], 0)])
    detection.save()
    checkpoint = merge_detection(saved, Ownership(owns=lambda t: t == "acme"), STATE_VERSION)
    assert checkpoint is not None
    detection.forget(["acme"])
    assert detection.state_tenants() == {"demo"}
    assert detection.engine.correlation.key_count("demo") > 0
    # Forgotten: four more failures are four, not ten...
    assert alerts(detection.process([batch("acme", "linux.auth",
                                           [failure(n) for n in range(6, 10)], 6)])) == []
    # ... and from the checkpoint again (the stale four dropped first), ten.
    detection.forget(["acme"])
    detection.load_state(checkpoint)
    (alert,) = alerts(detection.process([batch("acme", "linux.auth",
                                               [failure(n) for n in range(6, 10)], 6)]))
    assert (alert["rule.name"], alert["alert.value"]) == (BRUTE_FORCE, 10)
