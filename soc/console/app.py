"""The console's web layer: routes on the control listener, the signed-in session of each
request, CSRF checks of every form, and `invoke`, which runs an /api/v1 operation (its
permission, its request models, its handler) for a page, so the console and the API cannot
disagree about who may do what.

Pages: `/login`, `/logout`, `/logout-all` here; the queue and the investigation page in
`soc/console/pages.py`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web
from multidict import MultiDict, MultiMapping
from pydantic import ValidationError

from soc.api.edge import client_address
from soc.api.framework import ApiError, Call, Operation, parse_query
from soc.api.routes import Api
from soc.console.session import (
    CSRF_FIELD,
    CookieNames,
    Session,
    clear_cookie,
    csrf_matches,
    new_login_nonce,
    set_cookie,
)

log = logging.getLogger(__name__)

# Pages load one script and one style sheet from this origin, and post forms to it.
CONSOLE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
               "connect-src 'self'; form-action 'self'; base-uri 'none'; "
               "frame-ancestors 'none'")
LOGIN_NOTICES = {"activated": "Your account is active: sign in with your password and a "
                 "new code from your authenticator.",
                 "signed_out": "You are signed out."}
STATIC = {"console.css": "text/css", "console.js": "text/javascript"}
Form = MultiMapping[str]
PageHandler = Callable[[web.Request, Session, Form], Awaitable[web.StreamResponse]]


class ConsoleBase:
    """What every console page uses: templates, sessions, CSRF, operations."""

    def __init__(self, api: Api, secure: bool) -> None:
        self.api = api
        self.alerting = api.alerting
        self.secure = secure
        self.cookies = CookieNames(secure)
        self.operations: dict[str, Operation] = {op.operation_id: op
                                                 for op in api.operations()}
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("soc.console", "templates"),
            autoescape=True, undefined=jinja2.StrictUndefined)

    # -- rendering -------------------------------------------------------------------------

    def render(self, name: str, status: int = 200, **context: Any) -> web.Response:
        text = self.templates.get_template(name).render(**context)
        return web.Response(text=text, status=status, content_type="text/html",
                            headers={"Content-Security-Policy": CONSOLE_CSP,
                                     "Cache-Control": "no-store"})

    def error_page(self, session: Session | None, status: int, message: str) -> web.Response:
        return self.render("error.html", status, session=session, message=message,
                           tenants=self.visible_tenants(session) if session else {},
                           current_tenant=None)

    def visible_tenants(self, session: Session) -> dict[str, Any]:
        scope = session.principal.tenants
        return {k: v for k, v in sorted(self.alerting.tenants.items())
                if scope is None or k in scope}

    # -- sessions --------------------------------------------------------------------------

    async def session(self, request: web.Request) -> Session | None:
        token = request.cookies.get(self.cookies.session, "")
        if not token:
            return None
        directory = self.alerting.directory
        # The queue's script polls the JSON feed: that keeps nobody signed in.
        principal = await asyncio.to_thread(directory.touch_session, token,
                                            directory.policy.session_idle_timeout,
                                            client_address(request),
                                            not request.path.endswith(".json"))
        return Session(principal, token) if principal is not None else None

    def page(self, handler: PageHandler, *, form: bool = False) -> Callable[
            [web.Request], Awaitable[web.StreamResponse]]:
        """A signed-in page: no session -> the sign-in page (401 for a form or JSON); a form
        whose CSRF token is not this session's -> 403."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            session = await self.session(request)
            if session is None:
                if form or request.path.endswith(".json"):
                    return self.render("login.html", 401, error="Your session ended; sign in "
                                       "again.", info=None, nonce="", next="/alerts",
                                       session=None)
                target = request.path_qs if request.method == "GET" else "/alerts"
                raise web.HTTPSeeOther(f"/login?next={quote(target, safe='')}")
            data: Form = MultiDict()
            if form:  # text fields only (a file upload is not a console form)
                data = MultiDict((k, v) for k, v in (await request.post()).items()
                                 if isinstance(v, str))
                if not csrf_matches(session.csrf, data.get(CSRF_FIELD)):
                    log.info("console form refused: CSRF token missing or wrong",
                             extra={"login": session.principal.login, "path": request.path})
                    return self.error_page(session, 403, "This form is not from your session "
                                           "(CSRF check failed). Reload the page and retry.")
            try:
                return await handler(request, session, data)
            except ApiError as exc:
                return self.error_page(session, exc.status, exc.message)

        return wrapped

    # -- the API's operations --------------------------------------------------------------

    async def invoke(self, operation_id: str, request: web.Request, session: Session, *,
                     path: dict[str, str] | None = None, query: MultiMapping[str] | None = None,
                     body: dict[str, Any] | None = None) -> Any:
        """Run an /api/v1 operation as the session's user: its permission check, its request
        models and its handler (which scope every read and change to the user's tenants)."""
        operation = self.operations[operation_id]
        principal = session.principal
        if operation.permission and not principal.can(operation.permission):
            raise ApiError(403, "your role does not allow this")
        parsed_query = (parse_query(operation.query, query or MultiDict())
                        if operation.query else None)
        parsed_body = None
        if operation.body is not None:
            try:
                parsed_body = operation.body.model_validate(body or {})
            except ValidationError as exc:
                problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                                     for e in exc.errors(include_url=False, include_input=False))
                raise ApiError(400, f"invalid form: {problems}") from None
        call = Call(request, principal, dict(path or {}), parsed_query, parsed_body)
        return await operation.handler(call)


class AuthPages(ConsoleBase):
    """Sign-in, sign-out and sign-out everywhere."""

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        if await self.session(request) is not None:
            raise web.HTTPSeeOther(_local(request.query.get("next")))
        return self._login_page(request, 200, None)

    def _login_page(self, request: web.Request, status: int, error: str | None
                    ) -> web.Response:
        nonce = new_login_nonce()
        info = next((text for flag, text in LOGIN_NOTICES.items() if flag in request.query),
                    None)
        response = self.render("login.html", status, error=error, info=info, nonce=nonce,
                               next=_local(request.query.get("next")), session=None)
        set_cookie(response, self.cookies.login, nonce, self.secure, max_age=3600)
        return response

    async def login(self, request: web.Request) -> web.StreamResponse:
        data = await request.post()
        nonce = request.cookies.get(self.cookies.login, "")
        if not nonce or not csrf_matches(nonce, data.get(CSRF_FIELD)):
            return self._login_page(request, 403, "The sign-in form expired; try again.")
        body = {k: data.get(k) for k in ("login", "password", "code")
                if isinstance(data.get(k), str) and data.get(k)}
        operation = self.operations["login"]
        try:
            parsed = operation.body.model_validate(body) if operation.body else None
            result = await operation.handler(Call(request, None, {}, None, parsed))
        except ValidationError:
            return self._login_page(request, 401, "invalid login, password or code")
        except ApiError as exc:
            return self._login_page(request, exc.status, exc.message)
        target = _local(str(data.get("next") or ""))
        response = web.HTTPSeeOther(target)
        set_cookie(response, self.cookies.session, result["token"], self.secure)
        clear_cookie(response, self.cookies.login, self.secure)
        raise response

    async def logout(self, request: web.Request, session: Session, form: Form
                     ) -> web.StreamResponse:
        await asyncio.to_thread(self.alerting.directory.revoke, session.token,
                                client_address(request))
        return self._signed_out()

    async def logout_all(self, request: web.Request, session: Session, form: Form
                         ) -> web.StreamResponse:
        await self.invoke("logoutEverywhere", request, session)
        return self._signed_out()

    def _signed_out(self) -> web.StreamResponse:
        response = web.HTTPSeeOther("/login?signed_out=1")
        clear_cookie(response, self.cookies.session, self.secure)
        raise response

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        body = resources.files("soc.console").joinpath("static", name).read_bytes()
        return web.Response(body=body, content_type=STATIC[name],
                            headers={"Cache-Control": "max-age=300"})


def _local(target: str | None) -> str:
    """A redirect target on this site only (never `//host` or a scheme)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/alerts"
    return target
