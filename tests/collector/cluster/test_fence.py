"""The fence of a cluster worker's commits: a shard whose lease was not renewed in time (the
process was paused, or cannot reach NATS) is given up before the next commit, with every other
shard of its tenant, and what the sinks hold of that tenant is dropped, not committed (the next
owner processes those records again from the stream; committing them here too would write
them twice under other file names)."""

from __future__ import annotations

import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

from collector.cluster.consumer import Shard, StreamQueue, _Delivered
from collector.config.models import ClusterConfig
from collector.worker import Worker
from core.events import Batch
from core.schema import DatasetSchemas
from core.sink import SinkContext
from core.telemetry import Telemetry
from sinks.lake.sink import LakeConfig, LakeSink


def queue_with(*shards: Shard) -> StreamQueue:
    queue = StreamQueue(ClusterConfig(lease_seconds=3), "w0", tenants=lambda: ["acme", "demo"])
    queue.owned = {s.key: s for s in shards}
    return queue


def test_a_lapsed_lease_is_given_up_with_its_tenants_other_shards() -> None:
    now = time.monotonic()
    fresh = Shard("acme", 0, renewed=now)
    stale, sibling = Shard("demo", 0, renewed=now - 2.5), Shard("demo", 1, renewed=now)
    queue = queue_with(fresh, stale, sibling)
    queue._delivered["demo"] = deque([_Delivered(7, stale, object())])
    assert queue.fence() == ["demo"]
    assert list(queue.owned) == [("acme", 0)] and stale.lost and sibling.lost
    assert "demo" not in queue._delivered  # the next owner's to acknowledge
    assert queue.fence() == []  # reported once
    assert not fresh.lost


async def test_a_lease_the_lease_loop_gave_up_is_still_fenced_at_the_next_commit() -> None:
    """NATS unreachable: the lease loop gives the stale shard up first; the commit after it
    must still learn that its tenant's buffered events are not to be committed."""
    queue = queue_with(Shard("demo", 0, renewed=time.monotonic() - 2.5))
    await queue._drop_expired()
    assert not queue.owned
    assert queue.fence() == ["demo"]


def test_renewed_within_two_thirds_of_the_lease_is_kept() -> None:
    shard = Shard("demo", 0, renewed=time.monotonic() - 1.5)  # lease 3 s: 2 s is the limit
    queue = queue_with(shard)
    assert queue.fence() == [] and ("demo", 0) in queue.owned


async def test_the_worker_drops_a_fenced_tenants_rows_and_commits_the_others(
        tmp_path: Path) -> None:
    """Through `Worker.flush`, as a cluster worker wires it: demo's lease lapsed while its rows
    were buffered; acme's rows are committed and acknowledged, demo's are neither."""
    telemetry = Telemetry()
    sink = LakeSink("lake", LakeConfig.model_validate({"type": "parquet_lake"}),
                    SinkContext(tmp_path, "js", telemetry, DatasetSchemas()))
    await sink.start()
    now = time.monotonic()
    queue = queue_with(Shard("acme", 0, renewed=now), Shard("demo", 0, renewed=now - 10))
    acked: list[tuple[str, int]] = []
    queue.ack = lambda partition, offset: acked.append((partition, offset))  # type: ignore
    worker = Worker(queue, {"lake": sink}, 1000, lambda batch: [batch], telemetry=telemetry)

    def fence() -> None:  # what ClusterWorkerDaemon._fence does with the sinks
        for tenant in queue.fence():
            worker.discard(tenant)

    worker.fence = fence
    ts = datetime(2026, 12, 6, 9, tzinfo=UTC)
    for tenant in ("acme", "demo"):
        worker.handle(Batch(tenant, [{"@timestamp": ts, "message": f"{tenant} {i}",
                                      "vigil.dataset": "syslog"} for i in range(3)], 0, 2,
                            "syslog"))
    await worker.flush(force=True)
    files = sorted(p.relative_to(tmp_path / "lake").parts[1] for p in
                   (tmp_path / "lake").rglob("*.parquet"))
    assert files == ["tenant=acme"]
    assert acked == [("acme", 2)]
