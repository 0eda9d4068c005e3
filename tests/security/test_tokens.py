"""Issue 13, break 3: a derived API token never outlives or out-scopes the token that made it,
and dies with it; users list and revoke their own tokens and log out everywhere; every token
made is audited (never its value). Over HTTP against a real control listener."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from alerts.kit import TENANTS_YAML, UNUSED_MAIL_YAML, write_conf
from api.harness import PASSWORD, Api, serve_api

from collector.cli import main
from soc.alerts.db import Database
from soc.alerts.model import Actor
from soc.auth.directory import UserDirectory
from soc.auth.model import AuthError
from soc.auth.totp import current_code


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serve_api(tmp_path) as harness:
        yield harness


async def _token(api: Api, parent: str, **body: object) -> dict:
    status, reply = await api.call("POST", "/auth/tokens", token=parent,
                                   json={"name": "ci", **body})
    assert status == 200, reply
    return reply


async def _alive(api: Api, token: str) -> bool:
    return (await api.call("GET", "/auth/me", token=token))[0] == 200


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_a_token_made_by_a_session_dies_when_the_session_expires(api: Api) -> None:
    session = api.tokens["ana"]
    _, me = await api.call("GET", "/auth/me", token=session)
    child = await _token(api, session, ttl="90d")
    assert _at(child["expires_at"]) <= _at(me["expires_at"])
    api.clock.advance(hours=8, seconds=1)
    assert not await _alive(api, session)
    assert not await _alive(api, child["token"])


async def test_a_two_second_token_cannot_mint_a_longer_one(api: Api) -> None:
    short = await _token(api, api.tokens["ana"], ttl="2s")
    grandchild = await _token(api, short["token"])  # asks for the policy's longest lifetime
    assert _at(grandchild["expires_at"]) <= _at(short["expires_at"])
    api.clock.advance(seconds=3)
    assert not await _alive(api, grandchild["token"])


async def test_logout_revokes_the_tokens_made_from_the_session(api: Api) -> None:
    session = await api.login("ciso")
    child = await _token(api, session)
    grandchild = await _token(api, child["token"], tenants=["acme"])
    assert await _alive(api, grandchild["token"])
    assert (await api.call("POST", "/auth/logout", token=session))[0] == 200
    assert not await _alive(api, child["token"])
    assert not await _alive(api, grandchild["token"])


async def test_a_narrowed_token_cannot_mint_a_wider_one(api: Api) -> None:
    narrow = await _token(api, api.tokens["ciso"], tenants=["acme"])
    status, reply = await api.call("POST", "/auth/tokens", token=narrow["token"],
                                   json={"name": "wider", "tenants": ["bravo"]})
    assert status == 400 and "subset" in reply["error"]
    child = await _token(api, narrow["token"])
    assert child["principal"]["tenants"] == ["acme"]


async def test_users_list_and_revoke_their_own_tokens(api: Api) -> None:
    child = await _token(api, api.tokens["ana"], name="ci-runner")
    status, listing = await api.call("GET", "/auth/tokens", "ana")
    assert status == 200
    assert child["token"] not in json.dumps(listing)
    mine = {t["name"]: t for t in listing["items"]}
    assert mine["ci-runner"]["kind"] == "api"
    assert mine["ci-runner"]["parent_id"] is not None
    token_id = mine["ci-runner"]["id"]
    # another user cannot see or revoke it
    _, theirs = await api.call("GET", "/auth/tokens", "ciso")
    assert token_id not in {t["id"] for t in theirs["items"]}
    assert (await api.call("DELETE", f"/auth/tokens/{token_id}", "ciso"))[0] == 404
    assert await _alive(api, child["token"])
    assert (await api.call("DELETE", f"/auth/tokens/{token_id}", "ana"))[0] == 200
    assert not await _alive(api, child["token"])
    assert await _alive(api, api.tokens["ana"])


async def test_logout_everywhere_revokes_every_token_of_the_user(api: Api) -> None:
    other_session = await api.login("ana")
    child = await _token(api, other_session)
    status, reply = await api.call("POST", "/auth/logout-all", "ana")
    assert status == 200 and reply["revoked"] >= 3
    for token in (api.tokens["ana"], other_session, child["token"]):
        assert not await _alive(api, token)
    assert await _alive(api, api.tokens["ciso"])


async def test_token_creation_is_audited_without_the_token(api: Api) -> None:
    child = await _token(api, api.tokens["ana"], name="exporter", ttl="1d")
    status, page = await api.call("GET", "/audit", "admin", params={"tenant": "_platform"})
    assert status == 200, page
    made = [r for r in page["items"]
            if r["action"] == "token_create" and r["after"]["kind"] == "api"]
    assert made, page
    record = made[0]
    assert record["actor"] == "ana" and record["address"] == "127.0.0.1"
    assert record["after"]["name"] == "exporter"
    assert record["after"]["tenants"] == ["acme"]
    assert record["after"]["expires_at"] == child["expires_at"]
    assert child["token"] not in json.dumps(page)


def test_the_cli_lists_and_revokes_a_users_tokens(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from alerts.kit import Clock

    conf, data = tmp_path / "conf.d", tmp_path / "data"
    write_conf(conf, TENANTS_YAML, "10-tenants.yaml")
    write_conf(conf, UNUSED_MAIL_YAML, "60-notify.yaml")
    args = ["-c", str(conf), "--data-dir", str(data)]
    clock = Clock(datetime.now().astimezone())
    directory = UserDirectory(Database(data / "alerts.db"), clock=clock)
    new = directory.add_user("ana", "Ana", "a@example.com", "soc_l1", ["acme"],
                             Actor("root", None))
    directory.activate("ana", new.activation_token, PASSWORD,
                       current_code(new.totp_secret, clock()))
    clock.advance(seconds=30)
    session, principal = directory.login("ana", PASSWORD,
                                         current_code(new.totp_secret, clock()), None)
    api_token, _ = directory.issue_api_token(principal, "ci", None, None)
    assert main(["users", "tokens", "ana", "--json", *args]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {t["kind"] for t in listed} == {"session", "api"}
    assert session not in json.dumps(listed) and api_token not in json.dumps(listed)
    api_id = next(t["id"] for t in listed if t["kind"] == "api")
    assert main(["users", "revoke-token", "ana", api_id, *args]) == 0
    assert directory.authenticate(api_token) is None
    assert directory.authenticate(session) is not None
    assert main(["users", "logout", "ana", *args]) == 0
    assert directory.authenticate(session) is None
    assert main(["users", "revoke-token", "ana", "nope", *args]) == 1



async def test_a_revoked_token_mints_nothing(api: Api) -> None:
    directory = api.alerting.directory
    session = await api.login("ana")
    principal = directory.authenticate(session)  # a request that raced with the logout
    assert principal is not None
    directory.revoke(session)
    with pytest.raises(AuthError, match="no longer valid"):
        directory.issue_api_token(principal, "late", None, None)
