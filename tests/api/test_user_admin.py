"""User administration by a client's own administrator over /api/v1: it sees and changes only
client users of its tenants, grants no role above its own and no tenant outside its scope,
and every refusal is a 404 / 403 recorded in the audit trail."""

from __future__ import annotations

from api.harness import PASSWORD, ROOT, Api

from soc.alerts.model import Actor
from soc.auth.totp import current_code


async def _user(api: Api, login: str, role: str, tenants: list[str]) -> None:
    directory = api.alerting.directory
    new = directory.add_user(login, login.title(), f"{login}@example.com", role, tenants, ROOT)
    api.clock.advance(seconds=30)
    directory.activate(login, new.activation_token, PASSWORD,
                       current_code(new.totp_secret, api.clock()))
    api.secrets[login] = new.totp_secret
    api.tokens[login] = await api.login(login)


def _refusals(api: Api, login: str) -> list[dict]:
    records, _ = api.alerting.store.audit(Actor("test", None), limit=1000)
    return [r["after"] for r in records if r["action"] == "admin_refused"
            and r["actor"] == login]


async def test_a_client_admin_manages_only_client_users_of_its_tenants(api: Api) -> None:
    await _user(api, "acme-admin", "client_admin", ["acme"])
    await _user(api, "acme-op", "client_operator", ["acme"])
    await _user(api, "bravo-op", "client_operator", ["bravo"])
    status, users = await api.call("GET", "/users", "acme-admin")
    assert status == 200
    # Not ana (the provider's soc_l1 on acme), ciso (acme and bravo), admin, bravo-op.
    assert {u["login"] for u in users["items"]} == {"acme-admin", "acme-op", "viewer"}
    for target in ("bravo-op", "ana", "ciso", "admin", "nobody"):
        for method, path in (("POST", f"/users/{target}/disable"),
                             ("POST", f"/users/{target}/unlock"),
                             ("POST", f"/users/{target}/reset"),
                             ("GET", f"/users/{target}/tokens"),
                             ("DELETE", f"/users/{target}/tokens/0123456789abcdef")):
            reply = await api.call(method, path, "acme-admin", json={})
            assert reply == (404, {"error": "user not found"}), (method, path)
        reply = await api.call("POST", f"/users/{target}/access", "acme-admin",
                               json={"role": "client_viewer", "tenants": ["acme"]})
        assert reply == (404, {"error": "user not found"})
    assert {u.login: u.status for u in api.alerting.directory.users()}["bravo-op"] == "active"
    assert (await api.call("GET", "/auth/me", "bravo-op"))[0] == 200  # its token lives
    assert len(_refusals(api, "acme-admin")) == 30
    status, review = await api.call("GET", "/users/review?inactive_days=1", "acme-admin")
    assert status == 200 and {u["login"] for u in review["multi_tenant"]} == set()
    # What it may do: change an acme client user within client roles and its tenant.
    status, changed = await api.call("POST", "/users/acme-op/access", "acme-admin",
                                     json={"role": "client_viewer", "tenants": ["acme"],
                                           "reason": "read only now"})
    assert status == 200 and changed["role"] == "client_viewer"
    assert (await api.call("POST", "/users/acme-op/disable", "acme-admin",
                           json={"reason": "left"}))[1]["status"] == "disabled"


async def test_no_role_above_ones_own_and_no_tenant_outside_ones_scope(api: Api) -> None:
    await _user(api, "acme-admin", "client_admin", ["acme"])
    await _user(api, "acme-op", "client_operator", ["acme"])
    base = {"login": "eve", "display_name": "Eve", "email": "eve@example.com"}
    for role, tenants, status in (("platform_admin", [], 403), ("soc_l3", ["acme"], 403),
                                  ("client_operator", ["bravo"], 404),
                                  ("client_admin", ["acme", "bravo"], 404),
                                  ("client_viewer", [], 400)):
        reply = await api.call("POST", "/users", "acme-admin",
                               json={**base, "role": role, "tenants": tenants})
        assert reply[0] == status, (role, tenants, reply)
    for role, tenants, status in (("soc_l1", ["acme"], 403), ("client_admin", ["bravo"], 404)):
        reply = await api.call("POST", "/users/acme-op/access", "acme-admin",
                               json={"role": role, "tenants": tenants})
        assert reply[0] == status
    assert api.alerting.directory.get("eve") is None
    user = api.alerting.directory.get("acme-op")
    assert user is not None and (user.role, user.tenants) == ("client_operator", ["acme"])
    refused = _refusals(api, "acme-admin")
    assert [(r["attempted"], r["role"], r["status"]) for r in refused] == [
        ("user_add", "platform_admin", 403), ("user_add", "soc_l3", 403),
        ("user_add", "client_operator", 404), ("user_add", "client_admin", 404),
        ("user_change", "soc_l1", 403),
        ("user_change", "client_admin", 404)]
    # Allowed: past the checks, the (unreachable) mail server decides; nobody is created.
    reply = await api.call("POST", "/users", "acme-admin",
                           json={**base, "role": "client_admin", "tenants": ["acme"]})
    assert reply[0] == 409 and "mail" in reply[1]["error"]
    assert api.alerting.directory.get("eve") is None
