"""The control listener's trust boundary: /metrics and /readyz (tenant ids, counts, journal
paths) are not served to anyone who can reach an exposed API listener; /healthz stays open;
`X-Forwarded-For` counts only from trusted proxies; HTML pages carry security headers; the API
can be served over TLS."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from alerts.kit import TENANTS_YAML, UNUSED_MAIL_YAML, Clock, load
from support.daemon import VigilProcess, basic_config, write_conf

from collector.config.models import ControlConfig
from collector.control import ControlServer
from core.telemetry import Telemetry
from soc.alerts.model import Actor
from soc.alerts.service import Alerting
from soc.api.app import build_api_app
from soc.auth.totp import current_code

PASSWORD = "correct horse battery staple"
OPERATOR_TOKEN = "operator-token-0123456789abcdef"


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def exposed_config(**control: Any) -> dict[str, Any]:
    config = basic_config(tenant="secrettenant")
    config["vigil"]["control"] = {"address": "0.0.0.0:0", **control}
    return config


def test_exposed_api_listener_serves_no_metrics_or_readyz_without_a_token(
        tmp_path: Path) -> None:
    write_conf(tmp_path / "conf.d", exposed_config())
    daemon = VigilProcess(tmp_path / "conf.d", tmp_path / "data")
    try:
        daemon.start(ready_path="/healthz")
        base = f"http://{daemon.control}"
        for path in ("/metrics", "/readyz"):
            status, body = get(base + path)
            assert status == 401, (path, status)
            assert b"secrettenant" not in body
            assert get(base + path, token="wrong")[0] == 401
        assert get(base + "/healthz")[0] == 200
    finally:
        daemon.kill()


def test_operator_token_and_operator_address(tmp_path: Path) -> None:
    token_file = tmp_path / "operator.token"
    token_file.write_text(OPERATOR_TOKEN + "\n")
    write_conf(tmp_path / "conf.d", exposed_config(operator_address="127.0.0.1:0",
                                                   operator_token_file=str(token_file)))
    daemon = VigilProcess(tmp_path / "conf.d", tmp_path / "data")
    try:
        daemon.start()  # readiness through the operator listener
        assert daemon.operator is not None and daemon.operator != daemon.control
        base = f"http://{daemon.control}"
        assert get(base + "/metrics")[0] == 401
        status, body = get(base + "/metrics", token=OPERATOR_TOKEN)
        assert status == 200 and b"vigil_" in body
        assert get(base + "/readyz", token=OPERATOR_TOKEN)[0] == 200
        assert get(base + "/healthz")[0] == 200
        # The operator listener (loopback) needs no token.
        assert get(f"http://{daemon.operator}/metrics")[0] == 200
        assert daemon.readyz()[0] == 200
    finally:
        daemon.kill()


def test_loopback_control_listener_keeps_serving_metrics(tmp_path: Path) -> None:
    """The example (`make run`): control on loopback, `curl 127.0.0.1:9580/metrics` works."""
    write_conf(tmp_path / "conf.d", basic_config())
    daemon = VigilProcess(tmp_path / "conf.d", tmp_path / "data")
    try:
        daemon.start()
        assert get(f"http://{daemon.control}/metrics")[0] == 200
    finally:
        daemon.kill()


# -- in-process: the API behind the control listener -------------------------------------


async def control_with_user(tmp_path: Path, control: dict[str, Any],
                            attempts: int = 1000) -> tuple[ControlServer, Alerting, str, Clock]:
    clock = Clock()
    config = load(tmp_path / "conf.d", TENANTS_YAML, UNUSED_MAIL_YAML, f"""
    access:
      default:
        login_attempts_per_minute: {attempts}
    """)
    alerting = Alerting(config, tmp_path / "data", tmp_path / "conf.d", Telemetry(),
                        clock=clock)
    await alerting.start()
    new = alerting.directory.add_user("ana", "Ana", "ana@example.com", "soc_l1", ["acme"],
                                      Actor("root", None, "127.0.0.1"))
    alerting.directory.activate("ana", new.activation_token, PASSWORD,
                                current_code(new.totp_secret, clock()))
    settings = ControlConfig.model_validate({"address": "127.0.0.1:0", **control})
    server = ControlServer(settings.address, alerting.telemetry, lambda: (True, {}),
                           api=build_api_app(alerting), config=settings,
                           conf_dir=tmp_path / "conf.d", data_dir=tmp_path / "data")
    await server.start()
    return server, alerting, new.totp_secret, clock


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def failed_logins(session: aiohttp.ClientSession, base: str, n: int) -> list[int]:
    statuses = []
    for i in range(n):
        async with session.post(f"{base}/api/v1/auth/login",
                                json={"login": "nobody", "password": "x" * 12, "code": "000000"},
                                headers={"X-Forwarded-For": f"198.51.100.{i + 1}"}) as reply:
            statuses.append(reply.status)
    return statuses


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(
        tmp_path: Path, session: aiohttp.ClientSession) -> None:
    # No trusted proxy: each spoofed X-Forwarded-For is the same client (127.0.0.1).
    server, alerting, _, _ = await control_with_user(tmp_path, {}, attempts=3)
    try:
        statuses = await failed_logins(session, f"http://{server.bound_address()}", 5)
        assert 429 in statuses, statuses
    finally:
        await server.stop()
        await alerting.stop()


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(
        tmp_path: Path, session: aiohttp.ClientSession) -> None:
    server, alerting, _, _ = await control_with_user(
        tmp_path, {"trusted_proxies": ["127.0.0.0/8"]}, attempts=3)
    try:
        statuses = await failed_logins(session, f"http://{server.bound_address()}", 5)
        assert 429 not in statuses, statuses
    finally:
        await server.stop()
        await alerting.stop()


async def test_security_headers_on_html_and_nosniff_on_json(
        tmp_path: Path, session: aiohttp.ClientSession) -> None:
    server, alerting, _, _ = await control_with_user(tmp_path, {})
    base = f"http://{server.bound_address()}"
    try:
        async with session.get(f"{base}/api/v1/auth/activate?login=ana&token=x") as page:
            assert page.status == 200 and page.content_type == "text/html"
            csp = page.headers.get("Content-Security-Policy", "")
            assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
            assert page.headers.get("X-Frame-Options") == "DENY"
            assert page.headers.get("X-Content-Type-Options") == "nosniff"
            assert page.headers.get("Referrer-Policy") == "no-referrer"
        for path in ("/api/v1/openapi.json", "/healthz", "/api/v1/alerts"):
            async with session.get(base + path) as reply:
                assert reply.headers.get("X-Content-Type-Options") == "nosniff", path
    finally:
        await server.stop()
        await alerting.stop()


async def test_login_over_tls_with_the_self_signed_pair(
        tmp_path: Path, session: aiohttp.ClientSession) -> None:
    server, alerting, secret, clock = await control_with_user(
        tmp_path, {"tls": {"self_signed": True}})
    try:
        cert = tmp_path / "data" / "tls" / "control.crt"
        assert cert.is_file()
        trust = ssl.create_default_context(cafile=str(cert))
        base = f"https://{server.bound_address()}"
        clock.advance(seconds=30)
        async with session.post(f"{base}/api/v1/auth/login", ssl=trust, json={
                "login": "ana", "password": PASSWORD,
                "code": current_code(secret, clock())}) as reply:
            assert reply.status == 200, await reply.text()
            assert (await reply.json())["token"]
        # Plain HTTP on the TLS port does not get an answer.
        with pytest.raises(aiohttp.ClientError):
            async with session.get(f"http://{server.bound_address()}/healthz") as reply:
                await reply.read()
    finally:
        await server.stop()
        await alerting.stop()




def test_bad_control_settings_are_reported_at_their_keys(
        tmp_path: Path, config_errors: Callable[[str], list[str]]) -> None:
    errors = config_errors("""
    vigil:
      control:
        address: 0.0.0.0:9580
        operator_token_file: missing.token
        tls: {self_signed: true, cert_file: a.crt}
        trusted_proxies: [10.0.0.1/8]
    """)
    assert errors == [
        f"{tmp_path}/30-pipelines.yaml:5:10: vigil.control.tls: `self_signed` "
        "generates the pair: remove `cert_file`/`key_file` or `self_signed`",
        f"{tmp_path}/30-pipelines.yaml:6:23: vigil.control.trusted_proxies[0]: '10.0.0.1/8' "
        "has host bits set (did you mean '10.0.0.0/8'?)",
    ]
    errors = config_errors("""
    vigil:
      control:
        operator_token_file: missing.token
    """)
    assert errors == [f"{tmp_path}/30-pipelines.yaml:3:26: vigil.control.operator_token_file: "
                      f"cannot read token file {tmp_path}/missing.token: No such file or "
                      "directory"]
