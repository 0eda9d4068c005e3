"""The /api/v1 operations on users and their API tokens: list, add (activation link back, TOTP
enrollment mailed to the user), change role and tenants, disable and enable again, unlock,
reset, the access review, and the tokens of the users one manages.

A platform admin manages every user; a client admin (permission `users`) only client users
whose every tenant is one of its own, and grants no role above its own nor a tenant outside its
scope (soc/auth/roles.py). A user outside the caller's reach is the same 404 as one that does
not exist, and every refusal is audited under the platform with what was attempted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from soc.alerts.model import PLATFORM
from soc.alerts.service import Alerting
from soc.api import models as m
from soc.api.framework import ApiError, Call, Operation
from soc.api.user_models import AccessChange, EnableRequest, ReviewRecord, ReviewRecorded
from soc.auth.enrollment import activation_link, send_enrollment
from soc.auth.model import AuthError, User
from soc.auth.roles import USERS, grant_problem, manages

log = logging.getLogger(__name__)


class UserRoutes:
    """Handlers for /users (a part of `routes.Api`)."""

    alerting: Alerting

    async def refuse(self, call: Call, action: str, status: int, message: str,
                     **attempt: Any) -> ApiError:
        """The error of a refused administrative request, audited with what was asked."""
        await asyncio.to_thread(
            self.alerting.store.record, PLATFORM, call.me.actor(call.address), "admin_refused",
            None, {"attempted": action, "status": status, "error": message,
                   "path": call.request.path[:200], **attempt})
        return ApiError(status, message)

    async def _managed(self, call: Call, action: str) -> User:
        """The path's user if the caller manages it; else an audited 404."""
        login = call.path["login"]
        user = await asyncio.to_thread(self.alerting.directory.get, login)
        if user is None or not _manages(call, user):
            raise await self.refuse(call, action, 404, "user not found", login=login[:64])
        return user

    async def _may_grant(self, call: Call, action: str, login: str, role: str,
                         tenants: list[str]) -> None:
        problem = grant_problem(call.me.role, call.me.tenants, role, tenants)
        if problem is not None:
            status = 404 if problem.startswith("tenant ") else 403
            raise await self.refuse(call, action, status, problem, login=login[:64],
                                    role=role, tenants=tenants[:20])

    async def users(self, call: Call) -> Any:
        found = await asyncio.to_thread(self.alerting.directory.users)
        return {"items": [u.public() for u in found if _manages(call, u)]}

    async def add_user(self, call: Call) -> Any:
        body: m.UserCreate = call.body
        await self._may_grant(call, "user_add", body.login, body.role, list(body.tenants))
        channel = self._enrollment_channel()
        directory = self.alerting.directory
        try:
            new = await asyncio.to_thread(directory.add_user, body.login, body.display_name,
                                          body.email, body.role, list(body.tenants),
                                          call.me.actor(call.address), body.reason)
        except AuthError as exc:
            raise _auth_error(exc, 409 if exc.reason == "exists" else 400) from None
        if not await self._mail_enrollment(channel, new):
            await asyncio.to_thread(directory.remove_pending, body.login)
            raise ApiError(409, "the enrollment mail could not be sent; user not created")
        return self._activation(new)

    async def change_user(self, call: Call) -> Any:
        body: AccessChange = call.body
        user = await self._managed(call, "user_change")
        await self._may_grant(call, "user_change", user.login, body.role, list(body.tenants))
        try:
            changed = await asyncio.to_thread(self.alerting.directory.change_access,
                                              user.login, body.role, list(body.tenants),
                                              call.me.actor(call.address), body.reason)
        except AuthError as exc:
            raise ApiError(400, str(exc)) from None
        return changed.public()

    async def reset_user(self, call: Call) -> Any:
        body: m.ResetRequest = call.body
        user = await self._managed(call, "user_reset")
        channel = self._enrollment_channel()
        try:
            new = await asyncio.to_thread(self.alerting.directory.reset_enrollment,
                                          user.login, call.me.actor(call.address),
                                          body.reason)
        except AuthError as exc:
            if exc.reason == "not_found":
                raise ApiError(404, "user not found") from None
            raise _auth_error(exc, 409) from None
        if not await self._mail_enrollment(channel, new):
            raise ApiError(409, "the reset stands but the enrollment mail could not be sent; "
                           "reset again once mail works")
        return self._activation(new)

    def _enrollment_channel(self) -> Any:
        channel = self.alerting.enrollment_channel()
        if channel is None:
            raise ApiError(409, "no email notifier is configured to send the TOTP enrollment")
        return channel

    async def _mail_enrollment(self, channel: Any, new: Any) -> bool:
        error = await asyncio.to_thread(send_enrollment, channel, new,
                                        self.alerting.policy.issuer)
        if error is not None:
            log.error("enrollment mail failed",
                      extra={"login": new.user.login, "error": type(error).__name__})
        return error is None

    def _activation(self, new: Any) -> dict[str, Any]:
        return {"user": new.user.public(),
                "activation_link": activation_link(self.alerting.public_url, new.user.login,
                                                   new.activation_token),
                "activation_expires": new.activation_expires,
                "enrollment_sent_to": new.user.email}

    async def disable_user(self, call: Call) -> Any:
        body: m.DisableRequest = call.body
        return await self._change_user(self.alerting.directory.disable, call, "user_disable",
                                       body.reason)

    async def enable_user(self, call: Call) -> Any:
        """A disabled user the caller manages, active again (pending if it never activated);
        a user that is not disabled is a 409."""
        body: EnableRequest = call.body
        user = await self._managed(call, "user_enable")
        try:
            enabled = await asyncio.to_thread(self.alerting.directory.enable, user.login,
                                              call.me.actor(call.address), body.reason)
        except AuthError as exc:
            if exc.reason == "not_found":
                raise ApiError(404, "user not found") from None
            raise ApiError(409, str(exc)) from None
        return enabled.public()

    async def unlock_user(self, call: Call) -> Any:
        body: m.UnlockRequest = call.body
        return await self._change_user(self.alerting.directory.unlock, call, "user_unlock",
                                       body.reason)

    async def _change_user(self, change: Callable[..., Any], call: Call, action: str,
                           reason: str) -> Any:
        """`change(login, actor, reason)` of the directory on the path's user; 404 if none
        or not the caller's."""
        user = await self._managed(call, action)
        try:
            changed = await asyncio.to_thread(change, user.login,
                                              call.me.actor(call.address), reason)
        except AuthError:
            raise ApiError(404, "user not found") from None
        return changed.public()

    async def _review(self, call: Call, days: int) -> dict[str, list[User]]:
        found = await asyncio.to_thread(self.alerting.directory.review, timedelta(days=days))
        return {k: [u for u in v if _manages(call, u)]
                for k, v in found.items()}

    async def review(self, call: Call) -> Any:
        q: m.ReviewQuery = call.query
        found = await self._review(call, q.inactive_days)
        return {k: [u.public() for u in v] for k, v in found.items()}

    async def record_review(self, call: Call) -> Any:
        body: ReviewRecord = call.body
        found = await self._review(call, body.inactive_days)
        listed = {k: [u.login for u in v] for k, v in found.items()}
        await asyncio.to_thread(self.alerting.directory.record_review,
                                call.me.actor(call.address), timedelta(days=body.inactive_days),
                                listed, body.note)
        return {"reviewed_by": call.me.login, "inactive_days": body.inactive_days, **listed}

    async def user_tokens(self, call: Call) -> Any:
        user = await self._managed(call, "user_tokens")
        found = await asyncio.to_thread(self.alerting.directory.tokens, user.login)
        return {"items": [{**t, "current": t["id"] == call.me.token_id} for t in found]}

    async def revoke_user_token(self, call: Call) -> Any:
        user = await self._managed(call, "token_revoke")
        try:
            revoked = await asyncio.to_thread(
                self.alerting.directory.revoke_token, user.login, call.path["token_id"],
                call.me.actor(call.address))
        except AuthError:
            raise ApiError(404, "token not found") from None
        return {"revoked": revoked}

    def user_operations(self) -> list[Operation]:
        Op = Operation  # a table reads better with a short constructor
        changes = (400, 401, 403, 404)
        return [
            Op("GET", "/users", "listUsers", "The users you manage (platform admins: every "
              "user; client admins: the users of their tenants)", "users", self.users,
              m.UserList, permission=USERS, errors=(401, 403)),
            Op("POST", "/users", "addUser", "Add a user: activation link back, TOTP "
              "enrollment mailed to the user (no role above yours, no tenant outside yours)",
              "users", self.add_user, m.UserCreated, body=m.UserCreate, permission=USERS,
              status=201, errors=(400, 401, 403, 404, 409, 503)),
            Op("POST", "/users/{login}/access", "changeUser", "Change a user's role and "
              "tenants (no role above yours, no tenant outside yours)", "users",
              self.change_user, m.UserOut, body=AccessChange, permission=USERS,
              errors=changes),
            Op("POST", "/users/{login}/disable", "disableUser", "Disable a user and revoke "
              "its tokens", "users", self.disable_user, m.UserOut, body=m.DisableRequest,
              permission=USERS, errors=changes),
            Op("POST", "/users/{login}/enable", "enableUser", "Enable a disabled user again: "
              "active with its password and authenticator if it had activated, else pending "
              "(reset it for a new activation link); its tokens from before stay revoked",
              "users", self.enable_user, m.UserOut, body=EnableRequest, permission=USERS,
              errors=(*changes, 409)),
            Op("POST", "/users/{login}/unlock", "unlockUser", "Lift the login delays of a "
              "user (password, authenticator and tokens stay)", "users", self.unlock_user,
              m.UserOut, body=m.UnlockRequest, permission=USERS, errors=changes),
            Op("POST", "/users/{login}/reset", "resetUser", "Lost authenticator or password: "
              "clear both, revoke the user's tokens, new activation link back, new TOTP "
              "enrollment mailed to the user", "users", self.reset_user, m.UserCreated,
              body=m.ResetRequest, permission=USERS, errors=(400, 401, 403, 404, 409, 503)),
            Op("GET", "/users/review", "reviewUsers", "Inactive, never activated and "
              "multi-tenant users (of those you manage)", "users", self.review, m.ReviewOut,
              query=m.ReviewQuery, permission=USERS, errors=(400, 401, 403)),
            Op("POST", "/users/review", "recordReview", "Record that you reviewed access "
              "(audited with the users each list held)", "users", self.record_review,
              ReviewRecorded, body=ReviewRecord, permission=USERS, errors=(400, 401, 403)),
            Op("GET", "/users/{login}/tokens", "listUserTokens", "A managed user's live "
              "tokens (ids, never the tokens)", "users", self.user_tokens, m.TokenList,
              permission=USERS, errors=(401, 403, 404)),
            Op("DELETE", "/users/{login}/tokens/{token_id}", "revokeUserToken", "Revoke a "
              "managed user's token and the tokens made from it", "users",
              self.revoke_user_token, m.RevokedResponse, permission=USERS,
              errors=(401, 403, 404)),
        ]


def _manages(call: Call, user: User) -> bool:
    return manages(call.me.role, call.me.tenants, user.role, user.tenants)


def _auth_error(exc: AuthError, status: int) -> ApiError:
    """The reply to a refused account change; a key the server cannot use is its own fault
    (503, details in its log, not in the reply: they name files)."""
    if exc.reason == "secret_key":
        log.error("TOTP secret key unusable", extra={"error": str(exc)})
        return ApiError(503, "the server cannot seal secrets now; see its log")
    return ApiError(status, str(exc))
