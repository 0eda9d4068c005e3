"""The console test kit: a real daemon (subprocess) with tenants acme and demo, a TCP syslog
source for acme through the shipped Linux auth pipeline, users of every kind made in its alert
store, and a signed-in browser-like HTTP client (cookies, CSRF tokens read from the pages)."""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyotp
import requests
import yaml
from alerts.kit import make_alert
from support.daemon import REPO, VigilProcess

from soc.alerts.db import Database
from soc.alerts.model import Actor
from soc.alerts.store import AlertStore
from soc.auth.config import AccessPolicy
from soc.auth.directory import UserDirectory

PASSWORD = "console passphrase 2026"
ROOT = Actor("root", None, "127.0.0.1")
USERS = {  # login: (role, tenants)
    "ana": ("soc_l1", ["acme", "demo"]),
    "acme-ciso": ("client_operator", ["acme"]),
    "acme-viewer": ("client_viewer", ["acme"]),
    "demo-ops": ("client_operator", ["demo"]),
    "root": ("platform_admin", []),
}
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


def conf_yaml(idle: str = "30m", tls: bool = False, outbox: bool = False) -> dict[str, Any]:
    control: dict[str, Any] = {"address": "127.0.0.1:0"}
    if tls:
        control["tls"] = {"self_signed": True}
    mail = {"notifiers": {"mail": {"type": "email", "transport": "outbox",
                                   "sender": "vigil@example.com"}}} if outbox else {}
    return mail | {
        "vigil": {"control": control},
        "tenants": {"acme": {"name": "ACME Corp", "tier": "managed_soc",
                             "sla": {"high": {"ack": "15m", "resolve": "4h"}}},
                    "demo": {"name": "Demo Inc", "tier": "siem_only"}},
        "sources": {"syslog_tcp": {"type": "syslog_tcp", "address": "127.0.0.1:0",
                                   "tenant": "acme"}},
        "sinks": {"lake": {"type": "parquet_lake",
                           "flush": {"max_rows": 100000, "max_seconds": 0.2}}},
        "access": {"default": {"session_idle_timeout": idle,
                               "login_attempts_per_minute": 1000}},
    }


@dataclass
class ConsoleDaemon:
    """The daemon, its store (opened beside it, as the CLI does) and the users' TOTP secrets."""

    process: VigilProcess
    store: AlertStore
    directory: UserDirectory
    secrets: dict[str, str] = field(default_factory=dict)
    last_step: dict[str, int] = field(default_factory=dict)
    made: int = 0
    scheme: str = "http"

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.process.control}"

    def code(self, login: str) -> str:
        """A code the server has not seen for this user (a step after the last one used;
        waits for the clock when the drift window is used up)."""
        totp = pyotp.TOTP(self.secrets[login])
        while True:
            now = totp.timecode(datetime.now(UTC))
            step = max(now - 1, self.last_step.get(login, -1) + 1)
            if step <= now + 1:
                self.last_step[login] = step
                return totp.generate_otp(step)
            time.sleep(0.5)

    def user(self, role: str, tenants: list[str]) -> str:
        """A new active user of its own (a test's logins never wait for another's codes)."""
        self.made += 1
        login = f"{role.replace('_', '-')}-{self.made}"
        self.secrets[login] = activate(self.directory, login, role, tenants, self.last_step)
        return login

    def add_alerts(self, tenant: str, n: int, **kwargs: Any) -> list[str]:
        alerts = [make_alert(tenant, group=f'{{"source.ip": "198.51.100.{i}"}}',
                             first_seen=datetime.now(UTC), **kwargs) for i in range(n)]
        self.store.upsert(alerts, tenant)
        return [a["alert.id"] for a in alerts]

    def audit(self, action: str) -> list[dict[str, Any]]:
        records, _ = self.store.audit(Actor("test", None))
        return [r for r in records if r["action"] == action]


def start_daemon(tmp: Path, idle: str = "30m", linux_auth: bool = False, tls: bool = False,
                 shipped: tuple[str, ...] = (), outbox: bool = False) -> ConsoleDaemon:
    """`shipped`: more conf.d files of the repository to run (e.g. `31-fortinet.yaml`);
    `outbox`: an email notifier writing to <data>/outbox (enrollment mails)."""
    conf, data = tmp / "conf.d", tmp / "data"
    conf.mkdir(parents=True)
    (conf / "10-test.yaml").write_text(yaml.safe_dump(conf_yaml(idle, tls, outbox)))
    files = (("30-linux-auth.yaml",) if linux_auth else ()) + shipped
    for name in files:
        shutil.copy(REPO / "conf.d" / name, conf / name)
    if files:
        shutil.copytree(REPO / "conf.d" / "enrich", conf / "enrich")
    data.mkdir()
    db = Database(data / "alerts.db")
    db.migrate()
    directory = UserDirectory(db, AccessPolicy(), known_tenants=lambda: {"acme", "demo"})
    daemon = ConsoleDaemon(VigilProcess(conf, data), AlertStore(db), directory)
    for login, (role, tenants) in USERS.items():
        daemon.secrets[login] = activate(directory, login, role, tenants, daemon.last_step)
    daemon.process.start(ready_path=None if tls else "/readyz")  # its probe speaks plain HTTP
    daemon.scheme = "https" if tls else "http"
    return daemon


def activate(directory: UserDirectory, login: str, role: str, tenants: list[str],
             last_step: dict[str, int]) -> str:
    """Add and activate a user (as its activation page would); returns its TOTP secret."""
    new = directory.add_user(login, login.title(), f"{login}@example.com", role, tenants, ROOT)
    totp = pyotp.TOTP(new.totp_secret)
    step = totp.timecode(datetime.now(UTC)) - 1
    directory.activate(login, new.activation_token, PASSWORD, totp.generate_otp(step))
    last_step[login] = step
    return new.totp_secret


class Browser:
    """An HTTP client that behaves like a browser on the console: cookies, forms, CSRF."""

    def __init__(self, daemon: ConsoleDaemon) -> None:
        self.daemon = daemon
        self.http = requests.Session()
        self.http.trust_env = False  # loopback only; REQUESTS_CA_BUNDLE would override verify
        if daemon.scheme == "https":  # trust the daemon's own self-signed certificate
            self.http.verify = str(daemon.process.data_dir / "tls" / "control.crt")
        self.csrf: str | None = None

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        response = self.http.get(self.daemon.base + path, allow_redirects=False, timeout=10,
                                 **kwargs)
        found = CSRF_RE.search(response.text)
        if found and path != "/login" and not path.startswith("/login?"):
            self.csrf = found.group(1)
        return response

    def post(self, path: str, data: dict[str, Any], csrf: bool = True) -> requests.Response:
        body = dict(data)
        if csrf and "csrf" not in body:
            body["csrf"] = self.csrf
        return self.http.post(self.daemon.base + path, data=body, allow_redirects=False,
                              timeout=10)

    def sign_in(self, login: str, code: str | None = None) -> requests.Response:
        form = self.get("/login")
        nonce = CSRF_RE.search(form.text)
        assert nonce, form.text
        response = self.post("/login", {"csrf": nonce.group(1), "login": login,
                                        "password": PASSWORD,
                                        "code": code or self.daemon.code(login),
                                        "next": "/alerts"})
        if response.status_code == 303:
            self.get("/alerts")  # the session's CSRF token
        return response


def signed_in(daemon: ConsoleDaemon, login: str) -> Browser:
    """A console session of `login` (an existing user), signed in."""
    browser = Browser(daemon)
    assert browser.sign_in(login).status_code == 303
    return browser
