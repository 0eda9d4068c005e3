"""The integration map's state computation (soc/integrations/map.py) without a server: a
category is present, unread, silent or missing from coverage and the lake; present since,
last seen and events per day come from the tenant's partitions only; a missing category
names the rules (activation's reasons) and dashboards (library requirements) it would switch
on; and the map agrees with `vigil coverage`'s categories."""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from support.lakes import FIREWALL_FIELDS, write_firewall

from rules.coverage import ActivationConfig, DatasetCoverage, coverage_report
from rules.integrations import shipped
from rules.loader import RuleRequirement
from rules.match import RuleInfo
from soc.dashboards.activation import dashboard_status
from soc.dashboards.lake import TenantLake
from soc.dashboards.library import library
from soc.integrations.map import integration_map, lake_presence

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
CONFIG = ActivationConfig()


def rule(rule_id: str, title: str, fields: dict[str, set[str]]) -> RuleRequirement:
    info = RuleInfo(id=rule_id, title=title, level="high", severity="high")
    return RuleRequirement(info, {d: frozenset(f) for d, f in fields.items()})


RULES = [
    rule("ssh-bf", "SSH brute force", {"linux.auth": {"source.ip", "event.outcome"}}),
    rule("fw-deny", "Denied connections spike", {"fortinet.firewall": {"source.ip"}}),
    rule("ct-root", "AWS root login", {"aws.cloudtrail": {"user.name"}}),
    rule("ct-trail", "CloudTrail stopped", {"aws.cloudtrail": {"event.action"}}),
    rule("gcp-iam", "GCP IAM change", {"gcp.audit": {"event.action"}}),
]


def coverage(*items: tuple[str, int, tuple[str, ...]]) -> dict[str, DatasetCoverage]:
    return {d: DatasetCoverage(n, Counter({f: n for f in fields})) for d, n, fields in items}


def build(cov: dict[str, DatasetCoverage], lake: Path, tenant: str = "acme") -> dict:
    dashboards = [(i, d, dashboard_status(i, d, cov, CONFIG)) for i, d in library().items()]
    return integration_map(tenant, shipped(), RULES, cov, CONFIG, dashboards,
                           lake_presence(TenantLake(lake, tenant)), NOW)


def by_id(result: dict) -> dict[str, dict]:
    return {c["id"]: c for c in result["categories"]}


def test_states_follow_the_tenants_data(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    cov = coverage(("fortinet.firewall", 1400, FIREWALL_FIELDS),
                   ("nginx.access", 50, ("url.path",)))
    # An old cloud partition, nothing from it in the coverage window: silent.
    old = write_firewall(lake, "acme", NOW - timedelta(days=40), 5, "10.1.1")
    cloud_dir = lake / "aws.cloudtrail" / "tenant=acme" / old.parent.name / "hour=10"
    cloud_dir.mkdir(parents=True)
    (old / "0-0-5.parquet").rename(cloud_dir / "0-0-5.parquet")
    categories = by_id(build(cov, lake))
    assert categories["perimeter_security"]["state"] == "present"
    assert categories["business_applications"]["state"] == "unread"  # no rule reads nginx
    assert categories["cloud"]["state"] == "silent"
    assert categories["authentication"]["state"] == "missing"
    assert categories["perimeter_security"]["would_switch_on"] == {
        "rules": 0, "rule_names": [], "dashboards": 0, "dashboard_names": []}


def test_present_since_last_seen_and_events_per_day_come_from_the_tenants_lake(
        tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    first = write_firewall(lake, "acme", NOW - timedelta(days=3), 10, "198.51.100")
    last = write_firewall(lake, "acme", NOW - timedelta(days=1), 10, "198.51.100")
    write_firewall(lake, "bravo", NOW - timedelta(days=30), 10, "203.0.113")  # not acme's
    stamp = (NOW - timedelta(hours=20)).timestamp()
    for path in last.glob("*.parquet"):
        os.utime(path, (stamp, stamp))
    cov = coverage(("fortinet.firewall", 1400, FIREWALL_FIELDS))
    perimeter = by_id(build(cov, lake))["perimeter_security"]
    (dataset,) = perimeter["datasets"]
    assert dataset["present_since"] == first.parent.name.removeprefix("date=") == "2026-12-03"
    assert dataset["last_seen"] == (NOW - timedelta(hours=20)).isoformat()
    assert dataset["events_per_day"] == 350.0  # 1,400 in the window over 4 days present
    assert perimeter["present_since"] == "2026-12-03"
    assert perimeter["events_per_day"] == 350.0
    assert [d["id"] for d in perimeter["active_dashboards"]] == ["firewall"]


def test_missing_categories_name_the_rules_and_dashboards_they_would_switch_on(
        tmp_path: Path) -> None:
    cov = coverage(("fortinet.firewall", 100, FIREWALL_FIELDS))
    categories = by_id(build(cov, tmp_path / "lake"))
    cloud = categories["cloud"]["would_switch_on"]
    assert cloud["rule_names"] == ["AWS root login", "CloudTrail stopped", "GCP IAM change"]
    assert cloud["rules"] == 3
    # The cloud dashboard, and PCI DSS 10, which CloudTrail's admin actions also feed.
    assert [d["id"] for d in cloud["dashboard_names"]] == ["cloud", "pci_dss_10"]
    auth = categories["authentication"]["would_switch_on"]
    assert auth["rule_names"] == ["SSH brute force"]
    # The authentication, identity and PCI DSS dashboards wait for authentication data.
    assert {"authentication", "identity_provider", "pci_dss_10"} <= \
        {d["id"] for d in auth["dashboard_names"]}
    threat = categories["threat_intelligence"]["would_switch_on"]
    assert [d["id"] for d in threat["dashboard_names"]] == ["threat_intel"]
    result = build(cov, tmp_path / "lake")
    assert (result["present"], result["missing"]) == (1, 6)


def test_threat_intelligence_is_present_through_its_field(tmp_path: Path) -> None:
    cov = coverage(("fortinet.firewall", 100, (*FIREWALL_FIELDS, "threat.enrichments.matched")))
    threat = by_id(build(cov, tmp_path / "lake"))["threat_intelligence"]
    assert threat["state"] == "present" and threat["fields"] == ["threat.enrichments.matched"]
    assert threat["datasets"] == []


def test_the_map_and_vigil_coverage_agree_on_categories(tmp_path: Path) -> None:
    cov = coverage(("fortinet.firewall", 100, FIREWALL_FIELDS), ("linux.auth", 5, ("user.name",)))
    report = coverage_report("acme", RULES, cov, CONFIG)["categories"]
    mapped = by_id(build(cov, tmp_path / "lake"))
    assert list(report) == list(mapped)
    for category_id, entry in report.items():
        assert entry["name"] == mapped[category_id]["name"]
        assert entry["present"] == (mapped[category_id]["state"] == "present")
        if not entry["present"]:
            assert entry["rules"] == mapped[category_id]["would_switch_on"]["rule_names"]
