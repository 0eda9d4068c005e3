"""The console's administration pages: tenants (read-only: conf.d owns them), users (add with
the enrollment mailed to the user, change role and tenants, disable and enable again,
unlock, reset), the periodic access review (inactive users, one-click and bulk disable, the
review recorded, the disabled users) and API tokens. Every read and change is an /api/v1
operation run through `invoke`, so who may see or change whom is decided by
soc/api/users.py alone; forms are POSTs with the session's CSRF token.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from aiohttp import web
from multidict import MultiDict

from collector.config.tenants import TenantConfig
from core.config import SEVERITIES
from soc.api.framework import ApiError
from soc.auth.roles import USERS, grantable_roles
from soc.console.app import ConsoleBase, Form
from soc.console.session import Session

USER_ACTIONS = {  # form action -> (operation, what the page says once done)
    "disable": ("disableUser", "User disabled; its sessions and API tokens are revoked."),
    "enable": ("enableUser", "User enabled again with the same password and authenticator; "
               "its sessions and API tokens from before stay revoked: it signs in anew."),
    "unlock": ("unlockUser", "Login delays lifted."),
    "access": ("changeUser", "Role and tenants changed."),
}
ENABLED_PENDING = ("User enabled again, but it had never activated: it is pending. Send it a "
                   "new activation link with Reset (the old link died with the disable).")
REVIEW_REASON = "access review: inactive for {days} days"


def _days(text: str | None, default: int) -> int:
    try:
        return max(1, min(int(text or default), 36500))
    except ValueError:
        return default


class AdminPages(ConsoleBase):
    """/admin/tenants, /admin/users, /admin/access-review, /admin/tokens."""

    def _render(self, name: str, session: Session, status: int = 200, **context: Any
                ) -> web.Response:
        return self.render(name, status, session=session,
                           tenants=self.visible_tenants(session), current_tenant=None,
                           can_manage=session.principal.can(USERS), **context)

    async def home(self, request: web.Request, session: Session, form: Form
                   ) -> web.StreamResponse:
        raise web.HTTPSeeOther("/admin/users" if session.principal.can(USERS)
                               else "/admin/tenants")

    # -- tenants ---------------------------------------------------------------------------

    async def tenants_page(self, request: web.Request, session: Session, form: Form
                           ) -> web.StreamResponse:
        listed = await self.invoke("listTenants", request, session)
        rows = []
        for tenant in listed["items"]:
            counts = await self.invoke("alertCounts", request, session,
                                       query=MultiDict(tenant=tenant["id"]))
            config = self.alerting.tenants[tenant["id"]]
            rows.append({**tenant, "open": counts["new"] + counts["acknowledged"]
                         + counts["escalated"], "breached": counts["breached"],
                         "retention": self._retention(config),
                         "notify": _notifications(config),
                         "sla_rows": [(s, _span(tenant["sla"][s]["ack_seconds"]),
                                       _span(tenant["sla"][s]["resolve_seconds"]))
                                      for s in reversed(SEVERITIES)]})
        return self._render("admin_tenants.html", session, section="tenants", rows=rows)

    def _retention(self, tenant: TenantConfig) -> dict[str, str]:
        """The tenant's retention per area, else the global one ("kept" when neither)."""
        shared = self.alerting.config.settings.retention
        out = {}
        for area in ("lake", "dead_letter"):
            value = getattr(tenant.retention, area) or getattr(shared, area)
            out[area] = (f"{value // timedelta(days=1)} days" if value
                         else "no limit (kept until deleted by hand)")
        return out

    # -- users -----------------------------------------------------------------------------

    async def users_page(self, request: web.Request, session: Session, form: Form
                         ) -> web.StreamResponse:
        found = await self.invoke("listUsers", request, session)
        return self._render("admin_users.html", session, section="users",
                            users=found["items"],
                            done=request.query.get("done", "")[:200], **self._grants(session))

    def _grants(self, session: Session) -> dict[str, Any]:
        """What the add and change forms offer: only roles and tenants the user may grant."""
        principal = session.principal
        return {"roles": grantable_roles(principal.role, principal.tenants),
                "grant_tenants": self.visible_tenants(session)}

    async def add_user(self, request: web.Request, session: Session, form: Form
                       ) -> web.StreamResponse:
        body = {"login": form.get("login", "").strip(), "email": form.get("email", "").strip(),
                "display_name": form.get("display_name", "").strip() or
                form.get("login", "").strip(), "role": form.get("role", ""),
                "tenants": [t for t in form.getall("tenants", []) if t],
                "reason": form.get("reason", "").strip()}
        created = await self.invoke("addUser", request, session, body=body)
        return self._enrolled(request, session, created, "added")

    def _enrolled(self, request: web.Request, session: Session, created: dict[str, Any],
                  what: str) -> web.Response:
        """The activation link, shown once to the administrator (the TOTP enrollment went
        to the user by mail: neither alone opens the account). Without a configured
        `public_url` the link names the address the administrator reached the console on
        (the listen address may be a wildcard or an OS-chosen port)."""
        if self.alerting.policy.public_url is None:
            link = urlsplit(created["activation_link"])
            created["activation_link"] = urlunsplit(
                (request.scheme, request.host, link.path, link.query, ""))
        return self._render("admin_enrolled.html", session, section="users",
                            created=created, what=what, outbox=self._outbox())

    def _outbox(self) -> bool:
        channel = self.alerting.enrollment_channel()
        return channel is not None and channel.config.transport == "outbox"

    async def user_page(self, request: web.Request, session: Session, form: Form
                        ) -> web.StreamResponse:
        login = request.match_info["login"]
        # The tokens operation checks that the caller manages the user (audited 404 if not).
        tokens = await self.invoke("listUserTokens", request, session, path={"login": login})
        users = await self.invoke("listUsers", request, session)
        user = next((u for u in users["items"] if u["login"] == login), None)
        if user is None:
            raise ApiError(404, "user not found")
        done = USER_ACTIONS.get(request.query.get("done", ""), (None, None))[1]
        if request.query.get("done") == "enable" and user["status"] == "pending":
            done = ENABLED_PENDING
        return self._render("admin_user.html", session, section="users", user=user,
                            user_tokens=tokens["items"],
                            done=done, **self._grants(session))

    async def user_action(self, request: web.Request, session: Session, form: Form
                          ) -> web.StreamResponse:
        login, action = request.match_info["login"], request.match_info["action"]
        reason = form.get("reason", "").strip()
        path = {"login": login}
        if action == "reset":
            created = await self.invoke("resetUser", request, session, path=path,
                                        body={"reason": reason})
            return self._enrolled(request, session, created, "reset")
        if action not in USER_ACTIONS:
            raise web.HTTPNotFound()
        body: dict[str, Any] = {"reason": reason}
        if action == "access":
            body["role"] = form.get("role", "")
            body["tenants"] = [t for t in form.getall("tenants", []) if t]
        await self.invoke(USER_ACTIONS[action][0], request, session, path=path, body=body)
        raise web.HTTPSeeOther(f"/admin/users/{quote(login, safe='')}?done={action}")

    # -- access review ---------------------------------------------------------------------

    def _review_days(self, request: web.Request) -> int:
        return _days(request.query.get("inactive_days"),
                     self.alerting.policy.inactive_after.days or 90)

    async def review_page(self, request: web.Request, session: Session, form: Form
                          ) -> web.StreamResponse:
        days = self._review_days(request)
        found = await self.invoke("reviewUsers", request, session,
                                  query=MultiDict(inactive_days=str(days)))
        users = await self.invoke("listUsers", request, session)
        disabled = [u for u in users["items"] if u["status"] == "disabled"]
        return self._render("admin_review.html", session, section="review", days=days,
                            review=found, disabled=disabled,
                            done=request.query.get("done", "")[:200])

    async def review_act(self, request: web.Request, session: Session, form: Form
                         ) -> web.StreamResponse:
        """One-click disable (`one`), bulk disable (the checked `logins`) or only recording
        the review; every way records the review (who, when, what it listed)."""
        days = _days(form.get("inactive_days"), 90)
        one = form.get("one", "")
        logins = [one] if one else list(dict.fromkeys(form.getall("logins", [])))[:500]
        if form.get("action") == "disable" and not logins:
            raise ApiError(400, "select at least one user to disable")
        if form.get("action") != "disable" and not one:
            logins = []
        reason = REVIEW_REASON.format(days=days)
        for login in logins:
            await self.invoke("disableUser", request, session, path={"login": login},
                              body={"reason": reason})
        await self.invoke("recordReview", request, session,
                          body={"inactive_days": days,
                                "note": f"disabled: {', '.join(logins)}"[:500] if logins
                                else "reviewed"})
        done = f"disabled {len(logins)}" if logins else "recorded"
        raise web.HTTPSeeOther(f"/admin/access-review?inactive_days={days}&done={done}")

    # -- API tokens ------------------------------------------------------------------------

    async def tokens_page(self, request: web.Request, session: Session, form: Form,
                          created: dict[str, Any] | None = None) -> web.StreamResponse:
        own = await self.invoke("listTokens", request, session)
        managed: list[dict[str, Any]] = []
        if session.principal.can(USERS):
            users = await self.invoke("listUsers", request, session)
            for user in users["items"]:
                if user["login"] == session.principal.login or user["status"] != "active":
                    continue
                listed = await self.invoke("listUserTokens", request, session,
                                           path={"login": user["login"]})
                managed += [{**t, "login": user["login"]} for t in listed["items"]
                            if t["kind"] == "api"]
        return self._render("admin_tokens.html", session, section="tokens", own=own["items"],
                            managed=managed,
                            created=created, done=request.query.get("done", "")[:200],
                            grant_tenants=self.visible_tenants(session))

    async def create_token(self, request: web.Request, session: Session, form: Form
                           ) -> web.StreamResponse:
        body: dict[str, Any] = {"name": form.get("name", "").strip()}
        if form.get("ttl", "").strip():
            body["ttl"] = form.get("ttl", "").strip()
        tenants = [t for t in form.getall("tenants", []) if t]
        if tenants:
            body["tenants"] = tenants
        created = await self.invoke("createToken", request, session, body=body)
        return await self.tokens_page(request, session, form, created=created)

    async def revoke_token(self, request: web.Request, session: Session, form: Form
                           ) -> web.StreamResponse:
        login, token_id = request.match_info.get("login"), request.match_info["token_id"]
        if login is None or login == session.principal.login:
            await self.invoke("revokeToken", request, session, path={"token_id": token_id})
        else:
            await self.invoke("revokeUserToken", request, session,
                              path={"login": login, "token_id": token_id})
        raise web.HTTPSeeOther("/admin/tokens?done=revoked")

    # -- routes ----------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        page = self.page
        app.router.add_get("/admin", page(self.home))
        app.router.add_get("/admin/tenants", page(self.tenants_page))
        app.router.add_get("/admin/users", page(self.users_page))
        app.router.add_post("/admin/users", page(self.add_user, form=True))
        app.router.add_get("/admin/users/{login}", page(self.user_page))
        app.router.add_post("/admin/users/{login}/{action}", page(self.user_action, form=True))
        app.router.add_get("/admin/access-review", page(self.review_page))
        app.router.add_post("/admin/access-review", page(self.review_act, form=True))
        app.router.add_get("/admin/tokens", page(self.tokens_page))
        app.router.add_post("/admin/tokens", page(self.create_token, form=True))
        app.router.add_post("/admin/tokens/{token_id}/revoke",
                            page(self.revoke_token, form=True))
        app.router.add_post("/admin/users/{login}/tokens/{token_id}/revoke",
                            page(self.revoke_token, form=True))


def _span(seconds: int) -> str:
    """15 min, 4 h, 3 d (SLA durations as people say them)."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"


def _notifications(tenant: TenantConfig) -> dict[str, Any]:
    """Who is told what (addresses and notifier ids; secrets live in the notifiers)."""
    email = tenant.notifications.email
    return {"email": {s: email.for_severity(s) for s in SEVERITIES if email.for_severity(s)},
            "webhooks": list(tenant.notifications.webhooks),
            "escalation": [c.email or c.name for c in tenant.escalation_contacts]}


def add_admin(app: web.Application, base: ConsoleBase) -> None:
    """Serve the administration pages beside the console's other pages."""
    AdminPages(base.api, base.secure).add_routes(app)

