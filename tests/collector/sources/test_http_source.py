"""HTTP ingest in-process on a real loopback listener, with aiohttp as the client: every status
the source answers, gzip, HEC paths and replies, tenants by token, HTTPS."""

from __future__ import annotations

import gzip
import hashlib
import json
import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from collector.queue import MemoryQueue
from collector.routing import QUARANTINE, TenantRouter
from collector.sources.base import SourceContext
from collector.sources.http.source import HttpSource
from core.events import PARSE_ERROR
from core.telemetry import Telemetry

NOW = datetime(2024, 5, 14, 9, 30, tzinfo=UTC)


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class HttpRig:
    def __init__(self, tmp_path: Path, queue_bound: int = 10_000, **settings: Any) -> None:
        config = HttpSource.config_model.model_validate({
            "type": "http", "address": "127.0.0.1:0",
            "tokens": {"demo": {"tenant": "demo", "sha256": sha("demo-token")},
                       "acme": {"tenant": "acme", "sha256": sha("acme-token")},
                       "relay": {"sha256": sha("relay-token")}},
            "routes": [{"tenant": "acme", "field": "host.hostname", "patterns": ["*.acme"]}],
            **settings})
        self.queue = MemoryQueue(queue_bound)
        self.telemetry = Telemetry()
        context = SourceContext("http", config, self.queue,
                                self.telemetry.component("http", "source", "http"),
                                TenantRouter.from_config(config, {"demo", "acme"}), lambda: NOW,
                                data_dir=tmp_path, conf_dir=tmp_path)
        self.source = HttpSource(context)
        self.scheme = "https" if config.tls else "http"

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.source.bound_address()}{path}"

    def events(self, tenant: str) -> list[dict[str, Any]]:
        return list(self.queue._queued.get(tenant, []))


@pytest.fixture
async def http(tmp_path: Path):
    rig = HttpRig(tmp_path)
    await rig.source.start()
    async with aiohttp.ClientSession() as session:
        rig.session = session  # type: ignore[attr-defined]
        yield rig
    await rig.source.stop()


async def post(rig: HttpRig, path: str, body: bytes, token: str | None = "demo-token",
               scheme: str = "Bearer", **headers: str) -> tuple[int, dict[str, Any], Any]:
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}"
    async with rig.session.post(rig.url(path), data=body, headers=headers) as response:  # type: ignore[attr-defined]
        return response.status, dict(response.headers), await response.json()


async def test_ndjson_gzip_and_dataset(http: HttpRig) -> None:
    body = b"".join(json.dumps({"user.name": f"u{i}", "n": i}).encode() + b"\n"
                    for i in range(500))
    status, _, reply = await post(http, "/v1/logs?dataset=app.audit", gzip.compress(body),
                                  **{"Content-Encoding": "gzip"})
    assert (status, reply) == (200, {"accepted": 500})
    events = http.events("demo")
    assert [e["n"] for e in events] == list(range(500))
    assert {e["vigil.dataset"] for e in events} == {"app.audit"}
    assert http.telemetry.sample("vigil_component_received_bytes_total", component_id="http",
                                 component_kind="source", component_type="http",
                                 tenant="demo") \
        == len(gzip.compress(body))


async def test_bad_lines_are_stored_and_named_in_a_success_reply(http: HttpRig) -> None:
    """Everything was stored, so the answer is a success (a 400 makes clients resend or drop
    the whole body); the bad lines are named, in words for people."""
    body = b'{"a": 1}\n{oops\n{"a": 3}\n{"s": "\xed\xa0\x80"}\n'
    status, _, reply = await post(http, "/v1/logs", body)
    assert status == 200
    assert reply["accepted"] == 4 and reply["invalid"] == 2
    assert reply["errors"] == [
        {"line": 2, "error": "invalid JSON at column 2: unexpected character, expected a "
                             "string key"},
        {"line": 4, "error": "invalid JSON: the text is not valid UTF-8"}]
    assert "str " not in str(reply)
    events = http.events("demo")
    assert [e.get("a") for e in events] == [1, None, 3, None]
    assert events[1]["message"] == "{oops" and PARSE_ERROR in events[1]


async def test_auth_failures(http: HttpRig) -> None:
    status, headers, reply = await post(http, "/v1/logs", b"{}", token=None)
    assert (status, reply) == (401, {"error": "missing Authorization header"})
    assert headers["WWW-Authenticate"] == "Bearer"
    status, _, _ = await post(http, "/v1/logs", b"{}", token="x", scheme="Basic")
    assert status == 401
    status, _, reply = await post(http, "/v1/logs", b"{}", token="wrong-token")
    assert (status, reply) == (403, {"error": "unknown token"})
    assert http.events("demo") == []


async def test_size_encoding_and_empty(http: HttpRig, tmp_path: Path) -> None:
    limit = http.source.config.max_body_bytes
    status, _, _ = await post(http, "/v1/logs", b"x" * (limit + 1))
    assert status == 413
    bomb = gzip.compress(b"{}\n" * (limit // 3 + 10))
    status, _, _ = await post(http, "/v1/logs", bomb, **{"Content-Encoding": "gzip"})
    assert status == 413
    status, _, reply = await post(http, "/v1/logs", b"{}", **{"Content-Encoding": "br"})
    assert status == 415
    status, _, reply = await post(http, "/v1/logs", b"not gzip", **{"Content-Encoding": "gzip"})
    assert status == 400 and "gzip" in reply["error"]
    status, _, reply = await post(http, "/v1/logs", b"  \n")
    assert (status, reply) == (400, {"error": "empty body"})
    status, _, _ = await post(http, "/v1/logs?dataset=../etc", b"{}")
    assert status == 400


async def test_queue_full_gets_503_with_retry_after(tmp_path: Path) -> None:
    rig = HttpRig(tmp_path, queue_bound=2)
    await rig.source.start()
    try:
        async with aiohttp.ClientSession() as session:
            rig.session = session  # type: ignore[attr-defined]
            assert (await post(rig, "/v1/logs", b'[{"a":1},{"a":2}]'))[0] == 200
            status, headers, reply = await post(rig, "/v1/logs", b'{"a": 3}')
            assert status == 503 and headers["Retry-After"] == "1"
            status, _, reply = await post(rig, "/services/collector/event", b'{"event": "x"}',
                                          token="demo-token", scheme="Splunk")
            assert (status, reply) == (503, {"text": "Server is busy", "code": 9})
            assert len(rig.events("demo")) == 2
    finally:
        await rig.source.stop()


async def test_events_that_cannot_be_stored_get_503(http: HttpRig) -> None:
    http.queue.close()  # as at shutdown: appends fail
    status, headers, reply = await post(http, "/v1/logs", b'{"a": 1}')
    assert (status, reply) == (503, {"error": "events could not be stored, retry later"})
    assert headers["Retry-After"] == "1"


async def test_tenant_by_token_or_by_route(http: HttpRig) -> None:
    assert (await post(http, "/v1/logs", b'{"m": "a"}', token="acme-token"))[0] == 200
    body = b'{"m": "b", "host.hostname": "fw.acme"}\n{"m": "c", "host.hostname": "other"}'
    assert (await post(http, "/v1/logs", body, token="relay-token"))[0] == 200
    assert [e["m"] for e in http.events("acme")] == ["a", "b"]
    assert [e["m"] for e in http.events(QUARANTINE)] == ["c"]
    assert http.events("demo") == []


async def test_hec_event_raw_and_health(http: HttpRig) -> None:
    body = (b'{"event": "one", "time": "1715677200", "host": "h1", "sourcetype": "st"}'
            b'{"event": {"k": "v"}, "fields": {"env": "prod"}}')
    status, _, reply = await post(http, "/services/collector/event", body, scheme="Splunk")
    assert (status, reply) == (200, {"text": "Success", "code": 0})
    status, _, reply = await post(http, "/services/collector/raw?host=rawhost",
                                  b"raw one\nraw two\n", scheme="Splunk")
    assert (status, reply) == (200, {"text": "Success", "code": 0})
    one, two, raw1, raw2 = http.events("demo")
    assert one["message"] == "one" and one["host.hostname"] == "h1"
    assert one["@timestamp"] == datetime(2024, 5, 14, 9, 0, tzinfo=UTC)
    assert two["k"] == "v" and two["splunk.fields.env"] == "prod"
    assert (raw1["message"], raw2["message"], raw2["host.hostname"]) == \
        ("raw one", "raw two", "rawhost")
    status, _, reply = await post(http, "/services/collector/event", b'{"nope": 1}',
                                  scheme="Splunk")
    assert (status, reply) == (400, {"text": "Event field is required", "code": 12,
                                     "invalid-event-number": 0})
    status, _, reply = await post(http, "/services/collector/event", b"{}", token=None)
    assert (status, reply) == (401, {"text": "Token is required", "code": 2})
    status, _, reply = await post(http, "/services/collector/event", b"{}", token="bad",
                                  scheme="Splunk")
    assert (status, reply) == (403, {"text": "Invalid token", "code": 4})
    async with http.session.get(http.url("/services/collector/health")) as response:  # type: ignore[attr-defined]
        assert (response.status, await response.json()) == \
            (200, {"text": "HEC is healthy", "code": 17})
    metric = http.telemetry.sample
    assert metric("vigil_component_http_requests_total", component_id="http",
                  component_kind="source", component_type="http", code="200") == 3


async def test_https(tmp_path: Path) -> None:
    rig = HttpRig(tmp_path, tls={"self_signed": True})
    await rig.source.start()
    try:
        context = ssl.create_default_context(cafile=tmp_path / "tls" / "http.crt")
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
            rig.session = session  # type: ignore[attr-defined]
            status, _, reply = await post(rig, "/v1/logs", b'{"over": "tls"}')
            assert (status, reply) == (200, {"accepted": 1})
        assert rig.events("demo")[0]["over"] == "tls"
    finally:
        await rig.source.stop()
