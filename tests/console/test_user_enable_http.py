"""Enabling a disabled user again, over HTTP against a real daemon: from the console's user
page and `POST /api/v1/users/{login}/enable`, by a platform admin and by a tenant's own
admin; a tenant admin reaching for another tenant's user or a provider-side role is refused
(404 like every user outside its reach) and audited; enabling a user that is not disabled is
a 409; the user signs in again and its session from before the disable stays dead."""

from __future__ import annotations

import requests
from console.kit import PASSWORD, ROOT, ConsoleDaemon, signed_in


def status(console: ConsoleDaemon, login: str) -> str:
    user = console.directory.get(login)
    assert user is not None
    return user.status


def api_token(console: ConsoleDaemon, login: str) -> str:
    token, _ = console.directory.login(login, PASSWORD, console.code(login), "127.0.0.1")
    return token


def api_enable(console: ConsoleDaemon, token: str, login: str, reason: str = "back"
               ) -> requests.Response:
    return requests.post(f"{console.base}/api/v1/users/{login}/enable", json={"reason": reason},
                         headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_a_platform_admin_enables_from_the_user_page_and_old_sessions_stay_dead(
        console: ConsoleDaemon) -> None:
    user = console.user("client_operator", ["acme"])
    before = signed_in(console, user)
    assert before.get("/alerts").status_code == 200
    admin = signed_in(console, "root")
    assert admin.post(f"/admin/users/{user}/disable", {"reason": "parental leave"}
                      ).status_code == 303
    page = admin.get(f"/admin/users/{user}").text
    assert 'id="enable"' in page and 'id="disable"' not in page
    assert "parental leave" in page and "root" in page
    assert admin.post(f"/admin/users/{user}/enable", {"reason": "x"}, csrf=False
                      ).status_code == 403  # a form from elsewhere
    assert status(console, user) == "disabled"
    reply = admin.post(f"/admin/users/{user}/enable", {"reason": "back from leave"})
    assert reply.status_code == 303 and reply.headers["Location"].endswith("?done=enable")
    assert status(console, user) == "active"
    page = admin.get(f"/admin/users/{user}?done=enable").text
    assert 'id="disable"' in page and 'id="enable"' not in page
    assert 'id="user-enabled"' in page
    # The cookie from before the disable does not come back to life.
    stale = before.get("/alerts")
    assert stale.status_code == 303 and stale.headers["Location"].startswith("/login")
    # The same password and authenticator sign in again.
    again = signed_in(console, user)
    assert again.get("/alerts").status_code == 200
    record = [r for r in console.audit("user_enable") if r["after"]["login"] == user][-1]
    assert record["actor"] == "root" and record["after"]["reason"] == "back from leave"
    assert record["before"]["status"] == "disabled" and record["after"]["status"] == "active"
    listed = admin.get("/admin/users").text
    assert f'id="changed-{user}"' in listed


def test_a_tenant_admin_enables_its_own_tenants_user_through_the_api(
        console: ConsoleDaemon) -> None:
    admin = console.user("client_admin", ["acme"])
    member = console.user("client_viewer", ["acme"])
    console.directory.disable(member, ROOT, "contract gap")
    reply = api_enable(console, api_token(console, admin), member, "new contract")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["status"], body["enabled_by"], body["disabled_reason"]) == (
        "active", admin, "contract gap")
    assert status(console, member) == "active"
    # Also through the console's form, and the access review lists the disabled ones.
    console.directory.disable(member, ROOT, "again")
    browser = signed_in(console, admin)
    review = browser.get("/admin/access-review").text
    assert f'id="disabled-{member}"' in review
    assert browser.post(f"/admin/users/{member}/enable", {"reason": "ok"}).status_code == 303
    assert status(console, member) == "active"


def test_a_tenant_admin_cannot_enable_another_tenants_user_or_a_provider_role(
        console: ConsoleDaemon) -> None:
    admin = console.user("client_admin", ["acme"])
    theirs = console.user("client_operator", ["demo"])
    spanning = console.user("client_operator", ["acme", "demo"])
    analyst = console.user("soc_l1", ["acme"])
    for login in (theirs, spanning, analyst):
        console.directory.disable(login, ROOT, "suspended")
    token = api_token(console, admin)
    browser = signed_in(console, admin)
    for login in (theirs, spanning, analyst):
        assert api_enable(console, token, login).status_code == 404, login
        assert browser.post(f"/admin/users/{login}/enable", {"reason": "x"}
                            ).status_code == 404, login
        assert status(console, login) == "disabled"
        assert f'id="disabled-{login}"' not in browser.get("/admin/access-review").text
    refused = [r["after"] for r in console.audit("admin_refused") if r["actor"] == admin]
    assert [(a["attempted"], a["login"], a["status"]) for a in refused] == [
        ("user_enable", login, 404) for login in (theirs, theirs, spanning, spanning,
                                                  analyst, analyst)]
    assert not [r for r in console.audit("user_enable") if r["actor"] == admin]


def test_enabling_a_user_that_is_not_disabled_is_a_conflict(console: ConsoleDaemon) -> None:
    user = console.user("client_viewer", ["acme"])
    token = api_token(console, "root")
    reply = api_enable(console, token, user)
    assert reply.status_code == 409
    assert "not disabled" in reply.json()["error"]
    admin = signed_in(console, "root")
    page = admin.post(f"/admin/users/{user}/enable", {"reason": "x"})
    assert page.status_code == 409 and "not disabled" in page.text
    assert api_enable(console, token, "nobody").status_code == 404
    # A reason is required: re-enabling undoes a security decision.
    console.directory.disable(user, ROOT, "x")
    assert api_enable(console, token, user, reason="").status_code == 400
    assert status(console, user) == "disabled"


def test_a_user_disabled_while_pending_is_pending_again(console: ConsoleDaemon) -> None:
    new = console.directory.add_user("late-starter", "Late", "late@example.com",
                                     "client_viewer", ["acme"], ROOT)
    console.directory.disable(new.user.login, ROOT, "start postponed")
    admin = signed_in(console, "root")
    assert admin.post("/admin/users/late-starter/enable", {"reason": "starts now"}
                      ).status_code == 303
    assert status(console, "late-starter") == "pending"
    page = admin.get("/admin/users/late-starter?done=enable").text
    assert "new activation link" in page and 'id="reset"' in page
