"""Run the real `vigil` daemon as a subprocess on OS-chosen loopback ports.

Every listener is configured on port 0; the daemon logs the addresses it bound, and the
control listener's /readyz detail names each source's address. /readyz and /metrics are asked
of the operator listener when the configuration has one (`control.operator_address`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02,
             message: str = "condition") -> Any:
    """Poll `condition` until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := _poll(condition, deadline, timeout, message)):
        time.sleep(interval)
    return value


async def wait_until(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02,
                     message: str = "condition") -> Any:
    """`wait_for` on a running event loop: sleeps with asyncio, so the loop (a source, the
    journal's background rounds) makes progress between polls."""
    deadline = time.monotonic() + timeout
    while not (value := _poll(condition, deadline, timeout, message)):
        await asyncio.sleep(interval)
    return value


def _poll(condition: Callable[[], Any], deadline: float, timeout: float, message: str) -> Any:
    """The condition's value; raises once `deadline` has passed and it is still falsy."""
    value = condition()
    if not value and time.monotonic() > deadline:
        raise AssertionError(f"timed out after {timeout}s waiting for {message}")
    return value


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """Stop a helper server (an emulator, moto): SIGTERM, then SIGKILL if it outlives
    `timeout` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def write_conf(conf_dir: Path, sections: dict[str, Any], name: str = "10-test.yaml") -> Path:
    conf_dir.mkdir(parents=True, exist_ok=True)
    path = conf_dir / name
    path.write_text(yaml.safe_dump(sections, sort_keys=False))
    return path


def shipped_pipeline_conf(conf_dir: Path, pipeline_file: str, source_id: str,
                          source: dict[str, Any], sinks: dict[str, Any] | None = None) -> Path:
    """A conf.d with one shipped pipeline file of `conf.d/` (without its test cases, which name
    the example sources; its enrichment files linked), tenant `acme` with `source` as
    `source_id`, and a lake flushing every 0.2 s."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    shipped = yaml.safe_load((REPO / "conf.d" / pipeline_file).read_text())
    shipped.pop("tests", None)
    (conf_dir / pipeline_file).write_text(yaml.safe_dump(shipped, sort_keys=False))
    (conf_dir / "enrich").symlink_to(REPO / "conf.d" / "enrich")
    write_conf(conf_dir, {
        "vigil": {"control": {"address": "127.0.0.1:0"}},
        "tenants": {"acme": {"name": "ACME"}},
        "sources": {source_id: {"tenant": "acme", **source}},
        "sinks": {"lake": {"type": "parquet_lake", "flush": {"max_seconds": 0.2}},
                  **(sinks or {})},
    })
    return conf_dir


def basic_config(tenant: str = "demo", flush_seconds: float = 0.5, **source: Any) -> dict[str, Any]:
    """One TCP syslog source for `tenant`, a lake sink, everything on port 0."""
    return {
        "vigil": {"control": {"address": "127.0.0.1:0"}},
        "tenants": {tenant: {"name": tenant.title()}},
        "sources": {"syslog_tcp": {"type": "syslog_tcp", "address": "127.0.0.1:0",
                                   "tenant": tenant, **source}},
        "sinks": {"lake": {"type": "parquet_lake",
                           "flush": {"max_rows": 100000, "max_seconds": flush_seconds}}},
    }


class VigilProcess:
    """A daemon subprocess with its stderr captured and its bound addresses discovered."""

    def __init__(self, conf_dir: Path, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.conf_dir = conf_dir
        self.data_dir = data_dir
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_lines: list[str] = []
        self.control: str | None = None
        self.operator: str | None = None  # the operator listener, when configured
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 60.0, ready_path: str | None = "/readyz") -> VigilProcess:
        """Start and wait until `ready_path` answers 200 (/healthz where /readyz is refused;
        None: only for the control listener, as /readyz may well say not ready). A start is
        three interpreters by default (the main process and a worker per CPU), each importing
        the project and loading rules: on a loaded machine that takes tens of seconds."""
        self.log_lines = []
        self.control = None
        self.operator = None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "collector.cli", "run", "-c", str(self.conf_dir),
             "--data-dir", str(self.data_dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self.env, cwd=REPO)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        wait_for(lambda: self.control or self.proc.poll() is not None, timeout,
                 message="the control listener")
        if self.proc.poll() is not None:
            raise AssertionError("daemon exited at start:\n" + self.log())
        if ready_path is None:
            return self
        if ready_path == "/readyz":
            wait_for(lambda: self.readyz()[0] == 200, timeout, message="/readyz")
        else:
            wait_for(lambda: self.http(ready_path)[0] == 200, timeout, message=ready_path)
        return self

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            self.log_lines.append(line)
            for name in ("control", "operator"):
                if getattr(self, name) is None and f"{name} listener ready" in line:
                    match = re.search(r"address=(\S+)", line)
                    if match:
                        setattr(self, name, match.group(1))

    def log(self) -> str:
        return "\n".join(self.log_lines)

    def http(self, path: str, timeout: float = 5.0, address: str | None = None
             ) -> tuple[int, bytes]:
        try:
            url = f"http://{address or self.control}{path}"
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, b""

    def readyz(self) -> tuple[int, dict[str, Any]]:
        status, body = self.http("/readyz", address=self.operator)
        return status, (json.loads(body) if body else {})

    def source_address(self, source_id: str, timeout: float = 30.0) -> tuple[str, int]:
        """Where a source listens, once /readyz lists it: sources bind during start-up, and a
        daemon that waits (a full disk, a slow store) may answer /readyz before they have."""
        answers: list[tuple[int, dict[str, Any]]] = []

        def listed() -> str | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"the daemon exited with {self.proc.returncode}:\n"
                                     + self.log()[-3000:])
            answers[:] = [self.readyz()]
            source = (answers[0][1].get("sources") or {}).get(source_id) or {}
            return source.get("address") or None

        try:
            address = wait_for(listed, timeout, message=f"source {source_id} in /readyz")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; /readyz answered {answers}:\n"
                                 + self.log()[-3000:]) from None
        host, _, port = address.rpartition(":")
        return host, int(port)

    def metrics(self) -> str:
        return self.http("/metrics", address=self.operator)[1].decode()

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels`."""
        total = 0.0
        for line in self.metrics().splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            head, _, value = line.rpartition(" ")
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("daemon did not stop after SIGTERM:\n" + self.log()) from None
        if self._reader is not None:
            self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def lake_rows(data_dir: Path, query: str = "SELECT * FROM lake") -> list[dict[str, Any]]:
    """Run `query` over the whole lake (as view `lake`) with DuckDB; [] when it is empty."""
    import duckdb

    files = list((data_dir / "lake").glob("**/*.parquet"))
    if not files:
        return []
    con = duckdb.connect()
    glob = str(data_dir / "lake" / "**" / "*.parquet").replace("'", "''")
    con.execute(f"CREATE VIEW lake AS SELECT * FROM read_parquet('{glob}', "
                "hive_partitioning=true, union_by_name=true)")
    cursor = con.execute(query)
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def lake_count(data_dir: Path) -> int:
    """Events in the lake: the `alerts` dataset (alerts land there at their own flush, and old
    sample timestamps can raise the sender-clock health alert) is not counted."""
    rows = lake_rows(data_dir, "SELECT count(*) AS n FROM lake WHERE \"vigil.dataset\" IS NULL "
                     "OR \"vigil.dataset\" <> 'alerts'")
    return int(rows[0]["n"]) if rows else 0
