"""The user directory: accounts with roles and tenant scopes, activation, password + TOTP login
with lockout, sessions and API tokens (stored hashed, scoped, expiring), and access review.

Secrets never leave this module except to the one party that must have them: the activation
token and TOTP secret are returned to `add_user` (the caller prints the link and mails the
enrollment), a session or API token to its owner. Nothing here logs them.
"""

from __future__ import annotations

import hmac
import logging
import re
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.config import is_tenant_id
from soc.alerts.audit import write_audit
from soc.alerts.db import Database, from_text, to_text
from soc.alerts.model import PLATFORM, Actor
from soc.auth import lockout
from soc.auth.config import AccessPolicy
from soc.auth.model import AuthError, LoginFailed, NewUser, Principal, User
from soc.auth.passwords import (
    burn_password_time,
    hash_password,
    password_problem,
    verify_password,
)
from soc.auth.roles import ALL_TENANTS, ROLES
from soc.auth.sealing import VERSION as SEALED_VERSION
from soc.auth.sealing import SealError, SecretSealer, is_sealed
from soc.auth.sessions import TokenKeeper
from soc.auth.tokens import new_token, token_hash
from soc.auth.totp import ReplayedCode, matching_step, new_secret

log = logging.getLogger(__name__)
SEALED_PREFIX = SEALED_VERSION + ":"

LOGIN_RE = re.compile(r"[a-z0-9][a-z0-9._@-]{1,63}")
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class UserDirectory(TokenKeeper):
    """Users, their scopes and their tokens, in the store's database."""

    def __init__(self, db: Database, policy: AccessPolicy | None = None, *,
                 clock: Callable[[], datetime] | None = None,
                 known_tenants: Callable[[], set[str]] | None = None) -> None:
        self.db = db
        self.policy = policy or AccessPolicy()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.known_tenants = known_tenants
        self._sealers: dict[Path, SecretSealer] = {}

    def sealer(self) -> SecretSealer:
        """The sealer for TOTP secrets: the policy's key file (which a reload may change), by
        default `secret.key` beside the store."""
        path = self.policy.secret_key_file or self.db.path.with_name("secret.key")
        if path not in self._sealers:
            self._sealers[path] = SecretSealer(path, may_create=self._nothing_sealed)
        return self._sealers[path]

    def _nothing_sealed(self) -> bool:
        """A new key may be made only for a store that holds no sealed secret yet."""
        with self.db.transaction(write=False) as con:
            return con.execute("SELECT 1 FROM users WHERE totp_secret LIKE ? LIMIT 1",
                               (f"{SEALED_PREFIX}%",)).fetchone() is None

    def _seal_totp(self, login: str, secret: str) -> str:
        try:
            return self.sealer().seal(secret, f"totp:{login}")
        except (SealError, OSError) as exc:
            raise AuthError(f"cannot seal the TOTP secret: {exc}", "secret_key") from exc

    def _open_totp(self, row: sqlite3.Row) -> str | None:
        """The row's TOTP secret; None (logged, without the value) when it cannot be opened."""
        try:
            return self.sealer().open(row["totp_secret"], f"totp:{row['login']}")
        except (SealError, OSError) as exc:
            log.error("TOTP secret cannot be opened; reset the user's enrollment",
                      extra={"login": row["login"], "error": str(exc)})
            return None

    # -- accounts --------------------------------------------------------------------------

    def _user(self, con: sqlite3.Connection, login: str) -> tuple[User, sqlite3.Row] | None:
        row = con.execute("SELECT * FROM users WHERE login = ?", (login,)).fetchone()
        if row is None:
            return None
        tenants = sorted(r[0] for r in con.execute(
            "SELECT tenant FROM user_tenants WHERE login = ?", (login,)))
        fields = {name: row[name] for name in User.model_fields
                  if name not in ("tenants", "locked_until")}
        locked = lockout.account_locked_until(con, login, self.clock())
        return User(**fields, tenants=tenants, locked_until=locked), row

    def _existing(self, con: sqlite3.Connection, login: str) -> User:
        found = self._user(con, login)
        if found is None:
            raise AuthError(f"no user {login!r}", "not_found")
        return found[0]

    def get(self, login: str) -> User | None:
        with self.db.transaction(write=False) as con:
            found = self._user(con, login)
        return found[0] if found else None

    def users(self) -> list[User]:
        with self.db.transaction(write=False) as con:
            logins = [r[0] for r in con.execute("SELECT login FROM users ORDER BY login")]
            return [found[0] for login in logins if (found := self._user(con, login))]

    def add_user(self, login: str, display_name: str, email: str, role: str,
                 tenants: list[str], actor: Actor, reason: str = "") -> NewUser:
        """Create a pending account; the caller hands out the activation link and mails the
        TOTP enrollment to `email`."""
        scope = self._check_new(login, email, role, tenants)
        now = self.clock()
        activation = new_token("act")
        secret = new_secret()
        expires = to_text(now + self.policy.activation_ttl)
        with self.db.transaction() as con:
            if con.execute("SELECT 1 FROM users WHERE login = ?", (login,)).fetchone():
                raise AuthError(f"user {login!r} already exists", "exists")
            con.execute(
                "INSERT INTO users (login, display_name, email, role, status, totp_secret, "
                "activation_hash, activation_expires, created_at, created_by, failed_logins) "
                "VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, 0)",
                (login, display_name, email, role, self._seal_totp(login, secret),
                 token_hash(activation), expires,
                 to_text(now), actor.login))
            for tenant in sorted(scope):
                con.execute("INSERT INTO user_tenants (login, tenant) VALUES (?, ?)",
                            (login, tenant))
            write_audit(con, PLATFORM, None, actor, "user_add", None,
                        {"login": login, "email": email, "role": role,
                         "tenants": sorted(scope), "reason": reason}, to_text(now))
            found = self._user(con, login)
        assert found is not None
        return NewUser(found[0], activation, secret, expires)

    def _check_new(self, login: str, email: str, role: str, tenants: list[str]) -> set[str]:
        if not LOGIN_RE.fullmatch(login):
            raise AuthError(f"login {login!r} must match {LOGIN_RE.pattern}", "invalid")
        if not EMAIL_RE.fullmatch(email):
            raise AuthError(f"{email!r} is not an email address", "invalid")
        return self._check_access(role, tenants)

    def _check_access(self, role: str, tenants: list[str]) -> set[str]:
        """The stored scope of a role and tenants, or why they do not fit together."""
        if role not in ROLES:
            raise AuthError(f"role {role!r} is not one of {', '.join(ROLES)}", "invalid")
        if role == "platform_admin":
            if tenants and tenants != [ALL_TENANTS]:
                raise AuthError("a platform_admin covers every tenant; give no --tenant",
                                "invalid")
            return {ALL_TENANTS}
        if not tenants:
            raise AuthError("give at least one tenant", "invalid")
        known = self.known_tenants() if self.known_tenants else None
        for tenant in tenants:
            if not is_tenant_id(tenant) or (known is not None and tenant not in known):
                raise AuthError(f"unknown tenant {tenant!r}", "invalid")
        return set(tenants)

    def reset_enrollment(self, login: str, actor: Actor, reason: str = "") -> NewUser:
        """Start over for a user who lost the authenticator or the password (or whose secret
        no longer opens): a new TOTP secret and activation link, password cleared, sessions
        and API tokens revoked; the account is pending until the user activates again.
        The caller hands out the link and mails the enrollment, as for `add_user`."""
        now = self.clock()
        activation = new_token("act")
        secret = new_secret()
        expires = to_text(now + self.policy.activation_ttl)
        with self.db.transaction() as con:
            user = self._existing(con, login)
            if user.status == "disabled":
                raise AuthError(f"user {login!r} is disabled", "inactive")
            con.execute(
                "UPDATE users SET status = 'pending', password_hash = NULL, totp_secret = ?, "
                "totp_last_step = NULL, activation_hash = ?, activation_expires = ?, "
                "activation_failures = 0 WHERE login = ?",
                (self._seal_totp(login, secret), token_hash(activation), expires, login))
            lockout.clear(con, login)
            _revoke_every_token(con, login, to_text(now))
            write_audit(con, PLATFORM, None, actor, "user_reset",
                        {"login": login, "status": user.status},
                        {"login": login, "status": "pending", "reason": reason}, to_text(now))
            reset = self._user(con, login)
        assert reset is not None
        return NewUser(reset[0], activation, secret, expires)

    def remove_pending(self, login: str) -> None:
        """Undo an `add_user` whose enrollment mail could not be sent."""
        with self.db.transaction() as con:
            row = con.execute("SELECT status FROM users WHERE login = ?", (login,)).fetchone()
            if row is None or row[0] != "pending":
                return
            con.execute("DELETE FROM user_tenants WHERE login = ?", (login,))
            con.execute("DELETE FROM users WHERE login = ?", (login,))

    def activate(self, login: str, token: str, password: str, code: str,
                 address: str | None = None) -> User:
        """Set the password and prove the TOTP enrollment with a first code. A link takes
        `max_activation_attempts` wrong codes; then it stops working (reset the user)."""
        now = self.clock()
        with self.db.transaction() as con:
            found = self._user(con, login)
            refused = AuthError("invalid or expired activation link", "bad_activation")
            if found is None:
                raise refused
            user, row = found
            expires = from_text(row["activation_expires"])
            if (user.status != "pending" or not row["activation_hash"] or expires is None
                    or expires <= now
                    or not hmac.compare_digest(row["activation_hash"], token_hash(token))):
                raise refused
            failures = int(row["activation_failures"])
            if failures >= self.policy.max_activation_attempts:
                raise AuthError("too many wrong codes: this activation link no longer works; "
                                "ask your administrator for a new activation link",
                                "activation_used_up")
            problem = password_problem(password, self.policy.min_password_length,
                                       self.policy.min_password_score,
                                       (login, user.email, user.display_name))
            if problem:
                raise AuthError(problem, "weak_password")
            secret = self._open_totp(row)
            if secret is None:
                raise AuthError("the authenticator enrollment cannot be read; ask an "
                                "administrator to reset it", "secret_unreadable")
            try:
                step = matching_step(secret, code, now, row["totp_last_step"])
            except ReplayedCode:
                step = None
            if step is None:
                # Counted (and committed) before the refusal: the link holder gets a few tries.
                con.execute("UPDATE users SET activation_failures = ? WHERE login = ?",
                            (failures + 1, login))
                left = self.policy.max_activation_attempts - failures - 1
                wrong = AuthError(f"the authenticator code is not valid ({left} "
                                  f"{'try' if left == 1 else 'tries'} left on this link)",
                                  "bad_code")
            else:
                wrong = None
                con.execute(
                    "UPDATE users SET status = 'active', password_hash = ?, totp_last_step = ?, "
                    "totp_secret = ?, activation_hash = NULL, activation_expires = NULL, "
                    "activation_failures = 0, activated_at = ? WHERE login = ?",
                    (hash_password(password), step, self._seal_totp(login, secret),
                     to_text(now), login))
                write_audit(con, PLATFORM, None, Actor(login, None, address), "user_activate",
                            {"status": "pending"}, {"status": "active"}, to_text(now))
            activated = self._user(con, login)
        if wrong is not None:
            raise wrong
        assert activated is not None
        return activated[0]

    def disable(self, login: str, actor: Actor, reason: str = "") -> User:
        """Disable `login`: its sessions and API tokens revoked, its activation link void."""
        now = to_text(self.clock())
        with self.db.transaction() as con:
            user = self._existing(con, login)
            if user.status == "disabled":
                return user
            con.execute("UPDATE users SET status = 'disabled', disabled_at = ?, "
                        "disabled_by = ?, disabled_reason = ?, activation_hash = NULL "
                        "WHERE login = ?", (now, actor.login, reason, login))
            _revoke_every_token(con, login, now)
            write_audit(con, PLATFORM, None, actor, "user_disable",
                        {"login": login, "status": user.status},
                        {"login": login, "status": "disabled", "reason": reason}, now)
            disabled = self._user(con, login)
        assert disabled is not None
        return disabled[0]

    def enable(self, login: str, actor: Actor, reason: str = "") -> User:
        """Undo a disable: `active` again with the same password and TOTP for a user who had
        activated (a password is set), else `pending` (the disable voided the activation
        link: `reset_enrollment` sends a new one). No token from before comes back: every
        token of the user still unrevoked (one a login raced in as the disable committed)
        is revoked here, so only a new sign-in opens a session."""
        now = to_text(self.clock())
        with self.db.transaction() as con:
            found = self._user(con, login)
            if found is None:
                raise AuthError(f"no user {login!r}", "not_found")
            user, row = found
            if user.status != "disabled":
                raise AuthError(f"user {login!r} is not disabled (it is {user.status})",
                                "not_disabled")
            status = "active" if row["password_hash"] else "pending"
            con.execute("UPDATE users SET status = ?, enabled_at = ?, enabled_by = ? "
                        "WHERE login = ?", (status, now, actor.login, login))
            _revoke_every_token(con, login, now)
            write_audit(con, PLATFORM, None, actor, "user_enable",
                        {"login": login, "status": "disabled"},
                        {"login": login, "status": status, "reason": reason}, now)
            enabled = self._user(con, login)
        assert enabled is not None
        return enabled[0]

    def change_access(self, login: str, role: str, tenants: list[str], actor: Actor,
                      reason: str = "") -> User:
        """A new role and tenant scope for `login`. Its tokens stay: each request reads the
        role and narrows a token's tenants to the user's, so the change holds at once."""
        scope = self._check_access(role, tenants)
        now = to_text(self.clock())
        with self.db.transaction() as con:
            user = self._existing(con, login)
            con.execute("UPDATE users SET role = ? WHERE login = ?", (role, login))
            con.execute("DELETE FROM user_tenants WHERE login = ?", (login,))
            for tenant in sorted(scope):
                con.execute("INSERT INTO user_tenants (login, tenant) VALUES (?, ?)",
                            (login, tenant))
            write_audit(con, PLATFORM, None, actor, "user_change",
                        {"login": login, "role": user.role, "tenants": user.tenants},
                        {"login": login, "role": role, "tenants": sorted(scope),
                         "reason": reason}, now)
            changed = self._user(con, login)
        assert changed is not None
        return changed[0]

    # -- login and tokens ------------------------------------------------------------------

    def login(self, login: str, password: str, code: str | None, address: str | None
              ) -> tuple[str, Principal]:
        """Password and TOTP code -> a session token; raises LoginFailed. Every refusal
        (unknown, inactive, delayed, wrong) runs one password hash, so none answers faster."""
        now = self.clock()
        stamp = to_text(now)
        actor = Actor(login[:64], None, address)
        with self.db.transaction() as con:
            found = self._user(con, login)
            if found is None:
                burn_password_time(password)
                reason = "unknown_user"
            else:
                user, row = found
                reason = self._check_login(con, user, row, password, code, now, address)
            if reason:
                if found is not None:
                    write_audit(con, PLATFORM, None, actor, "login_failed", None,
                                {"reason": reason}, stamp)
                failure = LoginFailed(reason)
            else:
                write_audit(con, PLATFORM, None, actor, "login", None, None, stamp)
        if reason:
            raise failure
        user = found[0]  # type: ignore[index]
        token = new_token("vgs")
        principal = self._issue(user, token, "session", None, self.policy.session_ttl, None,
                                None, address)
        return token, principal

    def _check_login(self, con: sqlite3.Connection, user: User, row: sqlite3.Row,
                     password: str, code: str | None, now: datetime, address: str | None
                     ) -> str:
        """'' on success; else the reason, with failures counted against this address."""
        if user.status != "active":
            burn_password_time(password)
            return "inactive"
        if lockout.locked_until(con, user.login, address, now) is not None:
            burn_password_time(password)  # the right password would not be told apart
            return "locked"
        reason = ""
        step = None
        secret = None
        if not verify_password(row["password_hash"], password):
            reason = "bad_password"
        elif not code:
            reason = "missing_code"
        elif (secret := self._open_totp(row)) is None:
            reason = "secret_unreadable"
        else:
            try:
                step = matching_step(secret, code, now, row["totp_last_step"])
                reason = "" if step is not None else "bad_code"
            except ReplayedCode:
                reason = "replayed_code"
        if reason:
            lockout.record_failure(con, self.policy, user.login, address, now)
            return reason
        lockout.clear(con, user.login, address)
        con.execute("UPDATE users SET totp_last_step = ?, last_login_at = ? WHERE login = ?",
                    (step, to_text(now), user.login))
        if secret is not None and not is_sealed(row["totp_secret"]):  # stored before sealing
            try:
                con.execute("UPDATE users SET totp_secret = ? WHERE login = ?",
                            (self._seal_totp(user.login, secret), user.login))
            except AuthError as exc:  # the login stands; the secret stays as it was
                log.error("TOTP secret not sealed", extra={"login": user.login,
                                                           "error": str(exc)})
        return ""

    def unlock(self, login: str, actor: Actor, reason: str = "") -> User:
        """Lift the login delays of every address for `login`; password, authenticator and
        tokens stay as they are."""
        now = self.clock()
        with self.db.transaction() as con:
            user = self._existing(con, login)
            cleared = lockout.clear(con, login)
            write_audit(con, PLATFORM, None, actor, "user_unlock",
                        {"login": login, "locked_until": user.locked_until},
                        {"login": login, "cleared_addresses": cleared, "reason": reason},
                        to_text(now))
            unlocked = self._user(con, login)
        assert unlocked is not None
        return unlocked[0]

    # -- access review ---------------------------------------------------------------------

    def review(self, inactive_after: timedelta | None = None) -> dict[str, list[User]]:
        """Users idle longer than `inactive_after` (default the policy's), accounts never
        activated, and users whose scope spans several tenants."""
        now = self.clock()
        limit = now - (inactive_after or self.policy.inactive_after)
        inactive, never, multi = [], [], []
        for user in self.users():
            if user.status == "disabled":
                continue
            if user.status == "pending":
                never.append(user)
            else:
                last = from_text(user.last_login_at) or from_text(user.activated_at)
                if last is None or last < limit:
                    inactive.append(user)
            if ALL_TENANTS in user.tenants or len(user.tenants) > 1:
                multi.append(user)
        return {"inactive": inactive, "never_activated": never, "multi_tenant": multi}

    def record_review(self, actor: Actor, inactive_after: timedelta,
                      listed: dict[str, list[str]], note: str = "") -> None:
        """The audit record of an access review: who reviewed, when, the threshold and the
        logins each list held."""
        with self.db.transaction() as con:
            write_audit(con, PLATFORM, None, actor, "access_review", None,
                        {"inactive_days": inactive_after.days, "note": note,
                         **{k: sorted(v) for k, v in listed.items()}}, to_text(self.clock()))


def _revoke_every_token(con: sqlite3.Connection, login: str, now: str) -> None:
    con.execute("UPDATE auth_tokens SET revoked_at = ? WHERE login = ? AND revoked_at IS NULL",
                (now, login))
