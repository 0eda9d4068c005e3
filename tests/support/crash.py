"""Crash-test harness: a real daemon under HTTP and TCP syslog load, killed with SIGKILL at
random points and restarted; the clients record what the daemon acknowledged, and the checks
read the lake with DuckDB and the alert store with its own code.

HTTP acknowledges (200) only once events are durable in the journal, so every acknowledged
event must be in the lake exactly once. TCP syslog has no acknowledgement: its events must be
there at most once. An HTTP client never resends an id after a failed request (a resend would
be the client's duplicate, not the daemon's), so ids it could not get acknowledged may be
absent or present, once.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.daemon import REPO, VigilProcess, lake_rows, write_conf

TOKENS = {"demo": "crash-token-demo", "acme": "crash-token-acme"}


def crash_config(tmp_path: Path, workers: int | None = None) -> Path:
    """Two tenants, HTTP with a token each, TCP syslog, the Linux auth pipeline and the
    built-in rules; short flushes so commits and kills interleave. `workers`: the process
    model (1: everything in one process; 2: two worker processes, a tenant each)."""
    conf = tmp_path / "conf.d"
    workers_setting = {"workers": workers} if workers is not None else {}
    write_conf(conf, {
        "vigil": {"control": {"address": "127.0.0.1:0"},
                  "detection": {"state_interval": "1s"}, **workers_setting},
        "tenants": {tenant: {"name": tenant.title()} for tenant in TOKENS},
        "sources": {
            "syslog_tcp": {"type": "syslog_tcp", "address": "127.0.0.1:0", "tenant": "demo"},
            "http": {"type": "http", "address": "127.0.0.1:0", "dataset": "json", "tokens": {
                tenant: {"tenant": tenant, "sha256": hashlib.sha256(token.encode()).hexdigest()}
                for tenant, token in TOKENS.items()}},
        },
        "sinks": {"lake": {"type": "parquet_lake",
                           "flush": {"max_rows": 2000, "max_seconds": 0.3}}},
    })
    shutil.copy(REPO / "conf.d" / "30-linux-auth.yaml", conf / "30-linux-auth.yaml")
    shutil.copytree(REPO / "conf.d" / "enrich", conf / "enrich")
    return conf


class _Load(threading.Thread):
    """A sender that waits while the daemon is down (`address` None) and stops on `halt`."""

    address: Any = None

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.next_id = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            if self.address is None:
                time.sleep(0.01)
                continue
            self.send()

    def send(self) -> None:
        raise NotImplementedError


def halt(loads: Iterable[_Load]) -> None:
    """Stop every load, then wait for each (all are told first, so they stop together)."""
    loads = list(loads)
    for load in loads:
        load.halt.set()
    for load in loads:
        if load.is_alive():
            load.join(10)


class HttpLoad(_Load):
    """Posts NDJSON batches with fresh ids; records the ids of every 200."""

    def __init__(self, tenant: str, batch: int = 20, token: str | None = None) -> None:
        super().__init__()
        self.tenant = tenant
        self.token = token or TOKENS[tenant]
        self.batch = batch
        self.address: str | None = None
        self.acknowledged: list[str] = []
        self.failed_requests = 0

    def send(self) -> None:
        ids = [f"{self.tenant}-h{self.next_id + i}" for i in range(self.batch)]
        self.next_id += self.batch
        body = "\n".join(json.dumps({"id": i, "message": f"http {i}"}) for i in ids).encode()
        request = urllib.request.Request(
            f"http://{self.address}/v1/logs", data=body, method="POST",
            headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    self.acknowledged.extend(ids)
                else:
                    self.failed_requests += 1
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            self.failed_requests += 1
            time.sleep(0.02)


class TcpLoad(_Load):
    """Sends syslog lines with unique ids and SSH failure bursts from unique addresses."""

    def __init__(self) -> None:
        super().__init__()
        self.address: tuple[str, int] | None = None
        self.bursts = 0

    def send(self) -> None:
        assert self.address is not None
        try:
            with socket.create_connection(self.address, timeout=5) as sock:
                while not self.halt.is_set() and self.address is not None:
                    sock.sendall(self._chunk())
                    time.sleep(0.005)  # ~10k lines/s: the HTTP clients get their share
        except OSError:
            time.sleep(0.02)

    def _chunk(self) -> bytes:
        lines = [f"<13>Nov 23 10:00:00 h load: t{self.next_id + i}\n" for i in range(50)]
        self.next_id += 50
        if self.next_id % 1000 == 0:  # a brute force from a fresh address every 1,000 lines
            self.bursts += 1
            ip = f"10.{self.bursts // 250}.{self.bursts % 250}.9"
            lines += [f"<38>Nov 23 10:01:{s:02d} web1 sshd[7]: Failed password for root from "
                      f"{ip} port 40000 ssh2\n" for s in range(10)]
        return "".join(lines).encode()


@dataclass
class CrashRun:
    kills: int = 0
    http: list[HttpLoad] = field(default_factory=list)
    tcp: TcpLoad | None = None

    @property
    def acknowledged(self) -> list[str]:
        return [i for load in self.http for i in load.acknowledged]


def run_with_kills(tmp_path: Path, kills: int, seed: int = 7, workers: int | None = None
                   ) -> tuple[CrashRun, Path]:
    """Start, load, SIGKILL the main process at random points `kills` times, restart; end
    with a clean stop."""
    rng = random.Random(seed)
    conf = crash_config(tmp_path, workers)
    data = tmp_path / "data"
    run = CrashRun(http=[HttpLoad("demo"), HttpLoad("acme")], tcp=TcpLoad())
    loads: list[Any] = [*run.http, run.tcp]
    for load in loads:
        load.start()
    daemon = VigilProcess(conf, data)
    try:
        for round_number in range(kills + 1):
            daemon.start()
            for load in run.http:
                load.address = "{}:{}".format(*daemon.source_address("http"))
            assert run.tcp is not None
            run.tcp.address = daemon.source_address("syslog_tcp")
            if round_number == kills:
                break
            time.sleep(rng.uniform(0.3, 1.5))  # load runs; the kill lands anywhere
            daemon.kill()
            run.kills += 1
            for load in loads:
                load.address = None
        time.sleep(0.5)
    finally:
        halt(loads)
    assert daemon.stop() == 0, daemon.log()
    return run, data


def lake_ids(data: Path) -> Counter[str]:
    """How often each id is in the lake (HTTP events by `id`, TCP lines by their message)."""
    rows = lake_rows(data, "SELECT id, message FROM lake WHERE \"vigil.dataset\" <> 'alerts'")
    found: Counter[str] = Counter()
    for row in rows:
        if row.get("id"):
            found[row["id"]] += 1
        elif row.get("message", "").startswith("t") and row["message"][1:].isdigit():
            found[row["message"]] += 1
    return found


def duplicated_alerts(data: Path) -> tuple[int, list[Any], list[Any]]:
    """(alerts in the store, store alerts sharing a rule and group key, lake alert rows
    written twice)."""
    from soc.alerts.db import Database
    from soc.alerts.model import SYSTEM, AlertFilter
    from soc.alerts.store import AlertStore

    store = AlertStore(Database(data / "alerts.db"))
    rows, _ = store.search(SYSTEM, AlertFilter(), limit=10_000)
    keys = Counter((a["tenant"], a["rule"]["id"], a["group_key"]) for a in rows)
    lake = lake_rows(data, 'SELECT "alert.id" AS id, "alert.count" AS n FROM lake '
                           "WHERE \"vigil.dataset\" = 'alerts'")
    states = Counter((r["id"], r["n"]) for r in lake)
    return (len(rows), [k for k, n in keys.items() if n > 1],
            [s for s, n in states.items() if n > 1])

