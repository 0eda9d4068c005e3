"""The control listener: the web console (/), the API (/api/v1), /healthz, and the operator
endpoints /metrics and /readyz, plus an optional operator listener that serves only those.

/metrics and /readyz name every tenant, their counts, open alerts and journal paths: on the
control address they are open only when it is a loopback address and no operator listener is
configured; otherwise they need the operator token (soc/api/edge.py). /healthz is always
open. The control address may serve TLS.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from collector.config.models import ControlConfig
from collector.sources.tls import server_context
from core.config import split_address
from core.errors import listen_error
from core.telemetry import CONTENT_TYPE, Telemetry
from soc.api.edge import (
    Handler,
    OperatorToken,
    client_middleware,
    is_loopback,
    security_headers,
)
from soc.api.local import local_principal, peer_uid, prepare_socket_dir, socket_path

log = logging.getLogger(__name__)

ReadinessProbe = Callable[[], tuple[bool, dict[str, Any]]]
OPERATOR_PATHS = ("/metrics", "/readyz")
MAX_UNIX_PATH = 108  # sun_path, with its terminating NUL


class ControlServer:
    """The aiohttp application on the control address, and the operator listener's."""

    def __init__(self, address: str, telemetry: Telemetry, readiness: ReadinessProbe,
                 api: web.Application | None = None, *, config: ControlConfig | None = None,
                 conf_dir: Path | None = None, data_dir: Path | None = None,
                 console: Callable[[web.Application, bool], None] | None = None) -> None:
        self.config = config or ControlConfig(address=address)
        self.address = address
        self.telemetry = telemetry
        self.readiness = readiness
        self.conf_dir = conf_dir
        self.data_dir = data_dir
        token_file = self.config.operator_token_file
        if token_file is not None and not token_file.is_absolute() and conf_dir is not None:
            token_file = conf_dir / token_file
        self.token = OperatorToken(token_file) if token_file is not None else None
        # Open without a token only where nobody but local users reaches it.
        self.operator_open = (self.config.operator_address is None
                              and is_loopback(split_address(address)[0]))
        proxies = tuple(ipaddress.ip_network(c, strict=False)
                        for c in self.config.trusted_proxies)
        self.app = web.Application(middlewares=[client_middleware(proxies),
                                                self._operator_guard])
        self.app.on_response_prepare.append(security_headers)
        self._add_health_routes(self.app)
        if api is not None:  # /api/v1 (soc/api): its own middleware, auth per route
            self.app.add_subapp("/api/v1", api)
        if console is not None:  # the web console (soc/console) at /; Secure cookies on TLS
            console(self.app, self.config.tls is not None)
        self._runners: list[web.AppRunner] = []
        self._bound: dict[str, str] = {}

    def _add_health_routes(self, app: web.Application) -> None:
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)

    @web.middleware
    async def _operator_guard(self, request: web.Request,
                              handler: Handler) -> web.StreamResponse:
        if (request.path in OPERATOR_PATHS and not self.operator_open
                and local_principal(peer_uid(request)) is None):
            header = request.headers.get("Authorization", "")
            if self.token is None or not self.token.matches(header):
                return web.json_response(
                    {"error": "the operator token is required here (or use the operator "
                              "listener)"}, status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="vigil-operator"'})
        return await handler(request)

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
        tls = self._tls_context()
        await self._serve("control", self.app, self.address, tls)
        if self.config.local_socket and self.data_dir is not None:
            await self._serve_local(self._runners[0])
        if self.config.operator_address is not None:
            operator = web.Application()
            operator.on_response_prepare.append(security_headers)
            self._add_health_routes(operator)
            await self._serve("operator", operator, self.config.operator_address, None)
        elif not self.operator_open and self.token is None:
            log.warning("the control listener is not on loopback: /metrics and /readyz are "
                        "refused there; set control.operator_address or "
                        "control.operator_token_file", extra={"address": self.address})

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.config.tls is None:
            return None
        return server_context(self.config.tls, "control", conf_dir=self.conf_dir,
                              data_dir=self.data_dir, host=split_address(self.address)[0])

    async def _serve(self, name: str, app: web.Application, address: str,
                     tls: ssl.SSLContext | None) -> None:
        host, port = split_address(address)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=tls)
        try:
            await site.start()
        except OSError as exc:  # a port in use: the operator's to fix, named with its setting
            setting = "vigil.control." + ("address" if name == "control" else f"{name}_address")
            raise listen_error(exc, f"{name} listener", address, setting) from exc
        bound_host, bound_port = runner.addresses[0][:2]
        self._bound[name] = f"{bound_host}:{bound_port}"
        log.info(f"{name} listener ready", extra={"address": self._bound[name],
                                                  "tls": tls is not None})

    async def _serve_local(self, runner: web.AppRunner) -> None:
        """The same application on <data_dir>/run/control.sock for the host's administrator
        (soc/api/local.py)."""
        assert self.data_dir is not None
        path = socket_path(self.data_dir)
        if len(os.fsencode(path)) >= MAX_UNIX_PATH:
            log.warning("no local control socket: its path is longer than a Unix socket "
                        "allows (use a shorter data_dir)", extra={"path": str(path)})
            return
        try:
            prepare_socket_dir(self.data_dir)
            site = web.UnixSite(runner, str(path))
            await site.start()
            os.chmod(path, 0o600)
        except OSError as exc:  # the API on TCP still works: a warning, not a failed start
            log.warning("no local control socket", extra={"path": str(path),
                                                          "error": str(exc)})
            return
        self._bound["local"] = str(path)
        log.info("local control socket ready", extra={"path": str(path)})

    def bound_address(self) -> str:
        return self._bound["control"]

    def operator_address(self) -> str | None:
        return self._bound.get("operator")

    async def stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners = []
        local = self._bound.pop("local", None)
        if local is not None:
            Path(local).unlink(missing_ok=True)
