"""Console sign-in state: the session cookie (a session token of the user directory), the CSRF
token every form carries, and the sign-in form's own CSRF cookie.

The cookie holds a session token made by the same login as `/api/v1/auth/login`, so lockout,
lineage, revocation and audit are the directory's. It is HttpOnly, SameSite=Strict, and Secure
(with the `__Host-` prefix) when the listener serves TLS. A form's CSRF token is an HMAC of the
session token: only a page rendered for this session can carry it, and nothing is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from aiohttp import web

from soc.auth.model import Principal

CSRF_FIELD = "csrf"


@dataclass(frozen=True)
class CookieNames:
    """The cookie names of one listener (`__Host-` names need Secure, i.e. TLS)."""

    secure: bool

    @property
    def session(self) -> str:
        return "__Host-vigil_session" if self.secure else "vigil_session"

    @property
    def login(self) -> str:
        return "__Host-vigil_login" if self.secure else "vigil_login"


@dataclass(frozen=True)
class Session:
    """A signed-in request: who, and the session token (never shown or logged)."""

    principal: Principal
    token: str

    @property
    def csrf(self) -> str:
        return csrf_token(self.token)


def csrf_token(session_token: str) -> str:
    """The CSRF token of the forms of one session."""
    return hmac.new(session_token.encode(), b"vigil-console-csrf", hashlib.sha256).hexdigest()


def csrf_matches(expected: str, presented: object) -> bool:
    return isinstance(presented, str) and hmac.compare_digest(expected.encode(),
                                                              presented.encode())


def new_login_nonce() -> str:
    return secrets.token_urlsafe(24)


def set_cookie(response: web.StreamResponse, name: str, value: str, secure: bool,
               max_age: int | None = None) -> None:
    response.set_cookie(name, value, path="/", httponly=True, secure=secure,
                        samesite="Strict", max_age=max_age)


def clear_cookie(response: web.StreamResponse, name: str, secure: bool) -> None:
    response.set_cookie(name, "", path="/", httponly=True, secure=secure, samesite="Strict",
                        max_age=0, expires="Thu, 01 Jan 1970 00:00:00 GMT")
