"""The control listener's /readyz: one JSON document a terminal shows whole, `?pretty` indented."""

from __future__ import annotations

import json
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from collector.control import ControlServer
from core.telemetry import Telemetry


def readiness() -> tuple[bool, dict[str, Any]]:
    return True, {"sources": {"syslog_tcp": {"address": "127.0.0.1:5514"}}}


async def test_readyz_ends_with_a_newline_and_is_indented_on_request() -> None:
    server = ControlServer("127.0.0.1:0", Telemetry(), readiness)
    async with TestClient(TestServer(server.app)) as client:
        plain = await (await client.get("/readyz")).text()
        pretty = await (await client.get("/readyz?pretty")).text()
    assert plain.endswith("}\n") and plain.count("\n") == 1
    assert pretty.startswith('{\n  "status": "ready",\n')
    assert json.loads(plain) == json.loads(pretty)
