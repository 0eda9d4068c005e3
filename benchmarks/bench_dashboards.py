"""Dashboards and the alert queue on real volumes.

1. A lake of BENCH_ROWS (default 10 million) fortinet.firewall rows for tenant acme over
   BENCH_DAYS days (plus half as many for tenant demo beside it), written with DuckDB in the
   lake's layout; the firewall dashboard's panels run through `TenantLake` (the per-request
   sandbox, views over acme's partitions only): over the whole range (every acme row), and over
   the last day with and without partition pruning by date.
2. An alert store of BENCH_ALERTS (default 100,000) alerts across three tenants, served by a
   real control listener: GET /api/v1/alerts with the default sort, timed at the client on
   loopback (an upper bound of the server time).

`python -m benchmarks.bench_dashboards`; the last line is one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the alert kit of the tests builds stores and alerts

from soc.dashboards.lake import LakeLimits, TenantLake, TimeRange  # noqa: E402
from soc.dashboards.library import load_library  # noqa: E402

ROWS = int(os.environ.get("BENCH_ROWS", 10_000_000))
DAYS = int(os.environ.get("BENCH_DAYS", 10))
ALERTS = int(os.environ.get("BENCH_ALERTS", 100_000))
KEEP = os.environ.get("BENCH_KEEP")  # a directory: the lake and store are kept there and reused
ROUNDS = 3
END = datetime(2026, 12, 1, tzinfo=UTC)


def write_lake(lake: Path, tenant: str, rows: int) -> float:
    """`rows` firewall events over DAYS days, hive-partitioned by tenant, date and hour."""
    started = time.perf_counter()
    seconds = DAYS * 86400
    start = END - timedelta(days=DAYS)
    (lake / "fortinet.firewall").mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"""COPY (
        SELECT ts AS "@timestamp", '{tenant}' AS tenant, CAST(ts AS DATE) AS date,
               lpad(CAST(hour(ts) AS VARCHAR), 2, '0') AS hour,
               '198.51.' || (i % 200) || '.' || (i % 251) AS "source.ip",
               '10.0.' || (i % 7) || '.1' AS "destination.ip",
               CAST([22, 80, 443, 3389, 53][1 + i % 5] AS BIGINT) AS "destination.port",
               CASE WHEN i % 9 = 0 THEN 'deny' ELSE 'accept' END AS "event.action",
               CASE WHEN i % 9 = 0 THEN 'failure' ELSE 'success' END AS "event.outcome",
               ['FR', 'US', 'DE', 'CN', 'BR'][1 + i % 5] AS "source.geo.country_iso_code",
               CAST(i % 100000 AS BIGINT) AS "network.bytes",
               'fortinet.firewall' AS "vigil.dataset"
        FROM (SELECT range AS i, TIMESTAMPTZ '{start.isoformat()}'
                     + to_seconds(CAST(range * {seconds} // {rows} AS BIGINT)) AS ts
              FROM range({rows})))
        TO '{lake / "fortinet.firewall"}' (FORMAT parquet, COMPRESSION zstd,
            PARTITION_BY (tenant, date, hour), OVERWRITE_OR_IGNORE)""")
    con.close()
    return time.perf_counter() - started


def best(run: Any) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(ROUNDS):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return min(times), result


def bench_panels(lake: Path) -> dict[str, Any]:
    firewall = load_library()["firewall"]
    panels = {p.id: p for p in firewall.panels}
    acme = TenantLake(lake, "acme", LakeLimits(timeout_seconds=60))
    everything = TimeRange(END - timedelta(days=DAYS), END)
    last_day = TimeRange(END - timedelta(days=1), END)
    out: dict[str, Any] = {}
    for panel_id in ("connections", "top_sources", "traffic_over_time", "sources_by_country"):
        sql, limit = panels[panel_id].sql, panels[panel_id].limit
        seconds, result = best(lambda s=sql, n=limit: acme.run(
            s, everything, limit=n, events_datasets=["fortinet.firewall"]))
        day_pruned, _ = best(lambda s=sql, n=limit: acme.run(
            s, last_day, limit=n, events_datasets=["fortinet.firewall"]))
        day_unpruned, _ = best(lambda s=sql, n=limit: acme.run(
            s, last_day, limit=n, events_datasets=["fortinet.firewall"], prune=False))
        out[panel_id] = {"all_rows_seconds": round(seconds, 3),
                         "last_day_pruned_seconds": round(day_pruned, 3),
                         "last_day_unpruned_seconds": round(day_unpruned, 3)}
        if panel_id == "connections":
            out["rows_counted"] = result.rows[0][0]
    return out


async def bench_queue(tmp: Path) -> dict[str, Any]:
    from alerts.kit import TENANTS_YAML, UNUSED_MAIL_YAML, load, make_alert

    from collector.control import ControlServer
    from core.telemetry import Telemetry
    from soc.alerts.model import Actor
    from soc.alerts.service import Alerting
    from soc.api.app import build_api_app
    from soc.auth.tokens import new_token
    from soc.auth.totp import current_code

    filled_before = (tmp / "data" / "alerts.db").exists()
    config = load(tmp / "conf.d", TENANTS_YAML, UNUSED_MAIL_YAML)
    alerting = Alerting(config, tmp / "data", tmp / "conf.d", Telemetry())
    await alerting.start()
    started = time.perf_counter()
    tenants = ("acme", "bravo", "charlie")
    severities = ("critical", "high", "medium", "low", "informational")
    batch = 2000
    for first in range(0, 0 if filled_before else ALERTS, batch):
        for tenant in tenants:
            alerts = [make_alert(tenant, rule_id=f"rule_{i % 40}", severity=severities[i % 5],
                                 group=f'{{"source.ip": "203.0.{i % 250}.{i // 250 % 250}"}}',
                                 first_seen=END - timedelta(minutes=i))
                      for i in range(first, min(first + batch, ALERTS)) if i % 3 ==
                      tenants.index(tenant)]
            alerting.store.upsert(alerts, tenant)
    filled = time.perf_counter() - started
    directory = alerting.directory
    if directory.get("admin") is None:
        new = directory.add_user("admin", "Admin", "admin@example.com", "platform_admin", [],
                                 Actor("root", None))
        directory.activate("admin", new.activation_token, "correct horse battery staple",
                           current_code(new.totp_secret, alerting.clock()))
    user = directory.get("admin")
    assert user is not None
    token = new_token("vgs")
    directory._issue(user, token, "session", None, directory.policy.session_ttl, None)
    server = ControlServer("127.0.0.1:0", alerting.telemetry, lambda: (True, {}),
                           api=build_api_app(alerting))
    await server.start()
    base = f"http://{server.bound_address()}/api/v1"
    out: dict[str, Any] = {"alerts": ALERTS, "fill_seconds": round(filled, 1)}
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
            for name, path in (("all_tenants", "/alerts"), ("one_tenant", "/alerts?tenant=acme"),
                               ("one_tenant_open_high", "/alerts?tenant=acme&status=new"
                                "&severity=high")):
                times = []
                for _ in range(7):
                    started = time.perf_counter()
                    async with http.get(base + path) as response:
                        body = await response.json()
                        assert response.status == 200, body
                    times.append(time.perf_counter() - started)
                out[name] = {"median_ms": round(statistics.median(times) * 1000, 1),
                             "best_ms": round(min(times) * 1000, 1), "total": body["total"]}
    finally:
        await server.stop()
        await alerting.stop()
    return out


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="vigil-bench-dashboards-") as tmp_name:
        tmp = Path(KEEP or tmp_name)
        lake = tmp / "lake"
        wrote = 0.0
        if not lake.exists():
            wrote = write_lake(lake, "acme", ROWS) + write_lake(lake, "demo", ROWS // 2)
        files = sum(1 for _ in lake.rglob("*.parquet"))
        panels = bench_panels(lake)
        queue = asyncio.run(bench_queue(tmp / "queue"))
    print(json.dumps({"lake_rows_acme": ROWS, "lake_rows_demo": ROWS // 2, "days": DAYS,
                      "lake_files": files, "lake_write_seconds": round(wrote, 1),
                      "cpus": os.cpu_count(), "panels": panels, "alert_queue": queue}))


if __name__ == "__main__":
    main()
