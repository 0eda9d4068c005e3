"""The isolation attack suite: a user of tenant A tries to list, read or change tenant B's
alerts through ids, filters, paging, bulk calls and the audit log; a multi-tenant user sees
exactly its tenants; a client viewer cannot change anything; nobody unauthenticated gets in."""

from __future__ import annotations

import itertools

import pytest
from api.harness import Api

CHANGES = [("acknowledge", None), ("assign", {"assignee": "ana"}),
           ("escalate", {"level": "L2", "reason": "x"}), ("notes", {"body": "x"}),
           ("resolve", {"resolution": "false_positive"}), ("reopen", {"reason": "x"})]


async def _ids(api: Api, who: str, query: str = "") -> tuple[set[str], int]:
    status, page = await api.call("GET", f"/alerts?limit=500{query}", who)
    assert status == 200, page
    return {a["id"] for a in page["items"]}, page["total"]


async def _snapshot(api: Api, tenant: str) -> list:
    status, page = await api.call("GET", f"/alerts?tenant={tenant}&limit=500", "admin")
    assert status == 200
    audit = await api.call("GET", f"/audit?tenant={tenant}&limit=1000", "admin")
    return [page["items"], audit[1]["total"]]


async def test_ids_of_another_tenant_look_like_missing_alerts(api: Api) -> None:
    theirs = api.alerts["bravo"][0]
    missing = await api.call("GET", "/alerts/00000000-0000-0000-0000-000000000000", "ana")
    assert missing == (404, {"error": "alert not found"})
    assert await api.call("GET", f"/alerts/{theirs}", "ana") == missing
    assert await api.call("GET", f"/alerts/{theirs}/audit", "ana") == missing
    for attempt in ("' OR 1=1 --", "%25", theirs.upper(), f"{theirs} ", "*"):
        status, _ = await api.call("GET", f"/alerts/{attempt}", "ana")
        assert status == 404


async def test_filters_and_paging_never_reach_another_tenant(api: Api) -> None:
    own = set(api.alerts["acme"])
    assert await _ids(api, "ana") == (own, 3)
    assert await api.call("GET", "/alerts?tenant=bravo", "ana") == \
        (404, {"error": "tenant 'bravo' not found"})
    assert (await api.call("GET", "/alerts?tenant=zulu", "ana"))[0] == 404
    assert (await api.call("GET", "/alerts?tenant=acme' OR '1'='1", "ana"))[0] == 400
    for status, severity in itertools.product(["new", "acknowledged", "resolved"],
                                              ["critical", "high", "low"]):
        ids, _ = await _ids(api, "ana", f"&status={status}&severity={severity}")
        assert ids <= own
    seen: list[str] = []
    for offset in range(0, 8):
        code, page = await api.call("GET", f"/alerts?limit=1&offset={offset}", "ana")
        assert code == 200 and page["total"] == 3
        seen += [a["id"] for a in page["items"]]
    assert sorted(seen) == sorted(own)
    ids, _ = await _ids(api, "ana", "&rule_id=ssh_brute_force&since=2000-01-01T00:00:00Z")
    assert ids == own


async def test_changes_to_another_tenant_are_404_and_change_nothing(api: Api) -> None:
    before = await _snapshot(api, "bravo")
    theirs = api.alerts["bravo"][0]
    for action, body in CHANGES:
        assert await api.call("POST", f"/alerts/{theirs}/{action}", "ana", json=body or {}) == \
            (404, {"error": "alert not found"})
    status, result = await api.call("POST", "/alerts/bulk", "ana", json={
        "ids": [api.alerts["acme"][0], theirs, api.alerts["charlie"][0], "nope"],
        "action": "resolve", "resolution": "false_positive"})
    assert status == 200
    assert [r["result"] for r in result["results"]] == ["ok", "not_found", "not_found",
                                                         "not_found"]
    assert await _snapshot(api, "bravo") == before


async def test_audit_log_is_scoped(api: Api) -> None:
    await api.call("POST", f"/alerts/{api.alerts['bravo'][0]}/acknowledge", "ciso")
    status, page = await api.call("GET", "/audit?limit=1000", "ana")
    assert status == 200 and {r["tenant"] for r in page["items"]} == {"acme"}
    assert all(r["alert_id"] in api.alerts["acme"] for r in page["items"])
    assert (await api.call("GET", "/audit?tenant=bravo", "ana"))[1]["total"] == 0
    assert (await api.call("GET", "/audit?tenant=_platform", "ana"))[1]["total"] == 0
    theirs = api.alerts["bravo"][0]
    assert (await api.call("GET", f"/audit?alert_id={theirs}", "ana"))[1]["total"] == 0
    # The platform's own records (logins, user administration) are for admins only.
    admin = await api.call("GET", "/audit?tenant=_platform&limit=1000", "admin")
    assert {"user_add", "login"} <= {r["action"] for r in admin[1]["items"]}


async def test_tenants_and_sla_reports_are_scoped(api: Api) -> None:
    status, body = await api.call("GET", "/tenants", "ana")
    assert status == 200 and [t["id"] for t in body["items"]] == ["acme"]
    assert (await api.call("GET", "/tenants/bravo", "ana"))[0] == 404
    assert (await api.call("GET", "/sla/report?tenant=bravo", "ana"))[0] == 404
    status, report = await api.call("GET", "/sla/report", "ana")
    assert status == 200 and {r["tenant"] for r in report["rows"]} == {"acme"}


async def test_multi_tenant_user_sees_exactly_its_tenants(api: Api) -> None:
    both = set(api.alerts["acme"]) | set(api.alerts["bravo"])
    assert await _ids(api, "ciso") == (both, 5)
    assert (await api.call("GET", f"/alerts/{api.alerts['charlie'][0]}", "ciso"))[0] == 404
    status, body = await api.call("GET", "/tenants", "ciso")
    assert [t["id"] for t in body["items"]] == ["acme", "bravo"]
    # A token narrowed to one tenant sees only that one.
    status, issued = await api.call("POST", "/auth/tokens", "ciso",
                                    json={"name": "bravo-only", "tenants": ["bravo"]})
    assert status == 200 and issued["principal"]["tenants"] == ["bravo"]
    status, page = await api.call("GET", "/alerts", token=issued["token"])
    assert {a["id"] for a in page["items"]} == set(api.alerts["bravo"])
    assert (await api.call("POST", "/auth/tokens", "ana",
                           json={"name": "wider", "tenants": ["bravo"]}))[0] == 400
    # The admin sees everything.
    assert (await _ids(api, "admin"))[1] == 6


async def test_client_viewer_cannot_change_anything(api: Api) -> None:
    before = await _snapshot(api, "acme")
    own = api.alerts["acme"][0]
    assert (await api.call("GET", f"/alerts/{own}", "viewer"))[0] == 200
    for action, body in CHANGES:
        status, reply = await api.call("POST", f"/alerts/{own}/{action}", "viewer",
                                       json=body or {})
        assert (status, reply) == (403, {"error": "your role does not allow this"})
    assert (await api.call("POST", "/alerts/bulk", "viewer",
                           json={"ids": [own], "action": "acknowledge"}))[0] == 403
    for method, path in (("GET", "/users"), ("POST", "/users/ana/disable"),
                         ("POST", "/users/ana/reset"), ("GET", "/users/review")):
        assert (await api.call(method, path, "viewer", json={}))[0] == 403
    assert await _snapshot(api, "acme") == before


@pytest.mark.parametrize("token", [None, "", "vgs_forged", "Basic abc"])
async def test_unauthenticated_calls_get_401(api: Api, token: str | None) -> None:
    own = api.alerts["acme"][0]
    paths = [("GET", "/alerts"), ("GET", f"/alerts/{own}"), ("GET", "/audit"),
             ("GET", "/tenants"), ("GET", "/sla/report"), ("GET", "/users"),
             ("POST", f"/alerts/{own}/acknowledge"), ("POST", "/alerts/bulk"),
             ("GET", "/auth/me")]
    for method, path in paths:
        status, body = await api.call(method, path, token=token, json={})
        assert (status, body) == (401, {"error": "authentication required"}), path


async def test_an_admin_token_narrowed_to_a_tenant_cannot_manage_users(api: Api) -> None:
    """User administration spans every tenant: a platform admin's token narrowed to one
    tenant is refused it (it would otherwise reset any user and get the activation link)."""
    status, narrow = await api.call("POST", "/auth/tokens", "admin",
                                    json={"name": "acme only", "tenants": ["acme"]})
    assert status == 201 or status == 200, narrow
    token = narrow["token"]
    for method, path in (("GET", "/users"), ("POST", "/users/ana/reset"),
                         ("POST", "/users/ana/disable"), ("GET", "/users/review"),
                         ("POST", "/users")):
        status, body = await api.call(method, path, token=token, json={})
        assert (status, body) == (403, {"error": "your role does not allow this"}), path
    assert (await api.call("GET", "/users", "admin"))[0] == 200  # the full-scope session can
    status, users = await api.call("GET", "/users", "admin")
    assert {u["login"]: u["status"] for u in users["items"]}["ana"] == "active"
