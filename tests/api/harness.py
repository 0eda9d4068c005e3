"""The API test harness: a client bound to a running /api/v1 and the users it logged in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp
from alerts.kit import Clock

from collector.auth.totp import current_code
from sinks.alerts.service import Alerting

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
