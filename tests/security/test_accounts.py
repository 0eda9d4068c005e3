"""Issue 13, break 6 (accounts): an activation link takes a few wrong codes, not unlimited
guesses; common passwords are refused with the estimator's advice; alerts are assigned only to
active users of the alert's tenant; a failed login never logs the login field as typed."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from api.harness import PASSWORD, ROOT, Api, serve_api

from soc.auth.totp import current_code


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serve_api(tmp_path) as harness:
        yield harness


def _wrong(code: str) -> str:
    return "000000" if code != "000000" else "111111"


async def test_an_activation_link_dies_after_a_few_wrong_codes(api: Api) -> None:
    new = api.alerting.directory.add_user("newbie", "Newbie", "n@example.com", "soc_l1",
                                          ["acme"], ROOT)
    body = {"login": "newbie", "token": new.activation_token, "password": PASSWORD}
    wrong = _wrong(current_code(new.totp_secret, api.clock()))
    limit = api.alerting.policy.max_activation_attempts
    for _ in range(limit):
        status, reply = await api.call("POST", "/auth/activate", json={**body, "code": wrong})
        assert status == 400 and "code is not valid" in reply["error"]
    status, reply = await api.call("POST", "/auth/activate", json={
        **body, "code": current_code(new.totp_secret, api.clock())})
    assert status == 400
    assert "too many wrong codes" in reply["error"] and "new activation link" in reply["error"]
    assert api.alerting.directory.get("newbie").status == "pending"  # type: ignore[union-attr]
    # the administrator re-issues the link (reset), which works again
    again = api.alerting.directory.reset_enrollment("newbie", ROOT, "locked out of activation")
    api.clock.advance(seconds=30)
    status, reply = await api.call("POST", "/auth/activate", json={
        **body, "token": again.activation_token,
        "code": current_code(again.totp_secret, api.clock())})
    assert (status, reply["status"]) == (200, "active")


@pytest.mark.parametrize("password", ["password1234", "qwertyuiop123", "acmeacmeacme1"])
async def test_common_passwords_are_refused_with_advice(api: Api, password: str) -> None:
    new = api.alerting.directory.add_user("weak", "Weak", "w@example.com", "soc_l1",
                                          ["acme"], ROOT)
    status, reply = await api.call("POST", "/auth/activate", json={
        "login": "weak", "token": new.activation_token, "password": password,
        "code": current_code(new.totp_secret, api.clock())})
    assert status == 400
    assert reply["error"].startswith("the password is too easy to guess"), reply
    assert password not in reply["error"]
    assert api.alerting.directory.get("weak").status == "pending"  # type: ignore[union-attr]


async def test_common_password_message_carries_the_estimators_feedback(api: Api) -> None:
    new = api.alerting.directory.add_user("weak", "Weak", "w@example.com", "soc_l1",
                                          ["acme"], ROOT)
    _, reply = await api.call("POST", "/auth/activate", json={
        "login": "weak", "token": new.activation_token, "password": "password1234",
        "code": current_code(new.totp_secret, api.clock())})
    assert "very common password" in reply["error"]


def _add_active(api: Api, login: str, role: str, tenants: list[str]) -> None:
    directory = api.alerting.directory
    new = directory.add_user(login, login.title(), f"{login}@example.com", role, tenants, ROOT)
    api.clock.advance(seconds=30)
    directory.activate(login, new.activation_token, PASSWORD,
                       current_code(new.totp_secret, api.clock()))


async def test_alerts_are_assigned_only_to_users_of_their_tenant(api: Api) -> None:
    _add_active(api, "bob", "soc_l1", ["bravo"])
    _add_active(api, "gone", "soc_l1", ["acme"])
    api.alerting.directory.disable("gone", ROOT)
    alert_id = api.alerts["acme"][0]
    path = f"/alerts/{alert_id}/assign"
    messages = set()
    for assignee in ("bob", "nobody", "gone"):
        status, reply = await api.call("POST", path, "ana", json={"assignee": assignee})
        assert status == 400, (assignee, reply)
        messages.add(reply["error"].replace(assignee, "X"))
    assert len(messages) == 1  # another tenant's user looks like no user at all
    _, alert = await api.call("GET", f"/alerts/{alert_id}", "ana")
    assert alert["assignee"] is None
    for assignee in ("ciso", "admin", "ana", None):  # tenant users, a platform admin, nobody
        status, reply = await api.call("POST", path, "ana", json={"assignee": assignee})
        assert status == 200, (assignee, reply)


async def test_bulk_assignment_checks_every_alerts_tenant(api: Api) -> None:
    _add_active(api, "bob", "soc_l1", ["bravo"])
    ids = [api.alerts["acme"][0], api.alerts["bravo"][0]]
    status, reply = await api.call("POST", "/alerts/bulk", "ciso", json={
        "ids": ids, "action": "assign", "assignee": "bob"})
    assert status == 200, reply
    results = {r["id"]: r for r in reply["results"]}
    assert results[ids[0]]["result"] == "invalid" and "bob" in results[ids[0]]["error"]
    assert results[ids[1]]["result"] == "ok"
    status, reply = await api.call("POST", "/alerts/bulk", "ciso", json={
        "ids": ids, "action": "assign", "assignee": "nobody"})
    assert {r["result"] for r in reply["results"]} == {"invalid"}


async def test_a_failed_login_never_logs_the_login_field(api: Api,
                                                         caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    typed = "Summer2025!hunter"  # a password typed into the login field
    caplog.set_level(logging.DEBUG)
    status, _ = await api.call("POST", "/auth/login", json={
        "login": typed, "password": "x", "code": "123456"})
    assert status == 401
    assert caplog.records
    for record in caplog.records:
        assert typed not in record.getMessage()
        assert typed[:8] not in str(vars(record)), vars(record)
    refused = [r for r in caplog.records if r.getMessage() == "login refused"]
    digest = hashlib.sha256(typed.encode()).hexdigest()
    assert refused and getattr(refused[0], "login_hash", "") == digest[:12]
