"""Users, activation, password + TOTP login (no code, wrong code, replayed code), lockout,
tokens with scope and expiry, and access review, against an injected clock."""

from __future__ import annotations

import base64
import datetime as dt
import os
from pathlib import Path

import pytest
from alerts.kit import Clock

from soc.alerts.db import Database
from soc.alerts.model import Actor
from soc.alerts.store import AlertStore
from soc.auth.config import AccessPolicy
from soc.auth.directory import UserDirectory
from soc.auth.model import AuthError, LoginFailed
from soc.auth.totp import current_code

ADMIN = Actor("root", None, "127.0.0.1")
PASSWORD = "correct horse battery staple"


def _directory(tmp_path: Path, clock: Clock, **policy: object) -> UserDirectory:
    return UserDirectory(Database(tmp_path / "a.db"), AccessPolicy(**policy),  # type: ignore
                         clock=clock, known_tenants=lambda: {"acme", "bravo", "charlie"})


def _active(directory: UserDirectory, clock: Clock, login: str = "ana", role: str = "soc_l1",
            tenants: tuple[str, ...] = ("acme",)) -> str:
    """An activated user; returns its TOTP secret."""
    new = directory.add_user(login, login.title(), f"{login}@example.com", role,
                             list(tenants), ADMIN)
    directory.activate(login, new.activation_token, PASSWORD,
                       current_code(new.totp_secret, clock()))
    clock.advance(seconds=30)  # the activation used this step's code
    return new.totp_secret


def test_login_needs_password_and_a_fresh_code(tmp_path: Path) -> None:
    clock = Clock()
    directory = _directory(tmp_path, clock)
    secret = _active(directory, clock)
    code = current_code(secret, clock())
    for password, given, reason in ((PASSWORD, None, "missing_code"),
                                    (PASSWORD, "000000" if code != "000000" else "111111",
                                     "bad_code"),
                                    ("wrong password!", code, "bad_password")):
        with pytest.raises(LoginFailed) as info:
            directory.login("ana", password, given, "192.0.2.1")
        assert info.value.reason == reason
        assert str(info.value) == "invalid login, password or code"
    token, principal = directory.login("ana", PASSWORD, code, "192.0.2.1")
    assert principal.tenants == frozenset({"acme"}) and principal.role == "soc_l1"
    with pytest.raises(LoginFailed) as info:  # the same code again: a replay
        directory.login("ana", PASSWORD, code, "192.0.2.1")
    assert info.value.reason == "replayed_code"
    clock.advance(seconds=30)
    directory.login("ana", PASSWORD, current_code(secret, clock()), "192.0.2.1")
    assert directory.authenticate(token) == principal


def test_failures_delay_the_address_for_a_while(tmp_path: Path) -> None:
    clock = Clock()
    directory = _directory(tmp_path, clock, max_failed_logins=3, lockout="15m")
    secret = _active(directory, clock)
    for _ in range(3):
        with pytest.raises(LoginFailed):
            directory.login("ana", "wrong password!", None, None)
    with pytest.raises(LoginFailed) as info:  # right password and code, but locked
        directory.login("ana", PASSWORD, current_code(secret, clock()), None)
    assert info.value.reason == "locked"
    clock.advance(minutes=15, seconds=1)
    directory.login("ana", PASSWORD, current_code(secret, clock()), None)
    records, _ = AlertStore(directory.db).audit(Actor("x", None), tenant="_platform")
    actions = [r["action"] for r in records]
    assert actions.count("login_failed") == 4
    assert actions[-2:] == ["login", "token_create"]
    assert PASSWORD not in str(records) and "wrong password!" not in str(records)


def test_unknown_and_disabled_users_fail_the_same_way(tmp_path: Path) -> None:
    clock = Clock()
    directory = _directory(tmp_path, clock)
    secret = _active(directory, clock)
    token, _ = directory.login("ana", PASSWORD, current_code(secret, clock()), None)
    with pytest.raises(LoginFailed, match="invalid login, password or code"):
        directory.login("nobody", PASSWORD, "123456", None)
    directory.disable("ana", ADMIN, "left the company")
    assert directory.authenticate(token) is None  # tokens die with the account
    clock.advance(seconds=30)
    with pytest.raises(LoginFailed) as info:
        directory.login("ana", PASSWORD, current_code(secret, clock()), None)
    assert info.value.reason == "inactive"


def test_activation_checks_token_expiry_password_and_code(tmp_path: Path) -> None:
    clock = Clock()
    directory = _directory(tmp_path, clock, activation_ttl="1h")
    new = directory.add_user("bo", "Bo", "bo@example.com", "client_viewer", ["acme"], ADMIN)
    code = current_code(new.totp_secret, clock())
    with pytest.raises(AuthError, match="invalid or expired activation link"):
        directory.activate("bo", "act_wrong", PASSWORD, code)
    with pytest.raises(AuthError, match="at least 12 characters"):
        directory.activate("bo", new.activation_token, "short", code)
    with pytest.raises(AuthError, match="code is not valid"):
        directory.activate("bo", new.activation_token, PASSWORD, "12345x")
    clock.advance(hours=1, seconds=1)
    with pytest.raises(AuthError, match="invalid or expired activation link"):
        directory.activate("bo", new.activation_token, PASSWORD,
                           current_code(new.totp_secret, clock()))
    other = directory.add_user("cy", "Cy", "cy@example.com", "client_viewer", ["acme"], ADMIN)
    user = directory.activate("cy", other.activation_token, PASSWORD,
                              current_code(other.totp_secret, clock()))
    assert user.status == "active"
    with pytest.raises(AuthError):  # one-time: the link is spent
        directory.activate("cy", other.activation_token, PASSWORD,
                           current_code(other.totp_secret, clock()))


def test_new_users_are_validated(tmp_path: Path) -> None:
    directory = _directory(tmp_path, Clock())
    for args, message in (
            (("Bad Login", "x@example.com", "soc_l1", ["acme"]), "must match"),
            (("ok", "not-an-email", "soc_l1", ["acme"]), "not an email address"),
            (("ok", "x@example.com", "wizard", ["acme"]), "role 'wizard'"),
            (("ok", "x@example.com", "soc_l1", []), "at least one tenant"),
            (("ok", "x@example.com", "soc_l1", ["zulu"]), "unknown tenant 'zulu'"),
            (("ok", "x@example.com", "platform_admin", ["acme"]), "covers every tenant")):
        with pytest.raises(AuthError, match=message):
            directory.add_user(args[0], "X", args[1], args[2], args[3], ADMIN)
    directory.add_user("ok", "X", "x@example.com", "soc_l1", ["acme"], ADMIN)
    with pytest.raises(AuthError, match="already exists"):
        directory.add_user("ok", "X", "x@example.com", "soc_l1", ["acme"], ADMIN)


def test_tokens_expire_and_narrow_to_the_users_scope(tmp_path: Path) -> None:
    clock = Clock()
    directory = _directory(tmp_path, clock, session_ttl="8h", api_token_ttl="30d")
    secret = _active(directory, clock, "lead", "soc_l3", ("acme", "bravo"))
    session, principal = directory.login("lead", PASSWORD, current_code(secret, clock()), None)
    assert principal.tenants == frozenset({"acme", "bravo"})
    api_token, narrow = directory.issue_api_token(principal, "ci", dt.timedelta(days=365),
                                                  ["bravo"])
    assert narrow.tenants == frozenset({"bravo"})
    assert narrow.expires_at == principal.expires_at  # never beyond the session's end
    with pytest.raises(AuthError, match="subset"):
        directory.issue_api_token(principal, "x", None, ["charlie"])
    assert directory.authenticate(api_token) == narrow
    other, _ = directory.issue_api_token(principal, "y", None, None)
    directory.revoke(other)
    assert directory.authenticate(other) is None
    assert directory.authenticate(api_token) == narrow
    clock.advance(hours=8)
    assert directory.authenticate(session) is None
    assert directory.authenticate(api_token) is None
    assert directory.authenticate("vgs_not-a-token") is None


def test_api_tokens_are_capped_by_the_policy(tmp_path: Path) -> None:
    clock = Clock()
    directory = _directory(tmp_path, clock, session_ttl="60d", api_token_ttl="30d")
    secret = _active(directory, clock, "lead", "soc_l3", ("acme", "bravo"))
    _, principal = directory.login("lead", PASSWORD, current_code(secret, clock()), None)
    _, token = directory.issue_api_token(principal, "ci", dt.timedelta(days=365), None)
    assert token.expires_at == "2025-04-02T09:00:30.000000+00:00"  # capped at 30 days


def test_review_lists_inactive_never_activated_and_multi_tenant(tmp_path: Path) -> None:
    clock = Clock()
    directory = _directory(tmp_path, clock, inactive_after="30d")
    secret = _active(directory, clock, "old", "soc_l1", ("acme",))
    directory.login("old", PASSWORD, current_code(secret, clock()), None)
    directory.add_user("ghost", "G", "g@example.com", "client_viewer", ["acme"], ADMIN)
    directory.add_user("ciso", "C", "c@example.com", "client_viewer", ["acme", "bravo"], ADMIN)
    directory.add_user("root2", "R", "r@example.com", "platform_admin", [], ADMIN)
    clock.advance(days=31)
    fresh = _active(directory, clock, "fresh", "soc_l1", ("charlie",))
    assert fresh
    review = directory.review()
    assert [u.login for u in review["inactive"]] == ["old"]
    assert [u.login for u in review["never_activated"]] == ["ciso", "ghost", "root2"]
    assert [u.login for u in review["multi_tenant"]] == ["ciso", "root2"]


def test_a_lost_key_refuses_the_login_until_the_user_is_reset(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    directory = _directory(tmp_path, clock, secret_key_file=str(tmp_path / "keys" / "k"))
    secret = _active(directory, clock)
    token, _ = directory.login("ana", PASSWORD, current_code(secret, clock()), None)
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("a.db*"))
    assert secret.encode() not in stored and (tmp_path / "keys" / "k").exists()
    assert not (tmp_path / "secret.key").exists()  # the policy's key file, not the default

    (tmp_path / "keys" / "k").unlink()  # the key is lost
    lost = _directory(tmp_path, clock, secret_key_file=str(tmp_path / "keys" / "k"))
    clock.advance(seconds=30)
    with pytest.raises(LoginFailed) as info:
        lost.login("ana", PASSWORD, current_code(secret, clock()), None)
    assert info.value.reason == "secret_unreadable"
    logged = [f"{r.getMessage()} {vars(r)}" for r in caplog.records]
    assert any("is missing: restore it" in line for line in logged)
    assert not any(secret in line for line in logged)
    # No new key behind the operator's back while secrets sealed with the old one exist.
    with pytest.raises(AuthError, match="cannot seal the TOTP secret: the key file .* is "
                                        "missing"):
        lost.reset_enrollment("ana", ADMIN, "key lost")
    assert not (tmp_path / "keys" / "k").exists()
    # The operator makes a new key by hand, as the error says, and resets the user.
    (tmp_path / "keys" / "k").write_text(base64.b64encode(os.urandom(32)).decode())
    reset = lost.reset_enrollment("ana", ADMIN, "key lost")
    assert reset.user.status == "pending" and reset.totp_secret != secret
    assert lost.authenticate(token) is None  # the old session dies with the reset
    with pytest.raises(LoginFailed) as info:
        lost.login("ana", PASSWORD, current_code(reset.totp_secret, clock()), None)
    assert info.value.reason == "inactive"
    lost.activate("ana", reset.activation_token, "a brand new passphrase",
                  current_code(reset.totp_secret, clock()))
    clock.advance(seconds=30)
    lost.login("ana", "a brand new passphrase", current_code(reset.totp_secret, clock()), None)
    records, _ = AlertStore(lost.db).audit(Actor("x", None), tenant="_platform")
    assert [r["action"] for r in records if r["action"] == "user_reset"] == ["user_reset"]


def test_reset_refuses_unknown_and_disabled_users(tmp_path: Path) -> None:
    directory = _directory(tmp_path, Clock())
    with pytest.raises(AuthError, match="no user 'nobody'"):
        directory.reset_enrollment("nobody", ADMIN)
    directory.add_user("ana", "Ana", "ana@example.com", "soc_l1", ["acme"], ADMIN)
    directory.disable("ana", ADMIN)
    with pytest.raises(AuthError, match="disabled"):
        directory.reset_enrollment("ana", ADMIN)


def test_a_secret_stored_before_sealing_still_logs_in_and_is_sealed_then(
        tmp_path: Path) -> None:
    clock = Clock()
    directory = _directory(tmp_path, clock)
    secret = _active(directory, clock)
    with directory.db.transaction() as con:  # as a store written before sealing held it
        con.execute("UPDATE users SET totp_secret = ? WHERE login = 'ana'", (secret,))
    directory.login("ana", PASSWORD, current_code(secret, clock()), None)
    with directory.db.transaction(write=False) as con:
        stored = con.execute("SELECT totp_secret FROM users WHERE login = 'ana'").fetchone()[0]
    assert stored.startswith("v1:") and secret not in stored
    clock.advance(seconds=30)
    directory.login("ana", PASSWORD, current_code(secret, clock()), None)


def test_a_console_session_ends_after_its_idle_timeout(tmp_path: Path) -> None:
    clock = Clock()
    directory = _directory(tmp_path, clock)
    secret = _active(directory, clock)
    token, _ = directory.login("ana", PASSWORD, current_code(secret, clock()), "10.0.0.1")
    derived, _ = directory.issue_api_token(directory.authenticate(token), "cli", None, None)
    idle = dt.timedelta(minutes=30)
    clock.advance(minutes=29)
    assert directory.touch_session(token, idle) is not None  # used: the clock restarts
    clock.advance(minutes=29)
    assert directory.touch_session(token, idle, refresh=False) is not None  # a poll
    clock.advance(minutes=2)  # 31 min since the last use (the poll did not count)
    assert directory.touch_session(token, idle, "10.0.0.1") is None
    assert directory.authenticate(token) is None and directory.authenticate(derived) is None
    trail, _ = AlertStore(directory.db).audit(ADMIN, tenant="_platform")
    assert [r["action"] for r in trail][-1] == "session_idle"
    assert directory.touch_session(derived, idle) is None  # API tokens are not sessions
