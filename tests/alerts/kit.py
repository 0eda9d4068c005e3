"""Shared test parts for the alert store, notifications, auth and API tests: an injectable clock,
alert records as detection emits them, a real SMTP server (aiosmtpd, STARTTLS + AUTH) and a real
webhook receiver (aiohttp), both on OS-chosen loopback ports."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import orjson
import pyotp
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from support.daemon import REPO

from collector.config import VigilConfig, load_config
from soc.alerts.db import Database
from soc.alerts.store import AlertStore

UTC = dt.UTC
T0 = dt.datetime(2025, 3, 3, 9, 0, 0, tzinfo=UTC)
SMTP_USER, SMTP_PASSWORD = "vigil", "smtp-secret-pw"


class Clock:
    """A settable clock: `clock()` is now; `clock.advance(minutes=5)` moves it."""

    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


def make_alert(tenant: str = "acme", rule_id: str = "ssh_brute_force", *,
               severity: str = "high", group: str = '{"source.ip": "203.0.113.7"}',
               first_seen: dt.datetime = T0, last_seen: dt.datetime | None = None,
               count: int = 1, alert_id: str | None = None, **extra: Any) -> dict[str, Any]:
    """One alert record as detection emits it (see notes/alert-record.md)."""
    last = last_seen or first_seen
    dedup = f"{tenant}|{rule_id}|{group}"
    return {
        "@timestamp": last, "vigil.tenant": tenant,
        "alert.id": alert_id or str(uuid.uuid5(uuid.NAMESPACE_URL,
                                               f"{dedup}|{first_seen.isoformat()}")),
        "alert.dedup_key": dedup, "alert.first_seen": first_seen, "alert.last_seen": last,
        "alert.count": count, "alert.suppressed": count - 1, "alert.severity": severity,
        "alert.dataset": "linux.auth", "alert.group_key": group,
        "alert.events": [orjson.dumps({"message": f"Failed password #{i}", "lake": {
            "dataset": "linux.auth", "tenant": tenant, "offset": i}}).decode()
            for i in range(min(count, 3))],
        "rule.id": rule_id, "rule.name": f"Rule {rule_id}", "rule.description": "test rule",
        "rule.level": severity, "rule.type": "correlation", "rule.references": [],
        "rule.falsepositives": ["admins"], "rule.tags": ["attack.t1110"], "rule.runbook": None,
        "threat.tactic.name": ["credential-access"], "threat.technique.id": ["T1110"],
        **extra,
    }


TENANTS_YAML = """
tenants:
  acme:
    name: ACME Corp
    contract_id: C-1
    tier: managed_soc
    contact: {name: Ann Acme, email: ann@acme.example, phone: "+1 555 0100"}
    escalation_contacts:
      - {name: ACME CISO, email: ciso@acme.example}
    sla:
      critical: {ack: 15m, resolve: 4h}
      high: {ack: 60m, resolve: 24h}
    notifications:
      email:
        critical: [secops@acme.example]
        high: [secops@acme.example]
  bravo:
    name: Bravo Ltd
    tier: siem_only
    sla:
      high: {ack: 30m, resolve: 8h}
    notifications:
      email:
        high: [team@bravo.example]
  charlie:
    name: Charlie GmbH
"""

# An email notifier nobody listens to, for tests that only need the configuration to be valid.
UNUSED_MAIL_YAML = """
notifiers:
  mail:
    type: email
    host: 127.0.0.1
    port: 9
    sender: vigil@provider.example
"""


def write_conf(conf_dir: Path, text: str, name: str = "10-test.yaml") -> Path:
    conf_dir.mkdir(parents=True, exist_ok=True)
    path = conf_dir / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def load(conf_dir: Path, *texts: str) -> VigilConfig:
    for i, text in enumerate(texts):
        write_conf(conf_dir, text, f"{10 + i}-test.yaml")
    return load_config(conf_dir)


def new_store(path: Path, clock: Clock) -> AlertStore:
    return AlertStore(Database(path), clock=clock)


# -- a real SMTP server ----------------------------------------------------------------------

def self_signed(directory: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A throwaway certificate/key pair for 127.0.0.1 (generated, never committed)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "smtp.crt", directory / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class _PortZeroController(Controller):
    """aiosmtpd's controller on an OS-chosen port (it connects once to its own port at start,
    so the port is read back from the bound socket first)."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@dataclass
class SmtpServer:
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    port: int = 0
    cert: Path | None = None
    refuse: bool = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.refuse:
            return "451 try again later"
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        parsed = email.message_from_bytes(envelope.original_content or envelope.content,
                                          policy=email.policy.default)
        self.messages.append(parsed)  # type: ignore[arg-type]
        return "250 OK"

    def wait(self, n: int = 1, timeout: float = 10.0) -> list[EmailMessage]:
        from support.daemon import wait_for

        wait_for(lambda: len(self.messages) >= n, timeout, message=f"{n} mail(s)")
        return self.messages


def _authenticate(smtp: SmtpServer) -> Any:
    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == SMTP_USER
              and auth_data.password.decode() == SMTP_PASSWORD)
        if ok:
            smtp.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)
    return authenticator


@contextmanager
def smtp_server(cert_dir: Path) -> Iterator[SmtpServer]:
    """aiosmtpd on 127.0.0.1:<free port> requiring STARTTLS and AUTH (LOGIN/PLAIN)."""
    cert, key = self_signed(cert_dir)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    handler = SmtpServer(cert=cert)
    controller = _PortZeroController(
        handler, hostname="127.0.0.1", port=0, tls_context=context, require_starttls=True,
        auth_required=True, authenticator=_authenticate(handler))
    controller.start()
    handler.port = controller.port
    try:
        yield handler
    finally:
        controller.stop()


def email_notifier_yaml(smtp: SmtpServer, soc: str = "soc@provider.example") -> str:
    return f"""
notifiers:
  mail:
    type: email
    host: 127.0.0.1
    port: {smtp.port}
    security: starttls
    ca_file: {smtp.cert}
    username: {SMTP_USER}
    password: {SMTP_PASSWORD}
    sender: vigil@provider.example
    soc_recipients: [{soc}]
    retries: 1
    backoff: 1s
"""


def body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


# -- a real webhook receiver ------------------------------------------------------------------

@dataclass
class WebhookReceiver:
    """An aiohttp server on its own loop and thread; answers `statuses` in order, then 200."""

    statuses: list[int] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((dict(request.headers), body))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="ok" if status < 300 else "fail")


@contextmanager
def webhook_receiver(statuses: list[int] | None = None) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(list(statuses or []))
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner_box: dict[str, Any] = {}

    async def start() -> None:
        app = web.Application()
        app.router.add_post("/hook", receiver.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        receiver.url = f"http://{host}:{port}/hook"
        runner_box["runner"] = runner

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield receiver
    finally:
        asyncio.run_coroutine_threadsafe(runner_box["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


# -- the CLI and the API as a user drives them ---------------------------------------------

def vigil(conf: Path, data: Path, *args: str, env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "collector.cli", *args, "-c", str(conf),
                           "--data-dir", str(data)], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **(env or {})}, timeout=60)


def post(base: str, path: str, body: dict[str, Any], token: str | None = None
         ) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(f"{base}/api/v1{path}", data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def next_code(totp: pyotp.TOTP, used: set[str]) -> str:
    """A code not used yet (waits for the next 30 s step when needed: the server refuses
    replays, and real time is what a real daemon checks against)."""
    while (code := totp.now()) in used:
        time.sleep(0.5)
    used.add(code)
    return code
