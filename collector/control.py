"""The control listener: /metrics, /healthz, /readyz, and the API routes later issues add."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from collector.config.models import split_address
from collector.telemetry import CONTENT_TYPE, Telemetry

log = logging.getLogger(__name__)

ReadinessProbe = Callable[[], tuple[bool, dict[str, Any]]]


class ControlServer:
    """One aiohttp application on the control address."""

    def __init__(self, address: str, telemetry: Telemetry, readiness: ReadinessProbe,
                 api: web.Application | None = None) -> None:
        self.address = address
        self.telemetry = telemetry
        self.readiness = readiness
        self.app = web.Application()
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/readyz", self._readyz)
        if api is not None:  # /api/v1 (collector/api): its own middleware, auth per route
            self.app.add_subapp("/api/v1", api)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    async def _metrics(self, request: web.Request) -> web.Response:
        body = self.telemetry.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        ready, detail = self.readiness()
        indent = 2 if "pretty" in request.query else None  # `curl .../readyz?pretty` at a shell
        return web.json_response({"status": "ready" if ready else "not ready", **detail},
                                 status=200 if ready else 503,
                                 dumps=lambda doc: json.dumps(doc, indent=indent) + "\n")

    async def start(self) -> None:
        host, port = split_address(self.address)
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await self._site.start()
        log.info("control listener ready", extra={"address": self.bound_address()})

    def bound_address(self) -> str:
        assert self._runner is not None
        host, port = self._runner.addresses[0][:2]
        return f"{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
