"""Administration and tenant isolation through the console, over HTTP with real cookies and
CSRF tokens against a real daemon: another tenant's alert URL, forged form fields (a tenant,
a role above one's own, another tenant's user), a tenant admin reaching for another tenant's
users and tokens, a disabled user's live session; and the administration pages themselves
(add a user with the enrollment in the outbox, change, reset, the access review, API tokens).
Every refusal is a 404 / 403 and an audit record."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from html import unescape
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest
from console.kit import PASSWORD, Browser, ConsoleDaemon, signed_in, start_daemon

from soc.alerts.model import Actor
from soc.notify.outbox import list_messages, outbox_root

KEY_RE = re.compile(r"add this key by hand:\s+([A-Z2-7]+)")
LINK_RE = re.compile(r'id="activation-link" readonly value="([^"]+)"')


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleDaemon]:
    daemon = start_daemon(tmp_path_factory.mktemp("admin"), outbox=True)
    try:
        yield daemon
    finally:
        daemon.process.stop()


def refusals(console: ConsoleDaemon, login: str, action: str = "admin_refused"
             ) -> list[dict]:
    return [r for r in console.audit(action) if r["actor"] == login]


def test_another_tenants_alert_url_is_404_and_audited(console: ConsoleDaemon) -> None:
    demo_alert = console.add_alerts("demo", 1)[0]
    client = console.user("client_operator", ["acme"])
    browser = signed_in(console, client)
    assert browser.get(f"/alerts/{demo_alert}").status_code == 404
    # The triage forms with the other tenant's id, and the queue filtered on its tenant.
    assert browser.post(f"/alerts/{demo_alert}/acknowledge", {}).status_code == 404
    assert browser.post(f"/alerts/{demo_alert}/note", {"body": "x"}).status_code == 404
    assert browser.get("/alerts?tenant=demo").status_code == 404
    assert browser.get("/alerts.json?tenant=demo").status_code == 404
    attempts = [r["after"] for r in refusals(console, client, "alert_not_found")]
    assert {(a["alert_id"], a["method"]) for a in attempts} == {(demo_alert, "GET"),
                                                                (demo_alert, "POST")}
    assert all(r["tenant"] == "_platform" for r in console.audit("alert_not_found"))
    forged = refusals(console, client, "tenant_not_found")
    assert [r["after"]["tenant"] for r in forged] == ["demo", "demo"]
    alert = console.store.get(demo_alert, Actor("test", None))
    assert alert["status"] == "new" and not alert["notes"]


def test_forged_fields_in_the_add_user_form_are_refused_and_audited(
        console: ConsoleDaemon) -> None:
    admin = console.user("client_admin", ["acme"])
    browser = signed_in(console, admin)
    page = browser.get("/admin/users")
    assert page.status_code == 200
    # The form offers only what the admin may grant.
    offered = set(re.findall(r'<option value="([a-z_0-9]+)"', page.text))
    assert offered == {"client_admin", "client_operator", "client_viewer"}
    assert 'value="demo"' not in page.text
    form = {"login": "mallory", "email": "m@example.com", "role": "client_viewer",
            "tenants": "demo"}
    assert browser.post("/admin/users", form).status_code == 404  # another tenant
    for role in ("platform_admin", "soc_l3"):  # above the admin's own role
        assert browser.post("/admin/users", {**form, "role": role, "tenants": "acme"}
                            ).status_code == 403
    assert browser.post("/admin/users", {**form, "tenants": ["acme", "demo"]}
                        ).status_code == 404
    assert console.directory.get("mallory") is None
    attempts = [r["after"] for r in refusals(console, admin)]
    assert [(a["attempted"], a["role"], a["tenants"], a["status"]) for a in attempts] == [
        ("user_add", "client_viewer", ["demo"], 404),
        ("user_add", "platform_admin", ["acme"], 403),
        ("user_add", "soc_l3", ["acme"], 403),
        ("user_add", "client_viewer", ["acme", "demo"], 404)]
    # The same escalation through a role change of a user the admin does manage.
    member = console.user("client_viewer", ["acme"])
    assert browser.post(f"/admin/users/{member}/access",
                        {"role": "soc_l1", "tenants": "acme", "reason": "x"}).status_code == 403
    assert browser.post(f"/admin/users/{member}/access",
                        {"role": "client_viewer", "tenants": ["acme", "demo"], "reason": "x"}
                        ).status_code == 404
    user = console.directory.get(member)
    assert user is not None and (user.role, user.tenants) == ("client_viewer", ["acme"])
    assert [a["after"]["attempted"] for a in refusals(console, admin)][-2:] == [
        "user_change", "user_change"]


def test_a_tenant_admin_cannot_see_or_touch_another_tenants_users_or_tokens(
        console: ConsoleDaemon) -> None:
    admin = console.user("client_admin", ["acme"])
    own = console.user("client_operator", ["acme"])
    theirs = console.user("client_operator", ["demo"])
    Browser(console).sign_in(theirs)  # a live session of theirs
    api_token, _ = console.directory.issue_api_token(
        console.directory.authenticate(_login_token(console, theirs)), "theirs", None, None)
    their_tokens = console.directory.tokens(theirs)
    browser = signed_in(console, admin)
    listed = browser.get("/admin/users").text
    assert f'data-login="{own}"' in listed
    for hidden in (theirs, "ana", "demo-ops", "root"):  # ana: acme and demo
        assert f'data-login="{hidden}"' not in listed
    assert browser.get(f"/admin/users/{theirs}").status_code == 404
    assert browser.get("/admin/users/root").status_code == 404
    for action in ("disable", "unlock", "reset", "access"):
        reply = browser.post(f"/admin/users/{theirs}/{action}",
                             {"reason": "x", "role": "client_viewer", "tenants": "acme"})
        assert reply.status_code == 404, action
    for token in their_tokens:
        assert browser.post(f"/admin/users/{theirs}/tokens/{token['id']}/revoke", {}
                            ).status_code == 404
        # Their token id under the admin's own login: not the admin's token.
        assert browser.post(f"/admin/tokens/{token['id']}/revoke", {}).status_code == 404
    tokens_page = browser.get("/admin/tokens").text
    assert theirs not in tokens_page and not any(t["id"] in tokens_page for t in their_tokens)
    assert browser.get("/admin/access-review?inactive_days=1").text.count(theirs) == 0
    user = console.directory.get(theirs)
    assert user is not None and user.status == "active" and user.role == "client_operator"
    assert console.directory.authenticate(api_token) is not None
    assert len(console.directory.tokens(theirs)) == len(their_tokens)
    attempted = {a["after"]["attempted"] for a in refusals(console, admin)}
    assert {"user_tokens", "user_disable", "user_unlock", "user_reset", "user_change",
            "token_revoke"} <= attempted


def _login_token(console: ConsoleDaemon, login: str) -> str:
    token, _ = console.directory.login(login, PASSWORD, console.code(login), "127.0.0.1")
    return token


def test_a_disabled_users_session_ends_at_its_next_request(console: ConsoleDaemon) -> None:
    user = console.user("client_operator", ["acme"])
    victim = signed_in(console, user)
    assert victim.get("/alerts").status_code == 200
    admin = signed_in(console, "root")
    reply = admin.post(f"/admin/users/{user}/disable", {"reason": "left the company"})
    assert reply.status_code == 303
    assert admin.get(f"/admin/users/{user}?done=disable").text.count("disabled") >= 2
    after = victim.get("/alerts")
    assert after.status_code == 303 and after.headers["Location"].startswith("/login")
    assert victim.post("/alerts/bulk", {"action": "acknowledge", "ids": "x"}
                       ).status_code == 401
    record = [r for r in console.audit("user_disable") if r["after"]["reason"] ==
              "left the company"]
    assert record and record[0]["actor"] == "root" and record[0]["at"]


def test_forms_without_the_sessions_csrf_token_are_refused(console: ConsoleDaemon) -> None:
    admin = signed_in(console, "root")
    target = console.user("client_viewer", ["acme"])
    for path, form in ((f"/admin/users/{target}/disable", {"reason": "x"}),
                       ("/admin/users", {"login": "csrf-victim", "email": "c@example.com",
                                         "role": "platform_admin"}),
                       ("/admin/tokens", {"name": "stolen"}),
                       ("/admin/access-review", {"action": "disable", "logins": target})):
        assert admin.post(path, form, csrf=False).status_code == 403
        assert admin.post(path, {**form, "csrf": "0" * 64}).status_code == 403
    user = console.directory.get(target)
    assert user is not None and user.status == "active"
    assert console.directory.get("csrf-victim") is None


def test_administration_is_only_for_roles_that_manage_users(console: ConsoleDaemon) -> None:
    viewer = signed_in(console, "acme-viewer")
    assert 'id="nav-admin"' not in viewer.get("/alerts").text
    for path in ("/admin/users", "/admin/access-review", "/admin/users/acme-ciso"):
        assert viewer.get(path).status_code == 403, path
    assert viewer.post("/admin/users/acme-ciso/disable", {"reason": "x"}).status_code == 403
    assert viewer.get("/admin/tenants").status_code == 200  # its own tenant, read-only
    assert 'id="tenant-demo"' not in viewer.get("/admin/tenants").text
    root = signed_in(console, "root")
    assert 'id="nav-admin"' in root.get("/alerts").text
    tenants = root.get("/admin/tenants").text
    assert 'id="tenant-acme"' in tenants and 'id="tenant-demo"' in tenants
    assert "managed SOC" in tenants and "SIEM only" in tenants
    assert "edit its file" in tenants and "reload" in tenants


def test_a_user_added_in_the_console_enrolls_from_the_outbox_and_signs_in(
        console: ConsoleDaemon) -> None:
    admin_login = console.user("client_admin", ["acme"])
    admin = signed_in(console, admin_login)
    reply = admin.post("/admin/users", {"login": "newbie", "email": "newbie@example.com",
                                        "display_name": "New Bie", "role": "client_operator",
                                        "tenants": "acme", "reason": "ticket 42"})
    assert reply.status_code == 200, reply.text
    link = unescape(LINK_RE.search(reply.text).group(1))  # type: ignore[union-attr]
    assert "outbox" in reply.text
    mail = [m for m in list_messages(outbox_root(console.process.data_dir))
            if m.to == "newbie@example.com"]
    assert len(mail) == 1 and "vigil-totp.png" in [n for n, _ in mail[0].attachments()]
    secret = KEY_RE.search(mail[0].text()).group(1)  # type: ignore[union-attr]
    assert secret not in reply.text  # the administrator never sees the authenticator key
    # The user opens the link (on the daemon's real address) and activates.
    activation = Browser(console)
    assert link.startswith(f"{console.base}/api/v1/auth/activate?")  # the address used
    parts = urlparse(link)
    form = activation.get(f"{parts.path}?{parts.query}")
    assert form.status_code == 200 and "Activate your account" in form.text
    token = parse_qs(parts.query)["token"][0]
    totp = pyotp.TOTP(secret)
    step = totp.timecode(datetime.now(UTC))
    done = activation.http.post(console.base + parts.path, allow_redirects=False, timeout=10,
                                data={"login": "newbie", "token": token,
                                      "password": PASSWORD, "code": totp.generate_otp(step)},
                                headers={"Accept": "text/html"})
    assert done.status_code == 303 and done.headers["Location"].startswith("/login")
    console.secrets["newbie"] = secret
    console.last_step["newbie"] = step
    user = signed_in(console, "newbie")
    assert user.get("/alerts").status_code == 200
    added = [r for r in console.audit("user_add") if r["after"]["login"] == "newbie"]
    assert added[0]["actor"] == admin_login and added[0]["after"]["reason"] == "ticket 42"


def test_change_reset_and_unlock_from_the_user_page(console: ConsoleDaemon) -> None:
    admin = signed_in(console, "root")
    login = console.user("client_viewer", ["acme"])
    assert admin.post(f"/admin/users/{login}/access",
                      {"role": "client_admin", "tenants": ["acme", "demo"],
                       "reason": "new CISO"}).status_code == 303
    user = console.directory.get(login)
    assert user is not None and (user.role, user.tenants) == ("client_admin", ["acme", "demo"])
    change = [r for r in console.audit("user_change") if r["after"]["login"] == login][-1]
    assert change["before"]["role"] == "client_viewer" and change["after"]["reason"] == \
        "new CISO"
    assert admin.post(f"/admin/users/{login}/unlock", {"reason": "phoned"}).status_code == 303
    reset = admin.post(f"/admin/users/{login}/reset", {"reason": "lost phone"})
    assert reset.status_code == 200 and LINK_RE.search(reset.text)
    user = console.directory.get(login)
    assert user is not None and user.status == "pending"
    assert [r["after"]["reason"] for r in console.audit("user_reset")][-1] == "lost phone"


def test_the_access_review_disables_one_or_many_and_is_recorded(
        console: ConsoleDaemon) -> None:
    stale = [console.user("client_viewer", ["acme"]) for _ in range(3)]
    with console.store.db.transaction() as con:  # their last sign-in was long ago
        con.executemany("UPDATE users SET last_login_at = '2020-01-01T00:00:00+00:00', "
                        "activated_at = '2020-01-01T00:00:00+00:00' WHERE login = ?",
                        [(login,) for login in stale])
    admin = signed_in(console, "root")
    page = admin.get("/admin/access-review?inactive_days=30")
    assert page.status_code == 200
    for login in stale:
        assert f'id="disable-{login}"' in page.text
    assert admin.post("/admin/access-review", {"inactive_days": "30", "one": stale[0]}
                      ).status_code == 303
    assert admin.post("/admin/access-review", {"inactive_days": "30", "action": "disable",
                                               "logins": stale[1:]}).status_code == 303
    assert {console.directory.get(u).status for u in stale} == {"disabled"}  # type: ignore
    reasons = {r["after"]["reason"] for r in console.audit("user_disable")
               if r["actor"] == "root"}
    assert "access review: inactive for 30 days" in reasons
    reviews = [r for r in console.audit("access_review") if r["actor"] == "root"]
    assert len(reviews) == 2
    assert reviews[0]["after"]["note"] == f"disabled: {stale[0]}"
    assert stale[1] in reviews[0]["after"]["inactive"]  # still listed when it was recorded
    assert reviews[1]["after"]["note"] == f"disabled: {stale[1]}, {stale[2]}"
    assert admin.post("/admin/access-review", {"inactive_days": "30", "action": "record"}
                      ).status_code == 303
    assert len([r for r in console.audit("access_review") if r["actor"] == "root"]) == 3


def test_api_tokens_shown_once_listed_and_revoked(console: ConsoleDaemon) -> None:
    admin_login = console.user("client_admin", ["acme"])
    member = console.user("client_operator", ["acme"])
    member_session = _login_token(console, member)
    member_token, _ = console.directory.issue_api_token(
        console.directory.authenticate(member_session), "member's", None, None)
    admin = signed_in(console, admin_login)
    created = admin.post("/admin/tokens", {"name": "siem export", "ttl": "7d"})
    secret = re.search(r'id="token-secret" readonly value="([^"]+)"', created.text)
    assert created.status_code == 200 and secret and secret.group(1).startswith("vgt_")
    listing = admin.get("/admin/tokens").text
    assert "siem export" in listing and secret.group(1) not in listing
    assert "member&#39;s" in listing or "member's" in listing
    assert console.directory.authenticate(secret.group(1)) is not None
    mine = [t for t in console.directory.tokens(admin_login) if t["name"] == "siem export"]
    assert admin.post(f"/admin/tokens/{mine[0]['id']}/revoke", {}).status_code == 303
    assert console.directory.authenticate(secret.group(1)) is None
    theirs = [t for t in console.directory.tokens(member) if t["kind"] == "api"]
    assert admin.post(f"/admin/users/{member}/tokens/{theirs[0]['id']}/revoke", {}
                      ).status_code == 303
    assert console.directory.authenticate(member_token) is None
    # Wider than the admin: refused by the API's rule.
    assert admin.post("/admin/tokens", {"name": "wide", "tenants": "demo"}).status_code == 400
