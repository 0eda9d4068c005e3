"""Sigma `|expand` placeholders: resolved from configured values (global or per tenant), never
left to match as a wildcard; a rule without values stays inactive with the reason."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from rules.engine import DetectionEngine
from rules.loader import load_rules

RULE = "dddddddd-0000-4000-8000-00000000000a"
# A selection and a filter that both use a placeholder, as SigmaHQ's CVE-2026-54121 rules do.
DETECTION = {"sel": {"process": "sudo", "user|expand": "%admins%"},
             "filter": {"host.hostname|expand": "%jump_hosts%"},
             "condition": "sel and not filter"}


def event(user: str, host: str = "web1") -> dict:
    return {"process.name": "sudo", "user.name": user, "host.hostname": host}


def fired(engine: DetectionEngine, tenant: str, *events: dict) -> list[int]:
    return [m.events[0].index for m in engine.evaluate("linux.auth", list(events), tenant)]


def test_unresolved_placeholders_keep_the_rule_inactive(sigma: SimpleNamespace,
                                                        tmp_path: Path) -> None:
    """Before: `%admins%` matched any user and `%jump_hosts%` any host, so the filter hid every
    event and the rule could never fire, silently. Now it is not compiled, and says why."""
    sigma.write_rule(tmp_path, "r", DETECTION, id=RULE)
    ruleset = load_rules([tmp_path])
    assert ruleset.rules == [] and ruleset.errors == [] and ruleset.unserved == []
    (inactive,) = ruleset.inactive
    assert inactive.info.id == RULE and inactive.owners == (None,)
    assert "%admins%, %jump_hosts% has no value for every tenant" in inactive.reason


def test_global_values_resolve_for_everyone(sigma: SimpleNamespace, tmp_path: Path) -> None:
    sigma.write_rule(tmp_path, "r", DETECTION, id=RULE)
    values = {None: {"admins": ["root", "alice"], "jump_hosts": ["jump1"]}}
    ruleset = load_rules([tmp_path], placeholders=values, tenants=["acme"])
    assert ruleset.inactive == [] and [r.info.tenant for r in ruleset.rules] == [None]
    engine = DetectionEngine(ruleset)
    assert fired(engine, "acme", event("root"), event("bob"), event("alice", "jump1")) == [0]


def test_tenant_values_compile_a_copy_per_tenant(sigma: SimpleNamespace, tmp_path: Path) -> None:
    """Only acme configured its values: the rule runs for acme with them; beta, without, has
    the rule inactive (not matching everything)."""
    sigma.write_rule(tmp_path, "r", DETECTION, id=RULE)
    values = {None: {"jump_hosts": ["jump1"]}, "acme": {"admins": ["carol"]}}
    ruleset = load_rules([tmp_path], placeholders=values, tenants=["acme", "beta"])
    assert [r.info.tenant for r in ruleset.rules] == ["acme"]
    (inactive,) = ruleset.inactive
    assert inactive.owners == ("beta",)
    assert "%admins% has no value for tenant beta" in inactive.reason
    engine = DetectionEngine(ruleset)
    assert fired(engine, "acme", event("carol"), event("root"), event("carol", "jump1")) == [0]
    assert fired(engine, "beta", event("carol"), event("root")) == []


def test_a_tenant_list_replaces_the_global_one(sigma: SimpleNamespace, tmp_path: Path) -> None:
    sigma.write_rule(tmp_path, "r", DETECTION, id=RULE)
    values = {None: {"admins": ["root"], "jump_hosts": ["jump1"]}, "acme": {"admins": ["dave"]}}
    ruleset = load_rules([tmp_path], placeholders=values, tenants=["acme"])
    engine = DetectionEngine(ruleset)
    assert fired(engine, "acme", event("dave"), event("root")) == [0]


def test_an_empty_list_is_no_value(sigma: SimpleNamespace, tmp_path: Path) -> None:
    sigma.write_rule(tmp_path, "r", DETECTION, id=RULE)
    ruleset = load_rules([tmp_path], placeholders={None: {"admins": ["root"], "jump_hosts": []}})
    assert ruleset.rules == [] and ruleset.errors == []
    assert "%jump_hosts% has no value" in ruleset.inactive[0].reason
