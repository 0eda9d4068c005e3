"""The threat_intel step: IP, CIDR and domain indicators from plain lists and CSV feeds, the ECS
fields a match sets, reloads, located validation errors, and a brute-force cross-check."""

from __future__ import annotations

import ipaddress
import logging
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enrichers.threat_intel import (
    IndicatorFile,
    IndicatorFileConfig,
    IndicatorIndex,
    ThreatIntelStep,
    read_indicator_file,
)

BAD_IPS = """\
# SOC block list
203.0.113.66        # brute-force source
198.51.100.0/25     # scanner network
198.51.100.64/26    # more specific: wins inside the /25
2001:db8:bad::/48
10.9.8.7, extra, columns are ignored
not an indicator!
"""

FEED = """\
# generated 2026-11-23
indicator,type,provider,confidence,description
evil.example,domain-name,feedco,high,phishing kit host
*.Tracker.Example.,domain,,low,
192.0.2.13,ipv4-addr,feedco,90,C2 server
d41d8cd98f00b204e9800998ecf8427e,md5,feedco,high,a file hash
,domain,feedco,,empty indicator
"""


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return write(tmp_path / "bad-ips.txt", BAD_IPS), write(tmp_path / "feed.csv", FEED)


def intel(make_step, **spec) -> ThreatIntelStep:
    spec = {"type": "threat_intel", "files": ["bad-ips.txt", {"path": "feed.csv"}], **spec}
    step = make_step(spec)
    assert isinstance(step, ThreatIntelStep)
    return step


def test_exact_ip_match_sets_the_ecs_fields(files, make_step) -> None:
    step = intel(make_step)
    assert step.apply({"source.ip": "203.0.113.66", "destination.ip": "8.8.8.8"}) == {
        "source.ip": "203.0.113.66", "destination.ip": "8.8.8.8",
        "threat.enrichments.matched": True,
        "threat.enrichments.matched.field": "source.ip",
        "threat.enrichments.matched.atomic": "203.0.113.66",
        "threat.enrichments.matched.type": "indicator_match_rule",
        "threat.indicator.type": "ipv4-addr",
        "threat.indicator.ip": "203.0.113.66",
        "threat.indicator.name": "203.0.113.66",
        "threat.indicator.provider": "bad-ips",
        "threat.indicator.description": "brute-force source",
    }


def test_cidrs_match_by_longest_prefix(files, make_step) -> None:
    step = intel(make_step)
    event = step.apply({"destination.ip": "198.51.100.70"})
    assert (event["threat.indicator.name"], event["threat.indicator.description"]) == \
        ("198.51.100.64/26", "more specific: wins inside the /25")
    assert event["threat.indicator.ip"] == "198.51.100.70"
    assert event["threat.enrichments.matched.field"] == "destination.ip"
    assert step.apply({"source.ip": "198.51.100.5"})["threat.indicator.name"] == \
        "198.51.100.0/25"
    assert "threat.enrichments.matched" not in step.apply({"source.ip": "198.51.100.200"})
    v6 = step.apply({"source.ip": "2001:DB8:BAD:1::5"})
    assert (v6["threat.indicator.type"], v6["threat.indicator.name"]) == \
        ("ipv6-addr", "2001:db8:bad::/48")
    # Extra columns after the indicator are ignored; mapped IPv4 matches its IPv4 entry.
    assert step.apply({"source.ip": "::ffff:10.9.8.7"})["threat.indicator.name"] == "10.9.8.7"


def test_domains_match_themselves_and_subdomains(files, make_step) -> None:
    step = intel(make_step)
    event = step.apply({"dns.question.name": "a.b.Evil.Example."})
    assert {k: v for k, v in event.items() if k.startswith("threat.")} == {
        "threat.enrichments.matched": True,
        "threat.enrichments.matched.field": "dns.question.name",
        "threat.enrichments.matched.atomic": "a.b.Evil.Example.",
        "threat.enrichments.matched.type": "indicator_match_rule",
        "threat.indicator.type": "domain-name",
        "threat.indicator.url.domain": "evil.example",
        "threat.indicator.name": "evil.example",
        "threat.indicator.provider": "feedco",
        "threat.indicator.confidence": "high",
        "threat.indicator.description": "phishing kit host",
    }
    assert step.apply({"url.domain": "evil.example"})["threat.indicator.url.domain"] == \
        "evil.example"
    # `*.tracker.example.` is listed as tracker.example; the file name is the default provider.
    tracker = step.apply({"destination.domain": "x.tracker.example"})
    assert tracker["threat.indicator.provider"] == "feed"
    assert tracker["threat.indicator.confidence"] == "low"
    for benign in ("notevil.example", "example", "evil.example.com", "evil", ""):
        assert "threat.enrichments.matched" not in step.apply({"url.domain": benign})


def test_first_match_wins_in_field_order(files, make_step) -> None:
    step = intel(make_step, ip_fields=["destination.ip", "source.ip"])
    event = step.apply({"source.ip": "203.0.113.66", "destination.ip": "192.0.2.13",
                        "url.domain": "evil.example"})
    assert event["threat.enrichments.matched.field"] == "destination.ip"
    assert event["threat.indicator.confidence"] == "90"
    assert "threat.indicator.url.domain" not in event
    assert step.apply({"related.ip": ["1.1.1.1", "203.0.113.66"]}) == \
        {"related.ip": ["1.1.1.1", "203.0.113.66"]}  # not a configured field
    listed = intel(make_step, ip_fields=["related.ip"]).apply(
        {"related.ip": ["1.1.1.1", 5, "203.0.113.66"]})
    assert listed["threat.enrichments.matched.atomic"] == "203.0.113.66"
    assert step.counts.matched == 1


def test_bad_lines_are_skipped_and_counted(files, caplog: pytest.LogCaptureFixture) -> None:
    ips, feed = files
    with caplog.at_level(logging.WARNING, logger="enrichers.threat_intel"):
        listed = read_indicator_file(ips, IndicatorFileConfig(path=ips))
        fed = read_indicator_file(feed, IndicatorFileConfig(path=feed))
    assert (len(listed.networks), len(listed.domains), listed.invalid) == (5, 0, 1)
    assert listed.examples == ["line 7: 'not'"]
    assert (len(fed.networks), len(fed.domains), fed.invalid, fed.unsupported) == (1, 2, 1, 1)
    assert fed.examples == ["line 6: 'md5: d41d8cd98f00b204e9800998ecf8427e'",
                            "line 7: ',domain,feedco,,empty indicator'"]
    skipped = [(r.invalid, r.unsupported_type) for r in caplog.records]  # type: ignore[attr-defined]
    assert skipped == [(1, 0), (1, 1)]


def test_type_option_forces_domains(tmp_path: Path) -> None:
    path = write(tmp_path / "domains.txt", "1.2.3.4\nexample.org\n")
    parsed = read_indicator_file(path, IndicatorFileConfig(path=path, type="domain",
                                                           provider="p", confidence="50"))
    assert [d for d, _ in parsed.domains] == ["1.2.3.4", "example.org"]
    assert parsed.domains[0][1].confidence == "50" and not parsed.networks


def test_reload_when_a_file_changes(files, make_step) -> None:
    ips, feed = files
    step = intel(make_step)
    assert "threat.indicator.name" not in step.apply({"source.ip": "192.0.2.99"})
    step.apply({"source.ip": "203.0.113.66"})  # cached as a match
    step.maintain()
    assert [f.reloads for f in step.files] == [0, 0]
    ips.write_text("192.0.2.99 # new entry\n")
    step.maintain()
    assert [f.reloads for f in step.files] == [1, 0]
    assert step.apply({"source.ip": "192.0.2.99"})["threat.indicator.description"] == "new entry"
    assert "threat.enrichments.matched" not in step.apply({"source.ip": "203.0.113.66"})
    assert step.apply({"url.domain": "evil.example"})["threat.enrichments.matched"] is True


def test_invalid_reload_keeps_the_previous_indicators(files, make_step,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    _, feed = files
    step = intel(make_step)
    feed.write_text("domain,kind\nevil.example,domain\n")
    with caplog.at_level(logging.ERROR, logger="core.reloading"):
        step.maintain()
        step.maintain()
    assert (step.files[1].reloads, step.files[1].reload_errors) == (0, 1)
    (record,) = [r for r in caplog.records if r.name == "core.reloading"]
    assert record.error == (  # type: ignore[attr-defined]
        f"indicator file {feed} has no 'indicator' column in its header (expected "
        "indicator,type,provider,confidence,description; found domain,kind)")
    assert step.apply({"url.domain": "x.evil.example"})["threat.indicator.provider"] == "feedco"


def test_located_validation_errors(tmp_path: Path, files, config_errors) -> None:
    write(tmp_path / "headless.csv", "1.2.3.4,ip\n")
    found = config_errors("""
    pipelines:
      fw:
        dataset: fw
        steps:
          - type: threat_intel
            files:
              - bad-ips.txt
              - missing.txt
              - {path: headless.csv}
          - type: threat_intel
            files: []
          - type: threat_intel
            files: [{path: feed.csv, format: stix}]
    """)
    path = tmp_path / "30-pipelines.yaml"
    assert found == [
        f"{path}:8:13: pipelines.fw.steps[0].files[1].path: indicator file not found: "
        f"{tmp_path / 'missing.txt'}",
        f"{path}:9:20: pipelines.fw.steps[0].files[2].path: indicator file "
        f"{tmp_path / 'headless.csv'} has no 'indicator' column in its header (expected "
        "indicator,type,provider,confidence,description; found 1.2.3.4,ip)",
        f"{path}:11:16: pipelines.fw.steps[1].files: List should have at least 1 item after "
        "validation, not 0",
        f"{path}:13:42: pipelines.fw.steps[2].files[0].format: Input should be 'auto', 'list' "
        "or 'csv'",
    ]


def linear_match(networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
                 address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """The obvious answer: scan every network, keep the longest prefix containing the address
    (an IPv4-mapped IPv6 address counts as its IPv4 address)."""
    if address.version == 6 and address.ipv4_mapped is not None:  # type: ignore[union-attr]
        address = address.ipv4_mapped  # type: ignore[union-attr]
    best = None
    for network in networks:
        if address.version == network.version and address in network and \
                (best is None or network.prefixlen > best.prefixlen):
            best = network
    if best is None:
        return None
    return str(best.network_address) if best.num_addresses == 1 else str(best)


v4_networks = st.builds(lambda a, p: ipaddress.ip_network(f"{a}/{p}", strict=False),
                        st.ip_addresses(v=4), st.integers(8, 32))
# Lists give IPv4-mapped addresses as IPv4 (classify converts them), so the index never holds
# an IPv6 network over ::ffff:0:0/96.
MAPPED = ipaddress.ip_network("::ffff:0:0/96")
v6_networks = st.builds(lambda a, p: ipaddress.ip_network(f"{a}/{p}", strict=False),
                        st.ip_addresses(v=6), st.integers(16, 128)).filter(
                            lambda n: not n.overlaps(MAPPED))


@settings(max_examples=200, deadline=None)
@given(st.lists(v4_networks | v6_networks, min_size=1, max_size=30),
       st.lists(st.ip_addresses(), max_size=20), st.data())
def test_bucketed_lookup_equals_a_linear_scan(networks, addresses, data) -> None:
    from enrichers.threat_intel import Indicator
    parsed = IndicatorFile(networks=[
        (n, Indicator("ip", str(n.network_address) if n.num_addresses == 1 else str(n)))
        for n in networks])
    index = IndicatorIndex([parsed])
    # Addresses inside the listed networks too, not only random ones.
    addresses += [data.draw(st.sampled_from(list(n.hosts()) if n.num_addresses <= 256 else
                                            [n.network_address, n.broadcast_address]))
                  for n in networks]
    first_listed: dict[ipaddress.IPv4Network | ipaddress.IPv6Network, None] = {}
    for n in networks:
        first_listed.setdefault(n, None)
    for address in addresses:
        found = index.match_ip(str(address))
        expected = linear_match(list(first_listed), address)
        assert (found.name if found else None) == expected


weird = st.one_of(st.text(max_size=30), st.integers(), st.none(), st.floats(),
                  st.lists(st.one_of(st.text(max_size=10), st.integers()), max_size=3),
                  st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
                  st.ip_addresses().map(str),
                  st.sampled_from(["evil.example", "..", ".", "a..evil.example", "203.0.113.66",
                                   "198.51.100.0/25", "*.evil.example", "x" * 300]))


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["source.ip", "destination.ip", "url.domain",
                                        "dns.question.name", "destination.domain"]), weird))
def test_no_event_makes_it_raise(files, make_step, event: dict) -> None:
    step = intel(make_step, cache_size=8)
    out = step.apply(event)
    assert out is event
