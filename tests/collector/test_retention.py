"""Retention: date partitions of the lake and the dead letter older than the tenant's (else the
global) retention are deleted whole; younger ones, other tenants, unset retention and anything
not shaped like a partition stay."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.daemon import write_conf

from collector.config import load_config
from collector.retention import RetentionSweeper, sweep
from core.errors import ConfigErrors

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _conf(tmp_path: Path) -> Path:
    conf = tmp_path / "conf.d"
    write_conf(conf, {
        "vigil": {"allow_empty": True, "retention": {"lake": "30d", "dead_letter": "7d"}},
        "tenants": {"acme": {"name": "ACME", "retention": {"lake": "365d"}},
                    "demo": {"name": "Demo"},
                    "keep": {"name": "Keeps", "retention": {"dead_letter": "3650d"}}}})
    return conf


def _partition(root: Path, day: str) -> Path:
    path = root / f"date={day}" / "hour=00"
    path.mkdir(parents=True)
    (path / "e-1-2.parquet").write_bytes(b"x")
    return path.parent


def test_sweep_deletes_whole_expired_days_per_tenant(tmp_path: Path) -> None:
    config = load_config(_conf(tmp_path))
    data = tmp_path / "data"
    lake, dead = data / "lake" / "linux.auth", data / "dlq"
    demo_old = _partition(lake / "tenant=demo", "2026-11-05")  # 31 days: past 30d
    demo_edge = _partition(lake / "tenant=demo", "2026-11-06")  # exactly 30 days: kept
    acme_old = _partition(lake / "tenant=acme", "2026-11-05")  # acme keeps 365d
    acme_ancient = _partition(lake / "tenant=acme", "2025-12-01")
    dead_old = _partition(dead / "tenant=demo", "2026-11-28")  # 8 days: past 7d
    dead_kept = _partition(dead / "tenant=keep", "2026-11-28")
    stray = lake / "tenant=demo" / "notes"
    stray.mkdir()
    quarantined = _partition(lake / "tenant=_quarantine", "2026-01-01")  # the global 30d

    dry = sweep(config, data, now=NOW, dry_run=True)
    assert sorted(dry.deleted) == sorted([demo_old, acme_ancient, dead_old, quarantined])
    assert demo_old.exists()
    report = sweep(config, data, now=NOW)
    assert sorted(report.deleted) == sorted(dry.deleted)
    for gone in (demo_old, acme_ancient, dead_old, quarantined):
        assert not gone.exists()
    for kept in (demo_edge, acme_old, dead_kept, stray):
        assert kept.exists()
    assert report.per_tenant[("lake", "demo")] == 1


def test_unset_retention_keeps_everything(tmp_path: Path) -> None:
    conf = tmp_path / "conf.d"
    write_conf(conf, {"vigil": {"allow_empty": True}, "tenants": {"demo": {"name": "Demo"}}})
    data = tmp_path / "data"
    old = _partition(data / "lake" / "x" / "tenant=demo", "2001-01-01")
    assert sweep(load_config(conf), data, now=NOW).deleted == []
    assert old.exists()


def test_retention_below_a_day_is_refused(tmp_path: Path) -> None:
    conf = tmp_path / "conf.d"
    write_conf(conf, {"vigil": {"allow_empty": True, "retention": {"lake": "2h"}}})
    with pytest.raises(ConfigErrors, match="at least 1d"):
        load_config(conf)


def test_sweeper_runs_hourly(tmp_path: Path) -> None:
    sweeper = RetentionSweeper()
    assert sweeper.due(NOW)
    sweeper.run(load_config(_conf(tmp_path)), tmp_path / "data", NOW)
    assert not sweeper.due(NOW.replace(minute=59))
    assert sweeper.due(NOW.replace(hour=13))


def test_cli_dry_run_lists_and_keeps(tmp_path: Path) -> None:
    conf = _conf(tmp_path)
    data = tmp_path / "data"
    old = _partition(data / "lake" / "linux.auth" / "tenant=demo", "2001-01-01")
    result = subprocess.run([sys.executable, "-m", "collector.cli", "retention", "-c", str(conf),
                             "--data-dir", str(data), "--dry-run"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"would delete {old}" in result.stdout
    assert result.stdout.strip().endswith("1 partition(s) would delete (lake demo: 1)")
    assert old.exists()


def test_the_daemon_sweeps_at_start_and_hourly(tmp_path: Path) -> None:
    from support.daemon import VigilProcess, basic_config, wait_for

    conf, data = tmp_path / "conf.d", tmp_path / "data"
    config = basic_config()
    config["vigil"] = {**config.get("vigil", {}), "retention": {"lake": "30d"}}
    write_conf(conf, config)
    old = _partition(data / "lake" / "syslog" / "tenant=demo", "2001-01-01")
    recent = _partition(data / "lake" / "syslog" / "tenant=demo",
                        datetime.now(UTC).date().isoformat())
    daemon = VigilProcess(conf, data).start()
    try:
        wait_for(lambda: not old.exists(), 30, message="the expired partition deleted")
        assert recent.exists()
    finally:
        assert daemon.stop() == 0
    assert "retention: expired partitions deleted" in daemon.log()
