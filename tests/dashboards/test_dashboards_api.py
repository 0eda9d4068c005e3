"""/api/v1/dashboards and /api/v1/posture over HTTP on a real control listener: a dashboard
switches on when the tenant's coverage has the fields, panels read only the caller's tenant's
partitions, another tenant's dashboards, data and saved dashboards answer 404 (audited), and
saved panel SQL that names a path or a table function is refused (audited)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from api.harness import Api, serve_api
from support.lakes import FIREWALL_FIELDS, save_coverage, write_firewall


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serve_api(tmp_path) as harness:
        yield harness


def _data(api: Api) -> Path:
    return api.alerting.data_dir


def _item(listing: dict, dashboard_id: str) -> dict:
    return next(i for i in listing["items"] if i["id"] == dashboard_id)


async def test_a_dashboard_switches_on_when_firewall_fields_arrive(api: Api) -> None:
    status, listing = await api.call("GET", "/dashboards?tenant=acme", "ana")
    assert status == 200
    firewall = _item(listing, "firewall")
    assert not firewall["active"]
    assert firewall["reason"].startswith("waiting for a firewall dataset (")
    assert _item(listing, "sla_operations")["active"]
    status, closed = await api.call("GET", "/dashboards/firewall?tenant=acme", "ana")
    assert status == 200 and closed["results"] == []  # inactive: nothing is run
    now = api.clock()
    save_coverage(_data(api), "acme", "fortinet.firewall", ("source.ip", "destination.ip"),
                  now=now)
    status, listing = await api.call("GET", "/dashboards?tenant=acme", "ana")
    assert _item(listing, "firewall")["reason"] == \
        "waiting for `destination.port` in fortinet.firewall"
    save_coverage(_data(api), "acme", "fortinet.firewall", FIREWALL_FIELDS, now=now)
    lake = _data(api) / "lake"
    write_firewall(lake, "acme", now - timedelta(hours=12), 30, "198.51.100")
    write_firewall(lake, "bravo", now - timedelta(hours=12), 700, "203.0.113")
    status, listing = await api.call("GET", "/dashboards?tenant=acme", "ana")
    firewall = _item(listing, "firewall")
    assert firewall["active"] and firewall["datasets"] == ["fortinet.firewall"]
    status, shown = await api.call("GET", "/dashboards/firewall?tenant=acme&since=2d", "ana")
    assert status == 200, shown
    panels = {p["id"]: p for p in shown["results"]}
    assert panels["connections"]["rows"] == [[30]]  # acme's 30 rows, never bravo's 700
    sources = [row[0] for row in panels["top_sources"]["rows"]]
    assert sources and all(s.startswith("198.51.100.") for s in sources)
    assert {row[0] for row in panels["sources_by_country"]["rows"]} == {"FR", "US"}
    assert [(p["id"], p.get("error")) for p in shown["results"] if p.get("error")] == []
    status, ops = await api.call("GET", "/dashboards/sla_operations?tenant=acme&since=7d",
                                 "ana")
    assert {p["id"]: p["rows"] for p in ops["results"]}["open_alerts"] == [[3]]


async def test_another_tenants_dashboards_are_404_and_audited(api: Api) -> None:
    write_firewall(_data(api) / "lake", "bravo", api.clock() - timedelta(hours=1), 50, "203.0.113")
    unknown = await api.call("GET", "/dashboards?tenant=nosuch", "ana")
    assert unknown == (404, {"error": "tenant 'nosuch' not found"})
    for path in ("/dashboards?tenant=bravo", "/dashboards/firewall?tenant=bravo",
                 "/posture?tenant=bravo"):
        status, body = await api.call("GET", path, "ana")
        assert (status, body) == (404, {"error": "tenant 'bravo' not found"}), path
    status, audit = await api.call("GET", "/audit?tenant=_platform&limit=1000", "admin")
    denied = [r for r in audit["items"] if r["action"] == "dashboard_denied"]
    assert [(r["actor"], r["after"]["tenant"]) for r in denied] == [("ana", "nosuch")] + \
        [("ana", "bravo")] * 3
    status, _ = await api.call("GET", "/dashboards/firewall?tenant=bravo", "ciso")
    assert status == 200  # a user of both tenants sees bravo


async def test_saved_dashboards_stay_in_their_tenant(api: Api) -> None:
    panel = {"id": "n", "title": "Alerts", "kind": "stat",
             "sql": "SELECT count(*) AS n FROM alert_store"}
    status, mine = await api.call("POST", "/dashboards", "ana", json={
        "tenant": "acme", "title": "Acme alerts", "panels": [panel]})
    assert status == 201 and mine["origin"] == "user" and mine["owner"] == "ana"
    status, theirs = await api.call("POST", "/dashboards", "ciso", json={
        "tenant": "bravo", "title": "Bravo alerts", "panels": [panel]})
    assert status == 201
    status, listing = await api.call("GET", "/dashboards?tenant=acme", "ana")
    ids = {i["id"] for i in listing["items"]}
    assert mine["id"] in ids and theirs["id"] not in ids
    status, shown = await api.call("GET", f"/dashboards/{mine['id']}?tenant=acme", "ana")
    assert shown["results"][0]["rows"] == [[3]]  # acme's three alerts, not bravo's two
    status, shown = await api.call("GET", f"/dashboards/{theirs['id']}?tenant=bravo", "ciso")
    assert shown["results"][0]["rows"] == [[2]]
    missing = (404, {"error": "dashboard not found"})
    assert await api.call("GET", f"/dashboards/{theirs['id']}?tenant=acme", "ana") == missing
    gone = (404, {"error": "dashboard not found (only saved dashboards change)"})
    assert await api.call("DELETE", f"/dashboards/{theirs['id']}?tenant=acme", "ana") == gone
    assert await api.call("PUT", f"/dashboards/{theirs['id']}", "ana", json={
        "tenant": "acme", "title": "x", "panels": [panel]}) == gone
    assert (await api.call("DELETE", f"/dashboards/{theirs['id']}?tenant=bravo", "ana"))[0] \
        == 404
    assert (await api.call("POST", "/dashboards", "viewer", json={
        "tenant": "acme", "title": "x", "panels": [panel]}))[0] == 403
    status, body = await api.call("PUT", f"/dashboards/{mine['id']}", "ana", json={
        "tenant": "acme", "title": "Renamed", "panels": [panel],
        "requires": {"fortinet.firewall": ["destination.port"]}})
    assert (status, body["title"], body["active"]) == (200, "Renamed", False)
    assert body["reason"] == "waiting for one of the datasets (fortinet.firewall)"
    status, body = await api.call("PUT", f"/dashboards/{mine['id']}", "ana", json={
        "tenant": "acme", "title": "Renamed", "panels": [panel], "requires": {"../x": ["a"]}})
    assert status == 400 and body["detail"][0]["loc"] == ["body", "requires"]
    assert await api.call("DELETE", f"/dashboards/{mine['id']}?tenant=acme", "ana") == \
        (200, {"id": mine["id"], "deleted": True})
    status, audit = await api.call("GET", "/audit?tenant=acme&limit=1000", "ana")
    assert [r["action"] for r in audit["items"] if r["action"].startswith("dashboard")] == [
        "dashboard_created", "dashboard_updated", "dashboard_deleted"]
    assert (await api.call("GET", f"/dashboards/{mine['id']}?tenant=acme", "ana"))[0] == 404


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_parquet('/var/lib/vigil/lake/fortinet.firewall/tenant=bravo/*/*/*')",
    "SELECT * FROM '../lake/fortinet.firewall/tenant=bravo/date=2026-01-01/hour=00/x.parquet'",
    "SELECT 1; SELECT 2",
    "SET enable_external_access = true",
    "SELECT * FROM glob('/etc/*')",
])
async def test_saved_panel_sql_that_reads_files_is_refused(api: Api, sql: str) -> None:
    status, body = await api.call("POST", "/dashboards", "ana", json={
        "tenant": "acme", "title": "Escape", "panels": [
            {"id": "x", "title": "X", "kind": "table", "sql": sql}]})
    assert status == 400 and body["error"] == "panel SQL refused", body
    assert body["detail"][0]["loc"] == ["body", "panels", 0, "sql"]
    status, audit = await api.call("GET", "/audit?tenant=acme&limit=1000", "ana")
    assert [r["action"] for r in audit["items"]][-1] == "dashboard_refused"
    status, listing = await api.call("GET", "/dashboards?tenant=acme", "ana")
    assert not [i for i in listing["items"] if i["origin"] == "user"]


async def test_posture_of_a_tenant(api: Api) -> None:
    now = api.clock()
    save_coverage(_data(api), "acme", "fortinet.firewall", FIREWALL_FIELDS, now=now)
    write_firewall(_data(api) / "lake", "acme", now - timedelta(days=3), 10, "198.51.100")
    status, body = await api.call("GET", "/posture?tenant=acme", "ana")
    assert status == 200, body
    assert body["open_by_severity"] == {"informational": 0, "low": 1, "medium": 0, "high": 1,
                                        "critical": 1}
    assert body["open_total"] == 3 and body["trend"]["7d"]["total"] == 3
    assert len(body["trend"]["90d"]["daily"]) == 90
    assert body["top_rules"] == [{"rule_id": "ssh_brute_force", "rule_name": body["top_rules"]
                                  [0]["rule_name"], "alerts": 3}]
    assert {r["severity"] for r in body["sla_30d"]} == {"critical", "high", "low", "all"}
    assert set(body["sla_targets"]) == {"informational", "low", "medium", "high", "critical"}
    assert body["attack_matrix"] == [{"tactic": "credential-access", "techniques": [
        {"technique": "T1110", "alerts": 3}]}]
    sources = {d["dataset"]: d for d in body["data_sources"]}
    assert sources["fortinet.firewall"]["events"] == 10
    assert sources["fortinet.firewall"]["last_seen"] is not None
