"""Loading: bad files reported and skipped, Sigma filters per owner, tenant rules and overrides,
rule metadata (ATT&CK tags, severity, runbook), the match record and its dedup key."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from rules.loader import RuleSource, load_rules
from rules.match import EventRef, Match, RuleInfo, attack_from_tags, severity_of

RULE_A = "cccccccc-0000-4000-8000-00000000000a"
RULE_B = "cccccccc-0000-4000-8000-00000000000b"
SUDO = {"sel": {"process": "sudo", "user": "root"}, "condition": "sel"}


def test_bad_files_are_reported_and_skipped(sigma: SimpleNamespace, tmp_path: Path) -> None:
    sigma.write_rule(tmp_path, "good", SUDO, id=RULE_A)
    (tmp_path / "broken_yaml.yml").write_text("title: [unclosed\n", encoding="utf-8")
    sigma.write_rule(tmp_path, "bad_modifier", {"sel": {"x|nosuchmod": 1}, "condition": "sel"},
                     id=RULE_B)
    sigma.write_rule(tmp_path, "bad_condition", {"sel": {"x": 1}, "condition": "sel and nope"},
                     id="cccccccc-0000-4000-8000-00000000000c")
    ruleset = load_rules([tmp_path, tmp_path / "missing"])
    assert [r.info.id for r in ruleset.rules] == [RULE_A]
    reasons = {Path(e.file).name: e.reason for e in ruleset.errors}
    assert set(reasons) == {"broken_yaml.yml", "bad_modifier.yml", "bad_condition.yml", "missing"}
    assert "nosuchmod" in reasons["bad_modifier.yml"]
    assert "nope" in reasons["bad_condition.yml"]
    assert reasons["missing"] == "no such file or directory"


def test_unserved_logsource_is_listed_not_an_error(sigma: SimpleNamespace, tmp_path: Path) -> None:
    sigma.write_rule(tmp_path, "amiga", SUDO, id=RULE_A,
                     logsource={"product": "amiga", "category": "process_creation"})
    ruleset = load_rules([tmp_path])
    assert ruleset.errors == [] and ruleset.rules == []
    assert [info.id for info in ruleset.unserved] == [RULE_A]


def sudo_event(user: str = "root", host: str = "web1") -> dict:
    return {"process.name": "sudo", "user.name": user, "host.hostname": host,
            "@timestamp": datetime(2026, 1, 1, tzinfo=UTC)}


def test_filters_global_and_per_tenant(sigma: SimpleNamespace, tmp_path: Path) -> None:
    library, tenant_dir = tmp_path / "library", tmp_path / "acme"
    library.mkdir()
    tenant_dir.mkdir()
    sigma.write_rule(library, "sudo_root", SUDO, id=RULE_A, name="sudo_root")
    sigma.write_docs(library, "global_filter", {
        "title": "Backup host runs sudo", "id": "dddddddd-0000-4000-8000-000000000001",
        "logsource": sigma.AUTH,
        "filter": {"rules": [RULE_A], "selection": {"hostname": "backup1"},
                   "condition": "not selection"}})
    sigma.write_docs(tenant_dir, "acme_filter", {
        "title": "acme's admin host", "id": "dddddddd-0000-4000-8000-000000000002",
        "logsource": sigma.AUTH,
        "filter": {"rules": ["sudo_root"], "selection": {"hostname": "admin7"},
                   "condition": "not selection"}})
    engine = sigma.engine_on(RuleSource(library), RuleSource(tenant_dir, tenant="acme"))
    events = [sudo_event(host="web1"), sudo_event(host="backup1"), sudo_event(host="admin7")]
    fired = {t: [m.events[0].index for m in engine.evaluate("linux.auth", events, t)]
             for t in ("acme", "other")}
    assert fired == {"acme": [0], "other": [0, 2]}


def test_tenant_rules_and_overrides(sigma: SimpleNamespace, tmp_path: Path) -> None:
    library, tenant_dir = tmp_path / "library", tmp_path / "acme"
    library.mkdir()
    tenant_dir.mkdir()
    sigma.write_rule(library, "a", SUDO, id=RULE_A)
    sigma.write_rule(tenant_dir, "b", {"sel": {"process": "sudo"}, "condition": "sel"}, id=RULE_B)
    engine = sigma.engine_on(RuleSource(library), RuleSource(tenant_dir, tenant="acme"))

    def fired(tenant: str) -> set[str]:
        return {m.rule_id for m in engine.evaluate("linux.auth", [sudo_event()], tenant)}

    assert fired("acme") == {RULE_A, RULE_B}
    assert fired("other") == {RULE_A}  # acme's own rule never runs for another tenant
    engine.set_tenant_rules("acme", disabled=[RULE_A])
    assert fired("acme") == {RULE_B}
    engine.set_tenant_rules("acme", active=[], enabled=[RULE_A])
    assert fired("acme") == {RULE_A}
    assert fired("other") == {RULE_A}


def test_rule_metadata(sigma: SimpleNamespace, tmp_path: Path) -> None:
    sigma.write_rule(tmp_path, "meta", SUDO, id=RULE_A, level="critical",
                     description="root via sudo", falsepositives=["admins"],
                     references=["https://example.org/x", "runbook: https://wiki/sudo"],
                     tags=["attack.privilege-escalation", "attack.t1548.003", "attack.g0007",
                           "car.2019-04-004"])
    sigma.write_rule(tmp_path, "custom_runbook", SUDO, id=RULE_B, runbook="https://wiki/custom")
    engine = sigma.engine_on(tmp_path)
    matches = {m.rule_id: m for m in engine.evaluate("linux.auth", [sudo_event()], "t")}
    info = matches[RULE_A].rule
    assert (info.level, info.severity) == ("critical", "critical")
    assert info.tactics == ("privilege-escalation",)
    assert info.techniques == ("T1548.003",)
    assert info.runbook == "https://wiki/sudo"
    assert info.falsepositives == ("admins",)
    assert matches[RULE_B].rule.runbook == "https://wiki/custom"
    assert matches[RULE_B].rule.severity == "medium"  # no level given
    record = matches[RULE_A].to_dict()
    assert record["events"][0]["fields"]["user.name"] == "root"
    assert record["first_seen"] == "2026-01-01T00:00:00+00:00"


def test_attack_tags_and_levels() -> None:
    assert attack_from_tags(["attack.credential_access", "attack.t1110", "attack.T1110.001",
                             "attack.s0002", "cve.2021-1"]) == (
        ("credential-access",), ("T1110", "T1110.001"))
    assert [severity_of(level) for level in ("informational", "HIGH", None, "bogus")] == [
        "informational", "high", "medium", "medium"]


def test_dedup_key_and_absorb() -> None:
    info = RuleInfo(id="r1", title="t", level="high", severity="high")
    t1, t2 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)

    def match(group: dict, when: datetime, tenant: str = "acme") -> Match:
        return Match(rule=info, tenant=tenant, dataset="linux.auth",
                     events=[EventRef(index=0, timestamp=when)], first_seen=when,
                     last_seen=when, group_key=group)

    a, b = match({"user": "x", "ip": "1"}, t1), match({"ip": "1", "user": "x"}, t2)
    assert a.dedup_key == b.dedup_key  # key order does not matter
    assert a.dedup_key != match({"user": "y", "ip": "1"}, t1).dedup_key
    assert a.dedup_key != match({"user": "x", "ip": "1"}, t1, tenant="other").dedup_key
    a.absorb(b)
    assert (a.suppressed, a.first_seen, a.last_seen) == (1, t1, t2)


def test_windows_mapping(sigma: SimpleNamespace, tmp_path: Path) -> None:
    """Security log cleared (UserData), process creation from Sysmon 1 and Security 4688, and
    the Sysmon channel/event id a category adds."""
    windows = {"product": "windows"}
    sigma.write_rule(tmp_path, "cleared", {"sel": {"EventID": 1102, "SubjectUserName": "admin"},
                                           "condition": "sel"},
                     id=RULE_A, logsource={**windows, "service": "security"})
    sigma.write_rule(tmp_path, "whoami", {"sel": {"Image|endswith": "\\whoami.exe"},
                                          "condition": "sel"},
                     id=RULE_B, logsource={**windows, "category": "process_creation"})
    engine = sigma.engine_on(tmp_path)
    from parsers.windows import flatten_windows_event

    cleared = flatten_windows_event({"Event": {
        "System": {"EventID": 1102, "Channel": "Security"},
        "UserData": {"LogFileCleared": {"SubjectUserName": "admin"}}}})
    sysmon = {"winlog.channel": "Microsoft-Windows-Sysmon/Operational", "winlog.event_id": 1,
              "winlog.event_data.Image": "C:\\Windows\\System32\\whoami.exe"}
    security = {"winlog.channel": "Security", "winlog.event_id": "4688",
                "winlog.event_data.NewProcessName": "C:\\Windows\\System32\\WHOAMI.EXE"}
    wrong_id = {**sysmon, "winlog.event_id": 11}
    wrong_channel = {**sysmon, "winlog.channel": "Application"}
    events = [cleared, sysmon, security, wrong_id, wrong_channel]
    fired = [(m.events[0].index, m.rule_id) for m in engine.evaluate("windows.event", events)]
    assert fired == [(0, RULE_A), (1, RULE_B), (2, RULE_B)]
    rule = engine.rules_for("windows.event")[0]
    assert rule.fields("windows.event") == frozenset(
        {"winlog.channel", "winlog.event_id", "winlog.event_data.SubjectUserName"})


MAPPING_CASES = [
    ({"product": "aws", "service": "cloudtrail"},
     {"eventName": "ConsoleLogin", "additionalEventData.MFAUsed": "No"},
     "aws.cloudtrail", {"aws.cloudtrail.eventName": "ConsoleLogin",
                        "aws.cloudtrail.additionalEventData.MFAUsed": "No"}),
    ({"product": "okta", "service": "okta"}, {"eventType": "user.mfa.factor.deactivate"},
     "okta.system", {"okta.eventType": "user.mfa.factor.deactivate"}),
    ({"product": "azure", "service": "signinlogs"}, {"ResultType": 50126},
     "azure.signinlogs", {"azure.signinlogs.ResultType": 50126}),
    ({"product": "azure", "service": "activitylogs"}, {"operationName": "Delete"},
     "azure.activitylogs", {"azure.activitylogs.operationName": "delete"}),
    ({"product": "gcp", "service": "gcp.audit"}, {"gcp.audit.method_name": "x.delete"},
     "gcp.audit", {"gcp.audit.methodName": "x.delete"}),   # Elastic's name, Vigil's field
    ({"category": "firewall"}, {"dst_port": 445, "action": "deny"}, "fortinet.firewall",
     {"destination.port": 445, "event.action": "deny"}),
    ({"category": "firewall"}, {"src_ip|cidr": "10.0.0.0/8", "username": "bob"}, "cisco.asa",
     {"source.ip": "10.9.9.9", "user.name": "bob"}),
    ({"category": "webserver"}, {"cs-uri-query|contains": "union select", "sc-status": 200},
     "nginx.access", {"url.query": "id=1 UNION SELECT x", "http.response.status_code": 200}),
    ({"product": "linux", "service": "sshd"}, {"user": "root"}, "linux.auth",
     {"user.name": "root"}),
]


def test_dataset_mappings(sigma: SimpleNamespace, tmp_path: Path) -> None:
    for number, (logsource, selection, dataset, event) in enumerate(MAPPING_CASES):
        folder = tmp_path / str(number)
        folder.mkdir()
        sigma.write_rule(folder, "r", {"sel": selection, "condition": "sel"}, id=RULE_A,
                         logsource=logsource)
        engine = sigma.engine_on(folder)
        assert [m.dataset for m in engine.evaluate(dataset, [event])] == [dataset], logsource
        assert engine.evaluate(dataset, [{k: "other" for k in event}]) == [], logsource


def test_every_served_dataset_is_produced_by_the_shipped_configuration() -> None:
    """A mapping serving a dataset that no conf.d pipeline (or source) produces would count
    rules as served that can never see an event."""
    import yaml
    from support.daemon import REPO

    from rules.datasets import dataset_names, shipped_mappings

    produced = {"syslog"}  # what syslog sources stamp on lines no pipeline claims
    for path in sorted((REPO / "conf.d").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        produced |= {p["dataset"] for p in (doc.get("pipelines") or {}).values()}
        produced |= {s["dataset"] for s in (doc.get("sources") or {}).values()
                     if isinstance(s, dict) and "dataset" in s}
        for case in (doc.get("tests") or {}).values():
            expected = (case.get("expect") or {}).get("dataset")
            if expected:
                produced.add(expected)
    assert [d for d in dataset_names(shipped_mappings()) if d not in produced] == []
