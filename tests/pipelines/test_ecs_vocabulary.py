"""One ECS vocabulary across vendors, checked on every shipped `vigil test` case's output:
categorisation values are ECS allowed values, device and service events name their observer,
every firewall decision is `allowed` or `denied` with the device's own outcome, and user names
are split from UPNs."""

from __future__ import annotations

from typing import Any

import pytest
from support.daemon import REPO
from support.field_coverage import case_events

from collector.config import load_config
from core.events import Event
from parsers.ecs import ECS_VALUES, split_user

CONF = REPO / "conf.d"
# Datasets whose events come from a device or service reporting on others (docs/fields.md).
OBSERVED = {"fortinet.firewall", "paloalto.firewall", "cisco.asa", "linux.iptables",
            "squid.access", "cisco.ios", "zeek", "opencanary", "linux.sysmon",
            "okta.system", "azure.signinlogs", "azure.auditlogs", "azure.riskdetection",
            "azure.activitylogs", "m365.audit", "aws.cloudtrail", "gcp.audit",
            "kubernetes.audit", "github.audit", "bitbucket.audit", "onelogin.events",
            "duo.auth"}
FIREWALLS = {"fortinet.firewall", "paloalto.firewall", "cisco.asa", "linux.iptables"}
UNCATEGORISED = {"generic.json", "json"}  # input of unknown shape keeps what it says


@pytest.fixture(scope="module")
def events() -> dict[str, list[Event]]:
    return case_events(load_config(CONF), CONF)


def values(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def test_categorisation_values_are_ecs_allowed_values(events: dict[str, list[Event]]) -> None:
    wrong = [(dataset, name, value) for dataset, batch in events.items() for event in batch
             for name, allowed in ECS_VALUES.items() if name in event
             for value in values(event[name]) if value not in allowed]
    assert wrong == []


def test_every_categorised_dataset_has_event_kind(events: dict[str, list[Event]]) -> None:
    missing = sorted({dataset for dataset, batch in events.items()
                      if dataset not in UNCATEGORISED
                      for event in batch if "event.kind" not in event})
    assert missing == ["syslog"]  # only BIND lines that are neither query nor transfer


def test_device_and_service_events_name_their_observer(events: dict[str, list[Event]]) -> None:
    assert set(events) >= OBSERVED, sorted(OBSERVED - set(events))
    missing = sorted({(dataset, name) for dataset in OBSERVED for event in events[dataset]
                      for name in ("observer.vendor", "observer.product", "observer.type")
                      if not event.get(name)})
    assert missing == []


def test_firewall_decisions_follow_ecs(events: dict[str, list[Event]]) -> None:
    """ECS: a blocked connection is event.type denied with outcome success (the firewall's)."""
    decided = [e for d in FIREWALLS for e in events[d]
               if {"allowed", "denied"} & set(values(e.get("event.type", [])))]
    assert len(decided) >= 20
    assert {e["event.outcome"] for e in decided} == {"success"}
    denied = [e for e in decided if "denied" in e["event.type"]]
    assert {e["vigil.dataset"] for e in denied} == FIREWALLS
    assert all("connection" in e["event.type"] for e in decided)


def test_upns_are_split(events: dict[str, list[Event]]) -> None:
    users = [e for batch in events.values() for e in batch if "user.name" in e]
    assert [e["user.name"] for e in users if split_user(str(e["user.name"]))] == []
    split = [e for e in users if "user.email" in e and "user.domain" in e]
    assert {e["user.email"] for e in split} >= {"john.doe@example.com", "alice@contoso.com"}
    assert all(e["user.email"] == f"{e['user.name']}@{e['user.domain']}" for e in split
               if e["vigil.dataset"] != "gcp.audit")
