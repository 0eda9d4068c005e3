"""A device whose clock runs an hour ahead, through the real daemon: loghub's OpenSSH_2k.log over
TCP syslog with one failed login from another host stamped an hour after its receipt, mid-file.
The brute-force and spraying alerts equal the independent count of the log alone (they were
all lost when one watermark per tenant let that line make every later one late); the host is
flagged in the metric, by a data-source-health alert and in `vigil coverage`."""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.daemon import (
    REPO,
    SHARED_DATA,
    VigilProcess,
    basic_config,
    lake_rows,
    wait_for,
    write_conf,
)

from collector.detection.health import CLOCK_SKEW_RULE

LOG = SHARED_DATA / "loghub" / "OpenSSH" / "OpenSSH_2k.log"
pytestmark = pytest.mark.skipif(not LOG.exists(),
                                reason=f"{LOG} is absent (../shared/data is not beside the repo)")


def independent_count() -> object:
    """The plain-Python count of tests/rules/library/test_openssh_bruteforce.py."""
    path = REPO / "tests" / "rules" / "library" / "test_openssh_bruteforce.py"
    spec = importlib.util.spec_from_file_location("openssh_count", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_host_an_hour_ahead_changes_no_alert_of_the_others(tmp_path: Path) -> None:
    count = independent_count()
    events = count.failures()  # type: ignore[attr-defined]
    expected = {
        "SSH brute force from one source": count.fold(count.windows_fire(  # type: ignore
            events, timedelta(minutes=5), 10, distinct_users=False)),
        "SSH password spraying from one source": count.fold(count.windows_fire(  # type: ignore
            events, timedelta(minutes=10), 5, distinct_users=True)),
    }
    lines = LOG.read_bytes().splitlines()
    ahead = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    skewed = (f"<38>1 {ahead} db9 sshd 4242 - - Failed password for root from 192.0.2.200 "
              "port 50000 ssh2").encode()
    payload = b"\n".join([*lines[:1000], skewed, *lines[1000:]]) + b"\n"

    conf = tmp_path / "conf.d"
    write_conf(conf, basic_config(flush_seconds=0.2))
    shutil.copy(REPO / "conf.d" / "30-linux-auth.yaml", conf / "30-linux-auth.yaml")
    shutil.copytree(REPO / "conf.d" / "enrich", conf / "enrich")
    data = tmp_path / "data"
    daemon = VigilProcess(conf, data).start()
    try:
        with socket.create_connection(daemon.source_address("syslog_tcp")) as sock:
            sock.sendall(payload)
        wait_for(lambda: daemon.metric("vigil_detection_skewed_senders", tenant="demo") == 1,
                 timeout=30, message="db9 flagged")
        assert daemon.stop() == 0
    finally:
        daemon.kill()

    latest: dict[str, dict] = {}
    for row in lake_rows(data, "SELECT * FROM lake WHERE \"vigil.dataset\" = 'alerts'"):
        if row["alert.id"] not in latest or row["alert.count"] > latest[row["alert.id"]][
                "alert.count"]:
            latest[row["alert.id"]] = row
    found: dict[str, list[tuple[str, datetime, int]]] = defaultdict(list)
    health = []
    for alert in latest.values():
        if alert["rule.id"] == CLOCK_SKEW_RULE.id:
            health.append(json.loads(alert["alert.group_key"]))
            continue
        ip = json.loads(alert["alert.group_key"])["source.address"]
        first = alert["alert.first_seen"].astimezone(UTC).replace(year=2025)
        found[alert["rule.name"]].append((ip, first, alert["alert.count"]))
    for title, alerts in expected.items():
        assert sorted(found[title]) == alerts, title
    assert health == [{"host.hostname": "db9"}]

    coverage = subprocess.run([sys.executable, "-m", "collector.cli", "coverage", "-c",
                               str(conf), "--data-dir", str(data), "--tenant", "demo"],
                              capture_output=True, text=True, check=True)
    assert "sender clocks off: db9 (" in coverage.stdout
    assert "s ahead of receive time)" in coverage.stdout
