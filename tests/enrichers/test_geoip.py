"""The geoip step against real .mmdb files written with mmdb-writer: exact fields, skipped
addresses, the cache, reloads, located validation errors, and weird events."""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
from pathlib import Path

import geoip2.database
import maxminddb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.config import load_config
from collector.pipeline.runner import build_pipelines
from core.config import ValidationContext
from enrichers.geoip import GeoipStep
from enrichers.geoip_testdb import (
    ASN_FILE,
    ASN_RECORDS,
    CITY_FILE,
    CITY_RECORDS,
    city_record,
    write_city_database,
)

REPO = Path(__file__).resolve().parents[2]

LONDON = {
    "source.geo.country_iso_code": "GB", "source.geo.country_name": "United Kingdom",
    "source.geo.city_name": "London", "source.geo.region_name": "England",
    "source.geo.location.lat": 51.5142, "source.geo.location.lon": -0.0931,
    "source.as.number": 64496, "source.as.organization.name": "Example Transit Ltd",
}


@pytest.fixture
def dbs(tmp_path: Path, geoip_dir: Path) -> Path:
    """Private copies under conf.d/geoip (tests rewrite them)."""
    target = tmp_path / "geoip"
    shutil.copytree(geoip_dir, target)
    return target


def geoip(make_step, **spec) -> GeoipStep:
    spec = {"type": "geoip", "city_database": f"geoip/{CITY_FILE}",
            "asn_database": f"geoip/{ASN_FILE}", **spec}
    step = make_step(spec)
    assert isinstance(step, GeoipStep)
    return step


def enriched(step: GeoipStep, **fields: object) -> dict:
    return step.apply({k.replace("_", "."): v for k, v in fields.items()})


def test_exact_fields_for_public_addresses(dbs: Path, make_step) -> None:
    step = geoip(make_step)
    assert enriched(step, source_ip="81.2.69.142") == {"source.ip": "81.2.69.142", **LONDON}
    event = enriched(step, source_ip="2001:480::1", destination_ip="89.160.20.112")
    assert event == {
        "source.ip": "2001:480::1", "destination.ip": "89.160.20.112",
        "source.geo.country_iso_code": "US", "source.geo.country_name": "United States",
        "source.geo.city_name": "San Diego", "source.geo.region_name": "California",
        "source.geo.location.lat": 32.7203, "source.geo.location.lon": -117.1552,
        "source.as.number": 64499, "source.as.organization.name": "Example IPv6 Networks",
        "destination.geo.country_iso_code": "SE", "destination.geo.country_name": "Sweden",
        "destination.geo.city_name": "Linköping",
        "destination.geo.region_name": "Östergötland County",
        "destination.geo.location.lat": 58.4167, "destination.geo.location.lon": 15.6167,
        "destination.as.number": 64497, "destination.as.organization.name": "Example Nordic AB",
    }
    # Partial records write only what they hold.
    assert enriched(step, source_ip="2a02:cf40::7") == {
        "source.ip": "2a02:cf40::7", "source.geo.country_iso_code": "NO",
        "source.geo.country_name": "Norway"}
    assert enriched(step, source_ip="1.130.4.5") == {
        "source.ip": "1.130.4.5", "source.as.number": 64500,
        "source.as.organization.name": "Example Mobile Pty"}
    # An IPv4-mapped IPv6 address is looked up as its IPv4 address.
    assert enriched(step, source_ip="::ffff:81.2.69.142") == {
        "source.ip": "::ffff:81.2.69.142", **LONDON}
    assert step.counts.enriched == 6


@pytest.mark.parametrize("address", [
    "10.1.2.3", "172.16.0.1", "192.168.1.1", "127.0.0.1", "::1", "169.254.10.1", "fe80::1",
    "224.0.0.251", "ff02::1", "240.0.0.1", "255.255.255.255", "0.0.0.0", "100.64.0.1",
    "fc00::1", "::ffff:10.0.0.1",
    # In the test database, but a documentation network: skipped before any lookup.
    "198.51.100.7",
])
def test_non_public_addresses_are_skipped_and_counted(dbs: Path, make_step,
                                                      address: str) -> None:
    step = geoip(make_step)
    assert enriched(step, source_ip=address) == {"source.ip": address}
    assert step.counts.not_public == 1 and step.counts.enriched == 0


def test_invalid_and_unknown_addresses_pass_unchanged(dbs: Path, make_step) -> None:
    step = geoip(make_step)
    for value in ("not-an-ip", "", "-", "81.2.69.300", "010.1.1.1"):
        assert enriched(step, source_ip=value) == {"source.ip": value}
    assert enriched(step, source_ip=42) == {"source.ip": 42}
    assert enriched(step, source_ip="8.8.8.8") == {"source.ip": "8.8.8.8"}
    assert enriched(step, message="no ip fields") == {"message": "no ip fields"}
    assert (step.counts.invalid, step.counts.not_found, step.counts.enriched) == (6, 1, 0)


def test_fields_as_a_map_name_the_prefix(dbs: Path, make_step) -> None:
    step = geoip(make_step, fields={"client.address": "client"}, asn_database=None)
    assert enriched(step, client_address="81.2.69.142")["client.geo.city_name"] == "London"
    assert "client.as.number" not in enriched(step, client_address="81.2.69.142")


def test_cache_hits_and_eviction(dbs: Path, make_step) -> None:
    step = geoip(make_step, cache_size=2)
    for address in ("81.2.69.1", "81.2.69.1", "10.0.0.1", "81.2.69.1"):
        step.apply({"source.ip": address})
    info = step.lookup.cache_info()  # type: ignore[attr-defined]
    assert (info.hits, info.misses, info.currsize) == (2, 2, 2)
    step.apply({"source.ip": "89.160.20.1"})  # evicts 10.0.0.1, the least recently used
    step.apply({"source.ip": "10.0.0.1"})
    info = step.lookup.cache_info()  # type: ignore[attr-defined]
    assert (info.hits, info.misses) == (2, 4)
    # Counts are the same whether a result came from the cache or the database.
    assert (step.counts.enriched, step.counts.not_public) == (4, 2)
    uncached = geoip(make_step, cache_size=0)
    assert not hasattr(uncached.lookup, "cache_info")
    assert enriched(uncached, source_ip="81.2.69.1")["source.geo.city_name"] == "London"


def test_a_batch_looks_each_distinct_address_up_once(dbs: Path, make_step,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    step = geoip(make_step, cache_size=0)
    looked_up: list[str] = []
    real = step.lookup

    def counting(text: str):  # type: ignore[no-untyped-def]
        looked_up.append(text)
        return real(text)

    monkeypatch.setattr(step, "lookup", counting)
    addresses = ["81.2.69.142", "10.0.0.1", "81.2.69.142", "not-an-ip", "81.2.69.142",
                 "10.0.0.1", "89.160.20.112"]
    events = [{"source.ip": a} for a in addresses] + [{"source.ip": 7}, {"message": "x"}]
    result = step.apply_batch(events)
    assert sorted(looked_up) == sorted({"81.2.69.142", "10.0.0.1", "not-an-ip",
                                        "89.160.20.112"})
    assert result.failures == {} and result.kept == events
    # The same values and counts as one event at a time.
    alone = geoip(make_step, cache_size=0)
    assert events == [alone.apply({**{"source.ip": a}}) for a in addresses] + [
        alone.apply({"source.ip": 7}), alone.apply({"message": "x"})]
    assert step.counts == alone.counts


def test_ipv4_public_ranges_answer_as_the_standard_library() -> None:
    import ipaddress
    import random

    from enrichers.geoip import _V4_STARTS, is_public

    rng = random.Random(15)
    values = [start + delta for start in _V4_STARTS for delta in (-1, 0, 1)]
    values += [rng.getrandbits(32) for _ in range(20_000)]
    for value in values:
        if 0 <= value < 2 ** 32:
            address = ipaddress.IPv4Address(value)
            assert is_public(address) is (address.is_global and not address.is_multicast)


def test_reload_when_the_database_is_replaced(dbs: Path, make_step) -> None:
    step = geoip(make_step)
    assert enriched(step, source_ip="81.2.69.142")["source.geo.city_name"] == "London"
    step.maintain()  # unchanged file: nothing happens
    assert step.databases["city_database"].reloads == 0
    records = [("81.2.69.0/24", city_record("GB", "United Kingdom", city="Londinium"))]
    write_city_database(dbs / CITY_FILE, records)  # written aside and renamed, like geoipupdate
    step.maintain()
    assert step.databases["city_database"].reloads == 1
    # The cached London result is gone with the old database.
    assert enriched(step, source_ip="81.2.69.142")["source.geo.city_name"] == "Londinium"
    assert "source.geo.city_name" not in enriched(step, source_ip="89.160.20.1")


def test_invalid_replacement_keeps_the_old_database(dbs: Path, make_step,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    step = geoip(make_step)
    broken = dbs / "broken.tmp"
    broken.write_bytes(b"this is not a MaxMind database")
    os.replace(broken, dbs / CITY_FILE)
    with caplog.at_level(logging.ERROR, logger="core.reloading"):
        step.maintain()
        step.maintain()  # the same broken file is reported once
    loaded = step.databases["city_database"]
    assert (loaded.reloads, loaded.reload_errors) == (0, 1)
    (record,) = [r for r in caplog.records if r.name == "core.reloading"]
    assert record.error == f"not a valid MaxMind DB file: {dbs / CITY_FILE}"  # type: ignore[attr-defined]
    assert enriched(step, source_ip="81.2.69.142")["source.geo.city_name"] == "London"
    (dbs / CITY_FILE).unlink()  # a vanished file keeps the old database too
    step.maintain()
    assert loaded.reload_errors == 2
    write_city_database(dbs / CITY_FILE)
    step.maintain()
    assert loaded.reloads == 1


def test_memory_mode_reads_the_same(dbs: Path, make_step) -> None:
    step = geoip(make_step, mode="memory")
    assert enriched(step, source_ip="81.2.69.142") == {"source.ip": "81.2.69.142", **LONDON}


def test_builder_output_reads_back_with_maxminddb_and_geoip2(geoip_dir: Path) -> None:
    """Every record the builder writes is what maxminddb returns and what geoip2's models see."""
    with maxminddb.open_database(str(geoip_dir / CITY_FILE)) as reader, \
            geoip2.database.Reader(str(geoip_dir / CITY_FILE)) as city:
        assert reader.metadata().database_type == "GeoLite2-City"
        for network, record in CITY_RECORDS:
            address = str(ipaddress.ip_network(network)[1])
            assert reader.get(address) == record
            model = city.city(address)
            assert model.country.iso_code == record["country"]["iso_code"]
            assert model.city.name == record.get("city", {}).get("names", {}).get("en")
    with geoip2.database.Reader(str(geoip_dir / ASN_FILE)) as asn:
        for network, record in ASN_RECORDS:
            found = asn.asn(network.split("/")[0])
            assert found.autonomous_system_number == record["autonomous_system_number"]
            assert found.autonomous_system_organization == \
                record["autonomous_system_organization"]
            assert found.network is not None and str(found.network) == network


def test_shipped_example_databases_match_the_builder() -> None:
    """conf.d/enrich/geoip holds what `python -m enrichers.geoip_testdb` writes."""
    shipped = REPO / "conf.d" / "enrich" / "geoip"
    for name, records in ((CITY_FILE, CITY_RECORDS), (ASN_FILE, ASN_RECORDS)):
        with maxminddb.open_database(str(shipped / name)) as reader:
            for network, record in records:
                assert reader.get_with_prefix_len(network.split("/")[0]) == \
                    (record, int(network.split("/")[1]))


def test_missing_and_invalid_databases_are_located_errors(tmp_path: Path, dbs: Path,
                                                          config_errors) -> None:
    (tmp_path / "geoip" / "junk.mmdb").write_text("junk")
    found = config_errors(f"""
    pipelines:
      web:
        dataset: web.access
        steps:
          - type: geoip
            city_database: geoip/nope.mmdb
          - type: geoip
            city_database: geoip/junk.mmdb
            asn_database: geoip/{CITY_FILE}
          - type: geoip
            city_database: geoip
          - type: geoip
            city_database: geoip/{CITY_FILE}
            fields: []
          - type: geoip
    """)
    path, geo = tmp_path / "30-pipelines.yaml", tmp_path / "geoip"
    assert found == [
        f"{path}:6:24: pipelines.web.steps[0].city_database: GeoIP database not found: "
        f"{geo / 'nope.mmdb'}",
        f"{path}:8:24: pipelines.web.steps[1].city_database: not a valid MaxMind DB file: "
        f"{geo / 'junk.mmdb'}",
        f"{path}:9:23: pipelines.web.steps[1].asn_database: {geo / CITY_FILE} is a "
        "'GeoLite2-City' database; asn_database needs an ASN or ISP database",
        f"{path}:11:24: pipelines.web.steps[2].city_database: GeoIP database is not a file: "
        f"{geo}",
        f"{path}:14:17: pipelines.web.steps[3].fields: name at least one IP field",
        f"{path}:15:9: pipelines.web.steps[4]: give `city_database`, `asn_database` or both",
    ]


def test_in_a_pipeline(tmp_path: Path, dbs: Path) -> None:
    (tmp_path / "30-pipelines.yaml").write_text(f"""
pipelines:
  fw:
    dataset: fw
    steps:
      - {{type: geoip, city_database: geoip/{CITY_FILE}, asn_database: geoip/{ASN_FILE}}}
""")
    config = load_config(tmp_path)
    pipelines = build_pipelines(config.pipelines.items(), ValidationContext(tmp_path),
                                data_dir=tmp_path)
    from core.events import Batch
    (out,) = pipelines.process(Batch("t", [{"source.ip": "81.2.69.9", "destination.ip": "x"}],
                                     0, 0))
    (event,) = out.events
    assert event["source.geo.city_name"] == "London" and "destination.geo.city_name" not in event
    pipelines.maintain()
    pipelines.close()


ip_like = st.one_of(
    st.ip_addresses().map(str), st.text(max_size=40),
    st.sampled_from(["81.2.69.142", "::ffff:81.2.69.1", "2001:480::", "1.128.0.0", " 81.2.69.1 ",
                     "fe80::1%eth0", "81.2.69.142/24", "[::1]"]),
    st.integers(), st.none(), st.floats(), st.binary(max_size=8), st.lists(st.text(), max_size=2))


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["source.ip", "destination.ip", "message"]), ip_like))
def test_no_event_makes_it_raise(dbs: Path, make_step, event: dict) -> None:
    step = geoip(make_step, cache_size=16)
    before = dict(event)
    out = step.apply(event)
    assert out is event
    assert all(out[k] == v or v != v for k, v in before.items())  # inputs untouched (NaN != NaN)
    assert all(k in before or ".geo." in k or ".as." in k for k in out)
