"""The /api/v1 application mounted on the control listener (collector/control.py)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from soc.alerts.service import Alerting
from soc.api.framework import endpoint, error_middleware, route_of
from soc.api.integrations import RequirementSource
from soc.api.openapi import openapi_document
from soc.api.routes import Api
from soc.dashboards.service import CoverageSource

PREFIX = "/api/v1"
MAX_BODY_BYTES = 256 * 1024


def build_api_app(alerting: Alerting, api: Api | None = None,
                  coverage: CoverageSource | None = None,
                  requirements: RequirementSource | None = None) -> web.Application:
    """A sub-application to mount at /api/v1: JSON errors, auth per operation, the OpenAPI
    document at /api/v1/openapi.json. `api` shares its handlers (and login rate limit) with
    the console; `coverage` gives the running detection's field coverage (dashboards read the
    saved `state/coverage.json` without it); `requirements` every rule's requirement (the
    integration map's "would switch on")."""
    api = api or Api(alerting)
    api.coverage_source = coverage
    api.requirements_source = requirements
    operations = api.operations()
    document = openapi_document(operations, PREFIX)

    def count(request: web.Request, status: int) -> None:
        alerting.telemetry.api_requests.labels(route_of(request), request.method,
                                               str(status)).inc()

    app = web.Application(middlewares=[error_middleware(count)], client_max_size=MAX_BODY_BYTES)
    for operation in operations:
        app.router.add_route(operation.method, operation.path, endpoint(operation, api.resolve))

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get("/openapi.json", openapi)
    return app


def api_document() -> dict[str, Any]:
    """The OpenAPI document (for tools and tests that want it without a server)."""
    return openapi_document(Api(None).operations(), PREFIX)  # type: ignore[arg-type]
