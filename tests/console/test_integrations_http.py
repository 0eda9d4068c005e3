"""The integration map page over HTTP on the real daemon, as a browser would use it (cookies,
forms, CSRF): a client operator reads and edits its own tenant's plan, never demo's (404,
audited) even with a forged tenant or entry field, a client viewer reads only, a form without
the session's CSRF token is refused, and the export links download the plan."""

from __future__ import annotations

import csv
import io
import re

from console.kit import Browser, ConsoleDaemon

from soc.alerts.model import Actor

ENTRY_RE = re.compile(r'class="plan-entry" data-id="([^"]+)"')


def _signed_in(console: ConsoleDaemon, login: str) -> Browser:
    browser = Browser(console)
    assert browser.sign_in(login).status_code == 303
    return browser


def _demo_entry(console: ConsoleDaemon) -> str:
    demo = _signed_in(console, "demo-ops")
    page = demo.get("/integrations")
    assert page.status_code == 200 and "Demo Inc" in page.text
    response = demo.post("/integrations/plan", {"tenant": "demo", "category": "cloud",
                                                "product": "Azure activity logs"})
    assert response.status_code == 303
    found = ENTRY_RE.findall(demo.get("/integrations?tenant=demo").text)
    assert found
    return found[-1]


def test_a_client_operator_plans_a_source_for_its_tenant(console: ConsoleDaemon) -> None:
    ciso = _signed_in(console, "acme-ciso")
    page = ciso.get("/integrations")
    assert page.status_code == 200
    assert "Integration map" in page.text and "ACME Corp" in page.text
    assert page.text.count('class="panel category') == 7
    assert 'id="nav-integrations"' in page.text
    planned = ciso.get("/integrations?tenant=acme&plan=cloud")  # "Plan a source for it"
    assert '<option value="cloud" selected>' in planned.text
    response = ciso.post("/integrations/plan", {
        "tenant": "acme", "category": "perimeter_security", "product": "FortiGate 100F HQ",
        "target_date": "2027-01-31", "owner": "ACME network team", "status": "planned",
        "notes": "syslog over TLS"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/integrations?tenant=acme&done=added"
    page = ciso.get("/integrations?tenant=acme&done=added")
    assert "Source added to the plan." in page.text and "FortiGate 100F HQ" in page.text
    entry = ENTRY_RE.findall(page.text)[-1]
    edit = ciso.get(f"/integrations?tenant=acme&edit={entry}")
    assert f'name="entry_id" value="{entry}"' in edit.text
    response = ciso.post("/integrations/plan", {
        "tenant": "acme", "entry_id": entry, "category": "perimeter_security",
        "product": "FortiGate 100F HQ", "status": "in_progress", "owner": "ACME network team"})
    assert response.status_code == 303
    exported = ciso.get("/integrations/plan.csv?tenant=acme")
    assert exported.status_code == 200 and exported.headers["Content-Type"].startswith("text/csv")
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(exported.text))}
    assert rows[entry]["status"] == "in_progress" and rows[entry]["owner"] == "ACME network team"
    as_json = ciso.get("/integrations/plan.json?tenant=acme")
    assert as_json.status_code == 200
    assert entry in {e["id"] for e in as_json.json()["entries"]}


def test_demos_plan_is_404_for_an_acme_user_and_audited(console: ConsoleDaemon) -> None:
    entry = _demo_entry(console)
    ciso = _signed_in(console, "acme-ciso")
    before = len(console.audit("integration_denied"))
    attempts = [
        ciso.get("/integrations?tenant=demo"),
        ciso.get("/integrations/plan.csv?tenant=demo"),
        ciso.post("/integrations/plan", {"tenant": "demo", "category": "cloud",
                                         "product": "forged"}),
        ciso.post("/integrations/plan", {"tenant": "demo", "entry_id": entry,
                                         "category": "cloud", "product": "forged"}),
        ciso.post(f"/integrations/plan/{entry}/delete", {"tenant": "demo"}),
    ]
    assert [r.status_code for r in attempts] == [404] * 5
    assert all("tenant &#39;demo&#39; not found" in r.text for r in attempts)
    denied = console.audit("integration_denied")[before:]
    assert [(r["actor"], r["tenant"], r["after"]["tenant"]) for r in denied] == \
        [("acme-ciso", "_platform", "demo")] * 5
    # The forged tenant field: demo's entry named under acme is not found, and audited.
    forged = ciso.post("/integrations/plan", {"tenant": "acme", "entry_id": entry,
                                              "category": "cloud", "product": "forged"})
    removed = ciso.post(f"/integrations/plan/{entry}/delete", {"tenant": "acme"})
    assert (forged.status_code, removed.status_code) == (404, 404)
    assert "plan entry not found" in forged.text
    missing = [r for r in console.audit("integration_plan_not_found")
               if r["after"]["entry"] == entry]
    assert [(r["actor"], r["after"]["method"]) for r in missing] == \
        [("acme-ciso", "POST"), ("acme-ciso", "POST")]
    rows = console.store.db.transaction(write=False)
    with rows as con:
        (product,) = con.execute("SELECT product FROM integration_plan WHERE id = ?",
                                 [entry]).fetchone()
    assert product == "Azure activity logs"  # untouched
    records, _ = console.store.audit(Actor("test", None), tenant="demo")
    assert not [r for r in records if r["actor"] == "acme-ciso"]


def test_a_viewer_reads_the_plan_and_cannot_change_it(console: ConsoleDaemon) -> None:
    viewer = _signed_in(console, "acme-viewer")
    page = viewer.get("/integrations")
    assert page.status_code == 200 and 'id="plan-form"' not in page.text
    assert "Your role reads the plan" in page.text
    refused = viewer.post("/integrations/plan", {"tenant": "acme", "category": "cloud",
                                                 "product": "AWS CloudTrail"})
    assert refused.status_code == 403


def test_a_plan_form_without_the_sessions_csrf_token_is_refused(console: ConsoleDaemon) -> None:
    ciso = _signed_in(console, "acme-ciso")
    ciso.get("/integrations")
    refused = ciso.post("/integrations/plan", {"tenant": "acme", "category": "cloud",
                                               "product": "AWS CloudTrail",
                                               "csrf": "not-this-sessions"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    plan = ciso.get("/integrations?tenant=acme")
    assert "AWS CloudTrail" not in plan.text.split('id="plan-table"')[1]
