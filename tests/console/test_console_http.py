"""The console over HTTP against a real daemon: sign-in (TOTP, cookie flags, lockout), CSRF on
every form, tenant isolation (another tenant's alert is a 404, audited; forged form fields are
refused), the queue's filters, order and counts, triage through the forms (the same audit as
/api/v1), the client's answer to an escalation, sign-out everywhere and the idle timeout."""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import unquote

import requests
from console.kit import Browser, ConsoleDaemon, start_daemon
from support.daemon import wait_for

from soc.alerts.model import Actor

EVERYONE = Actor("test", None)
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
                    "Referrer-Policy": "no-referrer"}


def test_pages_need_a_session(console: ConsoleDaemon) -> None:
    anonymous = Browser(console)
    response = anonymous.get("/alerts?status=all")
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith("/login?next=")
    assert unquote(location.removeprefix("/login?next=")) == "/alerts?status=all"
    assert anonymous.get("/alerts.json").status_code == 401
    alert_id = console.add_alerts("acme", 1)[0]
    assert anonymous.post(f"/alerts/{alert_id}/acknowledge", {}).status_code == 401
    assert console.store.get(alert_id, EVERYONE)["status"] == "new"


def test_sign_in_sets_a_strict_httponly_cookie_and_pages_carry_security_headers(
        console: ConsoleDaemon) -> None:
    browser = Browser(console)
    form = browser.get("/login")
    assert "Secure" not in form.headers["Set-Cookie"]  # plain HTTP listener
    analyst = console.user("soc_l1", ["acme"])
    response = browser.sign_in(analyst)
    assert response.status_code == 303 and response.headers["Location"] == "/alerts"
    cookie = next(c for c in response.headers["Set-Cookie"].split(", vigil_login")
                  if c.startswith("vigil_session="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    page = browser.get("/alerts")
    assert page.status_code == 200
    for name, value in SECURITY_HEADERS.items():
        assert page.headers[name] == value
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "<script>" not in page.text
    assert page.headers["Cache-Control"] == "no-store"
    # The session cookie is the same session as /api/v1's bearer token (one directory).
    token = browser.http.cookies["vigil_session"]
    me = requests.get(console.base + "/api/v1/auth/me", timeout=5,
                      headers={"Authorization": f"Bearer {token}"})
    assert me.json()["login"] == analyst and me.json()["token_kind"] == "session"


def test_a_wrong_code_is_refused_and_failures_delay_the_address_like_the_api(
        console: ConsoleDaemon) -> None:
    browser = Browser(console)
    refused = browser.sign_in("acme-viewer", code="000000")
    assert refused.status_code == 401 and "invalid login, password or code" in refused.text
    assert "vigil_session" not in browser.http.cookies
    for _ in range(5):
        assert browser.sign_in("acme-viewer", code="000000").status_code == 401
    # The address is delayed now: even the right code is refused (as /api/v1/auth/login does).
    assert browser.sign_in("acme-viewer").status_code == 401
    assert any(r["actor"] == "acme-viewer" and r["after"]["reason"] == "locked"
               for r in console.audit("login_failed"))
    console.directory.unlock("acme-viewer", EVERYONE, "test")


def test_the_sign_in_form_needs_its_own_nonce(console: ConsoleDaemon) -> None:
    browser = Browser(console)
    browser.get("/login")
    response = browser.post("/login", {"csrf": "forged", "login": "ana",
                                       "password": "x", "code": "123456"}, csrf=False)
    assert response.status_code == 403 and "vigil_session" not in browser.http.cookies


def test_every_form_needs_the_sessions_csrf_token(console: ConsoleDaemon) -> None:
    alert_id = console.add_alerts("acme", 1, rule_id="csrf_rule")[0]
    browser = Browser(console)
    browser.sign_in(console.user("soc_l1", ["acme"]))
    other = Browser(console)
    other.sign_in(console.user("platform_admin", []))
    forged = [{}, {"csrf": ""}, {"csrf": "0" * 64}, {"csrf": other.csrf}]
    for fields in forged:
        response = browser.post(f"/alerts/{alert_id}/acknowledge", fields, csrf=False)
        assert response.status_code == 403, fields
        assert "CSRF" in response.text
    for path in ("/alerts/bulk", "/logout-all", "/logout"):
        assert browser.post(path, {"ids": alert_id, "action": "acknowledge"},
                            csrf=False).status_code == 403
    assert console.store.get(alert_id, EVERYONE)["status"] == "new"
    assert browser.get("/alerts").status_code == 200  # still signed in
    done = browser.post(f"/alerts/{alert_id}/acknowledge", {})
    assert done.status_code == 303
    assert console.store.get(alert_id, EVERYONE)["status"] == "acknowledged"


def test_another_tenants_alert_is_a_404_and_the_attempt_is_audited(
        console: ConsoleDaemon) -> None:
    demo_id = console.add_alerts("demo", 1, rule_id="demo_only")[0]
    acme = Browser(console)
    client = console.user("client_operator", ["acme"])
    acme.sign_in(client)
    page = acme.get(f"/alerts/{demo_id}")
    assert page.status_code == 404 and "alert not found" in page.text
    assert "demo_only" not in page.text
    for action, fields in (("acknowledge", {}), ("note", {"body": "x"}),
                           ("resolve", {"resolution": "false_positive", "reason": "x"})):
        assert acme.post(f"/alerts/{demo_id}/{action}", fields).status_code == 404
    # The same answer as for an alert that does not exist.
    assert acme.get("/alerts/no-such-alert").status_code == 404
    attempts = [r for r in console.audit("alert_not_found") if r["actor"] == client]
    assert {r["after"]["alert_id"] for r in attempts} >= {demo_id, "no-such-alert"}
    assert all(r["tenant"] == "_platform" for r in attempts)
    assert console.store.get(demo_id, EVERYONE)["status"] == "new"
    # The queue and its feed never list it.
    assert demo_id not in acme.get("/alerts?status=all").text
    assert demo_id not in acme.get("/alerts.json?status=all").text


def test_forged_form_fields_are_refused(console: ConsoleDaemon) -> None:
    acme_id = console.add_alerts("acme", 1, rule_id="forged_fields")[0]
    demo_id = console.add_alerts("demo", 1, rule_id="forged_fields")[0]
    acme = Browser(console)
    acme.sign_in("acme-ciso")
    # A tenant outside the scope in the queue's filter.
    assert acme.get("/alerts?tenant=demo").status_code == 404
    assert acme.get("/alerts.json?tenant=demo").status_code == 404
    # Another tenant's alert id slipped into a bulk change.
    bulk = acme.post("/alerts/bulk", {"ids": [acme_id, demo_id], "action": "acknowledge"})
    assert bulk.status_code == 303 and "bulk_ok=1&bulk_failed=1" in bulk.headers["Location"]
    assert console.store.get(demo_id, EVERYONE)["status"] == "new"
    assert console.store.get(acme_id, EVERYONE)["status"] == "acknowledged"
    # An assignee of another tenant: the same refusal as a user who does not exist.
    for login in ("demo-ops", "nobody"):
        refused = acme.post(f"/alerts/{acme_id}/assign", {"assignee": login})
        assert refused.status_code == 400 and "no active user" in refused.text
    assert console.store.get(acme_id, EVERYONE)["assignee"] == "acme-ciso"
    # Only the tenant's own users are offered.
    page = acme.get(f"/alerts/{acme_id}").text
    offered = set(re.findall(r'<option value="([^"]+)"', page.split('id="assignee-select"')[1]
                             .split("</select>")[0]))
    acme_users = {u.login for u in console.directory.users()
                  if "acme" in u.tenants and u.status == "active"}
    assert offered == acme_users and "demo-ops" not in offered and "root" not in offered
    # A viewer may read and answer, never triage.
    viewer = Browser(console)
    viewer.sign_in("acme-viewer")
    assert viewer.post(f"/alerts/{acme_id}/note", {"body": "hi"}).status_code == 403


def test_queue_filters_sla_order_counts_and_tenant_switcher(console: ConsoleDaemon) -> None:
    critical = console.add_alerts("acme", 1, rule_id="queue_critical", severity="critical")
    low = console.add_alerts("acme", 2, rule_id="queue_low", severity="low")
    console.add_alerts("demo", 1, rule_id="queue_demo")
    ana = Browser(console)
    ana.sign_in("ana")
    page = ana.get("/alerts")
    assert 'id="tenant-switcher"' in page.text  # two tenants
    feed = ana.get("/alerts.json?rule_id=queue_low").json()
    assert feed["total"] == 2 and {i["id"] for i in feed["items"]} == set(low)
    only_acme = ana.get("/alerts.json?tenant=acme&status=all").json()
    assert {i["tenant"] for i in only_acme["items"]} == {"acme"}
    everything = ana.get("/alerts.json?status=all").json()
    assert {i["tenant"] for i in everything["items"]} == {"acme", "demo"}
    # By SLA deadline: the critical alert (acme: default critical ack 15 min) before low ones.
    ordered = [i["id"] for i in ana.get("/alerts.json").json()["items"]]
    assert ordered.index(critical[0]) < ordered.index(low[0])
    dues = [i["next_due"] for i in ana.get("/alerts.json").json()["items"]]
    assert dues == sorted(dues)
    counts = ana.get("/alerts.json?tenant=acme").json()["counts"]
    assert set(counts) == {"new", "acknowledged", "escalated", "resolved", "breached",
                           "due_soon", "awaiting_client"}
    due_soon = ana.get("/alerts.json?sla_state=due_soon&status=all").json()
    assert critical[0] in {i["id"] for i in due_soon["items"]}
    assert all(i["sla_state"] == "due soon" for i in due_soon["items"])
    tactic = ana.get("/alerts.json?tactic=credential-access&rule_id=queue_low").json()
    assert tactic["total"] == 2
    assert ana.get("/alerts.json?tactic=exfiltration&rule_id=queue_low").json()["total"] == 0
    # A client of one tenant has no switcher.
    client = Browser(console)
    client.sign_in("acme-ciso")
    assert 'id="tenant-switcher"' not in client.get("/alerts").text


def test_triage_in_the_console_is_audited_like_the_api(console: ConsoleDaemon) -> None:
    alert_id = console.add_alerts("acme", 1, rule_id="triage_forms")[0]
    ana = Browser(console)
    ana.sign_in("ana")
    steps = [("acknowledge", {}), ("assign", {"assignee": "acme-ciso"}),
             ("escalate", {"level": "L2", "reason": "needs a senior look"}),
             ("note", {"body": "source is a known scanner"}),
             ("resolve", {"resolution": "false_positive", "reason": "scanner of the client"})]
    for action, fields in steps:
        response = ana.post(f"/alerts/{alert_id}/{action}", fields)
        assert response.status_code == 303, (action, response.text[:500])
    refused = ana.post(f"/alerts/{alert_id}/resolve", {"resolution": "true_positive"})
    assert refused.status_code == 400 and "reason" in refused.text
    alert = console.store.get(alert_id, EVERYONE)
    assert (alert["status"], alert["resolution"], alert["escalation"]["level"]) == \
        ("resolved", "false_positive", "L2")
    trail, _ = console.store.audit(EVERYONE, alert_id=alert_id)
    assert [(r["action"], r["actor"]) for r in trail] == [
        ("created", "system"), ("acknowledge", "ana"), ("assign", "ana"), ("escalate", "ana"),
        ("note", "ana"), ("resolve", "ana"), ("note", "ana")]
    assert all(r["address"] == "127.0.0.1" for r in trail[1:])
    page = ana.get(f"/alerts/{alert_id}").text
    assert "needs a senior look" in page and "scanner of the client" in page


def test_the_client_answers_an_escalation_and_the_soc_sees_it(console: ConsoleDaemon) -> None:
    alert_id = console.add_alerts("acme", 1, rule_id="client_question")[0]
    ana = Browser(console)
    ana.sign_in("ana")
    asked = ana.post(f"/alerts/{alert_id}/ask-client",
                     {"kind": "validation", "question": "Is root's login from 198.51.100.0 "
                      "authorised?", "level": "L2"})
    assert asked.status_code == 303
    assert ana.get("/alerts.json?status=all").json()["counts"]["awaiting_client"] >= 1
    client = Browser(console)
    client.sign_in("acme-ciso")
    page = client.get(f"/alerts/{alert_id}").text
    request_id = re.search(r'name="request_id" value="(\d+)"', page).group(1)
    answered = client.post(f"/alerts/{alert_id}/answer",
                           {"request_id": request_id, "answer": "Yes: our backup job."})
    assert answered.status_code == 303
    again = client.post(f"/alerts/{alert_id}/answer",
                        {"request_id": request_id, "answer": "changed my mind"})
    assert again.status_code == 409
    soc_view = ana.get(f"/alerts/{alert_id}").text
    assert "Yes: our backup job." in soc_view and "changed my mind" not in soc_view
    records = [r for r in console.audit("client_answer") if r["alert_id"] == alert_id]
    assert [(r["actor"], r["after"]["answer"]) for r in records] == \
        [("acme-ciso", "Yes: our backup job.")]
    # The demo client cannot answer acme's question (404, audited).
    demo = Browser(console)
    demo.sign_in("demo-ops")
    assert demo.post(f"/alerts/{alert_id}/answer",
                     {"request_id": request_id, "answer": "x"}).status_code == 404


def test_sign_out_everywhere_ends_every_session(console: ConsoleDaemon) -> None:
    admin = console.user("platform_admin", [])
    first, second = Browser(console), Browser(console)
    first.sign_in(admin)
    second.sign_in(admin)
    out = first.post("/logout-all", {})
    assert out.status_code == 303 and out.headers["Location"].startswith("/login")
    for browser in (first, second):
        assert browser.get("/alerts").status_code == 303
    third = Browser(console)
    third.sign_in(console.user("platform_admin", []))
    assert third.post("/logout", {}).status_code == 303
    assert third.get("/alerts").status_code == 303


def test_an_idle_session_is_signed_out_and_audited(fresh: ConsoleDaemon) -> None:
    browser = Browser(fresh)
    browser.sign_in("ana")
    assert browser.get("/alerts").status_code == 200
    started = time.monotonic()
    # The queue's own polling is not activity: the session ends 2 s after the last page.
    wait_for(lambda: browser.get("/alerts.json").status_code == 401, 10, interval=0.2,
             message="the idle session to end")
    assert time.monotonic() - started >= 1.5
    assert browser.get("/alerts").status_code == 303
    assert [r["actor"] for r in fresh.audit("session_idle")] == ["ana"]


def test_on_a_tls_listener_the_cookies_are_secure_host_cookies(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path, tls=True)
    try:
        browser = Browser(daemon)
        form = browser.get("/login")
        assert "__Host-vigil_login=" in form.headers["Set-Cookie"]
        response = browser.sign_in("ana")
        assert response.status_code == 303
        cookie = response.headers["Set-Cookie"]
        session = next(c for c in cookie.split(", __Host-vigil_login")
                       if c.startswith("__Host-vigil_session="))
        for flag in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"):
            assert flag in session
        assert "Domain" not in session
        assert browser.get("/alerts").status_code == 200
    finally:
        daemon.process.stop()
