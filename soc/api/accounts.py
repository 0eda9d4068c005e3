"""The /api/v1 operations on accounts: login, activation, the caller's own tokens (create, list,
revoke, log out here or everywhere). User administration is in soc/api/users.py.

A refused login is logged with a short hash of the login field, never the field itself: users
type their password into it by mistake. The client address is `Call.address`, the one place
that decides which address a request comes from.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from core.config import parse_duration
from soc.alerts.service import Alerting
from soc.api import models as m
from soc.api.framework import ApiError, Call, Operation, RateLimiter
from soc.auth.enrollment import activation_page
from soc.auth.model import AuthError, LoginFailed, Principal
from soc.auth.tokens import short_hash

log = logging.getLogger(__name__)


def principal_out(principal: Principal) -> dict[str, Any]:
    return {"login": principal.login, "role": principal.role,
            "tenants": None if principal.tenants is None else sorted(principal.tenants),
            "token_kind": principal.token_kind, "expires_at": principal.expires_at,
            "token_id": principal.token_id}


def _bearer(call: Call) -> str:
    return call.request.headers.get("Authorization", "").partition(" ")[2].strip()


class AccountRoutes:
    """Handlers for /auth and /users (a part of `routes.Api`)."""

    alerting: Alerting
    _login_limiter: RateLimiter | None = None

    @property
    def login_limiter(self) -> RateLimiter:
        if self._login_limiter is None:
            self._login_limiter = RateLimiter(self.alerting.policy.login_attempts_per_minute,
                                              monotonic=self.alerting.monotonic)
        return self._login_limiter

    def _limit(self, call: Call) -> None:
        wait = self.login_limiter.allow(call.address or "unknown")
        if wait is not None:
            self.alerting.telemetry.auth_logins.labels("rate_limited").inc()
            raise ApiError(429, "too many attempts", headers={"Retry-After": str(int(wait) + 1)})

    # -- auth ------------------------------------------------------------------------------

    async def login(self, call: Call) -> Any:
        self._limit(call)
        body: m.LoginRequest = call.body
        try:
            token, principal = await asyncio.to_thread(
                self.alerting.directory.login, body.login, body.password, body.code,
                call.address)
        except LoginFailed as exc:
            self.alerting.telemetry.auth_logins.labels(exc.reason).inc()
            log.info("login refused", extra={"login_hash": short_hash(body.login),
                                             "reason": exc.reason, "address": call.address})
            raise ApiError(401, str(exc)) from None
        self.alerting.telemetry.auth_logins.labels("success").inc()
        log.info("login", extra={"login": principal.login, "address": call.address})
        return {"token": token, "expires_at": principal.expires_at,
                "principal": principal_out(principal)}

    async def activation_form(self, call: Call) -> web.Response:
        page = activation_page(call.request.query.get("login", "")[:64],
                               call.request.query.get("token", "")[:200])
        return web.Response(text=page, content_type="text/html",
                            headers={"Cache-Control": "no-store",
                                     "Referrer-Policy": "no-referrer"})

    async def activate(self, call: Call) -> Any:
        self._limit(call)
        body: m.ActivateRequest = call.body
        try:
            user = await asyncio.to_thread(self.alerting.directory.activate, body.login,
                                           body.token, body.password, body.code, call.address)
        except AuthError as exc:
            log.info("activation refused", extra={"login_hash": short_hash(body.login),
                                                  "reason": exc.reason,
                                                  "address": call.address})
            raise _auth_error(exc, 400) from None
        log.info("account activated", extra={"login": user.login, "address": call.address})
        if _from_browser_form(call.request):  # the activation page: on to the console
            return web.Response(status=303, headers={"Location": "/login?activated=1"})
        return {"login": user.login, "status": user.status}

    async def logout(self, call: Call) -> Any:
        await asyncio.to_thread(self.alerting.directory.revoke, _bearer(call), call.address)
        return {"ok": True}

    async def logout_everywhere(self, call: Call) -> Any:
        revoked = await asyncio.to_thread(self.alerting.directory.revoke_all, call.me.login,
                                          call.me.actor(call.address))
        return {"revoked": revoked}

    async def me(self, call: Call) -> Any:
        return principal_out(call.me)

    async def create_token(self, call: Call) -> Any:
        body: m.TokenRequest = call.body
        try:
            ttl = parse_duration(body.ttl) if body.ttl else None
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        try:
            token, principal = await asyncio.to_thread(
                self.alerting.directory.issue_api_token, call.me, body.name, ttl, body.tenants,
                call.address)
        except AuthError as exc:
            raise ApiError(400, str(exc)) from None
        return {"token": token, "expires_at": principal.expires_at,
                "principal": principal_out(principal)}

    async def list_tokens(self, call: Call) -> Any:
        found = await asyncio.to_thread(self.alerting.directory.tokens, call.me.login)
        return {"items": [{**t, "current": t["id"] == call.me.token_id} for t in found]}

    async def revoke_token(self, call: Call) -> Any:
        try:
            revoked = await asyncio.to_thread(
                self.alerting.directory.revoke_token, call.me.login, call.path["token_id"],
                call.me.actor(call.address))
        except AuthError:
            raise ApiError(404, "token not found") from None
        return {"revoked": revoked}

    # -- the tables ------------------------------------------------------------------------

    def auth_operations(self) -> list[Operation]:
        Op = Operation  # a table reads better with a short constructor
        return [
            Op("POST", "/auth/login", "login", "Log in with password and TOTP code", "auth",
              self.login, m.LoginResponse, body=m.LoginRequest, authenticated=False,
              errors=(400, 401, 429)),
            Op("GET", "/auth/activate", "activationPage", "The activation form (HTML)", "auth",
              self.activation_form, None, authenticated=False, errors=(),
              content_type="text/html"),
            Op("POST", "/auth/activate", "activate", "Set the password and confirm TOTP",
              "auth", self.activate, m.ActivateResponse, body=m.ActivateRequest,
              authenticated=False, errors=(400, 429, 503), form=True),
            Op("POST", "/auth/logout", "logout", "Revoke the token of this request and the "
              "tokens made from it", "auth", self.logout, m.OkResponse, permission=None,
              errors=(401,)),
            Op("POST", "/auth/logout-all", "logoutEverywhere", "Revoke every token of the "
              "caller (every session and API token)", "auth", self.logout_everywhere,
              m.RevokedResponse, permission=None, errors=(401,)),
            Op("GET", "/auth/me", "me", "Who the token belongs to and its scope", "auth",
              self.me, m.PrincipalOut, permission=None, errors=(401,)),
            Op("POST", "/auth/tokens", "createToken", "Create an API token (no wider and no "
              "longer-lived than the token used)", "auth", self.create_token, m.LoginResponse,
              body=m.TokenRequest, permission=None, errors=(400, 401)),
            Op("GET", "/auth/tokens", "listTokens", "The caller's live tokens (ids, never "
              "the tokens)", "auth", self.list_tokens, m.TokenList, permission=None,
              errors=(401,)),
            Op("DELETE", "/auth/tokens/{token_id}", "revokeToken", "Revoke one of the "
              "caller's tokens and the tokens made from it", "auth", self.revoke_token,
              m.RevokedResponse, permission=None, errors=(401, 404)),
        ]


def _from_browser_form(request: web.Request) -> bool:
    """A form a browser posted (the activation page), not an API client's request."""
    return (request.content_type == "application/x-www-form-urlencoded"
            and "text/html" in request.headers.get("Accept", ""))


def _auth_error(exc: AuthError, status: int) -> ApiError:
    """The reply to a refused account change; a key the server cannot use is its own fault
    (503, details in its log, not in the reply: they name files)."""
    if exc.reason == "secret_key":
        log.error("TOTP secret key unusable", extra={"error": str(exc)})
        return ApiError(503, "the server cannot seal secrets now; see its log")
    return ApiError(status, str(exc))
