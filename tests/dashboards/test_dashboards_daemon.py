"""The real daemon (`vigil run` as a subprocess): FortiGate lines over TCP syslog go through the
shipped pipeline into the lake, detection's live coverage switches the firewall dashboard on for
that tenant only, and its panels over HTTP count that tenant's events."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from support.daemon import REPO, VigilProcess, basic_config, lake_count, wait_for, write_conf

from collector.config.loader import load_config
from core.telemetry import Telemetry
from soc.alerts.model import Actor
from soc.alerts.service import Alerting
from soc.auth.tokens import new_token
from soc.auth.totp import current_code


def fortigate(count: int) -> bytes:
    now = int(time.time())
    return b"".join(
        (f'<189>date=2026-01-01 time=00:00:00 devname="fw1" devid="FG100" logid="0000000013" '
         f'type="traffic" subtype="forward" level="notice" vd="root" eventtime={now - i} '
         f"srcip=198.51.100.{i % 4 + 1} srcport={40000 + i} dstip=10.0.0.5 "
         f'dstport={(22, 443)[i % 2]} proto=6 action="{("deny", "accept")[i % 2]}" policyid=1 '
         f'service="SSH" sentbyte=10 rcvdbyte=20\n').encode() for i in range(count))


def tokens(conf: Path, data: Path) -> dict[str, str]:
    """Users of demo and of acme with a session each, made in the store the daemon opens."""
    async def make() -> dict[str, str]:
        alerting = Alerting(load_config(conf), data, conf, Telemetry())
        await alerting.start()
        directory = alerting.directory
        out = {}
        for login, tenant in (("dana", "demo"), ("abel", "acme")):
            new = directory.add_user(login, login, f"{login}@example.com", "client_operator",
                                     [tenant], Actor("root", None))
            directory.activate(login, new.activation_token, "correct horse battery staple",
                               current_code(new.totp_secret, alerting.clock()))
            user = directory.get(login)
            assert user is not None
            out[login] = new_token("vgs")
            directory._issue(user, out[login], "session", None, directory.policy.session_ttl,
                             None)
        await alerting.stop()
        return out
    return asyncio.run(make())


def get(daemon: VigilProcess, path: str, token: str) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://{daemon.control}/api/v1{path}",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def firewall_of(daemon: VigilProcess, tenant: str, token: str) -> dict[str, Any]:
    status, listing = get(daemon, f"/dashboards?tenant={tenant}", token)
    assert status == 200, listing
    return next(i for i in listing["items"] if i["id"] == "firewall")


def test_firewall_logs_switch_the_firewall_dashboard_on(tmp_path: Path) -> None:
    conf, data = tmp_path / "conf.d", tmp_path / "data"
    config = basic_config(flush_seconds=0.2)
    config["tenants"]["acme"] = {"name": "Acme"}
    write_conf(conf, config)
    shutil.copy(REPO / "conf.d" / "31-fortinet.yaml", conf / "31-fortinet.yaml")
    shutil.copytree(REPO / "conf.d" / "enrich", conf / "enrich")
    users = tokens(conf, data)
    daemon = VigilProcess(conf, data).start()
    try:
        before = firewall_of(daemon, "demo", users["dana"])
        assert not before["active"] and before["reason"].startswith("waiting for a firewall")
        with socket.create_connection(daemon.source_address("syslog_tcp")) as sock:
            sock.sendall(fortigate(40))
        wait_for(lambda: lake_count(data) >= 40, message="40 firewall rows in the lake")
        wait_for(lambda: firewall_of(daemon, "demo", users["dana"])["active"],
                 message="the firewall dashboard switching on")
        assert not firewall_of(daemon, "acme", users["abel"])["active"]  # acme sent nothing
        status, shown = get(daemon, "/dashboards/firewall?tenant=demo&since=2d", users["dana"])
        assert status == 200, shown
        panels = {p["id"]: p for p in shown["results"]}
        assert panels["connections"]["rows"] == [[40]], panels["connections"]
        assert {r[0] for r in panels["top_destination_ports"]["rows"]} == {22, 443}
        denied = sum(r[1] for r in panels["traffic_over_time"]["rows"])
        assert denied == 20
        assert get(daemon, "/dashboards/firewall?tenant=demo", users["abel"]) == \
            (404, {"error": "tenant 'demo' not found"})
        assert daemon.stop() == 0
    finally:
        daemon.kill()
