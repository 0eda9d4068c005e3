"""The small layer between aiohttp and the API's operations: one `Operation` record per route
drives request parsing, authentication and permission checks, response validation and the
OpenAPI document, so the served API and its description come from the same table.

Errors are JSON (`{"error": ...}`); a caller outside a resource's tenants gets the same 404 as
for a resource that does not exist. Logs name the route, never the query string or body (an
activation token or a password may be in them).
"""

from __future__ import annotations

import logging
import time
import types
import typing
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from multidict import MultiMapping
from pydantic import BaseModel, ValidationError

from soc.api.edge import client_address
from soc.api.local import local_principal, peer_uid
from soc.api.models import Error
from soc.auth.model import Principal

log = logging.getLogger(__name__)

PRINCIPAL_KEY = web.AppKey("principal_resolver", object)


class ApiError(Exception):
    """An error answer: status, message, optional per-field detail and headers."""

    def __init__(self, status: int, message: str, detail: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail
        self.headers = headers or {}


@dataclass
class Call:
    """One request as a handler sees it."""

    request: web.Request
    principal: Principal | None
    path: dict[str, str]
    query: Any
    body: Any

    @property
    def address(self) -> str | None:
        """The client's address (`X-Forwarded-For` counts only from a trusted proxy)."""
        return client_address(self.request)

    @property
    def me(self) -> Principal:
        assert self.principal is not None
        return self.principal


Handler = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # under /api/v1, with {name} path parameters
    operation_id: str
    summary: str
    tag: str
    handler: Handler
    response: type[BaseModel] | None  # None: the handler returns its own web.Response
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    authenticated: bool = True
    permission: str | None = "read"
    status: int = 200
    errors: tuple[int, ...] = (400, 401, 404)
    form: bool = False  # the body may also be form-encoded (the activation page posts it)
    content_type: str = "application/json"
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def error_response(status: int, message: str, detail: list[dict[str, Any]] | None = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    body = Error(error=message, detail=detail).model_dump_json(exclude_none=True)
    return web.Response(status=status, text=body, content_type="application/json",
                        headers=headers)


def _is_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_list(a) for a in typing.get_args(annotation))
    return origin is list


def _validation_detail(exc: ValidationError) -> list[dict[str, Any]]:
    # include_input=False: never echo what was sent (it may be a password).
    detail: list[dict[str, Any]] = orjson.loads(exc.json(include_url=False, include_input=False))
    for item in detail:
        item.pop("ctx", None)
    return detail


def parse_query(model: type[BaseModel], query: MultiMapping[str]) -> BaseModel:
    raw: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        values = query.getall(name, [])
        if values:
            raw[name] = values if _is_list(info.annotation) else values[0]
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ApiError(400, "invalid query parameters", _validation_detail(exc)) from None


async def parse_body(model: type[BaseModel], request: web.Request, form: bool) -> BaseModel:
    raw: Any
    if form and request.content_type == "application/x-www-form-urlencoded":
        try:
            posted = await request.post()
        except ValueError:
            raise ApiError(400, "the form body cannot be read") from None
        raw = {k: v for k, v in posted.items() if isinstance(v, str) and v != ""}
    else:
        data = await request.read()
        try:
            raw = orjson.loads(data) if data else {}
        except orjson.JSONDecodeError:
            raise ApiError(400, "the body is not JSON") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ApiError(400, "invalid request body", _validation_detail(exc)) from None


PrincipalResolver = Callable[[str], Awaitable[Principal | None]]


WebHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def endpoint(operation: Operation, resolve: PrincipalResolver) -> WebHandler:
    """The aiohttp handler of one operation."""

    async def handle(request: web.Request) -> web.StreamResponse:
        principal = None
        if operation.authenticated:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            principal = await resolve(token.strip()) if scheme.lower() == "bearer" else None
            if principal is None and not header:
                # Over the local socket (soc/api/local.py): the host's administrator.
                principal = local_principal(peer_uid(request))
            if principal is None:
                raise ApiError(401, "authentication required",
                               headers={"WWW-Authenticate": 'Bearer realm="vigil"'})
            if operation.permission and not principal.can(operation.permission):
                raise ApiError(403, "your role does not allow this")
        query = parse_query(operation.query, request.query) if operation.query else None
        body = (await parse_body(operation.body, request, operation.form)
                if operation.body else None)
        call = Call(request, principal, dict(request.match_info), query, body)
        result = await operation.handler(call)
        if isinstance(result, web.StreamResponse):
            return result
        assert operation.response is not None
        model = (result if isinstance(result, operation.response)
                 else operation.response.model_validate(result))
        return web.Response(status=operation.status, text=model.model_dump_json(),
                            content_type="application/json")

    return handle


class RateLimiter:
    """At most `limit` events per `window` seconds per key (a client address); the oldest keys
    are dropped past `max_keys`, so memory stays bounded."""

    def __init__(self, limit: int, window: float = 60.0, max_keys: int = 10_000,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self.monotonic = monotonic
        self._hits: dict[str, deque[float]] = {}

    def allow(self, key: str) -> float | None:
        """None when allowed (and counted); else the seconds until the next allowed try."""
        now = self.monotonic()
        hits = self._hits.pop(key, None) or deque()
        while hits and now - hits[0] >= self.window:
            hits.popleft()
        self._hits[key] = hits  # re-inserted: dict order is recency order
        if len(hits) >= self.limit:
            return self.window - (now - hits[0])
        hits.append(now)
        while len(self._hits) > self.max_keys:
            del self._hits[next(iter(self._hits))]
        return None


def error_middleware(count: Callable[[web.Request, int], None]) -> Any:
    """JSON errors for everything under /api/v1, counted per route and status."""

    @web.middleware
    async def middleware(request: web.Request, handler: WebHandler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except ApiError as exc:
            response = error_response(exc.status, exc.message, exc.detail, exc.headers)
        except web.HTTPException as exc:
            headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            response = error_response(exc.status, exc.reason or "error", headers=headers)
        except Exception:
            log.exception("API request failed", extra={"method": request.method,
                                                       "route": _route(request)})
            response = error_response(500, "internal error")
        count(request, response.status)
        return response

    return middleware


def _route(request: web.Request) -> str:
    """The route template (bounded, and free of ids and query strings)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


route_of = _route
