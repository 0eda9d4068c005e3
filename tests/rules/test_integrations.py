"""The integration categories (rules/integrations.yaml): the shipped file validates, every
category carries examples, a value, a priority and framework references; datasets map to
categories as `vigil coverage` and the integration map read them; conf.d adds or replaces a
category and a bad entry is reported at its place."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from support.daemon import REPO

from collector.config import load_config
from core.errors import ConfigErrors
from rules.coverage import dataset_categories
from rules.integrations import FRAMEWORKS, configured, load_categories, shipped

ISSUE_CATEGORIES = {
    "perimeter_security": "perimeter security",
    "authentication": "authentication and access control",
    "endpoints": "endpoints and servers",
    "network": "network and connectivity",
    "business_applications": "business applications",
    "cloud": "cloud services",
    "threat_intelligence": "external threat intelligence",
}


def test_the_shipped_categories_are_the_seven_of_the_onboarding_map() -> None:
    categories = shipped()
    assert {c: e.name for c, e in categories.categories.items()} == ISSUE_CATEGORIES
    assert categories.ids[:3] == ("perimeter_security", "authentication", "endpoints")
    for category_id, entry in categories.categories.items():
        assert entry.examples and entry.value and entry.frameworks, category_id
        assert set(entry.frameworks) <= set(FRAMEWORKS)
        assert {"ISO 27001", "PCI DSS", "NIST CSF"} <= set(entry.frameworks), category_id
    every = {f for e in categories.categories.values() for f in e.frameworks}
    assert every == set(FRAMEWORKS)  # SOX, ENS and GDPR are served somewhere too


@pytest.mark.parametrize(("dataset", "expected"), [
    ("fortinet.firewall", ("perimeter_security",)),
    ("paloalto.firewall", ("perimeter_security",)),
    ("linux.iptables", ("perimeter_security", "endpoints")),
    ("linux.auth", ("authentication", "endpoints")),
    ("windows.event", ("authentication", "endpoints")),
    ("okta.system", ("authentication",)),
    ("azure.signinlogs", ("authentication",)),
    ("azure.activitylogs", ("cloud",)),
    ("aws.cloudtrail", ("cloud",)),
    ("cisco.ios", ("network",)),  # a switch, not the perimeter like cisco.asa
    ("cisco.asa", ("perimeter_security",)),
    ("zeek", ("network",)),
    ("nginx.access", ("business_applications",)),
    ("m365.audit", ("business_applications",)),
    ("linux.audit", ("endpoints",)),
    ("generic.json", ()),
])
def test_datasets_map_to_categories(dataset: str, expected: tuple[str, ...]) -> None:
    assert dataset_categories(dataset) == expected


def test_every_dataset_the_shipped_conf_produces_has_a_category() -> None:
    produced = set()
    for path in (REPO / "conf.d").glob("*.yaml"):
        doc = yaml.safe_load(path.read_text()) or {}
        for pipeline in (doc.get("pipelines") or {}).values():
            produced.add(pipeline["dataset"])
    assert len(produced) > 25
    without = sorted(d for d in produced if not dataset_categories(d))
    assert without == ["generic.json"]  # input of unknown shape says nothing of its source


def test_conf_d_adds_and_replaces_categories(tmp_path: Path) -> None:
    (tmp_path / "10.yaml").write_text("""
integrations:
  ot:
    name: industrial control systems
    priority: high
    order: 0
    value: PLCs and HMIs of the client's plants.
    examples: [Siemens S7, Claroty]
    families: [claroty]
    frameworks:
      NIST CSF: ["DE.CM-09 Computing hardware and software are monitored"]
  cloud:
    name: cloud services
    priority: high
    order: 5
    value: The client runs its shop on AWS.
    families: [aws]
""")
    categories = configured(load_config(tmp_path).section("integrations"))
    assert categories.ids[:3] == ("ot", "perimeter_security", "authentication")
    assert categories.ids.index("cloud") < categories.ids.index("network")  # now high
    assert categories.categories_of("claroty.alerts") == ("ot",)
    assert categories.categories_of("gcp.audit") == ()  # the replacement lists only aws
    assert shipped().categories_of("gcp.audit") == ("cloud",)  # the shipped map unchanged


def test_a_bad_conf_d_category_is_reported_at_its_place(tmp_path: Path) -> None:
    (tmp_path / "10.yaml").write_text("""
integrations:
  ot:
    name: industrial control systems
    priority: urgent
    value: PLCs.
    frameworks:
      HIPAA: ["164.312(b)"]
""")
    with pytest.raises(ConfigErrors) as raised:
        load_config(tmp_path)
    text = str(raised.value)
    assert "10.yaml:5:" in text and "integrations.ot.priority" in text
    assert "integrations.ot.frameworks" in text and "HIPAA" in text


def test_a_category_file_with_a_bad_dataset_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "integrations.yaml"
    path.write_text("integrations:\n  x: {name: x, priority: low, value: v, datasets: [Bad/One]}\n")
    with pytest.raises(ValueError, match="integrations.x: .*Bad/One"):
        load_categories(path)
