"""End to end: SSH brute-force lines sent over TCP syslog land in the lake; an alert on them goes
into the alert store with the tenant's SLA due times and is notified to the SOC; an analyst
added with `vigil users add` activates, logs in with TOTP, acknowledges, notes and closes it as a
true positive with the `vigil alerts` CLI; `vigil sla report` and the audit log show it.

Faked: the detection stage is not committed yet, so the alert record (notes/alert-record.md)
is built from the lake rows of the sent lines and handed to the daemon's sinks as an ALERTS
batch, the way the worker hands detection's output to them. Everything else is real: the daemon
(in-process, on its own event loop), TCP syslog, the journal, the lake, aiosmtpd, the webhook
receiver, the CLI as subprocesses.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import urllib.parse
import urllib.request
import uuid
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
from support.daemon import lake_rows, wait_for

from collector.events import ALERTS, Batch
from collector.runtime import Daemon

PASSWORD = "analyst passphrase 2025"
LINES = [f"<38>Mar  3 09:00:{i:02d} web-1 sshd[4242]: Failed password for root from "
         f"203.0.113.7 port {50000 + i} ssh2" for i in range(6)]


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
        return int(self.code)

    @property
    def control(self) -> str:
        assert self.daemon.control is not None
        return f"http://{self.daemon.control.bound_address()}"

    def source_address(self) -> tuple[str, int]:
        address = self.daemon.sources["ssh"].health()["address"]
        host, _, port = address.rpartition(":")
        return host, int(port)


def alert_from_lake(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The alert detection would emit for these matches (the record contract)."""
    times = sorted(r["@timestamp"] for r in rows)
    group = '{"source.ip": "203.0.113.7"}'
    dedup = f"acme|ssh_brute_force|{group}"
    return {
        "@timestamp": times[-1], "vigil.tenant": "acme",
        "alert.id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{dedup}|{times[0].isoformat()}")),
        "alert.dedup_key": dedup, "alert.first_seen": times[0], "alert.last_seen": times[-1],
        "alert.count": len(rows), "alert.suppressed": len(rows) - 1,
        "alert.severity": "critical", "alert.dataset": "syslog", "alert.group_key": group,
        "alert.events": [orjson.dumps({"message": r["message"], "lake": {
            "dataset": "syslog", "tenant": "acme", "time": r["@timestamp"],
            "offset": r.get("vigil.offset")}}, default=str).decode() for r in rows],
        "rule.id": "ssh_brute_force", "rule.name": "SSH brute force",
        "rule.description": "Many failed SSH logins from one address",
        "rule.level": "critical", "rule.type": "correlation", "rule.references": [],
        "rule.falsepositives": [], "rule.tags": ["attack.credential_access", "attack.t1110"],
        "rule.runbook": None, "threat.tactic.name": ["credential-access"],
        "threat.technique.id": ["T1110"],
    }


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
              critical: {{ack: 15m, resolve: 4h}}
        sources:
          ssh:
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
        running = DaemonThread(conf, data).start()
        try:
            with socket.create_connection(running.source_address(), timeout=5) as sock:
                sock.sendall("".join(line + "\n" for line in LINES).encode())
            rows = wait_for(lambda: len(found := lake_rows(data)) >= 6 and found, 20,
                            message="six syslog events in the lake")
            alert = alert_from_lake(rows)
            alert_id = alert["alert.id"]

            async def inject() -> None:
                batch = Batch("acme", [alert], 0, 0, "alerts", kind=ALERTS)
                async with running.daemon.worker.lock:
                    for sink in running.daemon.sinks.values():
                        if ALERTS in sink.accepts:
                            sink.write(batch)
                    await running.daemon.worker.flush(force=True)

            before = datetime.now(UTC)
            running.run(inject())
            running.run(inject())  # a replay updates, never duplicates
            soc_events = wait_for(lambda: [orjson.loads(b) for _, b in soc.requests], 20,
                                  message="the SOC webhook")
            assert [e["event"] for e in soc_events] == ["new_alert"]
            stored = soc_events[0]["alert"]
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
            assert "[CRITICAL] New critical alert: SSH brute force" in \
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
                ("resolved", "true_positive", 6)
            assert len(detail["events"]) == 6 and "Failed password" in \
                detail["events"][0]["message"]

            report = vigil(conf, data, "sla", "report", "--tenant", "acme", "--json")
            assert report.returncode == 0, report.stderr
            critical = next(r for r in json.loads(report.stdout)["rows"]
                            if r["severity"] == "critical")
            assert (critical["alerts"], critical["acknowledged"], critical["resolved"]) == \
                (1, 1, 1)
            assert (critical["within_sla"], critical["within_sla_pct"],
                    critical["meets_target"]) == (1, 100.0, True)
            assert 0 < critical["mtta_seconds"] <= critical["mttr_seconds"] < 900

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
                                  tenant="acme", severity="critical") == 1
        finally:
            assert running.stop() == 0
