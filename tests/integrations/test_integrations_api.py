"""/api/v1/integrations over HTTP on a real control listener: the map of a tenant from its
coverage and lake, the plan's CRUD with the triage permission (client viewers read only),
another tenant's map and plan entries answering 404 (audited, forged tenant fields included),
and the CSV / JSON export."""

from __future__ import annotations

import csv
import io
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


def _category(listing: dict, category_id: str) -> dict:
    return next(c for c in listing["categories"] if c["id"] == category_id)


def _audited(records: list[dict], action: str) -> list[dict]:
    return [r for r in records if r["action"] == action]


async def _platform_audit(api: Api) -> list[dict]:
    status, audit = await api.call("GET", "/audit?tenant=_platform&limit=1000", "admin")
    assert status == 200
    return list(audit["items"])


async def test_the_map_shows_a_category_present_from_the_tenants_data(api: Api) -> None:
    status, listing = await api.call("GET", "/integrations?tenant=acme", "ana")
    assert status == 200, listing
    assert [c["id"] for c in listing["categories"]] == [
        "perimeter_security", "authentication", "endpoints", "network",
        "business_applications", "cloud", "threat_intelligence"]
    assert {c["state"] for c in listing["categories"]} == {"missing"}
    perimeter = _category(listing, "perimeter_security")
    assert "FortiGate" in perimeter["examples"] and perimeter["priority"] == "high"
    assert set(perimeter["frameworks"]) >= {"ISO 27001", "PCI DSS", "ENS", "GDPR", "NIST CSF"}
    # Missing, it would switch the firewall dashboard on (the library's requirements).
    assert {"id": "firewall", "title": "Firewall and network traffic"} in \
        perimeter["would_switch_on"]["dashboard_names"]
    now = api.clock()
    save_coverage(api.alerting.data_dir, "acme", "fortinet.firewall", FIREWALL_FIELDS,
                  events=700, now=now)
    write_firewall(api.alerting.data_dir / "lake", "acme", now - timedelta(days=1), 30,
                   "198.51.100")
    write_firewall(api.alerting.data_dir / "lake", "bravo", now - timedelta(days=5), 9, "203.0.113")
    status, listing = await api.call("GET", "/integrations?tenant=acme", "ana")
    perimeter = _category(listing, "perimeter_security")
    # No rules in this harness read fortinet.firewall: data arrives that nothing reads yet.
    assert perimeter["state"] == "unread"
    (dataset,) = perimeter["datasets"]
    assert dataset["dataset"] == "fortinet.firewall" and dataset["events_window"] == 700
    assert dataset["present_since"] == (now - timedelta(days=1)).date().isoformat()  # acme's
    assert dataset["last_seen"] is not None
    assert dataset["events_per_day"] == 350.0  # 700 over the two days since it appeared
    assert {"id": "firewall", "title": "Firewall and network traffic"} in \
        perimeter["active_dashboards"]


async def test_plan_entries_are_created_changed_deleted_and_audited(api: Api) -> None:
    entry = {"tenant": "acme", "category": "authentication", "product": "Entra ID sign-ins",
             "target_date": "2027-01-15", "owner": "ACME IT (Marta)", "notes": "via Event Hubs"}
    status, created = await api.call("POST", "/integrations/plan", "ana", json=entry)
    assert status == 201, created
    assert created["status"] == "planned" and created["created_by"] == "ana"
    status, changed = await api.call("PUT", f"/integrations/plan/{created['id']}", "ciso",
                                     json={**entry, "status": "in_progress"})
    assert status == 200 and changed["status"] == "in_progress"
    assert changed["updated_by"] == "ciso"
    status, listing = await api.call("GET", "/integrations?tenant=acme", "viewer")
    assert status == 200 and [e["id"] for e in listing["plan"]] == [created["id"]]
    # A client viewer reads the plan but never changes it.
    status, refused = await api.call("POST", "/integrations/plan", "viewer", json=entry)
    assert status == 403
    status, _ = await api.call("DELETE", f"/integrations/plan/{created['id']}?tenant=acme",
                               "ana")
    assert status == 200
    status, audit = await api.call("GET", "/audit?tenant=acme&limit=1000", "admin")
    actions = [(r["actor"], r["action"]) for r in audit["items"]
               if r["action"].startswith("integration")]
    assert actions == [("ana", "integration_planned"), ("ciso", "integration_plan_changed"),
                       ("ana", "integration_plan_removed")]
    changed_record = _audited(audit["items"], "integration_plan_changed")[0]
    assert (changed_record["before"]["status"], changed_record["after"]["status"]) == \
        ("planned", "in_progress")


async def test_another_tenants_map_and_plan_are_404_and_audited(api: Api) -> None:
    bravo = {"tenant": "bravo", "category": "cloud", "product": "AWS CloudTrail"}
    status, entry = await api.call("POST", "/integrations/plan", "ciso", json=bravo)
    assert status == 201
    denied = [
        await api.call("GET", "/integrations?tenant=bravo", "ana"),
        await api.call("POST", "/integrations/plan", "ana", json=bravo),
        await api.call("PUT", f"/integrations/plan/{entry['id']}", "ana", json=bravo),
        await api.call("DELETE", f"/integrations/plan/{entry['id']}?tenant=bravo", "ana"),
        await api.call("GET", "/integrations/plan/export?tenant=bravo", "ana"),
    ]
    assert denied == [(404, {"error": "tenant 'bravo' not found"})] * 5
    # The forged form: bravo's entry under acme, a tenant ana has, is not found either.
    forged = await api.call("PUT", f"/integrations/plan/{entry['id']}", "ana",
                            json={**bravo, "tenant": "acme"})
    assert forged == (404, {"error": "plan entry not found"})
    records = await _platform_audit(api)
    assert [(r["actor"], r["after"]["tenant"], r["after"]["method"])
            for r in _audited(records, "integration_denied")] == [
        ("ana", "bravo", "GET"), ("ana", "bravo", "POST"), ("ana", "bravo", "PUT"),
        ("ana", "bravo", "DELETE"), ("ana", "bravo", "GET")]
    assert [(r["actor"], r["after"]["entry"]) for r in
            _audited(records, "integration_plan_not_found")] == [("ana", entry["id"])]
    status, listing = await api.call("GET", "/integrations?tenant=bravo", "ciso")
    assert status == 200 and listing["plan"][0]["product"] == "AWS CloudTrail"  # unchanged


async def test_a_plan_entry_needs_a_known_category(api: Api) -> None:
    status, body = await api.call("POST", "/integrations/plan", "ana", json={
        "tenant": "acme", "category": "mainframes", "product": "z/OS"})
    assert status == 400 and body["error"].startswith("unknown category 'mainframes'; one of:")


async def test_the_plan_exports_as_csv_and_json(api: Api) -> None:
    for product, day in (("FortiGate 100F HQ", "2027-02-01"), ("=HYPERLINK(\"x\")", None)):
        status, _ = await api.call("POST", "/integrations/plan", "ana", json={
            "tenant": "acme", "category": "perimeter_security", "product": product,
            "target_date": day, "owner": "NOC"})
        assert status == 201
    async with api.session.get(f"{api.base}/api/v1/integrations/plan/export?tenant=acme",
                               headers={"Authorization": f"Bearer {api.tokens['viewer']}"}
                               ) as response:
        assert response.status == 200
        assert response.content_type == "text/csv"
        assert 'filename="integration-plan-acme-' in response.headers["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert [(r["category_name"], r["product"], r["target_date"]) for r in rows] == [
        ("perimeter security", "FortiGate 100F HQ", "2027-02-01"),
        ("perimeter security", "'=HYPERLINK(\"x\")", "")]  # never a formula
    status, exported = await api.call("GET", "/integrations/plan/export?tenant=acme&format=json",
                                      "viewer")
    assert status == 200 and exported["tenant"] == "acme"
    assert [e["product"] for e in exported["entries"]] == ["FortiGate 100F HQ",
                                                           "=HYPERLINK(\"x\")"]
