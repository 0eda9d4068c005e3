"""A running daemon with two tenants (`demo`, `acme`) fed over every JSON ingest path, with the
shipped pipelines: the rig of the poison and hostile-input tests.

Each tenant has its own HTTP token (`/v1/logs`, HEC), raw TCP JSON listener and syslog TCP
listener, so every event's sender tenant is known and can be checked against where it landed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import yaml

from support.daemon import REPO, VigilProcess, write_conf

TENANTS = ("demo", "acme")
TOKENS = {tenant: f"{tenant}-poison-token" for tenant in TENANTS}
# The shipped pipeline files (their test cases name the example sources, so they are left out).
SHIPPED_PIPELINES = sorted(p.name for p in (REPO / "conf.d").glob("3*.yaml"))
# A pipeline keeping a syslog message's JSON body whole (`flatten: false`): a path on which no
# ingest edge looks at the JSON's shape, so whatever the body holds reaches the sinks.
DEEP_APP = "deepapp"
KEEP_BODY_PIPELINE = {
    "keep_json_body": {
        "dataset": "app.body",
        "match": {"field": "log.syslog.appname", "equals": DEEP_APP},
        "steps": [{"type": "json", "field": "message", "flatten": False, "target": "body"}],
    },
}


def two_tenant_conf(conf: Path, *, shipped: bool = True, queue_max_events: int | None = None,
                    extra_pipelines: dict[str, Any] | None = None,
                    workers: int | None = None) -> Path:
    """A conf.d with tenants demo and acme, each with an HTTP token, a `tcp_json_<t>` and a
    `syslog_<t>` listener; lake and dead letter flushing every 0.2 s. `workers: 1` keeps the
    pipelines in the daemon's own process (for tests that reach into its components)."""
    conf.mkdir(parents=True, exist_ok=True)
    if shipped:
        for name in SHIPPED_PIPELINES:
            doc = yaml.safe_load((REPO / "conf.d" / name).read_text())
            doc.pop("tests", None)
            (conf / name).write_text(yaml.safe_dump(doc, sort_keys=False))
        (conf / "enrich").symlink_to(REPO / "conf.d" / "enrich")
    sources: dict[str, Any] = {
        "http": {"type": "http", "address": "127.0.0.1:0", "dataset": "json",
                 "tokens": {t: {"tenant": t, "sha256": hashlib.sha256(TOKENS[t].encode())
                                .hexdigest()} for t in TENANTS}},
    }
    for tenant in TENANTS:
        sources[f"tcp_json_{tenant}"] = {"type": "tcp_lines", "address": "127.0.0.1:0",
                                         "tenant": tenant, "codec": "json", "dataset": "json"}
        sources[f"syslog_{tenant}"] = {"type": "syslog_tcp", "address": "127.0.0.1:0",
                                       "tenant": tenant, "timezone": "UTC"}
    vigil: dict[str, Any] = {"control": {"address": "127.0.0.1:0"}}
    if queue_max_events is not None:
        vigil["limits"] = {"queue_max_events": queue_max_events}
    if workers is not None:
        vigil["workers"] = workers
    write_conf(conf, {
        "vigil": vigil,
        "tenants": {t: {"name": t.title()} for t in TENANTS},
        "sources": sources,
        "pipelines": {**KEEP_BODY_PIPELINE, **(extra_pipelines or {})},
        "sinks": {"lake": {"type": "parquet_lake", "flush": {"max_seconds": 0.2}},
                  "dlq": {"type": "dead_letter", "flush": {"max_seconds": 0.2}}},
    }, name="05-two-tenants.yaml")
    return conf


def post(daemon: VigilProcess, path: str, body: bytes, tenant: str,
         scheme: str = "Bearer") -> int:
    """POST `body` to the HTTP source with `tenant`'s token; the status code."""
    host, port = daemon.source_address("http")
    request = urllib.request.Request(f"http://{host}:{port}{path}", data=body, method="POST",
                                     headers={"Authorization": f"{scheme} {TOKENS[tenant]}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def send_lines(daemon: VigilProcess, source_id: str, lines: Iterable[bytes]) -> None:
    """Newline-framed lines over one TCP connection, closed cleanly."""
    with socket.create_connection(daemon.source_address(source_id)) as sock:
        sock.sendall(b"".join(line + b"\n" for line in lines))
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1)  # the daemon closes after reading everything


def syslog_line(app: str, body: bytes, n: int = 0) -> bytes:
    return b"<134>1 2026-01-01T00:00:%02dZ host " % (n % 60) + app.encode() + b" - - - " + body


def dead_letters(data: Path) -> list[dict[str, Any]]:
    """Every dead-letter record under <data>/dlq."""
    records = []
    for path in sorted((data / "dlq").glob("**/*.jsonl")):
        records.extend(orjson.loads(line) for line in path.read_bytes().splitlines() if line)
    return records


def files_outside(root: Path, data: Path, conf: Path) -> list[Path]:
    """Files under `root` that are neither in the data dir nor the conf.d."""
    found = []
    for directory, _, names in os.walk(root):
        base = Path(directory)
        if base.is_relative_to(data) or base.is_relative_to(conf):
            continue
        found.extend(base / n for n in names)
    return found


def copy_conf(conf: Path, target: Path) -> Path:
    shutil.copytree(conf, target, symlinks=True)
    return target
