"""LakeSink: Hive-partitioned Parquet read back by a real DuckDB, flush policy, atomic names."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

from core.events import Batch
from core.schema import DatasetSchemas
from core.sink import SinkContext
from core.telemetry import Telemetry
from sinks.lake.sink import LakeConfig, LakeSink


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_sink(tmp_path: Path, clock: FakeClock, **flush: float) -> tuple[LakeSink, Telemetry]:
    telemetry = Telemetry()
    config = LakeConfig.model_validate({"type": "parquet_lake", "flush": flush})
    context = SinkContext(tmp_path, "e1", telemetry, DatasetSchemas(), monotonic=clock)
    return LakeSink("lake", config, context), telemetry


def event(n: int, ts: datetime, tenant: str = "demo", **extra: object) -> dict:
    return {"@timestamp": ts, "message": f"event {n}", "vigil.tenant": tenant,
            "vigil.dataset": "syslog", "process.pid": n, **extra}


def read(tmp_path: Path, query: str) -> list[tuple]:
    glob = f"{tmp_path}/lake/**/*.parquet"
    return duckdb.sql(query.replace("LAKE", f"read_parquet('{glob}', hive_partitioning=true, "
                                           "union_by_name=true)")).fetchall()


async def test_partitions_types_and_readback(tmp_path: Path) -> None:
    clock = FakeClock()
    sink, telemetry = make_sink(tmp_path, clock, max_rows=1000, max_seconds=5)
    await sink.start()
    t1 = datetime(2026, 11, 22, 9, 15, 1, 123456, tzinfo=UTC)
    t2 = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
    sink.write(Batch("demo", [event(1, t1), event(2, t2), event(3, t1, **{"weird": {"a": 1}})],
                     0, 2, "syslog"))
    sink.write(Batch("acme", [event(4, t1, tenant="acme", weird=7)], 0, 0, "syslog"))
    assert sink.uncommitted_floor("demo") == 0
    await sink.flush()
    assert list((tmp_path / "lake").rglob("*.parquet")) == []  # nothing due yet
    clock.now += 5
    await sink.flush()
    assert sink.uncommitted_floor("demo") is None
    files = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "lake").rglob("*.parquet"))
    assert files == [
        "lake/syslog/tenant=acme/date=2026-11-22/hour=09/e1-000000000000-000000000000.parquet",
        "lake/syslog/tenant=demo/date=2026-11-22/hour=09/e1-000000000000-000000000002.parquet",
        "lake/syslog/tenant=demo/date=2026-11-22/hour=10/e1-000000000000-000000000002.parquet",
    ]
    rows = read(tmp_path, "SELECT tenant, hour, \"@timestamp\", \"process.pid\", weird FROM LAKE "
                          "ORDER BY \"process.pid\"")
    assert rows[0] == ("demo", "09", t1, 1, None)
    assert rows[2] == ("demo", "09", t1, 3, '{"a":1}')
    assert rows[3] == ("acme", "09", t1, 4, "7")
    types = dict(read(tmp_path,
                      "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM LAKE)"))
    assert types["@timestamp"] == "TIMESTAMP WITH TIME ZONE"
    assert types["process.pid"] == "BIGINT"
    assert telemetry.sample("vigil_lake_rows_written_total", dataset="syslog", tenant="demo") == 3
    assert telemetry.sample("vigil_lake_files_written_total", dataset="syslog", tenant="demo") == 2
    assert not list((tmp_path / "lake").rglob(".*.tmp"))


async def test_flush_by_rows_and_force(tmp_path: Path) -> None:
    clock = FakeClock()
    sink, _ = make_sink(tmp_path, clock, max_rows=2, max_seconds=100)
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    sink.write(Batch("demo", [event(1, ts)], 0, 0, "syslog"))
    await sink.flush()
    assert sink.uncommitted_floor("demo") == 0
    sink.write(Batch("demo", [event(2, ts)], 1, 1, "syslog"))
    await sink.flush()
    assert sink.uncommitted_floor("demo") is None
    sink.write(Batch("demo", [event(3, ts)], 2, 2, "syslog"))
    await sink.stop()
    assert read(tmp_path, "SELECT count(*) FROM LAKE") == [(3,)]


async def test_bad_values_in_typed_columns_become_null_and_are_counted(tmp_path: Path) -> None:
    clock = FakeClock()
    sink, telemetry = make_sink(tmp_path, clock, max_rows=10)
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    events = [event(1, ts), {**event(2, ts), "process.pid": "abc"}]
    sink.write(Batch("demo", events, 0, 1, "syslog"))
    await sink.stop()
    assert read(tmp_path, 'SELECT "process.pid" FROM LAKE ORDER BY message') == [(1,), (None,)]
    assert telemetry.sample("vigil_component_errors_total", component_id="lake",
                            component_kind="sink", component_type="parquet_lake",
                            error_type="type_conversion", stage="flush") == 1


async def test_replay_after_crash_lands_each_row_once(tmp_path: Path) -> None:
    """A file committed past the acknowledged position (another buffer of the tenant was still
    open) is trimmed on start, so the replay of the unacknowledged offsets adds each row once."""
    clock = FakeClock()
    acked = {"demo": -1}
    telemetry = Telemetry()
    config = LakeConfig.model_validate({"type": "parquet_lake", "flush": {"max_rows": 1000}})

    def sink() -> LakeSink:
        context = SinkContext(tmp_path, "j1", telemetry, DatasetSchemas(), monotonic=clock,
                              acknowledged=lambda p: acked.get(p, -1), recover=True)
        return LakeSink("lake", config, context)

    nine, ten = datetime(2026, 1, 1, 9, tzinfo=UTC), datetime(2026, 1, 1, 10, tzinfo=UTC)

    def events(offsets: range) -> list[dict]:
        # Offsets 0-3 in hour 09; from 4 on, even in 09 and odd in 10: two buffers, interleaved.
        return [{**event(n, nine if n < 4 or n % 2 == 0 else ten), "vigil.offset": n}
                for n in offsets]

    first = sink()
    await first.start()
    first.write(Batch("demo", events(range(4)), 0, 3, "syslog"))
    first.write(Batch("demo", events(range(4, 10)), 4, 9, "syslog"))
    hour_nine = next(k for k in first._buffers if k[-1] == 9)
    await first._commit(first._buffers.pop(hour_nine))  # hour 09 committed, 10 still buffered
    assert first.uncommitted_floor("demo") == 4
    acked["demo"] = 3  # all the worker may acknowledge: everything below that floor
    # crash: hour 10 is never written; the journal replays offsets 4..9
    second = sink()
    await second.start()
    assert [p.name for p in (tmp_path / "lake").rglob("*.parquet")] == \
        ["j1-000000000000-000000000003.parquet"]  # hour 09 trimmed to offsets 0-3, renamed
    second.write(Batch("demo", events(range(4, 10)), 4, 9, "syslog"))
    await second.stop()
    rows = read(tmp_path, 'SELECT "vigil.offset" FROM LAKE ORDER BY 1')
    assert [r[0] for r in rows] == list(range(10))
    assert not list((tmp_path / "lake").rglob(".*.tmp"))


async def test_discard_drops_one_tenants_buffers_and_commits_the_others(tmp_path: Path) -> None:
    """A cluster worker whose shard lease lapsed must not commit that tenant's rows (the next
    owner writes them from the stream): `discard` drops them; the other tenant's are written."""
    clock = FakeClock()
    sink, _ = make_sink(tmp_path, clock, max_rows=1000, max_seconds=5)
    await sink.start()
    t1 = datetime(2026, 11, 22, 9, 15, tzinfo=UTC)
    t2 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    sink.write(Batch("demo", [event(1, t1), event(2, t2)], 0, 1, "syslog"))
    sink.write(Batch("acme", [event(3, t1, tenant="acme")], 0, 0, "syslog"))
    assert sink.discard("demo") == 2
    assert sink.uncommitted_floor("demo") is None and sink.uncommitted_floor("acme") == 0
    assert sink.discard("demo") == 0
    await sink.flush(force=True)
    rows = read(tmp_path, "SELECT tenant, \"process.pid\" FROM LAKE")
    assert rows == [("acme", 3)]
