"""The S3 lake sink against a real moto server (S3 over HTTP on loopback): files uploaded under
the Hive layout before the sink reports them committed, read back with a real DuckDB, a replay
overwriting the same key, and the start-up trim of a file committed past the acknowledged
position, done in the bucket.

Faked: AWS S3 itself (moto, with dummy credentials from the environment).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from cloud.moto_rig import MotoServer

from core.events import OFFSET, Batch
from core.schema import DatasetSchemas
from core.sink import SinkContext
from core.telemetry import Telemetry
from sinks.s3 import S3LakeConfig, S3LakeSink

pytestmark = pytest.mark.usefixtures("aws_env")
T = datetime(2026, 11, 22, 9, 15, tzinfo=UTC)


def make_sink(tmp_path: Path, moto: MotoServer, bucket: str, acked: dict[str, int] | None = None,
              recover: bool = False, **extra: Any) -> S3LakeSink:
    config = S3LakeConfig.model_validate({
        "type": "s3_lake", "bucket": bucket, "prefix": "vigil/lake",
        "aws": {"endpoint_url": moto.url, "region": "us-east-1"}, **extra})
    context = SinkContext(tmp_path, "e1", Telemetry(), DatasetSchemas(),
                          acknowledged=(lambda p: (acked or {}).get(p, -1)) if acked is not None
                          else None, recover=recover)
    return S3LakeSink("s3lake", config, context)


def events(first: int, n: int, tenant: str = "demo") -> list[dict[str, Any]]:
    return [{"@timestamp": T, "message": f"event {i}", "vigil.tenant": tenant,
             "vigil.dataset": "app", OFFSET: i, "n": i} for i in range(first, first + n)]


def bucket_files(moto: MotoServer, bucket: str, tmp_path: Path) -> list[str]:
    """Download every object of the bucket; their keys, sorted."""
    s3 = moto.client("s3")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
    for key in keys:
        target = tmp_path / "download" / key
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(target))
    return keys


def query(tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    glob = f"{tmp_path}/download/vigil/lake/**/*.parquet"
    return duckdb.sql(sql.replace("LAKE", f"read_parquet('{glob}', hive_partitioning=true)")
                      ).fetchall()


async def test_uploads_before_commit_and_reads_back(tmp_path: Path, moto: MotoServer) -> None:
    bucket = f"lake-{uuid.uuid4().hex[:10]}"
    moto.client("s3").create_bucket(Bucket=bucket)
    sink = make_sink(tmp_path, moto, bucket)
    await sink.start()
    sink.write(Batch("demo", events(0, 3), 0, 2, "app"))
    sink.write(Batch("acme", events(0, 2, "acme"), 0, 1, "app"))
    assert sink.uncommitted_floor("demo") == 0
    await sink.flush(force=True)
    assert sink.uncommitted_floor("demo") is None
    keys = bucket_files(moto, bucket, tmp_path)
    assert keys == [
        "vigil/lake/app/tenant=acme/date=2026-11-22/hour=09/e1-000000000000-000000000001.parquet",
        "vigil/lake/app/tenant=demo/date=2026-11-22/hour=09/e1-000000000000-000000000002.parquet"]
    assert query(tmp_path, "SELECT tenant, count(*), sum(n::INT) FROM LAKE GROUP BY 1 ORDER BY 1") \
        == [("acme", 2, 1), ("demo", 3, 3)]
    assert list((tmp_path / "s3-staging").rglob("*.parquet")) == []  # not kept locally
    # A replay of the same offsets writes the same key: still one file, same rows.
    sink.write(Batch("demo", events(0, 3), 0, 2, "app"))
    await sink.flush(force=True)
    assert bucket_files(moto, bucket, tmp_path) == keys
    assert sink.health()["uploaded_files"] == 3
    await sink.stop()


async def test_failed_upload_keeps_events_uncommitted(tmp_path: Path, moto: MotoServer) -> None:
    sink = make_sink(tmp_path, moto, f"missing-{uuid.uuid4().hex[:10]}")
    await sink.start()
    sink.write(Batch("demo", events(0, 2), 0, 1, "app"))
    with pytest.raises(Exception, match="NoSuchBucket"):
        await sink.flush(force=True)
    assert sink.uncommitted_floor("demo") == 0 and sink.buffered_events() == 2


async def test_start_trims_a_file_committed_past_the_acknowledged_position(
        tmp_path: Path, moto: MotoServer) -> None:
    bucket = f"lake-{uuid.uuid4().hex[:10]}"
    moto.client("s3").create_bucket(Bucket=bucket)
    first = make_sink(tmp_path, moto, bucket, acked={})
    await first.start()
    first.write(Batch("demo", events(0, 5), 0, 4, "app"))
    await first.flush(force=True)  # committed and uploaded; the journal acknowledged only 0-2
    second = make_sink(tmp_path, moto, bucket, acked={"demo": 2}, recover=True)
    await second.start()
    keys = bucket_files(moto, bucket, tmp_path)
    assert keys == [
        "vigil/lake/app/tenant=demo/date=2026-11-22/hour=09/e1-000000000000-000000000002.parquet"]
    assert query(tmp_path, "SELECT list(n::INT ORDER BY n::INT) FROM LAKE") == [([0, 1, 2],)]
