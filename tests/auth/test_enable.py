"""Enabling a disabled user again: back to `active` with password and TOTP if it had been
activated, back to `pending` (a new activation link needed) if not; who disabled and who
enabled, when and why, kept on the account and in the audit; tokens from before the disable
stay dead, even one issued in the instant the disable committed."""

from __future__ import annotations

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
HR = Actor("hr-admin", frozenset({"acme"}), "127.0.0.2")
PASSWORD = "correct horse battery staple"


def _directory(tmp_path: Path, clock: Clock) -> UserDirectory:
    return UserDirectory(Database(tmp_path / "a.db"), AccessPolicy(), clock=clock,
                         known_tenants=lambda: {"acme", "bravo"})


def _active(directory: UserDirectory, clock: Clock, login: str = "ana") -> str:
    new = directory.add_user(login, login.title(), f"{login}@example.com", "client_operator",
                             ["acme"], ADMIN)
    directory.activate(login, new.activation_token, PASSWORD,
                       current_code(new.totp_secret, clock()))
    clock.advance(seconds=30)
    return new.totp_secret


def _audit(directory: UserDirectory, action: str) -> list[dict]:
    records, _ = AlertStore(directory.db).audit(Actor("x", None), tenant="_platform")
    return [r for r in records if r["action"] == action]


def test_an_active_user_comes_back_active_with_its_credentials(tmp_path: Path) -> None:
    clock = Clock()
    directory = _directory(tmp_path, clock)
    secret = _active(directory, clock)
    session, _ = directory.login("ana", PASSWORD, current_code(secret, clock()), "192.0.2.1")
    api, _ = directory.issue_api_token(directory.authenticate(session),  # type: ignore
                                       "export", None, None)
    clock.advance(minutes=5)
    disabled = directory.disable("ana", ADMIN, "parental leave")
    assert (disabled.status, disabled.disabled_by, disabled.disabled_reason) == (
        "disabled", "root", "parental leave")
    clock.advance(minutes=10)  # the old tokens have not expired: only revoked
    enabled = directory.enable("ana", HR, "back from leave")
    assert enabled.status == "active"
    assert enabled.enabled_by == "hr-admin"
    assert enabled.enabled_at is not None and disabled.disabled_at is not None
    assert enabled.enabled_at > disabled.disabled_at
    assert (enabled.disabled_by, enabled.disabled_reason) == ("root", "parental leave")
    # The old session and API token stay revoked; the same password and TOTP sign in again.
    assert directory.authenticate(session) is None and directory.authenticate(api) is None
    clock.advance(seconds=30)
    fresh, _ = directory.login("ana", PASSWORD, current_code(secret, clock()), "192.0.2.1")
    assert directory.authenticate(fresh) is not None
    record = _audit(directory, "user_enable")[-1]
    assert (record["actor"], record["address"]) == ("hr-admin", "127.0.0.2")
    assert record["before"] == {"login": "ana", "status": "disabled"}
    assert record["after"] == {"login": "ana", "status": "active",
                               "reason": "back from leave"}
    assert _audit(directory, "user_disable")[-1]["after"]["login"] == "ana"


def test_a_user_disabled_while_pending_is_pending_again(tmp_path: Path) -> None:
    clock = Clock()
    directory = _directory(tmp_path, clock)
    new = directory.add_user("bob", "Bob", "bob@example.com", "client_viewer", ["acme"], ADMIN)
    directory.disable("bob", ADMIN, "contract not signed")
    enabled = directory.enable("bob", ADMIN, "contract signed")
    assert enabled.status == "pending"
    # The old activation link died with the disable: a new enrollment is needed.
    with pytest.raises(AuthError, match="invalid or expired activation link"):
        directory.activate("bob", new.activation_token, PASSWORD,
                           current_code(new.totp_secret, clock()))
    with pytest.raises(LoginFailed):
        directory.login("bob", PASSWORD, current_code(new.totp_secret, clock()), None)
    reset = directory.reset_enrollment("bob", ADMIN, "new link after enable")
    directory.activate("bob", reset.activation_token, PASSWORD,
                       current_code(reset.totp_secret, clock()))
    assert directory.get("bob").status == "active"  # type: ignore[union-attr]
    # A user reset (pending) and then disabled also comes back pending.
    _active(directory, clock, "cyd")
    directory.reset_enrollment("cyd", ADMIN, "lost phone")
    directory.disable("cyd", ADMIN)
    assert directory.enable("cyd", ADMIN, "found").status == "pending"


def test_only_a_disabled_user_can_be_enabled(tmp_path: Path) -> None:
    clock = Clock()
    directory = _directory(tmp_path, clock)
    _active(directory, clock)
    with pytest.raises(AuthError) as info:
        directory.enable("ana", ADMIN, "x")
    assert info.value.reason == "not_disabled" and "is not disabled" in str(info.value)
    with pytest.raises(AuthError) as info:
        directory.enable("nobody", ADMIN, "x")
    assert info.value.reason == "not_found"
    assert not _audit(directory, "user_enable")


def test_a_token_issued_as_the_disable_committed_does_not_come_back(tmp_path: Path) -> None:
    """A login checked just before the disable inserts its token just after it; the enable
    must not bring such a token to life (every token older than the enable stays dead)."""
    clock = Clock()
    directory = _directory(tmp_path, clock)
    _active(directory, clock)
    user = directory.get("ana")
    assert user is not None
    directory.disable("ana", ADMIN, "left")
    late = "vgs_late_token_from_a_racing_login"
    directory._issue(user, late, "session", None, directory.policy.session_ttl, None)
    assert directory.authenticate(late) is None  # disabled: nothing authenticates
    directory.enable("ana", ADMIN, "came back")
    assert directory.authenticate(late) is None
