"""schemathesis against /api/v1 and its OpenAPI document: generated requests to every operation
of a real server must never get a 500, and every answer must match the documented status codes,
content types and schemas. The default run is light; the `slow` run is the thorough one."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from alerts.kit import TENANTS_YAML, UNUSED_MAIL_YAML, load, make_alert
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from collector.control import ControlServer
from core.telemetry import Telemetry
from soc.alerts.model import Actor
from soc.alerts.service import Alerting
from soc.api.app import api_document, build_api_app
from soc.auth.tokens import new_token
from soc.auth.totp import current_code

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
PASSWORD = "correct horse battery staple"
COUNTS = {"cases": 0}


class Server:
    """The API on its own loop and thread (schemathesis calls it synchronously)."""

    def __init__(self, tmp: Path) -> None:
        config = load(tmp / "conf.d", TENANTS_YAML, UNUSED_MAIL_YAML)
        self.alerting = Alerting(config, tmp / "data", tmp / "conf.d", Telemetry())
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = ControlServer("127.0.0.1:0", self.alerting.telemetry,
                                    lambda: (True, {}), api=build_api_app(self.alerting))
        self.loop.run_until_complete(self.alerting.start())
        self.loop.run_until_complete(self.server.start())
        self.url = f"http://{self.server.bound_address()}"
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> Server:
        self._thread.start()
        self._ready.wait(20)
        directory = self.alerting.directory
        new = directory.add_user("admin", "Admin", "admin@example.com", "platform_admin", [],
                                 Actor("root", None))
        now = self.alerting.clock()
        directory.activate("admin", new.activation_token, PASSWORD,
                           current_code(new.totp_secret, now))
        # The activation spent this time step's code; log in with the next step's.
        later = now + timedelta(seconds=30)
        directory.clock = lambda: later
        _, self.principal = directory.login("admin", PASSWORD,
                                            current_code(new.totp_secret, later), None)
        for tenant in ("acme", "bravo"):
            self.alerting.store.upsert([make_alert(tenant, group=f'{{"n": {i}}}')
                                        for i in range(3)], tenant)
        return self

    def token(self) -> str:
        """A fresh admin session per case: a generated logout or logout-all may revoke every
        earlier one (and the tokens made from them)."""
        directory = self.alerting.directory
        user = directory.get("admin")
        assert user is not None
        token = new_token("vgs")
        directory._issue(user, token, "session", None, directory.policy.session_ttl, None)
        return token

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("schemathesis")).start()
    yield running
    running.stop()
    print(f"\nschemathesis: {COUNTS['cases']} generated case(s), no 500, no schema violation")


def _document() -> dict[str, Any]:
    return api_document()


schema = schemathesis.openapi.from_dict(_document())


def _check(case: Any, server: Server) -> None:
    COUNTS["cases"] += 1
    headers = {"Authorization": f"Bearer {server.token()}"}
    case.call_and_validate(base_url=server.url, headers=headers, checks=CHECKS, timeout=30)


@schema.parametrize()
@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_document(case: Any, server: Server) -> None:
    _check(case, server)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_document_thoroughly(case: Any, server: Server) -> None:
    _check(case, server)
