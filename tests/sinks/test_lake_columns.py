"""The lake's Arrow columns built per batch off the event loop: types, nulls counted, poison rows
set aside, chunks assembled at flush, rows sorted in each file, and a flush that no longer holds
the loop."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from collector.looplag import LoopLagMeter
from core.events import Batch, Event
from core.schema import BASE_SCHEMA, DatasetSchemas, FieldType
from core.sink import SinkContext
from core.telemetry import Telemetry
from sinks.lake.columns import assemble, build_chunk
from sinks.lake.schema import events_to_table
from sinks.lake.sink import LakeConfig, LakeSink

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
FIELDS: dict[str, FieldType] = {**BASE_SCHEMA, "source.ip": "ip", "ok": "bool",
                                "ratio": "float", "event.category": "list"}


def row(n: int, **extra: Any) -> Event:
    return {"@timestamp": T0 + timedelta(seconds=n), "message": f"m{n}", "vigil.offset": n,
            "process.pid": n, **extra}


class Rejected(list):
    def __call__(self, partition: str, events: list, component: str, exc: BaseException,
                 scope: str) -> None:
        self.extend((partition, e.get("message"), type(exc).__name__, scope) for e in events)


def lake(tmp_path: Path, *, reject: Rejected | None = None, telemetry: Telemetry | None = None,
         schemas: DatasetSchemas | None = None, **config: Any) -> LakeSink:
    context = SinkContext(tmp_path, "e1", telemetry or Telemetry(), schemas or DatasetSchemas(),
                          reject=reject)
    return LakeSink("lake", LakeConfig.model_validate({"flush": {"max_rows": 100_000},
                                                       **config}), context)


def read(tmp_path: Path, query: str) -> list[tuple]:
    glob = f"{tmp_path}/lake/**/*.parquet"
    return duckdb.sql(query.replace("LAKE", f"read_parquet('{glob}', hive_partitioning=true, "
                                           "union_by_name=true)")).fetchall()


# -- the column builder -----------------------------------------------------------------------

def test_columns_take_their_declared_types_and_missing_keys_are_null() -> None:
    events = [row(1, **{"source.ip": "10.0.0.1", "ok": True, "ratio": 0.5,
                        "event.category": ["network"]}),
              row(2, extra={"nested": [1, 2]})]
    chunk = build_chunk(events, FIELDS, events_to_table, slice_rows=1)
    table = assemble([chunk], FIELDS)
    assert chunk.failures == 0 and not chunk.poison and len(chunk.tables) == 2
    types = {f.name: f.type for f in table.schema}
    assert types["@timestamp"] == pa.timestamp("us", tz="UTC")
    assert types["process.pid"] == pa.int64() and types["ok"] == pa.bool_()
    assert types["ratio"] == pa.float64() and types["event.category"] == pa.list_(pa.string())
    assert types["source.ip"] == pa.string() and types["extra"] == pa.string()
    assert table.column_names == sorted(table.column_names)
    assert table.to_pylist()[0]["extra"] is None  # a column the first slice lacked
    assert table.to_pylist()[1]["extra"] == '{"nested":[1,2]}'
    assert table.to_pylist()[1]["ok"] is None


def test_values_that_do_not_convert_become_null_and_are_counted() -> None:
    events = [row(1, ok="yes", ratio="0.25"), row(2, ok="maybe", ratio="n/a"),
              {**row(3), "process.pid": "abc", "@timestamp": "not a time"}]
    chunk = build_chunk(events, FIELDS, events_to_table)
    rows = assemble([chunk], FIELDS).to_pylist()
    assert chunk.failures == 4 and not chunk.poison
    assert [r["ok"] for r in rows] == [True, None, None]
    assert [r["ratio"] for r in rows] == [0.25, None, None]
    assert rows[2]["process.pid"] is None and rows[2]["@timestamp"] is None


def test_a_poison_row_is_set_aside_and_the_rest_of_its_batch_kept_in_order() -> None:
    events = [row(n) for n in range(6)]
    events[3]["process.pid"] = 2 ** 70  # no int64 holds it: the row cannot be stored
    chunk = build_chunk(events, FIELDS, events_to_table, slice_rows=4)
    assert [e["message"] for e, _ in chunk.poison] == ["m3"]
    assert isinstance(chunk.poison[0][1], OverflowError)
    assert [r["message"] for r in assemble([chunk], FIELDS).to_pylist()] == \
        ["m0", "m1", "m2", "m4", "m5"]


def test_a_failure_no_row_explains_is_recorded_not_raised() -> None:
    def convert(events: list[Event], fields: dict[str, FieldType]) -> tuple[pa.Table, int]:
        if len(events) > 1:
            raise RuntimeError("only together")
        return events_to_table(events, fields)

    chunk = build_chunk([row(1), row(2)], FIELDS, convert)
    assert isinstance(chunk.error, RuntimeError) and not chunk.poison


# -- through the sink -------------------------------------------------------------------------

async def test_a_poison_row_goes_to_the_dead_letter_and_the_file_holds_the_rest(
        tmp_path: Path) -> None:
    rejected = Rejected()
    telemetry = Telemetry()
    sink = lake(tmp_path, reject=rejected, telemetry=telemetry)
    await sink.start()
    events = [row(n) for n in range(4)]
    events[1]["process.pid"] = 2 ** 70
    sink.write(Batch("demo", events[:2], 0, 1, "app"))
    sink.write(Batch("demo", events[2:], 2, 3, "app"))
    await sink.flush(force=True)
    assert rejected == [("demo", "m1", "OverflowError", "event")]
    assert read(tmp_path, 'SELECT message FROM LAKE ORDER BY "vigil.offset"') == \
        [("m0",), ("m2",), ("m3",)]
    assert [p.name for p in (tmp_path / "lake").rglob("*.parquet")] == \
        ["e1-000000000000-000000000003.parquet"]
    assert sink.uncommitted_floor("demo") is None and sink.buffered_events() == 0
    assert telemetry.sample("vigil_lake_rows_written_total", dataset="app", tenant="demo") == 3
    await sink.stop()


async def test_a_type_changed_by_a_reload_between_batches_converts_the_buffer_again(
        tmp_path: Path) -> None:
    schemas = DatasetSchemas()
    schemas.register("app", {"code": "string"})
    sink = lake(tmp_path, schemas=schemas)
    await sink.start()
    sink.write(Batch("demo", [row(0, code="7")], 0, 0, "app"))
    schemas.reset({"app": {"code": "int"}})
    sink.write(Batch("demo", [row(1, code="8")], 1, 1, "app"))
    await sink.stop()
    assert read(tmp_path, 'SELECT code FROM LAKE ORDER BY "vigil.offset"') == [(7,), (8,)]


def mixed_events(n: int) -> list[Event]:
    apps, hosts, actions = ("sshd", "nginx", "sudo"), ("web-1", "db-2"), ("login", "deny")
    return [row(i, **{"log.syslog.appname": apps[i % 3], "host.hostname": hosts[i % 2],
                      "event.action": actions[i % 5 % 2], "source.ip": f"10.0.0.{i % 7}"})
            for i in range(n)]


async def test_rows_are_sorted_in_each_file_and_read_back_unchanged(tmp_path: Path) -> None:
    events = mixed_events(60)
    expected = sorted((e["message"], e["log.syslog.appname"], e["host.hostname"],
                       e["event.action"], e["source.ip"], e["@timestamp"], e["vigil.offset"])
                      for e in events)
    sink = lake(tmp_path)
    await sink.start()
    for start in range(0, 60, 20):
        sink.write(Batch("demo", [dict(e) for e in events[start:start + 20]], start, start + 19,
                         "app"))
    await sink.stop()
    (path,) = (tmp_path / "lake").rglob("*.parquet")
    assert "tenant=demo" in str(path) and path.name == "e1-000000000000-000000000059.parquet"
    rows = read(tmp_path, 'SELECT message, "log.syslog.appname", "host.hostname", '
                          '"event.action", "source.ip", "@timestamp", "vigil.offset", tenant, '
                          "date, hour FROM LAKE")
    assert sorted(r[:7] for r in rows) == expected
    assert {r[7:] for r in rows} == {("demo", T0.date(), "09")}
    stored = [r[1:5] + (r[5],) for r in rows]  # the file's own order
    key = [(app, action, ip, host, ts) for app, host, action, ip, ts in stored]
    assert key == sorted(key)


async def test_an_empty_sort_order_keeps_arrival_order(tmp_path: Path) -> None:
    events = mixed_events(30)
    sink = lake(tmp_path, sort_by=[])
    await sink.start()
    sink.write(Batch("demo", events, 0, 29, "app"))
    await sink.stop()
    assert [r[0] for r in read(tmp_path, 'SELECT "vigil.offset" FROM LAKE')] == list(range(30))


def test_compression_level_needs_zstd() -> None:
    assert LakeConfig.model_validate({"compression_level": 9}).compression_level == 9
    with pytest.raises(ValueError, match="compression_level applies to compression: zstd"):
        LakeConfig.model_validate({"compression": "snappy", "compression_level": 9})


# -- the event loop during a large flush ------------------------------------------------------

def firewall_events(n: int) -> list[Event]:
    """FortiGate-shaped events: 60 string fields each."""
    return [{"@timestamp": T0 + timedelta(microseconds=i), "vigil.offset": i,
             "message": f"date=2026-03-01 devname=FGT-{i % 3} sessionid={i} " * 3,
             **{f"fortinet.firewall.f{k}": f"value-{k}-{i % 97}" for k in range(60)}}
            for i in range(n)]


async def test_a_large_flush_does_not_hold_the_event_loop(tmp_path: Path) -> None:
    """Converting a flush's rows on the loop (as before) held it for as long as the conversion
    takes (1-1.5 s for 50,000 FortiGate rows); now the loop waits at most for a slice of rows
    (a few ms) plus what a loaded machine adds. The bound is a share of what converting the
    same rows takes here, so a slow machine does not make it flaky."""
    events = firewall_events(20_000)
    started = time.perf_counter()
    events_to_table(events, BASE_SCHEMA)
    conversion = time.perf_counter() - started
    sink = lake(tmp_path)
    await sink.start()
    meter = LoopLagMeter(lambda lag: None, interval=0.005)
    async with meter:
        for start in range(0, len(events), 1000):
            sink.write(Batch("demo", events[start:start + 1000], start, start + 999, "fw"))
            await asyncio.sleep(0)
        await sink.flush(force=True)
    await sink.stop()
    assert read(tmp_path, "SELECT count(*) FROM LAKE") == [(20_000,)]
    assert meter.max_lag < max(0.1, conversion / 3), (meter.max_lag, conversion)
