"""The API test harness: a client bound to a running /api/v1 and the users it logged in, and
the server it runs against (`serve_api`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from alerts.kit import TENANTS_YAML, UNUSED_MAIL_YAML, Clock, load, make_alert

from collector.control import ControlServer
from core.telemetry import Telemetry
from soc.alerts.model import Actor
from soc.alerts.service import Alerting
from soc.api.app import build_api_app
from soc.auth.totp import current_code

PASSWORD = "correct horse battery staple"


@dataclass
class Api:
    base: str
    session: aiohttp.ClientSession
    alerting: Alerting
    clock: Clock
    secrets: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    alerts: dict[str, list[str]] = field(default_factory=dict)

    async def call(self, method: str, path: str, who: str | None = None,
                   json: Any = None, token: str | None = None, **kwargs: Any
                   ) -> tuple[int, Any]:
        headers = dict(kwargs.pop("headers", {}))
        bearer = token or (self.tokens[who] if who else None)
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        async with self.session.request(method, f"{self.base}/api/v1{path}", json=json,
                                        headers=headers, **kwargs) as response:
            body = await response.read()
            try:
                return response.status, await response.json(content_type=None)
            except ValueError:
                return response.status, body

    async def login(self, who: str) -> str:
        self.clock.advance(seconds=30)  # a fresh TOTP step for every login
        status, body = await self.call("POST", "/auth/login", json={
            "login": who, "password": PASSWORD,
            "code": current_code(self.secrets[who], self.clock())})
        assert status == 200, body
        return str(body["token"])


ROOT = Actor("root", None, "127.0.0.1")
USERS = {
    "ana": ("soc_l1", ["acme"]),
    "viewer": ("client_viewer", ["acme"]),
    "ciso": ("client_operator", ["acme", "bravo"]),
    "admin": ("platform_admin", []),
}


@asynccontextmanager
async def serve_api(tmp_path: Path, login_attempts_per_minute: int = 1000
                    ) -> AsyncIterator[Api]:
    """A real control listener with /api/v1 on an OS-chosen loopback port, over a real alert
    store, with tenants acme, bravo, charlie, their alerts, and one user per role."""
    clock = Clock()
    config = load(tmp_path / "conf.d", TENANTS_YAML, UNUSED_MAIL_YAML, f"""
    vigil:
      control:
        address: 127.0.0.1:0
    access:
      default:
        login_attempts_per_minute: {login_attempts_per_minute}
    """)
    alerting = Alerting(config, tmp_path / "data", tmp_path / "conf.d", Telemetry(),
                        clock=clock)
    await alerting.start()
    server = ControlServer("127.0.0.1:0", alerting.telemetry, lambda: (True, {}),
                           api=build_api_app(alerting))
    await server.start()
    session = aiohttp.ClientSession()
    harness = Api(f"http://{server.bound_address()}", session, alerting, clock)
    store = alerting.store
    for tenant, n in (("acme", 3), ("bravo", 2), ("charlie", 1)):
        alerts = [make_alert(tenant, severity=("critical", "high", "low")[i % 3],
                             group=f'{{"n": {i}}}') for i in range(n)]
        store.upsert(alerts, tenant)
        harness.alerts[tenant] = [a["alert.id"] for a in alerts]
    for login, (role, tenants) in USERS.items():
        new = alerting.directory.add_user(login, login.title(), f"{login}@example.com", role,
                                          tenants, ROOT)
        alerting.directory.activate(login, new.activation_token, PASSWORD,
                                    current_code(new.totp_secret, clock()))
        harness.secrets[login] = new.totp_secret
    for login in USERS:
        harness.tokens[login] = await harness.login(login)
    try:
        yield harness
    finally:
        await session.close()
        await server.stop()
        await alerting.stop()
