"""SIGHUP in the cluster roles (issue 19): each role reloads what it runs. A worker swaps its
pipelines, rules (keeping correlation state), sinks and alerting, and binds none of the conf.d's
sources; a control process reloads notifications, tenants and its alert store, and neither
binds sources nor starts pipelines' sinks; a collector reloads sources and routing. A bad
conf.d keeps the running configuration. Settings that need a restart are logged and kept.

One real `nats-server -js` and a collector, a worker and a control process on loopback (started
once for the module); the lake is each worker's local Parquet lake.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alerts.kit import WebhookReceiver, webhook_receiver
from support.cluster import kv_value
from support.crash import TOKENS
from support.daemon import REPO, VigilProcess, lake_rows, wait_for, write_conf
from support.nats import NatsServer, nats_server_binary

BRUTE_FORCE = "SSH brute force from one source"
MARKER_RULE_ID = "7d2f3c1e-5b8a-4f0e-9c61-2a4b8e0d9f10"
MARKER_RULE = f"""title: Reload test marker login
id: {MARKER_RULE_ID}
status: test
logsource:
  product: linux
  service: sshd
detection:
  selection:
    user.name: reloadmarker
  condition: selection
level: high
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def sections(role: str, name: str, nats_url: str, mark: str = "before") -> dict[str, Any]:
    """The same sections in every role (only `vigil.role` and the node id differ): a TCP
    syslog and an HTTP source, a pipeline that marks `app` lines, a local lake."""
    return {
        "vigil": {"role": role, "control": {"address": "127.0.0.1:0"},
                  "detection": {"state_interval": "1s"},
                  "cluster": {"servers": [nats_url], "node_id": name, "lease_seconds": 3}},
        "tenants": {"demo": {"name": "Demo", "tier": "managed_soc",
                             "sla": {"high": {"ack": "15m", "resolve": "4h"}}}},
        "sources": {
            "syslog_tcp": {"type": "syslog_tcp", "address": "127.0.0.1:0", "tenant": "demo"},
            "http": {"type": "http", "address": "127.0.0.1:0", "dataset": "json", "tokens": {
                "demo": {"tenant": "demo",
                         "sha256": hashlib.sha256(TOKENS["demo"].encode()).hexdigest()}}},
        },
        "pipelines": {"mark": {"dataset": "app.marked",
                               "match": {"field": "log.syslog.appname", "equals": "app"},
                               "steps": [{"type": "set", "fields": {"labels.mark": mark}}]}},
        "sinks": {"lake": {"type": "parquet_lake",
                           "flush": {"max_rows": 100000, "max_seconds": 0.2}}},
    }


def conf_dir(tmp: Path, name: str, config: dict[str, Any]) -> Path:
    conf = tmp / f"conf-{name}"
    write_conf(conf, config)
    if not (conf / "30-linux-auth.yaml").exists():
        shutil.copy(REPO / "conf.d" / "30-linux-auth.yaml", conf / "30-linux-auth.yaml")
        shutil.copytree(REPO / "conf.d" / "enrich", conf / "enrich")
    return conf


@dataclass
class Rig:
    nats: NatsServer
    collector: VigilProcess
    worker: VigilProcess
    control: VigilProcess
    hook: WebhookReceiver


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    nats_server_binary()
    tmp = tmp_path_factory.mktemp("cluster-reload")
    nats = NatsServer(tmp / "nats")
    processes = {name: VigilProcess(conf_dir(tmp, name, sections(role, name, nats.url)),
                                    tmp / f"data-{name}")
                 for name, role in (("collector0", "collector"), ("worker0", "worker"),
                                    ("control0", "control"))}
    with webhook_receiver() as hook:
        try:
            for process in processes.values():
                process.start(timeout=120)
            rig = Rig(nats, processes["collector0"], processes["worker0"],
                      processes["control0"], hook)
            wait_for(lambda: "demo.0" in shards(rig.worker), timeout=30,
                     message="the worker owning demo's shard")
            yield rig
        finally:
            for process in processes.values():
                process.kill()
            nats.stop()


def shards(worker: VigilProcess) -> dict[str, Any]:
    found: dict[str, Any] = (worker.readyz()[1].get("cluster") or {}).get("shards") or {}
    return found


def reloads(process: VigilProcess, result: str) -> float:
    return process.metric("vigil_config_reloads_total", result=result)


def sighup(process: VigilProcess, result: str = "success") -> None:
    before = reloads(process, result)
    process.signal(signal.SIGHUP)
    try:
        wait_for(lambda: reloads(process, result) > before, timeout=30,
                 message=f"a reload ({result})")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{process.log()[-4000:]}") from None


def send(collector: VigilProcess, lines: list[str]) -> None:
    with socket.create_connection(collector.source_address("syslog_tcp")) as sock:
        sock.sendall("".join(f"{line}\n" for line in lines).encode())


def stamp() -> str:
    return datetime.now(UTC).strftime("%b %d %H:%M:%S")


def ssh_failures(ip: str, count: int, user: str = "root") -> list[str]:
    """Stamped now: a correlation window on event time stays open across the reload."""
    return [f"<38>{stamp()} web1 sshd[7]: Failed password for {user} from {ip} port 40000 ssh2"
            for _ in range(count)]


def marked(worker: VigilProcess, text: str) -> list[str]:
    rows = lake_rows(worker.data_dir, "SELECT message, \"labels.mark\" AS mark FROM lake "
                                      "WHERE \"vigil.dataset\" = 'app.marked'")
    return [r["mark"] for r in rows if r["message"] == text]


def stored_alerts(control: VigilProcess) -> list[dict[str, Any]]:
    from soc.alerts.db import Database
    from soc.alerts.model import SYSTEM, AlertFilter
    from soc.alerts.store import AlertStore

    path = control.data_dir / "alerts.db"
    if not path.exists():
        return []
    rows, _ = AlertStore(Database(path)).search(SYSTEM, AlertFilter(), limit=1000)
    return list(rows)


def alert_for(control: VigilProcess, rule: str, ip: str | None = None) -> bool:
    return any(a["rule"]["name"] == rule and (ip is None or ip in a["group_key"])
               for a in stored_alerts(control))


def test_worker_reload_applies_pipelines_and_rules_without_binding_sources(rig: Rig) -> None:
    """A changed pipeline and a new rule apply to events published after the SIGHUP; a
    correlation half counted before it completes after it (detection's state adopted) and
    checkpoints go on; the worker binds none of the conf.d's sources (one on a fixed port)
    and keeps its shard."""
    worker, collector = rig.worker, rig.collector
    send(collector, [f"<13>{stamp()} h app: before reload"])
    wait_for(lambda: marked(worker, "before reload") == ["before"], timeout=20,
             message="the first pipeline's mark")
    ip = "192.0.2.41"
    send(collector, ssh_failures(ip, 6))
    wait_for(lambda: ip.encode() in (kv_value(rig.nats.url, "vigil_state", "detection.demo")
                                     or b""), timeout=20, message="the checkpoint")

    config = sections("worker", "worker0", rig.nats.url, mark="after")
    fixed = free_port()
    config["sources"]["extra"] = {"type": "syslog_tcp", "address": f"127.0.0.1:{fixed}",
                                  "tenant": "demo"}
    config["rules"] = {"reload": {"path": "rules"}}
    config["tenants"]["demo"]["rules"] = {"enable": [MARKER_RULE_ID]}
    (worker.conf_dir / "rules").mkdir(exist_ok=True)
    (worker.conf_dir / "rules" / "marker.yml").write_text(MARKER_RULE)
    conf_dir(worker.conf_dir.parent, "worker0", config)
    sighup(worker)

    send(collector, [f"<13>{stamp()} h app: after reload"])
    wait_for(lambda: marked(worker, "after reload") == ["after"], timeout=20,
             message="the changed pipeline's mark\n" + worker.log()[-3000:])
    assert marked(worker, "before reload") == ["before"]
    send(collector, ssh_failures(ip, 6))  # 12 in the window: the brute force fires
    wait_for(lambda: alert_for(rig.control, BRUTE_FORCE, ip), timeout=30,
             message="the brute force spanning the reload\n" + worker.log()[-3000:])
    send(collector, ssh_failures("198.51.100.7", 1, user="reloadmarker"))
    wait_for(lambda: alert_for(rig.control, "Reload test marker login"), timeout=30,
             message="the new rule's alert\n" + worker.log()[-3000:])
    later = "192.0.2.42"
    send(collector, ssh_failures(later, 2))
    wait_for(lambda: later.encode() in (kv_value(rig.nats.url, "vigil_state",
                                                 "detection.demo") or b""),
             timeout=20, message="a checkpoint by the reloaded detection")

    status, ready = worker.readyz()
    assert status == 200, ready
    assert "demo.0" in ready["cluster"]["shards"]
    assert ready["sources"] == {} and ready["not_running"] == []
    assert refused(fixed), "the worker bound a source's address"
    assert worker.proc is not None and worker.proc.poll() is None


def test_control_reload_applies_notifications_and_runs_no_sources(rig: Rig) -> None:
    """A webhook added on SIGHUP gets the next alert; the control process binds no source
    and builds no lake sink."""
    control, collector = rig.control, rig.collector
    config = sections("control", "control0", rig.nats.url)
    fixed = free_port()
    config["sources"]["extra"] = {"type": "syslog_tcp", "address": f"127.0.0.1:{fixed}",
                                  "tenant": "demo"}
    config["notifiers"] = {"soc_hook": {"type": "webhook", "url": rig.hook.url,
                                        "secret": "reload-secret", "audience": "soc"}}
    conf_dir(control.conf_dir.parent, "control0", config)
    sighup(control)
    ip = "203.0.113.51"
    send(collector, ssh_failures(ip, 12))
    wait_for(lambda: any(ip in str(body) for _, body in rig.hook.requests), timeout=30,
             message="the webhook added by the reload\n" + control.log()[-3000:])
    status, ready = control.readyz()
    assert status == 200, ready
    assert ready["sources"] == {}
    assert set(ready["sinks"]) == {"_alert_store"}, ready["sinks"]
    assert refused(fixed), "the control process bound a source's address"


def test_collector_reload_applies_sources_and_keeps_restart_only_settings(rig: Rig) -> None:
    """A new source and a new journal bound apply; `vigil.cluster.*` is logged and kept."""
    collector, worker = rig.collector, rig.worker
    config = sections("collector", "collector0", rig.nats.url)
    config["sources"]["second"] = {"type": "syslog_tcp", "address": "127.0.0.1:0",
                                   "tenant": "demo"}
    config["vigil"]["queue"] = {"type": "journal", "max_events": 123_456}
    config["vigil"]["cluster"]["lease_seconds"] = 9
    conf_dir(collector.conf_dir.parent, "collector0", config)
    sighup(collector)
    with socket.create_connection(collector.source_address("second")) as sock:
        sock.sendall(f"<13>{stamp()} h app: via second\n".encode())
    wait_for(lambda: marked(worker, "via second") != [], timeout=20,
             message="an event through the new source")
    assert collector.readyz()[1]["queue"]["capacity_events"] == 123_456
    assert "vigil.cluster changes only at restart" in collector.log()


def test_bad_conf_on_sighup_keeps_the_worker_running(rig: Rig) -> None:
    worker, collector = rig.worker, rig.collector
    broken = worker.conf_dir / "20-broken.yaml"
    broken.write_text("pipelines:\n  oops:\n    dataset: x\n    steps: [{type: nosuchstep}]\n")
    try:
        sighup(worker, result="failure")
        assert "reload rejected; the running configuration is kept" in worker.log()
        send(collector, [f"<13>{stamp()} h app: after a bad reload"])
        wait_for(lambda: marked(worker, "after a bad reload") != [], timeout=20,
                 message="an event after the rejected reload")
        status, ready = worker.readyz()
        assert status == 200 and "demo.0" in ready["cluster"]["shards"], ready
        assert worker.proc is not None and worker.proc.poll() is None
    finally:
        broken.unlink()
