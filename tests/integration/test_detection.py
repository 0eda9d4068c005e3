"""Detection in the real daemon with the shipped Linux auth pipeline and the built-in rules: an
SSH brute force over TCP syslog becomes one alert in the alert store and in the lake's `alerts`
dataset; `vigil coverage` and `vigil rules backtest` agree with what happened."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from support.daemon import REPO, VigilProcess, basic_config, lake_rows, wait_for, write_conf

from soc.alerts.db import Database
from soc.alerts.model import SYSTEM, AlertFilter
from soc.alerts.store import AlertStore

BRUTE_FORCE = "SSH brute force from one source"


def failures(count: int, ip: str) -> bytes:
    return b"".join(f"<38>Nov 23 10:00:{i:02d} web1 sshd[7]: Failed password for root from "
                    f"{ip} port 40000 ssh2\n".encode() for i in range(count))


def test_brute_force_over_syslog_becomes_one_alert(tmp_path: Path) -> None:
    conf = tmp_path / "conf.d"
    write_conf(conf, basic_config(flush_seconds=0.2))
    shutil.copy(REPO / "conf.d" / "30-linux-auth.yaml", conf / "30-linux-auth.yaml")
    shutil.copytree(REPO / "conf.d" / "enrich", conf / "enrich")
    data = tmp_path / "data"
    daemon = VigilProcess(conf, data).start()
    try:
        with socket.create_connection(daemon.source_address("syslog_tcp")) as sock:
            sock.sendall(failures(12, "203.0.113.9") + failures(3, "198.51.100.20"))
        wait_for(lambda: daemon.metric("vigil_alerts_created_total") >= 1
                 or daemon.metric("vigil_detection_matches_total", tenant="demo") >= 1,
                 message="a detection")
        assert daemon.readyz()[1]["detection"]["rules"] > 0
        # Rules that can alert: the three SSH correlations over sshd's two base rules and PAM's
        # two over its failures (which alert only through them); no geo-IP (documentation
        # addresses), no sudo lines yet.
        active_metric = daemon.metric("vigil_detection_active_rules", tenant="demo")
        assert active_metric == 5
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    store = AlertStore(Database(data / "alerts.db"))
    rows, total = store.search(SYSTEM, AlertFilter(tenant="demo"))
    assert total == 1
    (stored,) = rows
    assert stored["rule"]["name"] == BRUTE_FORCE and stored["severity"] == "high"
    assert json.loads(stored["group_key"]) == {"source.address": "203.0.113.9"}
    assert stored["threat"]["techniques"] == ["T1110.001"]
    assert stored["sla"]["ack_due"] and stored["status"] == "new"
    (lake_alert,) = lake_rows(data, "SELECT * FROM lake WHERE \"vigil.dataset\" = 'alerts'")
    assert lake_alert["rule.name"] == BRUTE_FORCE and lake_alert["tenant"] == "demo"
    assert json.loads(lake_alert["alert.group_key"]) == {"source.address": "203.0.113.9"}
    assert lake_alert["alert.value"] == 10 and lake_alert["threat.technique.id"] == ["T1110.001"]
    assert lake_alert["alert.first_seen"].isoformat().startswith("20")  # a timestamp column

    cli = [sys.executable, "-m", "collector.cli"]
    coverage = subprocess.run([*cli, "coverage", "-c", str(conf), "--data-dir", str(data),
                               "--tenant", "demo", "--json"], capture_output=True, text=True,
                              check=True)
    (report,) = json.loads(coverage.stdout)["tenants"]
    assert report["datasets"]["linux.auth"]["events"] == 15
    assert report["categories"]["authentication"]["present"] is True
    assert BRUTE_FORCE in {title for _, title, _ in report["active"]}
    assert report["active_rules"] == active_metric  # one number, metric and coverage

    backtest = subprocess.run([*cli, "rules", "backtest", "-c", str(conf), "--data-dir",
                               str(data), "--tenant", "demo", "--since", "3650d",
                               str(REPO / "rules" / "library")],
                              capture_output=True, text=True, check=True)
    summary = json.loads(backtest.stdout.splitlines()[-1])
    assert summary["events_scanned"] == {"linux.auth": 15}
    assert summary["alerts"] == {BRUTE_FORCE: 1}
