"""End to end: SSH brute-force lines sent over TCP syslog go through the shipped Linux auth
pipeline; the built-in brute-force correlation raises an alert, which goes into the alert store
with the tenant's SLA due times and is notified to the SOC; an analyst added with
`vigil users add` activates, logs in with TOTP, acknowledges, notes and closes it as a true
positive with the `vigil alerts` CLI; `vigil sla report` and the audit log show it.

Nothing is faked: the daemon (in-process, on its own event loop), TCP syslog, the journal, the
pipelines, detection, the lake, aiosmtpd, the webhook receiver, the CLI as subprocesses.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import threading
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyotp
from alerts.kit import (
    body_text,
    email_notifier_yaml,
    next_code,
    post,
    smtp_server,
    vigil,
    webhook_receiver,
    write_conf,
)
from support.daemon import REPO, lake_rows, wait_for

from collector.runtime import Daemon

PASSWORD = "analyst passphrase 2025"
LINES = [f"<38>Mar  3 09:00:{i:02d} web-1 sshd[4242]: Failed password for root from "
         f"203.0.113.7 port {50000 + i} ssh2" for i in range(12)]
BRUTE_FORCE = "SSH brute force from one source"


class DaemonThread:
    """The real Daemon on its own loop and thread, ticking like `Daemon.run`."""

    def __init__(self, conf: Path, data: Path) -> None:
        self.daemon = Daemon(conf, data_dir=data)
        self.loop = asyncio.new_event_loop()
        self.stop_flag = False
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.daemon.start())
        self.ready.set()
        self.loop.run_until_complete(self._ticks())
        self.code = self.loop.run_until_complete(self.daemon.shutdown())

    async def _ticks(self) -> None:
        while not self.stop_flag:
            await self.daemon.tick()
            await asyncio.sleep(0.1)

    def start(self) -> DaemonThread:
        self.thread.start()
        assert self.ready.wait(30)
        return self

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def stop(self) -> int:
        self.stop_flag = True
        self.thread.join(60)
        self.loop.close()
        return int(self.code)

    @property
    def control(self) -> str:
        assert self.daemon.control is not None
        return f"http://{self.daemon.control.bound_address()}"

    def source_address(self) -> tuple[str, int]:
        address = self.daemon.sources["syslog_tcp"].health()["address"]
        host, _, port = address.rpartition(":")
        return host, int(port)


def test_ssh_brute_force_to_triaged_alert_with_sla_and_audit(tmp_path: Path) -> None:
    conf, data = tmp_path / "conf.d", tmp_path / "data"
    with smtp_server(tmp_path / "tls") as smtp, webhook_receiver() as soc:
        write_conf(conf, f"""
        vigil:
          control: {{address: "127.0.0.1:0"}}
        tenants:
          acme:
            name: ACME Corp
            tier: managed_soc
            sla:
              high: {{ack: 15m, resolve: 4h}}
        sources:
          syslog_tcp:
            type: syslog_tcp
            address: 127.0.0.1:0
            tenant: acme
        sinks:
          lake:
            type: parquet_lake
            flush: {{max_rows: 100000, max_seconds: 0.2}}
        notifiers:
          soc_hook:
            type: webhook
            url: {soc.url}
            secret: e2e-secret
            audience: soc
        """)
        write_conf(conf, email_notifier_yaml(smtp), "60-notify.yaml")
        shutil.copy(REPO / "conf.d" / "30-linux-auth.yaml", conf / "30-linux-auth.yaml")
        shutil.copytree(REPO / "conf.d" / "enrich", conf / "enrich")
        running = DaemonThread(conf, data).start()
        try:
            before = datetime.now(UTC)
            with socket.create_connection(running.source_address(), timeout=5) as sock:
                sock.sendall("".join(line + "\n" for line in LINES).encode())
            soc_events = wait_for(lambda: [orjson.loads(b) for _, b in soc.requests], 20,
                                  message="the SOC webhook")
            assert [e["event"] for e in soc_events] == ["new_alert"]
            stored = soc_events[0]["alert"]
            alert_id = stored["id"]
            assert stored["rule"]["name"] == BRUTE_FORCE
            assert json.loads(stored["group_key"]) == {"source.address": "203.0.113.7"}
            rows = wait_for(lambda: len(found := lake_rows(
                data, "SELECT * FROM lake WHERE \"vigil.dataset\" = 'linux.auth'")) == 12
                and found, 20, message="the twelve events in the lake")
            assert {r["event.outcome"] for r in rows} == {"failure"}
            created = datetime.fromisoformat(stored["created_at"])
            assert before <= created <= datetime.now(UTC)
            assert datetime.fromisoformat(stored["sla"]["ack_due"]) - created == \
                timedelta(minutes=15)
            assert datetime.fromisoformat(stored["sla"]["resolve_due"]) - created == \
                timedelta(hours=4)

            # The analyst: added by the partner, enrolled by mail, activated, logged in.
            added = vigil(conf, data, "users", "add", "ana", "--email", "ana@soc.example",
                          "--role", "soc_l1", "--tenant", "acme")
            assert added.returncode == 0, added.stderr
            link = re.search(r"activate\?(\S+)", added.stdout)
            assert link
            activation = urllib.parse.parse_qs(link.group(1))["token"][0]
            # Two mails: the new alert to the SOC, the enrollment to the analyst.
            mails = {m["To"]: m for m in smtp.wait(2)}
            assert f"[HIGH] New high alert: {BRUTE_FORCE}" in \
                mails["soc@provider.example"]["Subject"]
            uri = re.search(r"(otpauth://\S+)", body_text(mails["ana@soc.example"]))
            assert uri
            totp = pyotp.TOTP(urllib.parse.parse_qs(urllib.parse.urlparse(
                uri.group(1)).query)["secret"][0])
            used: set[str] = set()
            base = running.control
            assert post(base, "/auth/activate", {"login": "ana", "token": activation,
                                                 "password": PASSWORD,
                                                 "code": next_code(totp, used)})[0] == 200
            status, session = post(base, "/auth/login", {"login": "ana", "password": PASSWORD,
                                                         "code": next_code(totp, used)})
            assert status == 200
            env = {"VIGIL_TOKEN": session["token"], "VIGIL_API": base}

            listed = vigil(conf, data, "alerts", "list", env=env)
            assert listed.returncode == 0 and alert_id in listed.stdout
            assert "1 of 1 alert(s)" in listed.stdout
            for args in (("ack", alert_id),
                         ("note", alert_id, "203.0.113.7 blocked at the edge"),
                         ("resolve", alert_id, "--resolution", "true_positive", "--note",
                          "confirmed brute force; no successful login")):
                done = vigil(conf, data, "alerts", *args, env=env)
                assert done.returncode == 0, done.stderr
            shown = vigil(conf, data, "alerts", "show", alert_id, "--json", env=env)
            detail = json.loads(shown.stdout)
            assert (detail["status"], detail["resolution"], detail["count"]) == \
                ("resolved", "true_positive", 1)
            # The correlation window's ten failures, with their place in the lake.
            assert len(detail["events"]) == 10
            assert {e["lake"]["dataset"] for e in detail["events"]} == {"linux.auth"}

            report = vigil(conf, data, "sla", "report", "--tenant", "acme", "--json")
            assert report.returncode == 0, report.stderr
            high = next(r for r in json.loads(report.stdout)["rows"] if r["severity"] == "high")
            assert (high["alerts"], high["acknowledged"], high["resolved"]) == (1, 1, 1)
            assert (high["within_sla"], high["within_sla_pct"], high["meets_target"]) == \
                (1, 100.0, True)
            assert 0 < high["mtta_seconds"] <= high["mttr_seconds"] < 900

            request = urllib.request.Request(f"{base}/api/v1/alerts/{alert_id}/audit",
                                             headers={"Authorization":
                                                      f"Bearer {session['token']}"})
            with urllib.request.urlopen(request, timeout=10) as response:
                trail = json.loads(response.read())["items"]
            assert [(r["action"], r["actor"]) for r in trail] == [
                ("created", "system"), ("acknowledge", "ana"), ("note", "ana"),
                ("resolve", "ana"), ("note", "ana")]
            assert trail[3]["after"]["resolution"] == "true_positive"
            metrics = running.daemon.telemetry
            assert metrics.sample("vigil_alerts_written_total", tenant="acme",
                                  result="inserted") == 1
            assert metrics.sample("vigil_alerts_time_to_acknowledge_seconds_count",
                                  tenant="acme", severity="high") == 1
        finally:
            assert running.stop() == 0
