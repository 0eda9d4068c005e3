"""The posture and dashboard pages over HTTP against a real daemon: each tenant's pages for its
users only (another tenant's posture, library or dashboard is a 404, audited), the library's
inactive reasons, saved dashboards made, changed and deleted through the plain HTML form (CSRF
checked; a forged tenant field refused and audited; panel SQL naming a file or another tenant's
path refused with the sandbox's message and audited)."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from console.kit import Browser, ConsoleDaemon

from soc.dashboards.saved import SavedDashboards


def signed_in(console: ConsoleDaemon, role: str, tenants: list[str]) -> Browser:
    browser = Browser(console)
    assert browser.sign_in(console.user(role, tenants)).status_code == 303
    return browser


def panel_form(tenant: str, title: str, sql: str, **extra: Any) -> dict[str, Any]:
    return {"tenant": tenant, "title": title, "category": "custom", "requires": "",
            "panel-0-id": "alerts", "panel-0-title": "Alerts", "panel-0-kind": "stat",
            "panel-0-sql": sql, "panel-0-limit": "20", **extra}


def text_of(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


def saved_titles(console: ConsoleDaemon, tenant: str) -> list[str]:
    store = SavedDashboards(console.store.db, lambda: None)  # type: ignore[arg-type,return-value]
    from soc.alerts.model import Actor
    return [r["title"] for r in store.list(Actor("test", None), tenant)]


def test_posture_page_shows_the_tenants_figures(console: ConsoleDaemon) -> None:
    console.add_alerts("acme", 3, severity="high")
    console.add_alerts("demo", 5, severity="low")
    browser = signed_in(console, "client_viewer", ["acme"])
    page = browser.get("/posture")  # one tenant: that tenant without asking
    assert page.status_code == 200, page.text
    assert "Security Posture · ACME Corp" in page.text
    assert re.search(r'data-open="high">3<', page.text)
    assert re.search(r'data-open="low">0<', page.text)  # demo's alerts are not counted
    for section in ("trend", "sla", "top-rules", "top-attackers", "attack-matrix",
                    "data-sources"):
        assert f'id="{section}"' in page.text
    assert "<svg" in page.text and "<script" not in page.text
    assert "15m 00s" in page.text  # acme's high-severity acknowledgement target
    assert browser.get("/posture?tenant=acme&trend=7d").status_code == 200
    # Alerts grouped by an address (a JSON group key, as detection writes it) list it.
    attackers = re.search(r'id="top-attackers".*?</section>', page.text, re.S)
    assert attackers and "198.51.100.0" in attackers.group(0), page.text


def test_another_tenants_posture_and_dashboards_are_404_and_audited(
        console: ConsoleDaemon) -> None:
    browser = signed_in(console, "client_operator", ["acme"])
    before = len(console.audit("dashboard_denied"))
    for path in ("/posture?tenant=demo", "/dashboards?tenant=demo",
                 "/dashboards/firewall?tenant=demo", "/dashboards/new?tenant=demo",
                 "/posture?tenant=nosuch"):
        page = browser.get(path)
        assert page.status_code == 404, (path, page.status_code)
        assert "Demo Inc" not in page.text
    denied = console.audit("dashboard_denied")
    assert len(denied) == before + 5
    assert {r["after"]["tenant"] for r in denied[before:]} == {"demo", "nosuch"}


def test_multi_tenant_user_picks_the_tenant(console: ConsoleDaemon) -> None:
    browser = signed_in(console, "soc_l1", ["acme", "demo"])
    page = browser.get("/dashboards?tenant=demo")
    assert page.status_code == 200
    assert "Dashboards · Demo Inc" in page.text
    assert '<option value="demo" selected>' in page.text
    assert 'action="/dashboards"' in page.text  # the header's switcher stays on this page
    assert browser.get("/posture?tenant=demo").status_code == 200


def test_library_shows_each_dashboard_with_its_reason(console: ConsoleDaemon) -> None:
    browser = signed_in(console, "client_viewer", ["acme"])
    page = browser.get("/dashboards")
    assert page.status_code == 200
    row = re.search(r'<tr id="dashboard-firewall".*?</tr>', page.text, re.S)
    assert row, page.text
    assert 'data-active="0"' in row.group(0)
    assert "waiting for a firewall dataset" in text_of(row.group(0))
    shown = browser.get("/dashboards/firewall?tenant=acme")
    assert shown.status_code == 200
    assert "Inactive: waiting for a firewall dataset" in text_of(shown.text)
    assert browser.get("/dashboards/no-such?tenant=acme").status_code == 404
    # A viewer cannot save dashboards: no button, and the form is refused.
    assert 'id="new-dashboard"' not in page.text
    refused = browser.post("/dashboards/new", panel_form("acme", "Mine",
                                                         "SELECT count(*) FROM alert_store"))
    assert refused.status_code == 403


def test_save_edit_and_delete_a_dashboard_through_the_form(console: ConsoleDaemon) -> None:
    console.add_alerts("acme", 2, severity="medium")
    browser = signed_in(console, "client_operator", ["acme"])
    form = browser.get("/dashboards/new?tenant=acme")
    assert form.status_code == 200 and 'name="panel-0-sql"' in form.text
    created = browser.post("/dashboards/new", panel_form(
        "acme", "Open alerts", "SELECT count(*) AS alerts FROM alert_store "
        "WHERE status <> 'resolved'"))
    assert created.status_code == 303, created.text
    location = created.headers["Location"]
    dashboard_id = re.match(r"/dashboards/(user-[0-9a-f]+)\?", location)
    assert dashboard_id, location
    shown = browser.get(location)
    assert shown.status_code == 200
    assert "Dashboard saved." in shown.text and "Open alerts" in shown.text
    figure = re.search(r'<p class="figure">([\d,]+)</p>', shown.text)
    assert figure and int(figure.group(1).replace(",", "")) >= 2
    assert [r for r in console.audit("dashboard_created")
            if r["after"]["dashboard"] == dashboard_id.group(1)]
    edit = browser.get(f"/dashboards/{dashboard_id.group(1)}/edit?tenant=acme")
    assert edit.status_code == 200 and "WHERE status &lt;&gt; &#39;resolved&#39;" in edit.text
    changed = browser.post(f"/dashboards/{dashboard_id.group(1)}/edit", panel_form(
        "acme", "All alerts", "SELECT count(*) AS alerts FROM alert_store"))
    assert changed.status_code == 303
    assert "All alerts" in browser.get(changed.headers["Location"]).text
    listed = browser.get("/dashboards?tenant=acme")
    assert "All alerts" in listed.text
    deleted = browser.post(f"/dashboards/{dashboard_id.group(1)}/delete", {"tenant": "acme"})
    assert deleted.status_code == 303
    assert "All alerts" not in browser.get("/dashboards?tenant=acme").text
    assert console.audit("dashboard_deleted")


def test_forged_tenant_in_the_form_is_refused_and_audited(console: ConsoleDaemon) -> None:
    browser = signed_in(console, "client_operator", ["acme"])
    browser.get("/dashboards/new?tenant=acme")
    before = len(console.audit("dashboard_denied"))
    forged = browser.post("/dashboards/new", panel_form(
        "demo", "Forged", "SELECT count(*) FROM alert_store"))
    assert forged.status_code == 404
    assert "Forged" not in saved_titles(console, "demo")
    denied = console.audit("dashboard_denied")
    assert len(denied) == before + 1 and denied[-1]["after"]["tenant"] == "demo"
    # Without the session's CSRF token nothing is saved either.
    stale = browser.post("/dashboards/new", panel_form(
        "acme", "No token", "SELECT 1", csrf="not-the-token"))
    assert stale.status_code == 403
    assert "No token" not in saved_titles(console, "acme")


def test_panel_sql_reading_files_or_other_tenants_is_refused_and_audited(
        console: ConsoleDaemon) -> None:
    browser = signed_in(console, "client_operator", ["acme"])
    browser.get("/dashboards/new?tenant=acme")
    data = console.process.data_dir
    attempts = {
        f"SELECT * FROM '{data}/lake/tenant=demo/dataset=linux.auth/x.parquet'":
            "is not a dataset",
        f"SELECT * FROM read_parquet('{data}/lake/tenant=demo/**/*.parquet')":
            "table function read_parquet() is not allowed",
        "SELECT * FROM read_csv_auto('/etc/passwd')":
            "table function read_csv_auto() is not allowed",
    }
    for sql, message in attempts.items():
        before = len(console.audit("dashboard_refused"))
        refused = browser.post("/dashboards/new", panel_form("acme", "Sneaky", sql))
        assert refused.status_code == 400, refused.text
        assert "panel SQL refused" in refused.text
        assert message in text_of(refused.text)
        assert "panel 1, sql" in refused.text
        assert sql.split("(")[-1][:20] in unescape(refused.text)  # the form keeps the text
        audit = console.audit("dashboard_refused")
        assert len(audit) == before + 1 and audit[-1]["tenant"] == "acme"
    assert "Sneaky" not in saved_titles(console, "acme")


def test_another_tenants_saved_dashboard_is_404_and_audited(console: ConsoleDaemon) -> None:
    owner = signed_in(console, "client_operator", ["demo"])
    owner.get("/dashboards/new?tenant=demo")
    created = owner.post("/dashboards/new", panel_form(
        "demo", "Demo only", "SELECT count(*) AS alerts FROM alert_store"))
    assert created.status_code == 303
    found = re.match(r"/dashboards/(user-[0-9a-f]+)\?", created.headers["Location"])
    assert found
    dashboard_id = found.group(1)
    intruder = signed_in(console, "client_operator", ["acme"])
    before = len(console.audit("dashboard_not_found"))
    assert intruder.get(f"/dashboards/{dashboard_id}?tenant=acme").status_code == 404
    assert intruder.get(f"/dashboards/{dashboard_id}/edit?tenant=acme").status_code == 404
    changed = intruder.post(f"/dashboards/{dashboard_id}/edit", panel_form(
        "acme", "Taken", "SELECT 1 AS one"))
    assert changed.status_code == 404
    assert intruder.post(f"/dashboards/{dashboard_id}/delete",
                         {"tenant": "acme"}).status_code == 404
    missing = console.audit("dashboard_not_found")
    assert len(missing) == before + 4
    assert {r["after"]["dashboard"] for r in missing[before:]} == {dashboard_id}
    assert saved_titles(console, "demo").count("Demo only") == 1
