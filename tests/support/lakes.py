"""Test lakes: rows written with DuckDB in the lake's layout, and saved field coverage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from rules.coverage import FieldCoverage

FIREWALL_FIELDS = ("source.ip", "destination.ip", "destination.port", "event.outcome",
                   "source.geo.country_iso_code")


def write_firewall(lake: Path, tenant: str, day: datetime, rows: int, prefix: str) -> Path:
    """`rows` fortinet.firewall events of `tenant` on `day` (hour 10), addresses `prefix`.N."""
    directory = (lake / "fortinet.firewall" / f"tenant={tenant}"
                 / f"date={day.date().isoformat()}" / "hour=10")
    directory.mkdir(parents=True, exist_ok=True)
    start = day.replace(hour=10, minute=0, second=0, microsecond=0)
    duckdb.execute(f"""COPY (SELECT TIMESTAMPTZ '{start.isoformat()}' + INTERVAL (range) SECOND
        AS "@timestamp", '{prefix}.' || (range % 5) AS "source.ip", '10.0.0.1' AS
        "destination.ip", CAST([22, 443, 3389][1 + range % 3] AS BIGINT) AS "destination.port",
        CASE WHEN range % 4 = 0 THEN 'failure' ELSE 'success' END AS "event.outcome",
        CASE WHEN range % 4 = 0 THEN 'deny' ELSE 'accept' END AS "event.action",
        ['FR', 'US'][1 + range % 2] AS "source.geo.country_iso_code",
        'fortinet.firewall' AS "vigil.dataset", '{tenant}' AS "vigil.tenant"
        FROM range({rows})) TO '{directory}/0-0-{rows}.parquet' (FORMAT parquet)""")
    return directory


def save_coverage(data_dir: Path, tenant: str, dataset: str, fields: tuple[str, ...],
                  events: int = 10, now: datetime | None = None) -> None:
    """The coverage file the daemon's detection saves, with `fields` populated in `dataset`."""
    now = now or datetime.now(UTC)
    path = data_dir / "state" / "coverage.json"
    coverage = FieldCoverage(timedelta(days=7))
    coverage.restore(path, now)
    coverage.observe(tenant, dataset, [{f: "x" for f in fields} for _ in range(events)], now)
    path.parent.mkdir(parents=True, exist_ok=True)
    coverage.save(path)
