"""`vigil coverage` tells the truth: every rule with its state and reason (unserved ones
included), categories from the datasets that rules actually read, active rules listed in the
text form, and one "active rules" number shared by the stage's log line, the metric, coverage
and `vigil validate`."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.daemon import REPO

from collector.cli import main
from collector.commands.coverage import print_report
from collector.config import load_config
from collector.detection.stage import DetectionStage
from core.events import Batch
from core.telemetry import Telemetry
from rules.coverage import coverage_report
from rules.loader import load_rules

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CONFIG = load_config(REPO / "conf.d")
AUTH = {"product": "linux", "service": "auth"}
ACTIVE = "dddddddd-0000-4000-8000-000000000001"
UNSERVED = "dddddddd-0000-4000-8000-000000000002"
PLACEHOLDER = "dddddddd-0000-4000-8000-000000000003"
NEEDS_FIELD = "dddddddd-0000-4000-8000-000000000004"
DISABLED = "dddddddd-0000-4000-8000-000000000005"


def rule(rule_id: str, title: str, detection: dict[str, Any],
         logsource: dict[str, str] | None = None) -> dict[str, Any]:
    return {"title": title, "id": rule_id, "logsource": logsource or AUTH, "level": "high",
            "tags": ["attack.credential-access"], "detection": {**detection,
                                                                 "condition": "sel"}}


def write_rules(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    docs = [
        rule(ACTIVE, "Root login failed", {"sel": {"user.name": "root",
                                                   "event.outcome": "failure"}}),
        rule(UNSERVED, "macOS launch agent", {"sel": {"Image|endswith": "/launchctl"}},
             {"product": "plan9", "category": "process_creation"}),
        rule(PLACEHOLDER, "Admin logs in", {"sel": {"user.name|expand": "%admins%"}}),
        rule(NEEDS_FIELD, "Login from a TTY", {"sel": {"process.tty": "pts/0"}}),
        rule(DISABLED, "Any failure", {"sel": {"event.outcome": "failure"}}),
    ]
    (directory / "rules.yml").write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    return directory


def stage(tmp_path: Path, telemetry: Telemetry | None = None) -> DetectionStage:
    ruleset = load_rules([write_rules(tmp_path / "rules")])
    assert not ruleset.errors, [str(e) for e in ruleset.errors]
    return DetectionStage(CONFIG, REPO / "conf.d", tmp_path / "data", telemetry, lambda: NOW,
                          ruleset, monotonic=lambda: 0.0)


def auth_events(n: int) -> list[dict[str, Any]]:
    return [{"@timestamp": NOW - timedelta(seconds=n - i), "user.name": "root",
             "event.outcome": "failure", "source.ip": "203.0.113.5",
             "event.action": "ssh_login"} for i in range(n)]


def feed(detection: DetectionStage, tenant: str, dataset: str, events: list[dict[str, Any]]
         ) -> None:
    detection.process([Batch(tenant, events, 0, len(events) - 1, dataset)])


def report_for(detection: DetectionStage, tenant: str, **switches: frozenset[str]
               ) -> dict[str, Any]:
    return coverage_report(tenant, detection.requirements, detection.coverage.totals(tenant),
                           CONFIG.settings.detection.activation, **switches)


def test_every_rule_is_reported_with_its_state_and_reason(tmp_path: Path) -> None:
    detection = stage(tmp_path)
    feed(detection, "acme", "linux.auth", auth_events(5))
    report = report_for(detection, "acme", disabled=frozenset({DISABLED}))
    states = {r["id"]: (r["state"], r["reason"]) for r in report["rules"]}
    assert states == {
        ACTIVE: ("active", "data supports it"),
        UNSERVED: ("inactive", "no dataset serves its logsource"),
        PLACEHOLDER: ("inactive", "unresolved placeholder: admins"),
        NEEDS_FIELD: ("inactive", "field not populated: linux.auth: process.tty"),
        DISABLED: ("inactive", "disabled for the tenant"),
    }
    assert report["active_rules"] == 1
    assert report["inactive_rules"] == 4
    assert report["inactive_by_reason"] == {
        "no dataset serves its logsource": 1, "unresolved placeholder": 1,
        "field not populated": 1, "disabled for the tenant": 1}


def test_unserved_rules_are_not_cut_from_the_report(tmp_path: Path) -> None:
    detection = stage(tmp_path)
    # What coverage reports on: every rule, the unserved one too (a zip once cut it off).
    assert UNSERVED in {r.info.id for r in detection.alerting_requirements}
    assert len(detection.alerting_requirements) == 5


def test_categories_come_from_the_datasets_rules_read(tmp_path: Path) -> None:
    detection = stage(tmp_path)
    feed(detection, "acme", "linux.auth", auth_events(5))
    feed(detection, "acme", "nginx.access", [{"@timestamp": NOW, "url.path": "/"}])
    categories = report_for(detection, "acme")["categories"]
    # Linux servers are endpoints and servers (and authentication, for linux.auth).
    assert categories["endpoints"]["present"] is True
    assert categories["endpoints"]["datasets"] == ["linux.auth"]
    assert categories["authentication"]["present"] is True
    # nginx.access has events, but no loaded rule reads it: not a present category.
    apps = categories["business_applications"]
    assert apps["present"] is False
    assert apps["unread_datasets"] == ["nginx.access"]


def test_linux_datasets_count_as_servers() -> None:
    from rules.coverage import dataset_categories
    for dataset in ("linux.auth", "linux.iptables", "linux.audit", "syslog"):
        assert "endpoints" in dataset_categories(dataset), dataset
    assert "perimeter_security" in dataset_categories("linux.iptables")
    assert dataset_categories("nginx.error") == ("business_applications",)


def test_text_form_lists_the_active_rules(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    detection = stage(tmp_path)
    feed(detection, "acme", "linux.auth", auth_events(5))
    print_report(report_for(detection, "acme"))
    out = capsys.readouterr().out
    assert f"active: Root login failed ({ACTIVE}) on linux.auth" in out
    assert "business applications: data without a rule reading it" not in out
    assert "  integration categories:\n    perimeter security: missing" in out
    assert "unresolved placeholder: 1" in out


def test_one_active_rule_number_everywhere(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The activation log line, the metric, coverage and validate agree (builtin library)."""
    telemetry = Telemetry()
    now = datetime.now(UTC)  # validate reads the saved coverage within its window of today
    detection = DetectionStage(CONFIG, REPO / "conf.d", tmp_path, telemetry, lambda: now,
                               monotonic=lambda: 0.0)
    with caplog.at_level(logging.INFO, logger="collector.detection.stage"):
        feed(detection, "acme", "linux.auth", auth_events(20))
    logged = [r.active_rules for r in caplog.records if r.getMessage() == "rules activated"]
    metric = telemetry.registry.get_sample_value("vigil_detection_active_rules",
                                                 {"tenant": "acme"})
    report = report_for(detection, "acme", **dict(zip(("enabled", "disabled"),
                                                      detection.switches.get("acme", (
                                                          frozenset(), frozenset())),
                                                      strict=True)))
    # Base rules that alert only through their correlation are listed but not counted.
    assert report["active_rules"] > 0
    assert logged == [report["active_rules"]]
    assert metric == report["active_rules"]
    detection.save_coverage()
    assert main(["validate", "-c", str(REPO / "conf.d"), "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"active rules: acme {report['active_rules']}" in out


def test_one_tenants_coverage_dumps_and_loads_alone() -> None:
    """What a cluster worker checkpoints with a tenant's detection state: that tenant's field
    coverage only, which the next owner loads to activate the same rules at once."""
    from rules.coverage import FieldCoverage

    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    coverage = FieldCoverage(timedelta(days=7))
    coverage.observe("demo", "linux.auth", [{"source.ip": "192.0.2.1", "user.name": "root"}],
                     now)
    coverage.observe("acme", "syslog", [{"message": "x"}], now)
    saved = coverage.dump({"demo"})
    assert {e["tenant"] for e in saved["coverage"]} == {"demo"}
    restored = FieldCoverage(timedelta(days=7))
    restored.load(saved, now)
    assert restored.tenants() == ["demo"]
    demo = restored.totals("demo")["linux.auth"]
    assert demo.populated("source.ip") == 1 and demo.populated("user.name") == 1
