"""The API end to end over HTTP: login with TOTP (missing, wrong, replayed code), the login rate
limit, a full triage with its audit trail and metrics, and the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from api.harness import PASSWORD, Api, serve_api

from soc.auth.totp import current_code


async def test_login_refuses_missing_wrong_and_replayed_codes(api: Api) -> None:
    api.clock.advance(seconds=30)
    code = current_code(api.secrets["ana"], api.clock())
    refused = (401, {"error": "invalid login, password or code"})
    body = {"login": "ana", "password": PASSWORD}
    assert await api.call("POST", "/auth/login", json=body) == refused
    wrong = "000000" if code != "000000" else "111111"
    assert await api.call("POST", "/auth/login", json={**body, "code": wrong}) == refused
    status, ok = await api.call("POST", "/auth/login", json={**body, "code": code})
    assert status == 200 and ok["principal"]["tenants"] == ["acme"]
    assert await api.call("POST", "/auth/login", json={**body, "code": code}) == refused
    t = api.alerting.telemetry
    for reason in ("missing_code", "bad_code", "replayed_code"):
        assert t.sample("vigil_auth_logins_total", result=reason) == 1
    status, me = await api.call("GET", "/auth/me", token=ok["token"])
    assert (status, me["login"], me["token_kind"]) == (200, "ana", "session")
    assert await api.call("POST", "/auth/logout", token=ok["token"]) == (200, {"ok": True})
    assert (await api.call("GET", "/auth/me", token=ok["token"]))[0] == 401


async def test_login_attempts_are_rate_limited_per_address(tmp_path: Path) -> None:
    from soc.api.framework import RateLimiter

    limiter = RateLimiter(3, monotonic=lambda: 0.0)
    assert [limiter.allow("a") for _ in range(4)][:3] == [None, None, None]
    assert limiter.allow("a") == 60.0 and limiter.allow("b") is None
    statuses = []
    async with serve_api(tmp_path, login_attempts_per_minute=8) as api:  # 4 users logged in
        for _ in range(10):
            status, _ = await api.call("POST", "/auth/login",
                                       json={"login": "ana", "password": "x", "code": "1"})
            statuses.append(status)
            if status == 429:
                break
    assert statuses[-1] == 429 and set(statuses[:-1]) == {401}


async def test_triage_through_the_api_with_audit_and_metrics(api: Api) -> None:
    alert_id = api.alerts["acme"][0]  # critical: 15m to acknowledge
    created = datetime.fromisoformat((await api.call("GET", f"/alerts/{alert_id}",
                                                     "ana"))[1]["created_at"])
    to_ack = (api.clock.advance(minutes=5) - created).total_seconds()
    status, reply = await api.call("POST", f"/alerts/{alert_id}/acknowledge", "ana")
    assert status == 200 and reply["alert"]["status"] == "acknowledged"
    assert (await api.call("POST", f"/alerts/{alert_id}/acknowledge", "ana"))[0] == 409
    status, reply = await api.call("POST", f"/alerts/{alert_id}/escalate", "ana", json={
        "level": "L2", "reason": "lateral movement",
        "client_request": {"kind": "decision", "question": "Isolate web-1?"}})
    assert status == 200 and reply["alert"]["escalation"] == {"level": "L2",
                                                              "reason": "lateral movement"}
    assert (await api.call("POST", f"/alerts/{alert_id}/escalate", "ana",
                           json={"level": "L9", "reason": "x"}))[0] == 400
    await api.call("POST", f"/alerts/{alert_id}/assign", "ana", json={"assignee": "ciso"})
    to_resolve = (api.clock.advance(minutes=30) - created).total_seconds()
    status, reply = await api.call("POST", f"/alerts/{alert_id}/resolve", "ciso", json={
        "resolution": "true_positive", "note": "host isolated by the client"})
    assert status == 200 and reply["alert"]["resolution"] == "true_positive"
    status, alert = await api.call("GET", f"/alerts/{alert_id}", "ana")
    assert [n["body"] for n in alert["notes"]] == ["host isolated by the client"]
    assert len(alert["events"]) == 1
    status, trail = await api.call("GET", f"/alerts/{alert_id}/audit", "ana")
    assert [(r["action"], r["actor"]) for r in trail["items"]] == [
        ("created", "system"), ("acknowledge", "ana"), ("escalate", "ana"), ("assign", "ana"),
        ("resolve", "ciso"), ("note", "ciso")]
    assert trail["items"][1]["address"] == "127.0.0.1"
    t = api.alerting.telemetry
    assert t.sample("vigil_alerts_time_to_acknowledge_seconds_sum", tenant="acme",
                    severity="critical") == to_ack
    assert t.sample("vigil_alerts_time_to_resolve_seconds_sum", tenant="acme",
                    severity="critical") == to_resolve
    assert t.sample("vigil_alerts_triage_actions_total", tenant="acme", action="resolve") == 1
    # The escalation asked the client: the outbox holds a notification for it.
    events = [r["event"] for r in api.alerting.store.notifications("acme")]
    assert "escalation" in events
    status, report = await api.call("GET", "/sla/report?tenant=acme&since=1d", "ana")
    critical = next(r for r in report["rows"] if r["severity"] == "critical")
    assert (critical["mtta_seconds"], critical["mttr_seconds"]) == (to_ack, to_resolve)
    assert t.sample("vigil_api_requests_total", route="/api/v1/alerts/{alert_id}/acknowledge",
                    method="POST", code="409") == 1


async def test_bad_input_gets_400_with_detail_never_echoing_it(api: Api) -> None:
    status, body = await api.call("POST", "/auth/login", json={"login": "ana"})
    assert status == 400 and body["detail"][0]["loc"] == ["password"]
    status, body = await api.call("POST", "/auth/login", data=b"{not json",
                                  headers={"Content-Type": "application/json"})
    assert (status, body) == (400, {"error": "the body is not JSON"})
    secret_like = "p" * 2000
    status, body = await api.call("POST", "/auth/login",
                                  json={"login": "ana", "password": secret_like})
    assert status == 400 and secret_like not in str(body)
    assert (await api.call("GET", "/alerts?limit=0", "ana"))[0] == 400
    assert (await api.call("GET", "/alerts?since=9999-12-31T23:59:59-23:59", "ana"))[0] == 400


async def test_openapi_document_describes_every_route(api: Api) -> None:
    status, doc = await api.call("GET", "/openapi.json")
    assert status == 200 and doc["openapi"] == "3.1.0"
    paths = doc["paths"]
    assert set(paths["/api/v1/alerts/{alert_id}/resolve"]["post"]["responses"]) == \
        {"200", "400", "401", "403", "404", "409"}
    assert paths["/api/v1/auth/login"]["post"]["security"] == []
    assert "AlertDetail" in doc["components"]["schemas"]
    # 37; users (+4, enable +1), the integration map (+5), reports (+3)
    assert len([op for item in paths.values() for op in item]) == 50


async def test_admin_manages_users_through_the_api(api: Api) -> None:
    status, body = await api.call("GET", "/users", "admin")
    assert status == 200 and {u["login"] for u in body["items"]} == {"ana", "viewer", "ciso",
                                                                      "admin"}
    assert all("totp" not in str(u) and "hash" not in str(u) for u in body["items"])
    status, user = await api.call("POST", "/users/ana/disable", "admin", json={"reason": "left"})
    assert status == 200 and user["status"] == "disabled"
    assert (await api.call("GET", "/alerts", "ana"))[0] == 401
    assert (await api.call("POST", "/users/nobody/disable", "admin", json={}))[0] == 404
    status, review = await api.call("GET", "/users/review?inactive_days=1", "admin")
    assert status == 200 and [u["login"] for u in review["multi_tenant"]] == ["admin", "ciso"]


async def test_admin_resets_a_users_enrollment_through_the_api(api: Api) -> None:
    """The fixture's mail server does not listen: the reset stands (password and second
    factor cleared, tokens revoked) and the reply says the enrollment mail must be resent."""
    assert (await api.call("GET", "/alerts", "ciso"))[0] == 200
    status, body = await api.call("POST", "/users/ciso/reset", "admin",
                                  json={"reason": "lost phone"})
    assert (status, body) == (409, {"error": "the reset stands but the enrollment mail could "
                                             "not be sent; reset again once mail works"})
    assert (await api.call("GET", "/alerts", "ciso"))[0] == 401
    status, listed = await api.call("GET", "/users", "admin")
    assert {u["login"]: u["status"] for u in listed["items"]}["ciso"] == "pending"
    assert (await api.call("POST", "/users/nobody/reset", "admin", json={}))[0] == 404
