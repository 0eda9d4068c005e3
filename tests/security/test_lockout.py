"""Issue 13, break 4: failed logins delay one (account, source address) pair, exponentially,
instead of locking the account for everyone; a locked, unknown or wrong-password attempt costs
the same time; an administrator unlocks without wiping the user's credentials."""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from alerts.kit import TENANTS_YAML, UNUSED_MAIL_YAML, write_conf
from api.harness import PASSWORD, Api, serve_api

from collector.cli import main
from soc.auth.model import LoginFailed
from soc.auth.totp import current_code

ATTACKER = "203.0.113.66"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serve_api(tmp_path) as harness:
        yield harness


def _login(api: Api, who: str, address: str, password: str = PASSWORD) -> None:
    """Log in straight through the directory (the API sees every test client as 127.0.0.1)."""
    api.clock.advance(seconds=30)
    api.alerting.directory.login(who, password, current_code(api.secrets[who], api.clock()),
                                 address)


def _refused(api: Api, who: str, address: str, password: str = PASSWORD) -> str:
    with pytest.raises(LoginFailed) as info:
        _login(api, who, address, password)
    return info.value.reason


def _fail(api: Api, who: str, address: str, times: int) -> None:
    for _ in range(times):
        _refused(api, who, address, "not the password")


async def test_an_outsider_cannot_lock_a_user_out(api: Api) -> None:
    for _ in range(12):  # over HTTP, from the attacker's address
        status, _ = await api.call("POST", "/auth/login", json={
            "login": "admin", "password": "guess", "code": "123456"})
        assert status == 401
    _login(api, "admin", "192.0.2.50")  # the admin, from elsewhere, is not locked out
    _fail(api, "ana", ATTACKER, 20)
    _login(api, "ana", "192.0.2.51")
    assert _refused(api, "ana", ATTACKER) == "locked"  # the attacker's own pair is


async def test_failures_from_one_address_delay_it_exponentially(api: Api) -> None:
    policy = api.alerting.policy
    first = policy.lockout
    _fail(api, "ana", ATTACKER, policy.max_failed_logins)
    assert _refused(api, "ana", ATTACKER) == "locked"  # even with the right password
    api.clock.advance(seconds=first.total_seconds() + 1)
    _fail(api, "ana", ATTACKER, 1)  # one more failure: twice as long now
    api.clock.advance(seconds=first.total_seconds() + 1)
    assert _refused(api, "ana", ATTACKER) == "locked"
    api.clock.advance(seconds=first.total_seconds() + 1)
    _login(api, "ana", ATTACKER)  # the delay has passed: the right password works
    _fail(api, "ana", ATTACKER, 1)  # and the success cleared the count
    _login(api, "ana", ATTACKER)


def _median_seconds(attempt: Callable[[int], None], tries: int) -> float:
    times = []
    for i in range(tries):
        start = time.perf_counter()
        with pytest.raises(LoginFailed):
            attempt(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def test_locked_unknown_and_wrong_password_take_the_same_time(api: Api) -> None:
    directory = api.alerting.directory
    _fail(api, "ana", ATTACKER, api.alerting.policy.max_failed_logins)
    code = current_code(api.secrets["ana"], api.clock())
    tries = 7
    medians = {
        "wrong_password": _median_seconds(lambda i: directory.login(
            "ciso", "not the password", "123456", f"198.51.100.{i}"), tries),
        "locked": _median_seconds(lambda i: directory.login(
            "ana", PASSWORD, code, ATTACKER), tries),
        "unknown": _median_seconds(lambda i: directory.login(
            "nobody-here", "not the password", "123456", ATTACKER), tries),
    }
    assert max(medians.values()) < 3 * min(medians.values()), medians
    # and the client is told the same thing in every case (the test client is 127.0.0.1)
    _fail(api, "ana", "127.0.0.1", api.alerting.policy.max_failed_logins)
    replies = set()
    for login in ("ana", "nobody-here"):
        status, body = await api.call("POST", "/auth/login", json={
            "login": login, "password": PASSWORD, "code": code})
        replies.add((status, body["error"]))
    assert len(replies) == 1


async def test_an_admin_unlocks_without_wiping_the_credentials(api: Api) -> None:
    _fail(api, "ana", ATTACKER, api.alerting.policy.max_failed_logins)
    assert _refused(api, "ana", ATTACKER) == "locked"
    _, users = await api.call("GET", "/users", "admin")
    assert next(u for u in users["items"] if u["login"] == "ana")["locked_until"]
    assert (await api.call("POST", "/users/ana/unlock", "ana", json={}))[0] == 403
    status, user = await api.call("POST", "/users/ana/unlock", "admin",
                                  json={"reason": "user called"})
    assert status == 200, user
    assert user["status"] == "active" and user["locked_until"] is None
    _login(api, "ana", ATTACKER)  # same password, same authenticator
    assert (await api.call("POST", "/users/nobody/unlock", "admin", json={}))[0] == 404
    _, page = await api.call("GET", "/audit", "admin", params={"tenant": "_platform"})
    unlocks = [r for r in page["items"] if r["action"] == "user_unlock"]
    assert unlocks and unlocks[0]["actor"] == "admin"


def test_the_cli_unlocks_a_user(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import UTC, datetime

    from alerts.kit import Clock

    from soc.alerts.db import Database
    from soc.alerts.model import Actor
    from soc.auth.directory import UserDirectory

    conf, data = tmp_path / "conf.d", tmp_path / "data"
    write_conf(conf, TENANTS_YAML, "10-tenants.yaml")
    write_conf(conf, UNUSED_MAIL_YAML, "60-notify.yaml")
    clock = Clock(datetime.now(UTC))
    directory = UserDirectory(Database(data / "alerts.db"), clock=clock)
    new = directory.add_user("ana", "Ana", "a@example.com", "soc_l1", ["acme"],
                             Actor("root", None))
    directory.activate("ana", new.activation_token, PASSWORD,
                       current_code(new.totp_secret, clock()))
    for _ in range(directory.policy.max_failed_logins):
        with pytest.raises(LoginFailed):
            directory.login("ana", "wrong", "000000", ATTACKER)
    assert directory.get("ana").locked_until is not None  # type: ignore[union-attr]
    args = ["-c", str(conf), "--data-dir", str(data)]
    assert main(["users", "unlock", "ana", *args]) == 0
    assert "unlocked" in capsys.readouterr().out
    assert directory.get("ana").locked_until is None  # type: ignore[union-attr]
    clock.advance(seconds=30)
    directory.login("ana", PASSWORD, current_code(new.totp_secret, clock()), ATTACKER)
    assert main(["users", "unlock", "nobody", *args]) == 1
    assert timedelta(0) < directory.policy.lockout
