"""Issue 13, trusted stamps at the edges: sinks build paths from the batch's journal partition
and check every component again; sources overwrite whatever provenance the input carried;
tenant label values are tenant ids."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from collector.queue import MemoryQueue
from collector.replay import DeadLetterReplayer
from collector.routing import QUARANTINE, TenantRouter
from collector.sources.base import SourceContext
from collector.sources.json_events import event_from_object
from core.events import (
    DATASET,
    DEAD_LETTERS,
    OFFSET,
    RECEIVED_AT,
    SOURCE,
    TENANT,
    TIMESTAMP,
    Batch,
)
from core.provenance import UnsafePathComponent, path_component
from core.schema import DatasetSchemas
from core.sink import SinkContext
from core.telemetry import Telemetry, tenant_label
from sinks.dead_letter import DeadLetterConfig, DeadLetterSink, mark_for_replay
from sinks.lake.sink import LakeConfig, LakeSink, partition_dir

T = datetime(2026, 11, 22, 9, 15, tzinfo=UTC)
HOSTILE_TENANTS = ["acme", "x/../../../../PWNED", "x/../../alerts/tenant=acme", "../acme", "",
                   "a" * 70, "Demo", "demo\x00", ["a"], {"t": 1}, 7, None]


def context(tmp_path: Path, telemetry: Telemetry) -> SinkContext:
    return SinkContext(tmp_path, "e1", telemetry, DatasetSchemas(), monotonic=lambda: 1e9)


def files_under(root: Path) -> list[str]:
    return sorted(str(Path(d, f).relative_to(root)) for d, _, names in os.walk(root)
                  for f in names)


@pytest.mark.parametrize("forged", HOSTILE_TENANTS, ids=repr)
async def test_the_lake_writes_under_the_batch_partition(tmp_path: Path, forged: Any) -> None:
    telemetry = Telemetry()
    sink = LakeSink("lake", LakeConfig(type="parquet_lake"), context(tmp_path, telemetry))
    await sink.start()
    events = [{TIMESTAMP: T, TENANT: forged, DATASET: "web.access", "message": "m", OFFSET: 0}]
    sink.write(Batch("demo", events, 0, 0, "web.access"))
    await sink.flush(force=True)
    assert files_under(tmp_path) == [
        "lake/web.access/tenant=demo/date=2026-11-22/hour=09/e1-000000000000-000000000000.parquet"]
    assert telemetry.total("vigil_lake_rows_written_total", tenant="demo") == 1


async def test_the_dead_letter_writes_under_the_batch_partition(tmp_path: Path) -> None:
    telemetry = Telemetry()
    sink = DeadLetterSink("dlq", DeadLetterConfig(type="dead_letter"),
                          context(tmp_path, telemetry))
    await sink.start()
    records = [{TENANT: tenant, TIMESTAMP: T, "error": "e", "event": {TENANT: tenant}}
               for tenant in ("acme", "x/../../../PWNED")]
    sink.write(Batch("demo", records, 0, 1, None, kind=DEAD_LETTERS))
    await sink.flush(force=True)
    assert files_under(tmp_path) == ["dlq/tenant=demo/date=2026-11-22/e1-000000000000-000000000001"
                                     ".jsonl"]


@pytest.mark.parametrize(("partition", "dataset"), [
    ("x/../../PWNED", "web.access"), ("../acme", "web.access"), ("", "web.access"),
    ("demo", "../../PWNED"), ("demo", "a/b"), ("demo", ".."), ("Demo", "web.access")])
async def test_a_bad_path_component_is_refused_and_nothing_written(
        tmp_path: Path, partition: str, dataset: str) -> None:
    sink = LakeSink("lake", LakeConfig(type="parquet_lake"), context(tmp_path, Telemetry()))
    await sink.start()
    events = [{TIMESTAMP: T, "message": "m", OFFSET: 0}]
    with pytest.raises(UnsafePathComponent, match="refusing to build a path"):
        sink.write(Batch(partition, events, 0, 0, dataset))
    await sink.flush(force=True)
    assert files_under(tmp_path) == []


def test_path_components() -> None:
    assert path_component("tenant", "demo") == "demo"
    assert path_component("tenant", QUARANTINE) == QUARANTINE
    assert path_component("dataset", "aws.cloudtrail") == "aws.cloudtrail"
    assert path_component("date", "2026-11-22") == "2026-11-22"
    assert path_component("hour", "09") == "09"
    for kind, bad in [("tenant", "a/b"), ("tenant", ".."), ("tenant", "_other"),
                      ("dataset", "../x"), ("dataset", ".x"), ("date", "2026-11-22/.."),
                      ("hour", "9/"), ("tenant", ["a"]), ("dataset", None)]:
        with pytest.raises(UnsafePathComponent):
            path_component(kind, bad)
    assert partition_dir(Path("/l"), "d", "demo", datetime(5, 1, 2, 3, tzinfo=UTC)) == \
        Path("/l/d/tenant=demo/date=0005-01-02/hour=03")


def test_tenant_labels_are_tenant_ids() -> None:
    assert [tenant_label(t) for t in ("demo", QUARANTINE, "", "x/../..", 'a"}', "Demo")] == [
        "demo", QUARANTINE, "", "_invalid", "_invalid", "_invalid"]


def source_context(telemetry: Telemetry) -> tuple[SourceContext, MemoryQueue]:
    from collector.sources.tcp_lines import TcpLinesConfig

    config = TcpLinesConfig.model_validate({"type": "tcp_lines", "address": "127.0.0.1:0",
                                            "tenant": "demo", "codec": "json",
                                            "dataset": "json"})
    queue = MemoryQueue(1000)
    component = telemetry.component("tcp_json", "source", "tcp_lines")
    router = TenantRouter("demo", {"demo", "acme"})
    return SourceContext("tcp_json", config, queue, component, router, lambda: T), queue


async def test_sources_overwrite_provenance_the_input_carried() -> None:
    telemetry = Telemetry()
    ctx, queue = source_context(telemetry)
    hostile = {"vigil": {"tenant": "acme"}, "vigil.tenant": "acme", "vigil.dataset": "alerts",
               "msg": "x"}
    decoded = event_from_object(hostile, T)
    # A JSON source keeps the sender's reserved keys under `payload.`.
    assert decoded["payload.vigil"] == {"tenant": "acme"}
    assert decoded["payload.vigil.tenant"] == "acme"
    assert not [k for k in decoded if k == "vigil" or k.startswith("vigil.")]
    # Whatever a source hands over, emit stamps it: provenance replaced, a `vigil` object moved.
    forged = {TENANT: "acme", SOURCE: "evil", RECEIVED_AT: datetime(2001, 1, 1, tzinfo=UTC),
              OFFSET: 3, "vigil": {"tenant": "acme"}, "msg": "y"}
    ctx.emit([decoded, forged])
    batch = await queue.read(10)
    assert batch is not None and batch.partition == "demo"
    for event in batch.events:
        assert (event[TENANT], event[SOURCE], event[DATASET], event[RECEIVED_AT]) == \
            ("demo", "tcp_json", "json", T)
        assert OFFSET not in event and "vigil" not in event
    assert batch.events[1]["payload.vigil"] == {"tenant": "acme"}
    assert telemetry.total("vigil_component_errors_total", error_type="provenance") == 5


async def test_a_source_may_not_send_into_the_alerts_dataset() -> None:
    ctx, queue = source_context(Telemetry())
    ctx.emit([{DATASET: "alerts", "msg": "a"}, {DATASET: "web.access", "msg": "b"}])
    batch = await queue.read(10)
    assert batch is not None
    assert [e[DATASET] for e in batch.events] == ["json", "web.access"]


async def test_a_replay_takes_the_tenant_from_the_dead_letter_partition(tmp_path: Path) -> None:
    root = tmp_path / "dlq"
    directory = root / "tenant=demo" / "date=2026-11-22"
    directory.mkdir(parents=True)
    record = {TENANT: "acme", "error": "e", "event": {TENANT: "acme", SOURCE: "http", "m": 1}}
    (directory / "e1-000000000000-000000000000.jsonl").write_bytes(orjson.dumps(record) + b"\n")
    mark_for_replay(directory / "e1-000000000000-000000000000.jsonl")
    queue = MemoryQueue(100)
    replayed = await DeadLetterReplayer(root, queue, Telemetry(), {"demo", "acme"}).replay_next()
    assert replayed == 1
    batch = await queue.read(10)
    assert batch is not None and batch.partition == "demo"
    assert batch.events[0][TENANT] == "demo"
