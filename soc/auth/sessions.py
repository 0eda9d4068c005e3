"""Sessions and API tokens of the user directory: issued hashed, scoped and expiring, listed and
revoked by their owner, and kept in a lineage.

A token made with another token (an API token minted from a session, or from an API token)
records its parent's id. It never reaches further than its parent: its tenants are a subset
of the parent's, it expires no later than the parent, and it stops working when the parent is
revoked (a logout revokes the whole tree below the token) or has expired. Every token made
is audited (who, when, from where, kind, name, scope, expiry and id; never the token).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import orjson

from soc.alerts.audit import write_audit
from soc.alerts.db import Database, from_text, to_text
from soc.alerts.model import PLATFORM, Actor
from soc.auth.config import AccessPolicy
from soc.auth.model import AuthError, Principal, User, effective_scope
from soc.auth.tokens import new_token, token_hash

MAX_LINEAGE = 32  # ancestors checked per request (a chain is as deep as tokens minted in a row)
_TREE = ("WITH RECURSIVE tree(id) AS (SELECT token_id FROM auth_tokens WHERE {root} "
         "UNION SELECT a.token_id FROM auth_tokens a JOIN tree t ON a.parent_id = t.id) ")


def token_id_of(token: str) -> str:
    """A token's public id: a prefix of its hash (what lists, audits and revocations name)."""
    return token_hash(token)[:16]


class TokenKeeper:
    """Issue, resolve, list and revoke tokens (a part of `UserDirectory`)."""

    db: Database
    policy: AccessPolicy
    clock: Callable[[], datetime]

    def get(self, login: str) -> User | None:
        raise NotImplementedError

    def _user(self, con: sqlite3.Connection, login: str) -> tuple[User, sqlite3.Row] | None:
        raise NotImplementedError

    def _issue(self, user: User, token: str, kind: str, name: str | None, ttl: timedelta,
               tenants: list[str] | None, parent: Principal | None = None,
               address: str | None = None) -> Principal:
        now = self.clock()
        scope = sorted(user.tenants) if tenants is None else sorted(set(tenants))
        expires_at = now + ttl
        parent_expiry = from_text(parent.expires_at) if parent is not None else None
        if parent_expiry is not None and parent_expiry < expires_at:
            expires_at = parent_expiry
        expires = to_text(expires_at)
        token_id = token_id_of(token)
        parent_id = parent.token_id if parent is not None else None
        with self.db.transaction() as con:
            con.execute(
                "INSERT INTO auth_tokens (token_hash, token_id, parent_id, login, kind, name, "
                "tenants, created_at, created_from, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (token_hash(token), token_id, parent_id, user.login, kind, name,
                 orjson.dumps(scope).decode(), to_text(now), (address or "")[:64] or None,
                 expires))
            write_audit(con, PLATFORM, None, Actor(user.login, None, address), "token_create",
                        None, {"id": token_id, "kind": kind, "name": name, "tenants": scope,
                               "expires_at": expires, "parent_id": parent_id}, to_text(now))
        return Principal(user.login, user.role,
                         effective_scope(frozenset(scope), frozenset(user.tenants)), kind,
                         expires, token_id)

    def issue_api_token(self, principal: Principal, name: str, ttl: timedelta | None,
                        tenants: list[str] | None, address: str | None = None
                        ) -> tuple[str, Principal]:
        """An API token for the caller, at most as wide as its own scope, and living no longer
        than the token the caller used nor the policy's longest lifetime."""
        user = self.get(principal.login)
        if user is None or user.status != "active":
            raise AuthError("user is not active", "inactive")
        if principal.token_id is not None and not self._live(principal.token_id):
            raise AuthError("the token of this request is no longer valid", "inactive")
        if tenants is not None:
            outside = [t for t in tenants if principal.tenants is not None
                       and t not in principal.tenants]
            if outside or not tenants:
                raise AuthError("tenants must be a non-empty subset of your own", "scope")
        elif principal.tenants is not None:
            tenants = sorted(principal.tenants)
        lifetime = min(ttl or self.policy.api_token_ttl, self.policy.api_token_ttl)
        token = new_token("vgt")
        return token, self._issue(user, token, "api", name, lifetime, tenants, principal,
                                  address)

    def _live(self, token_id: str) -> bool:
        now = self.clock()
        with self.db.transaction(write=False) as con:
            row = con.execute("SELECT * FROM auth_tokens WHERE token_id = ?",
                              (token_id,)).fetchone()
            return row is not None and _alive(row, now) and _ancestors_alive(con, row, now)

    def authenticate(self, token: str) -> Principal | None:
        """The caller a bearer token stands for, or None (unknown, revoked, expired, a parent
        revoked or expired, user no longer active). The scope narrows with the user's."""
        if not token or len(token) > 200:
            return None
        now = self.clock()
        with self.db.transaction(write=False) as con:
            row = con.execute("SELECT * FROM auth_tokens WHERE token_hash = ?",
                              (token_hash(token),)).fetchone()
            if row is None or not _alive(row, now) or not _ancestors_alive(con, row, now):
                return None
            found = self._user(con, row["login"])
        if found is None or found[0].status != "active":
            return None
        user = found[0]
        scope = effective_scope(frozenset(orjson.loads(row["tenants"])), frozenset(user.tenants))
        return Principal(user.login, user.role, scope, row["kind"], row["expires_at"],
                         row["token_id"])

    def touch_session(self, token: str, idle: timedelta, address: str | None = None,
                      refresh: bool = True) -> Principal | None:
        """`authenticate` for a console session that also ends it after `idle` without use:
        an idle session is revoked (with the tokens made from it, audited as
        `session_idle`); a live one is marked used now, unless `refresh` is False (a page's
        own polling is not the user's activity)."""
        principal = self.authenticate(token)
        if principal is None or principal.token_kind != "session":
            return None
        now = self.clock()
        with self.db.transaction() as con:
            row = con.execute("SELECT login, token_id, created_at, last_used_at FROM "
                              "auth_tokens WHERE token_hash = ?", (token_hash(token),)).fetchone()
            if row is None:
                return None
            last = from_text(row["last_used_at"] or row["created_at"])
            if last is None or now - last >= idle:
                self._revoke_tree(con, row["login"], row["token_id"],
                                  Actor(row["login"], None, address), "session_idle")
                return None
            if refresh:
                con.execute("UPDATE auth_tokens SET last_used_at = ? WHERE token_hash = ?",
                            (to_text(now), token_hash(token)))
        return principal

    def revoke(self, token: str, address: str | None = None) -> int:
        """Log out: revoke the token and every token made from it; how many were revoked."""
        with self.db.transaction() as con:
            row = con.execute("SELECT login, token_id FROM auth_tokens WHERE token_hash = ?",
                              (token_hash(token),)).fetchone()
            if row is None:
                return 0
            return self._revoke_tree(con, row["login"], row["token_id"],
                                     Actor(row["login"], None, address), "logout")

    def revoke_token(self, login: str, token_id: str, actor: Actor) -> int:
        """Revoke one of `login`'s live tokens by id (and the tokens made from it)."""
        now = self.clock()
        with self.db.transaction() as con:
            row = con.execute("SELECT * FROM auth_tokens WHERE token_id = ? AND login = ?",
                              (token_id, login)).fetchone()
            if row is None or not _alive(row, now):
                raise AuthError(f"no live token {token_id!r} of {login!r}", "not_found")
            return self._revoke_tree(con, login, token_id, actor, "token_revoke")

    def revoke_all(self, login: str, actor: Actor) -> int:
        """Log out everywhere: revoke every token of `login`."""
        now = to_text(self.clock())
        with self.db.transaction() as con:
            count = con.execute("UPDATE auth_tokens SET revoked_at = ? WHERE login = ? AND "
                                "revoked_at IS NULL", (now, login)).rowcount
            write_audit(con, PLATFORM, None, actor, "logout_all", None,
                        {"login": login, "revoked": count}, now)
        return count

    def _revoke_tree(self, con: sqlite3.Connection, login: str, token_id: str, actor: Actor,
                     action: str) -> int:
        now = to_text(self.clock())
        count = con.execute(
            _TREE.format(root="token_id = ?") + "UPDATE auth_tokens SET revoked_at = ? "
            "WHERE token_id IN (SELECT id FROM tree) AND revoked_at IS NULL",
            (token_id, now)).rowcount
        write_audit(con, PLATFORM, None, actor, action, None,
                    {"login": login, "id": token_id, "revoked": count}, now)
        return count

    def tokens(self, login: str) -> list[dict[str, Any]]:
        """`login`'s live tokens, newest first: ids and metadata, never a token."""
        now = self.clock()
        with self.db.transaction(write=False) as con:
            rows = con.execute("SELECT * FROM auth_tokens WHERE login = ? AND revoked_at IS "
                               "NULL AND expires_at > ? ORDER BY created_at DESC, token_id",
                               (login, to_text(now))).fetchall()
            return [{"id": r["token_id"], "kind": r["kind"], "name": r["name"],
                     "tenants": orjson.loads(r["tenants"]), "created_at": r["created_at"],
                     "created_from": r["created_from"], "expires_at": r["expires_at"],
                     "parent_id": r["parent_id"]}
                    for r in rows if _ancestors_alive(con, r, now)]


def _alive(row: sqlite3.Row, now: datetime) -> bool:
    expires = from_text(row["expires_at"])
    return row["revoked_at"] is None and expires is not None and expires > now


def _ancestors_alive(con: sqlite3.Connection, row: sqlite3.Row, now: datetime) -> bool:
    """Every token above this one is still live (a missing parent counts as dead)."""
    parent_id = row["parent_id"]
    for _ in range(MAX_LINEAGE):
        if parent_id is None:
            return True
        parent = con.execute("SELECT parent_id, revoked_at, expires_at FROM auth_tokens "
                             "WHERE token_id = ?", (parent_id,)).fetchone()
        if parent is None or not _alive(parent, now):
            return False
        parent_id = parent["parent_id"]
    return False
