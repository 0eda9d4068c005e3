"""Worker processes (`vigil.workers: 2`): a worker killed under load is restarted and replays
its partitions with nothing lost or duplicated; /metrics counts what the workers processed;
SIGHUP reaches the workers (a pipeline change takes effect); SIGTERM drains every process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from support.crash import HttpLoad, TcpLoad, crash_config, duplicated_alerts, halt, lake_ids
from support.daemon import VigilProcess, lake_count, lake_rows, wait_for, write_conf


def workers(daemon: VigilProcess) -> list[dict[str, Any]]:
    status, ready = daemon.readyz()
    assert "workers" in ready, f"/readyz {status}: {ready}"
    found: list[dict[str, Any]] = ready["workers"]
    return found


def owner_of(daemon: VigilProcess, tenant: str) -> dict[str, Any]:
    (worker,) = [w for w in workers(daemon) if tenant in w["partitions"]]
    return worker


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too (its parent has not reaped it yet).
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


def send_syslog(daemon: VigilProcess, lines: list[str], source: str = "syslog_tcp") -> None:
    with socket.create_connection(daemon.source_address(source)) as sock:
        sock.sendall("".join(f"{line}\n" for line in lines).encode())


def two_worker_conf(conf: Path, pipeline_value: str = "before") -> Path:
    """Tenants demo and acme, a TCP syslog listener each, a pipeline that marks its events."""
    write_conf(conf, {
        "vigil": {"control": {"address": "127.0.0.1:0"}, "workers": 2},
        "tenants": {"demo": {"name": "Demo"}, "acme": {"name": "Acme"}},
        "sources": {
            "syslog_tcp": {"type": "syslog_tcp", "address": "127.0.0.1:0", "tenant": "demo"},
            "syslog_acme": {"type": "syslog_tcp", "address": "127.0.0.1:0", "tenant": "acme"},
        },
        "pipelines": {"mark": {"dataset": "app.marked",
                               "match": {"field": "log.syslog.appname", "equals": "app"},
                               "steps": [{"type": "set",
                                          "fields": {"labels.mark": pipeline_value}}]}},
        "sinks": {"lake": {"type": "parquet_lake", "flush": {"max_seconds": 0.2}}},
    })
    return conf


@pytest.mark.timeout(600)
def test_a_killed_worker_is_restarted_and_replays_with_nothing_lost_or_doubled(
        tmp_path: Path) -> None:
    conf = crash_config(tmp_path, workers=2)
    data = tmp_path / "data"
    daemon = VigilProcess(conf, data).start(timeout=60)
    http = [HttpLoad("demo"), HttpLoad("acme")]
    tcp = TcpLoad()
    loads: list[Any] = [*http, tcp]
    try:
        for load in http:
            load.address = "{}:{}".format(*daemon.source_address("http"))
        tcp.address = daemon.source_address("syslog_tcp")
        for load in loads:
            load.start()
        assert {w["worker"] for w in workers(daemon)} == {"w0", "w1"}
        demo, acme = owner_of(daemon, "demo"), owner_of(daemon, "acme")
        assert demo["worker"] != acme["worker"]  # one tenant per worker
        for victim in (demo, acme):
            wait_for(lambda: lake_count(data) > 0, timeout=30, message="rows in the lake")
            time.sleep(1.0)  # the kill lands under load, with buffers open in the sinks
            os.kill(victim["pid"], signal.SIGKILL)
            wait_for(lambda v=victim: not alive(v["pid"]), timeout=10, message="the kill")
            wait_for(lambda v=victim: any(
                w["worker"] == v["worker"] and w["restarts"] == 1 and w["alive"]
                and w["ready"] and w["pid"] != v["pid"] for w in workers(daemon)),
                timeout=60, message=f"worker {victim['worker']} restarted")
            assert daemon.proc is not None and daemon.proc.poll() is None
        time.sleep(1.0)
    finally:
        halt(loads)
    assert daemon.stop(timeout=60) == 0, daemon.log()
    assert "worker process died; restarting it" in daemon.log()
    found = lake_ids(data)
    acknowledged = [i for load in http for i in load.acknowledged]
    assert len(acknowledged) == len(set(acknowledged)) > 0
    lost = [i for i in acknowledged if found[i] == 0]
    twice = {i: n for i, n in found.items() if n > 1}
    print("worker kill figures:", json.dumps({
        "acknowledged": len(acknowledged), "events_in_lake": sum(found.values()),
        "lost": len(lost), "duplicated": len(twice)}))
    assert lost == [], f"{len(lost)} acknowledged events lost, e.g. {lost[:5]}"
    assert twice == {}, f"{len(twice)} events in the lake twice, e.g. {list(twice)[:5]}"
    _, store_dups, lake_dups = duplicated_alerts(data)
    assert store_dups == [] and lake_dups == []


@pytest.mark.timeout(300)
def test_metrics_count_what_the_workers_processed_across_a_restart(tmp_path: Path) -> None:
    conf = two_worker_conf(tmp_path / "conf.d")
    data = tmp_path / "data"
    daemon = VigilProcess(conf, data).start(timeout=60)
    try:
        send_syslog(daemon, [f"<13>Nov 23 10:00:00 h app: demo {i}" for i in range(300)])
        send_syslog(daemon, [f"<13>Nov 23 10:00:00 h app: acme {i}" for i in range(200)],
                    "syslog_acme")
        wait_for(lambda: daemon.metric("vigil_lake_rows_written_total") == 500, timeout=30,
                 message="lake rows counted on /metrics")
        assert daemon.metric("vigil_lake_rows_written_total", tenant="demo") == 300
        assert daemon.metric("vigil_lake_rows_written_total", tenant="acme") == 200
        assert daemon.metric("vigil_component_received_events_total",
                             component_id="mark", tenant="acme") == 200
        assert daemon.metric("vigil_pipeline_step_events_total", pipeline="mark",
                             result="sent") == 500
        # The main process's own metrics are there too, once each.
        assert daemon.metric("vigil_component_received_events_total",
                             component_id="syslog_tcp") == 300
        assert daemon.metrics().count("vigil_build_info{") == 1
        # A worker that dies takes none of its counts with it.
        victim = owner_of(daemon, "demo")
        os.kill(victim["pid"], signal.SIGKILL)
        wait_for(lambda: owner_of(daemon, "demo")["restarts"] == 1
                 and owner_of(daemon, "demo")["ready"], timeout=60, message="the restart")
        assert daemon.metric("vigil_lake_rows_written_total", tenant="demo") == 300
        send_syslog(daemon, [f"<13>Nov 23 10:00:00 h app: more {i}" for i in range(10)])
        wait_for(lambda: daemon.metric("vigil_lake_rows_written_total", tenant="demo") == 310,
                 timeout=30, message="counts after the restart")
        assert daemon.stop() == 0
    finally:
        daemon.kill()


@pytest.mark.timeout(300)
def test_sighup_reaches_the_workers(tmp_path: Path) -> None:
    conf = two_worker_conf(tmp_path / "conf.d", "before")
    data = tmp_path / "data"
    daemon = VigilProcess(conf, data).start(timeout=60)
    try:
        send_syslog(daemon, ["<13>Nov 23 10:00:00 h app: one"])
        send_syslog(daemon, ["<13>Nov 23 10:00:00 h app: one"], "syslog_acme")
        wait_for(lambda: lake_count(data) == 2, timeout=30, message="the first events")
        two_worker_conf(conf, "after")
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: daemon.metric("vigil_config_reloads_total", result="success") == 1,
                 timeout=60, message="the reload")
        assert daemon.log().count("worker configuration reloaded") == 2
        send_syslog(daemon, ["<13>Nov 23 10:00:00 h app: two"])
        send_syslog(daemon, ["<13>Nov 23 10:00:00 h app: two"], "syslog_acme")
        wait_for(lambda: lake_count(data) == 4, timeout=30, message="the second events")
        rows = lake_rows(data, 'SELECT message, "labels.mark" AS mark, "vigil.tenant" AS t '
                               "FROM lake ORDER BY message, t")
        assert [(r["message"], r["mark"], r["t"]) for r in rows] == [
            ("one", "before", "acme"), ("one", "before", "demo"),
            ("two", "after", "acme"), ("two", "after", "demo")]
        assert daemon.stop() == 0
    finally:
        daemon.kill()


@pytest.mark.timeout(300)
def test_sigterm_drains_every_process(tmp_path: Path) -> None:
    conf = two_worker_conf(tmp_path / "conf.d")
    data = tmp_path / "data"
    daemon = VigilProcess(conf, data).start(timeout=60)
    try:
        pids = [w["pid"] for w in workers(daemon)]
        send_syslog(daemon, [f"<13>Nov 23 10:00:00 h app: demo {i}" for i in range(2000)])
        send_syslog(daemon, [f"<13>Nov 23 10:00:00 h app: acme {i}" for i in range(1000)],
                    "syslog_acme")
        assert daemon.stop(timeout=60) == 0, daemon.log()
    finally:
        daemon.kill()
    assert not any(alive(pid) for pid in pids)
    assert lake_count(data) == 3000
    checkpoint = json.loads((data / "journal" / "checkpoints.json").read_text())
    positions = {name: (p["acked"], p["next_offset"])
                 for name, p in checkpoint["partitions"].items()}
    assert positions["demo"] == (1999, 2000) and positions["acme"] == (999, 1000)
