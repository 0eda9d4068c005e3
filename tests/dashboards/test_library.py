"""The dashboard library and conf.d `dashboards:` entries: they load and validate (bad SQL at
file:line:col), activate from field coverage like rules (with the reason when not), and panel
SQL runs inside one tenant's partitions, refusing paths, table functions and settings."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.lakes import FIREWALL_FIELDS, write_firewall

from collector.config.loader import load_config
from collector.config.models import ActivationConfig
from core.errors import ConfigErrors
from rules.coverage import DatasetCoverage
from soc.dashboards.activation import dashboard_status
from soc.dashboards.lake import LakeLimits, PanelFailed, PanelTimeout, TenantLake, TimeRange
from soc.dashboards.library import all_dashboards, load_library
from soc.dashboards.sql import PanelSqlError, check_panel_sql

DAY = datetime(2026, 12, 1, tzinfo=UTC)
RANGE = TimeRange(DAY, DAY + timedelta(days=1))
SHIPPED = {"authentication", "firewall", "web_access", "cloud", "identity_provider",
           "windows_endpoint", "threat_intel", "sla_operations", "data_source_health",
           "pci_dss_10"}


def coverage(dataset: str, fields: tuple[str, ...], events: int = 10
             ) -> dict[str, DatasetCoverage]:
    stats = DatasetCoverage(events)
    for name in fields:
        stats.fields[name] = events
    return {dataset: stats}


def test_the_library_loads_every_shipped_dashboard() -> None:
    library = load_library()
    assert set(library) >= SHIPPED
    for dashboard in library.values():
        for panel in dashboard.panels:
            check_panel_sql(panel.sql)  # every shipped panel keeps the SQL contract


def test_conf_d_dashboards_validate_with_positions(tmp_path: Path) -> None:
    (tmp_path / "10.yaml").write_text(textwrap.dedent("""\
        vigil: {allow_empty: true}
        dashboards:
          mine:
            title: Mine
            category: custom
            requires: {fortinet.firewall: [destination.port]}
            panels:
              - id: a
                title: A
                kind: stat
                sql: SELECT count(*) FROM read_parquet('/var/lib/vigil/lake/x/tenant=demo/*')
    """))
    with pytest.raises(ConfigErrors) as caught:
        load_config(tmp_path)
    assert [str(e).split("10.yaml")[1] for e in caught.value.errors] == [
        ":11:14: dashboards.mine.panels[0].sql: table function read_parquet() is not allowed: "
        "panels read datasets through the views the server builds"]
    (tmp_path / "10.yaml").write_text(textwrap.dedent("""\
        vigil: {allow_empty: true}
        dashboards:
          mine:
            title: Mine
            category: custom
            panels: [{id: a, title: A, kind: pie, sql: SELECT 1}]
    """))
    with pytest.raises(ConfigErrors) as caught:
        load_config(tmp_path)
    assert [str(e).split("10.yaml")[1] for e in caught.value.errors] == [
        ":6:38: dashboards.mine.panels[0].kind: Input should be 'timeseries', 'top_n', 'stat', "
        "'map' or 'table'"]
    (tmp_path / "10.yaml").write_text(textwrap.dedent("""\
        vigil: {allow_empty: true}
        dashboards:
          firewall:
            title: Our firewall
            category: perimeter security
            panels: [{id: a, title: A, kind: stat, sql: "SELECT count(*) FROM events"}]
    """))
    dashboards = all_dashboards(load_config(tmp_path))
    assert dashboards["firewall"].origin == "conf.d"  # conf.d replaces the library's
    assert dashboards["authentication"].origin == "library"


def test_activation_follows_field_coverage_like_rules() -> None:
    firewall = load_library()["firewall"]
    config = ActivationConfig()
    status = dashboard_status("firewall", firewall, {}, config)
    assert not status.active
    assert status.reason.startswith("waiting for a firewall dataset (")
    partial = coverage("fortinet.firewall", ("source.ip", "destination.ip"))
    status = dashboard_status("firewall", firewall, partial, config)
    assert (status.active, status.reason) == (
        False, "waiting for `destination.port` in fortinet.firewall")
    full = coverage("fortinet.firewall", FIREWALL_FIELDS)
    status = dashboard_status("firewall", firewall, full, config)
    assert status.active and status.datasets == ["fortinet.firewall"]
    # The same fill-rate floor as rules: half the events must populate the port.
    strict = ActivationConfig(min_field_ratio=0.5)
    sparse = coverage("fortinet.firewall", FIREWALL_FIELDS, events=10)
    sparse["fortinet.firewall"].fields["destination.port"] = 2
    assert not dashboard_status("firewall", firewall, sparse, strict).active
    intel = load_library()["threat_intel"]
    assert dashboard_status("threat_intel", intel, full, config).reason == \
        "waiting for `threat.enrichments.matched` in any dataset"
    assert dashboard_status("sla_operations", load_library()["sla_operations"], {},
                            config).active


def test_panels_run_over_one_tenants_partitions_of_the_range(tmp_path: Path) -> None:
    write_firewall(tmp_path, "acme", DAY, 40, "198.51.100")
    write_firewall(tmp_path, "acme", DAY - timedelta(days=3), 1000, "192.0.2")
    write_firewall(tmp_path, "demo", DAY, 500, "203.0.113")
    lake = TenantLake(tmp_path, "acme")
    result = lake.run('SELECT count(*) AS n, count(DISTINCT "source.ip") AS ips, '
                      'min("source.ip") AS first FROM fortinet.firewall', RANGE)
    assert result.rows == [[40, 5, "198.51.100.0"]]
    union = lake.run("SELECT count(*) FROM events", RANGE,
                     events_datasets=["fortinet.firewall", "paloalto.firewall"])
    assert union.rows == [[40]] and union.empty_datasets == ["paloalto.firewall"]
    series = lake.run('SELECT bucket("@timestamp") AS t, count(*) FROM "fortinet.firewall" '
                      "GROUP BY 1 ORDER BY 1", RANGE)
    assert sum(r[1] for r in series.rows) == 40
    nothing = lake.run('SELECT "destination.port" FROM cisco.asa', RANGE)
    assert nothing.rows == [] and nothing.empty_datasets == ["cisco.asa"]


ESCAPES = [
    "SELECT * FROM read_parquet('{lake}/fortinet.firewall/tenant=demo/*/*/*.parquet')",
    "SELECT * FROM '{lake}/fortinet.firewall/tenant=demo/date=2026-12-01/hour=10/0-0-500.parquet'",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM glob('{lake}/**')",
    "SELECT * FROM query('SELECT 1')",
    "SELECT 1; SELECT 2",
    "SET enable_external_access = true",
    "ATTACH '{lake}/x.db'",
    "COPY (SELECT 1) TO '{lake}/out.csv'",
    "INSTALL httpfs",
    "LOAD httpfs",
    "PRAGMA database_list",
    "CREATE TABLE x AS SELECT 1",
    "SELECT * FROM other.catalog.firewall",
]


@pytest.mark.parametrize("sql", ESCAPES)
def test_panel_sql_that_escapes_the_views_is_refused(tmp_path: Path, sql: str) -> None:
    write_firewall(tmp_path, "demo", DAY, 500, "203.0.113")
    with pytest.raises(PanelSqlError):
        TenantLake(tmp_path, "acme").run(sql.format(lake=tmp_path), RANGE)


@pytest.mark.parametrize("sql", [
    "SELECT count(*) FROM read_parquet('{lake}/fortinet.firewall/tenant=demo/*/*/*.parquet')",
    "SELECT count(*) FROM '{lake}/fortinet.firewall/tenant=demo/date=2026-12-01/hour=10/"
    "0-0-500.parquet'",
    "SELECT count(*) FROM read_parquet('{lake}/fortinet.firewall/tenant=acme/../tenant=demo/"
    "*/*/*.parquet')",
    "SELECT count(*) FROM glob('/etc/*')",
])
def test_the_sandbox_refuses_other_partitions_even_past_the_sql_check(tmp_path: Path,
                                                                      sql: str) -> None:
    """DuckDB's own settings hold when the SQL check is bypassed: only acme's directories."""
    write_firewall(tmp_path, "acme", DAY, 40, "198.51.100")
    write_firewall(tmp_path, "demo", DAY, 500, "203.0.113")
    lake = TenantLake(tmp_path, "acme")
    tables = check_panel_sql("SELECT * FROM fortinet.firewall")  # acme's views are made
    with pytest.raises(PanelFailed, match="disabled by configuration"):
        lake._execute(sql.format(lake=tmp_path), tables, RANGE, limit=10, events_datasets=[],
                      alerts=None, prune=True)


def test_a_long_panel_is_interrupted(tmp_path: Path) -> None:
    lake = TenantLake(tmp_path, "acme", LakeLimits(timeout_seconds=0.3))
    with pytest.raises(PanelTimeout):
        lake.run("SELECT count(*) FROM range(100000) a, range(100000) b "
                 "WHERE (a.range * b.range) % 7 = 3", RANGE)


def test_tenant_ids_are_checked_before_any_path() -> None:
    from core.provenance import UnsafePathComponent

    with pytest.raises(UnsafePathComponent):
        TenantLake(Path("/tmp/lake"), "../demo")


def test_fields_a_dataset_lacks_read_as_null_not_as_an_error(tmp_path: Path) -> None:
    """The library's panels span datasets (PCI DSS reads Linux, Windows and CloudTrail fields):
    a column the tenant's files lack is NULL, and a dataset without data counts zero."""
    write_firewall(tmp_path, "acme", DAY, 40, "198.51.100")
    lake = TenantLake(tmp_path, "acme")
    result = lake.run('SELECT count(*) FILTER (WHERE "winlog.event_id" = 4625) AS windows, '
                      'count(*) FILTER (WHERE "event.outcome" = \'failure\') AS failed '
                      "FROM events", RANGE, events_datasets=["fortinet.firewall",
                                                             "windows.event"])
    assert result.rows == [[0, 10]]
    assert lake.run('SELECT count(*) FROM fortinet.firewall WHERE "user.name" IS NULL',
                    RANGE).rows == [[40]]
    assert lake.run('SELECT count(*) FROM windows.event WHERE "winlog.event_id" = 4625',
                    RANGE).rows == [[0]]
    pci = load_library()["pci_dss_10"]
    for panel in pci.panels:
        if "alert_store" not in panel.sql:
            lake.run(panel.sql, RANGE, limit=panel.limit, events_datasets=["fortinet.firewall"])
