"""Issue 13, break 1: a sender must never choose a tenant, a path or provenance.

Against the real daemon with tenants `demo` and `acme` and the shipped generic JSON pipeline
(whose `nest` step flattens a top-level object): a body whose `vigil` object names another
tenant, a path outside the data directory or the lake's alerts dataset, sent over HTTP
`/v1/logs`, Splunk HEC and the raw TCP JSON port, lands under the sender's own tenant with the
daemon's stamps, nothing is written outside `<data_dir>`, and no attacker string becomes a
metric label.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from support.daemon import REPO, VigilProcess, lake_rows, wait_for, write_conf

TOKEN = "demo-token"
ACME_TOKEN = "acme-token"


def two_tenant_conf(tmp_path: Path) -> Path:
    """Tenants demo and acme, HTTP (a token per tenant) and TCP JSON for demo, the shipped
    generic JSON pipeline, a lake flushing every 0.2 s."""
    conf = tmp_path / "conf.d"
    conf.mkdir()
    generic = yaml.safe_load((REPO / "conf.d" / "39-generic-json.yaml").read_text())
    generic.pop("tests", None)
    (conf / "39-generic-json.yaml").write_text(yaml.safe_dump(generic, sort_keys=False))
    write_conf(conf, {
        "vigil": {"control": {"address": "127.0.0.1:0"}},
        "tenants": {"demo": {"name": "Demo"}, "acme": {"name": "Acme"}},
        "sources": {
            "http": {"type": "http", "address": "127.0.0.1:0", "dataset": "json", "tokens": {
                "demo": {"tenant": "demo", "sha256": hashlib.sha256(TOKEN.encode()).hexdigest()},
                "acme": {"tenant": "acme",
                         "sha256": hashlib.sha256(ACME_TOKEN.encode()).hexdigest()}}},
            "tcp_json": {"type": "tcp_lines", "address": "127.0.0.1:0", "tenant": "demo",
                         "codec": "json", "dataset": "json"},
        },
        "sinks": {"lake": {"type": "parquet_lake", "flush": {"max_seconds": 0.2}}},
    })
    return conf


def attacks(marker: str, escape: str) -> list[dict[str, Any]]:
    """Events trying to pick a tenant, a path and provenance through the `vigil` object, the
    flat keys and both at once; each carries `msg` so it can be found again."""
    return [
        {"vigil": {"tenant": "acme"}, "msg": f"{marker}-other-tenant"},
        {"vigil": {"tenant": f"x/../../../../{escape}"}, "msg": f"{marker}-escape"},
        {"vigil": {"tenant": f"x/../../../../../{escape}"}, "msg": f"{marker}-escape-up"},
        {"vigil": {"tenant": "x/../../alerts/tenant=acme"}, "rule": {"name": "FORGED"},
         "msg": f"{marker}-forged-alert"},
        {"vigil": {"source": "evil", "dataset": "alerts", "offset": 999999,
                   "received_at": "2001-01-01T00:00:00Z"}, "msg": f"{marker}-provenance"},
        {"vigil.tenant": "acme", "vigil.source": "evil", "msg": f"{marker}-flat"},
        {"vigil": {"tenant": ["a"], "offset": {"x": 1}}, "msg": f"{marker}-types"},
    ]


def post(address: tuple[str, int], path: str, body: bytes, authorization: str) -> int:
    request = urllib.request.Request(f"http://{address[0]}:{address[1]}{path}", data=body,
                                     headers={"Authorization": authorization}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def send_everywhere(daemon: VigilProcess, escape: str) -> dict[str, str]:
    """Every attack over /v1/logs, HEC and raw TCP JSON; marker prefix -> expected source."""
    http = daemon.source_address("http")
    logs = b"\n".join(orjson.dumps(e) for e in attacks("logs", escape))
    assert post(http, "/v1/logs", logs, f"Bearer {TOKEN}") == 200
    hec = b"".join(orjson.dumps({"event": e, "fields": {"vigil": {"tenant": "acme"}}})
                   for e in attacks("hec", escape))
    assert post(http, "/services/collector/event", hec, f"Splunk {TOKEN}") == 200
    # The lake's alerts dataset is the daemon's: `?dataset=` cannot name it either.
    forged = orjson.dumps({"rule": {"name": "FORGED"}, "msg": "logs-query-alerts"})
    assert post(http, "/v1/logs?dataset=alerts", forged, f"Bearer {TOKEN}") == 200
    with socket.create_connection(daemon.source_address("tcp_json")) as sock:
        sock.sendall(b"".join(orjson.dumps(e) + b"\n" for e in attacks("tcp", escape)))
    return {"logs": "http", "hec": "http", "tcp": "tcp_json"}


def files_under(root: Path) -> set[Path]:
    return {Path(d) / f for d, _, names in os.walk(root) for f in names}


@pytest.fixture
def attacked(tmp_path: Path) -> Iterator[tuple[VigilProcess, Path, str, dict[str, str]]]:
    data = tmp_path / "data"
    daemon = VigilProcess(two_tenant_conf(tmp_path), data).start()
    escape = f"PWNED-{os.getpid()}-{tmp_path.name}"
    try:
        sources = send_everywhere(daemon, escape)
        expected = 3 * len(attacks("", escape)) + 1
        # Every event that stayed inside the lake; with the fix that is all of them.
        wait_for(lambda: len(lake_rows(data, "SELECT * FROM lake WHERE msg IS NOT NULL"))
                 >= expected - 6, timeout=20, message="the attacks in the lake")
        # Flushes are 0.2 s apart: give events written elsewhere the same chance to land.
        wait_for(lambda: daemon.metric("vigil_lake_rows_written_total") >= expected - 6,
                 timeout=5, message="lake row counts")
        yield daemon, data, escape, sources
    finally:
        daemon.kill()


def test_nothing_is_written_outside_the_data_dir(attacked: Any, tmp_path: Path) -> None:
    daemon, data, escape, _ = attacked
    conf = tmp_path / "conf.d"
    outside = {p for p in files_under(tmp_path) if data not in p.parents and conf not in p.parents}
    assert outside == set()
    assert not [p for p in files_under(tmp_path.parent) if escape in str(p)]
    wait_for(lambda: len(lake_rows(data, "SELECT * FROM lake WHERE msg IS NOT NULL")) == 22,
             timeout=10, message="all 22 attack events inside the lake")
    assert daemon.stop() == 0


def test_every_event_lands_under_the_senders_tenant(attacked: Any) -> None:
    daemon, data, _, sources = attacked
    rows = lake_rows(data, "SELECT * FROM lake WHERE msg IS NOT NULL")
    assert len(rows) == 22
    for row in rows:
        marker = row["msg"].split("-")[0]
        # The hive partition column (`tenant`, from the directory) and the stamp agree.
        assert (row["tenant"], row["vigil.tenant"]) == ("demo", "demo"), row["msg"]
        assert row["vigil.source"] == sources[marker], row["msg"]
        assert row["vigil.dataset"] == "generic.json", row["msg"]
        assert row["vigil.received_at"].year >= 2024, row["msg"]
        assert row["vigil.offset"] != 999999, row["msg"]
        if row["msg"].endswith("-other-tenant"):  # what the sender wrote is kept, renamed
            assert row["payload.vigil.tenant"] == "acme"
    lake = data / "lake"
    assert not list(lake.glob("*/tenant=acme")), "a demo sender wrote into acme's lake"
    assert not list(lake.glob("alerts/**/*.parquet")), "a sender forged an alert"
    assert daemon.stop() == 0


def test_no_alert_for_another_tenant(attacked: Any) -> None:
    daemon, data, _, _ = attacked
    forged = lake_rows(data, "SELECT * FROM lake WHERE \"rule.name\" = 'FORGED'")
    assert {(r["tenant"], r["vigil.dataset"]) for r in forged} == {("demo", "generic.json")}
    assert daemon.stop() == 0
    store = data / "alerts.db"
    if store.exists():
        with sqlite3.connect(store) as con:
            assert con.execute("SELECT count(*) FROM alerts WHERE tenant != 'demo'"
                               ).fetchone() == (0,)


def test_no_attacker_string_in_metric_labels(attacked: Any) -> None:
    daemon, _, escape, _ = attacked
    text = daemon.metrics()
    for bad in (escape, "x/..", "tenant=acme", "evil"):
        assert bad not in text
    assert daemon.metric("vigil_lake_rows_written_total", tenant="acme") == 0
    assert daemon.metric("vigil_lake_rows_written_total", tenant="demo") >= 22
    assert daemon.stop() == 0
