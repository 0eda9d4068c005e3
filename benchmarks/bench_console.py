"""The console's posture and dashboard pages on bench volumes, timed at the client on loopback
(an upper bound of the server time).

A lake of BENCH_ROWS (default 10 million) fortinet.firewall rows for tenant acme over
BENCH_DAYS days, plus half as many for demo (written as benchmarks/bench_dashboards.py writes
them), and an alert store of BENCH_ALERTS (default 100,000) alerts across acme, bravo and
charlie; a real control listener serves /api/v1 and the console, signed in by a session
cookie. Timed: GET /posture?tenant=acme (alert figures, SLA, matrix, data-source health), the
library `/dashboards`, and a saved dashboard of the firewall library's panels naming
`fortinet.firewall` over the whole range and over the last day.

`python -m benchmarks.bench_console`; the last line is one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from benchmarks.bench_dashboards import ALERTS, DAYS, END, ROWS, write_lake
from soc.dashboards.library import load_library
from soc.dashboards.model import DashboardConfig, PanelConfig

ROUNDS = 5


def firewall_as_saved() -> DashboardConfig:
    """The firewall library dashboard with its panels on the dataset itself (a saved dashboard
    is always active: no coverage needed for the benchmark)."""
    library = load_library()["firewall"]
    panels = [PanelConfig(**{**p.model_dump(),
                             "sql": p.sql.replace("FROM events", 'FROM "fortinet.firewall"')})
              for p in library.panels]
    return DashboardConfig(title="Firewall (bench)", category="perimeter security",
                           panels=panels)


async def serve_and_time(tmp: Path) -> dict[str, Any]:
    from alerts.kit import TENANTS_YAML, UNUSED_MAIL_YAML, load, make_alert

    from collector.control import ControlServer
    from core.telemetry import Telemetry
    from soc.alerts.model import Actor
    from soc.alerts.service import Alerting
    from soc.api.app import build_api_app
    from soc.api.routes import Api
    from soc.auth.tokens import new_token
    from soc.auth.totp import current_code
    from soc.console.pages import add_console
    from soc.dashboards.saved import SavedDashboards

    config = load(tmp / "conf.d", TENANTS_YAML, UNUSED_MAIL_YAML)
    alerting = Alerting(config, tmp / "data", tmp / "conf.d", Telemetry())
    await alerting.start()
    started = time.perf_counter()
    tenants = ("acme", "bravo", "charlie")
    severities = ("critical", "high", "medium", "low", "informational")
    for first in range(0, ALERTS, 2000):
        for tenant in tenants:
            alerts = [make_alert(tenant, rule_id=f"rule_{i % 40}", severity=severities[i % 5],
                                 group=f'{{"source.ip": "203.0.{i % 250}.{i // 250 % 250}"}}',
                                 first_seen=END - timedelta(minutes=i))
                      for i in range(first, min(first + 2000, ALERTS))
                      if i % 3 == tenants.index(tenant)]
            alerting.store.upsert(alerts, tenant)
    filled = time.perf_counter() - started
    root = Actor("root", None)
    new = alerting.directory.add_user("admin", "Admin", "admin@example.com", "platform_admin",
                                      [], root)
    alerting.directory.activate("admin", new.activation_token, "correct horse battery staple",
                                current_code(new.totp_secret, alerting.clock()))
    user = alerting.directory.get("admin")
    assert user is not None
    token = new_token("vgs")
    alerting.directory._issue(user, token, "session", None,
                              alerting.directory.policy.session_ttl, None)
    saved = SavedDashboards(alerting.db, alerting.clock).create(
        Actor("admin", None), "acme", firewall_as_saved())
    api = Api(alerting)
    server = ControlServer("127.0.0.1:0", alerting.telemetry, lambda: (True, {}),
                           api=build_api_app(alerting, api),
                           console=lambda app, secure: add_console(app, api, secure))
    await server.start()
    base = f"http://{server.bound_address()}"
    whole = {"tenant": "acme", "start": (END - timedelta(days=DAYS)).isoformat(),
             "end": END.isoformat()}
    last_day = {"tenant": "acme", "start": (END - timedelta(days=1)).isoformat(),
                "end": END.isoformat()}
    pages = {"posture": "/posture?tenant=acme", "library": "/dashboards?tenant=acme",
             "dashboard_all_rows": f"/dashboards/{saved['id']}?{urlencode(whole)}",
             "dashboard_last_day": f"/dashboards/{saved['id']}?{urlencode(last_day)}"}
    out: dict[str, Any] = {"alerts": ALERTS, "fill_seconds": round(filled, 1)}
    try:
        async with aiohttp.ClientSession(cookies={"vigil_session": token}) as http:
            for name, path in pages.items():
                times = []
                for _ in range(ROUNDS):
                    started = time.perf_counter()
                    async with http.get(base + path, allow_redirects=False) as response:
                        body = await response.text()
                        assert response.status == 200, (path, response.status, body[:500])
                        assert "panel-error" not in body, body
                    times.append(time.perf_counter() - started)
                out[name] = {"median_ms": round(statistics.median(times) * 1000, 1),
                             "best_ms": round(min(times) * 1000, 1)}
    finally:
        await server.stop()
        await alerting.stop()
    return out


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="vigil-bench-console-") as tmp_name:
        tmp = Path(tmp_name)
        lake = tmp / "data" / "lake"
        wrote = write_lake(lake, "acme", ROWS) + write_lake(lake, "demo", ROWS // 2)
        pages = asyncio.run(serve_and_time(tmp))
    print(json.dumps({"lake_rows_acme": ROWS, "lake_rows_demo": ROWS // 2, "days": DAYS,
                      "lake_write_seconds": round(wrote, 1), "cpus": os.cpu_count(),
                      "pages": pages}))


if __name__ == "__main__":
    main()
