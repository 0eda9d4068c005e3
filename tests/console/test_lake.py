"""The investigation page's lake reads stay inside one tenant's partitions: matched events by
offset and pivots by field value never return another tenant's rows, whatever the references
or values say; hostile dataset directories and tenant ids are never read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from core.provenance import UnsafePathComponent
from soc.console.lake import matched_events, pivot_events, tenant_files

T = datetime(2026, 3, 3, 9, 30, tzinfo=UTC)


def write(root: Path, dataset: str, tenant: str, rows: list[tuple[int, str, str]],
          at: datetime = T) -> None:
    directory = root / dataset / f"tenant={tenant}" / f"date={at:%Y-%m-%d}" / f"hour={at:%H}"
    directory.mkdir(parents=True, exist_ok=True)
    values = ", ".join(f"(TIMESTAMPTZ '{at.isoformat()}', {o}, '{ip}', '{m}')"
                       for o, ip, m in rows)
    duckdb.sql(f"COPY (SELECT * FROM (VALUES {values}) t(\"@timestamp\", \"vigil.offset\", "
               f"\"source.ip\", message)) TO '{directory / 'e-0-9.parquet'}' (FORMAT parquet)")


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    write(root, "linux.auth", "acme", [(1, "203.0.113.7", "acme one"),
                                       (2, "203.0.113.7", "acme two")])
    write(root, "linux.auth", "demo", [(1, "203.0.113.7", "demo one"),
                                       (2, "203.0.113.7", "demo two")])
    write(root, "fw", "demo", [(3, "203.0.113.7", "demo firewall")])
    return root


def test_matched_events_come_from_the_alerts_tenant_only(lake: Path) -> None:
    refs = [{"lake": {"dataset": "linux.auth", "tenant": "demo", "offset": o,
                      "time": T.isoformat()}} for o in (1, 2)]
    # The reference names demo: it is the alert's stored tenant that picks the partitions.
    rows = matched_events(lake, "acme", refs)
    assert sorted(r["message"] for r in rows) == ["acme one", "acme two"]
    hostile = [{"lake": {"dataset": "../linux.auth/tenant=demo", "offset": 1,
                         "time": T.isoformat()}}]
    assert matched_events(lake, "acme", hostile) == []


def test_pivots_stay_in_the_tenant_and_the_window(lake: Path) -> None:
    rows = pivot_events(lake, "demo", "source.ip", "203.0.113.7", T, T)
    assert sorted(r["message"] for r in rows) == ["demo firewall", "demo one", "demo two"]
    assert pivot_events(lake, "acme", "source.ip", "' OR 1=1 --", T, T) == []
    later = T + timedelta(hours=3)
    assert pivot_events(lake, "acme", "source.ip", "203.0.113.7", later, later) == []
    assert pivot_events(lake, "acme", "user.name", "root", T, T) == []  # no such column
    with pytest.raises(ValueError):
        pivot_events(lake, "acme", "vigil.tenant", "demo", T, T)


def test_paths_are_built_from_checked_components(lake: Path) -> None:
    (lake / "..hidden").mkdir()
    files = tenant_files(lake, "acme", None, T, T)
    assert files and all("/tenant=acme/" in f for f in files)
    for tenant in ("../demo", "acme/../demo", "*", ""):
        with pytest.raises(UnsafePathComponent):
            tenant_files(lake, tenant, None, T, T)
