"""The S3/SQS source in-process against a real moto server (a subprocess speaking the S3, SQS,
SNS, EventBridge and STS HTTP APIs on loopback): notifications of every shape, formats, dead
letters with the receive count, visibility renewal while paused, backoff, role assumption.

Faked: AWS itself (moto stands in for it, with fake credentials from the environment); the
queue is Vigil's MemoryQueue (the daemon tests use the journal).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from cloud.moto_rig import (
    LogBucket,
    MotoServer,
    cloudtrail_file,
    cloudtrail_key,
    cloudtrail_record,
)
from cloud.rig import SourceRig
from support.daemon import wait_until

from collector.queue import MemoryQueue
from core.events import PARSE_ERROR, SOURCE_FAILURE

pytestmark = pytest.mark.usefixtures("aws_env")


def s3_settings(bucket: LogBucket, moto: MotoServer, **extra: Any) -> dict[str, Any]:
    return {"type": "s3_sqs", "tenant": "demo", "queue_url": bucket.queue_url,
            "aws": {"endpoint_url": moto.url, "region": "us-east-1"},
            "wait_time_seconds": 1, "backoff": {"initial_seconds": 0.05, "max_seconds": 0.2},
            **extra}


async def run_until(rig: SourceRig, condition: Any, message: str, timeout: float = 15) -> None:
    await rig.source.start()
    try:
        await wait_until(condition, timeout, message=message)
    finally:
        await rig.source.stop()


@pytest.mark.parametrize("via", ["sqs", "sns", "eventbridge"])
async def test_cloudtrail_objects_become_one_event_per_record(
        tmp_path: Path, moto: MotoServer, via: str) -> None:
    bucket = LogBucket(moto, via=via)
    bucket.put(cloudtrail_key(1), cloudtrail_file([cloudtrail_record(i) for i in range(3)]))
    bucket.put(cloudtrail_key(2), cloudtrail_file([cloudtrail_record(3)]))
    rig = SourceRig(tmp_path, s3_settings(bucket, moto))
    await run_until(rig, lambda: len(rig.events()) == 4 and bucket.empty(),
                    "4 events and an empty queue")
    events = sorted(rig.events(), key=lambda e: e["eventID"])
    assert [e["requestParameters"]["instancesSet"]["items"][0]["instanceId"]
            for e in events] == ["i-00000000", "i-00000001", "i-00000002", "i-00000003"]
    first = events[0]
    assert first["eventName"] == "StopInstances" and first["userIdentity"]["userName"] == "Alice"
    assert first["vigil.tenant"] == "demo" and first["vigil.dataset"] == "aws.s3"
    assert first["vigil.origin"] == f"s3://{bucket.bucket}/{cloudtrail_key(1)}"
    # Two object notifications, plus the s3:TestEvent S3 sends when notifications are set up.
    received = rig.metric("vigil_component_pulled_messages_total", result="received")
    assert received >= 2
    assert rig.metric("vigil_component_pulled_messages_total", result="acknowledged") == received
    assert rig.metric("vigil_component_received_events_total", tenant="demo") == 4


async def test_ndjson_text_and_excluded_keys(tmp_path: Path, moto: MotoServer) -> None:
    bucket = LogBucket(moto)
    bucket.put("app/events.ndjson.gz", gzip.compress(
        b'{"user": "ann", "n": 1}\n{broken\n\n{"user": "bob", "n": 2}\n'))
    bucket.put("lb/access.log", b"line one\r\nline two\n")
    bucket.put("AWSLogs/1/CloudTrail-Digest/us-east-1/digest.json.gz",
               gzip.compress(b'{"digestStartTime": "x"}'))
    rig = SourceRig(tmp_path, s3_settings(bucket, moto, dataset="app"))
    await run_until(rig, lambda: len(rig.events()) == 5 and bucket.empty(), "5 events")
    by_origin: dict[str, list[dict[str, Any]]] = {}
    for event in rig.events():
        by_origin.setdefault(event["vigil.origin"].rsplit("/", 1)[1], []).append(event)
    ndjson = by_origin["events.ndjson.gz"]
    assert [e.get("user") for e in ndjson] == ["ann", None, "bob"]
    assert ndjson[1]["message"] == "{broken" and PARSE_ERROR in ndjson[1]
    assert [e["message"] for e in by_origin["access.log"]] == ["line one", "line two"]
    assert "digest.json.gz" not in by_origin
    assert rig.metric("vigil_component_discarded_events_total", reason="excluded") == 1
    assert rig.metric("vigil_component_errors_total", error_type="parse",
                      stage="receive") == 1


async def test_corrupt_object_dead_lettered_once_at_the_last_attempt_and_redriven(
        tmp_path: Path, moto: MotoServer) -> None:
    """maxReceiveCount 2: the first failure only retries; the second journals one dead-letter
    record with bucket, key and error, and SQS moves the message to the dead-letter queue."""
    bucket = LogBucket(moto, max_receive_count=2)
    key = "AWSLogs/corrupt.json.gz"
    bucket.put(key, b"\x1f\x8b\x08\x00" + b"not gzip at all" * 10)
    rig = SourceRig(tmp_path, s3_settings(bucket, moto))
    assert bucket.dlq_url is not None
    await run_until(rig, lambda: bucket.counts(bucket.dlq_url)[0] == 1,
                    "the message in the SQS dead-letter queue")
    (record,) = rig.events()
    assert record["aws.s3.bucket.name"] == bucket.bucket and record["aws.s3.object.key"] == key
    assert "not valid gzip" in record["error.message"]
    assert record["aws.sqs.receive_count"] == 2
    assert record[SOURCE_FAILURE].startswith(f"s3://{bucket.bucket}/{key}: not valid gzip")
    assert rig.metric("vigil_component_pulled_messages_total", result="failed") == 2
    assert bucket.counts() == (0, 0)
    (kept,) = bucket.sqs.receive_message(QueueUrl=bucket.dlq_url)["Messages"]
    assert key.split("/")[1] in kept["Body"]


async def test_without_redrive_policy_the_message_is_deleted_after_the_dead_letter(
        tmp_path: Path, moto: MotoServer) -> None:
    bucket = LogBucket(moto)
    bucket.put("bad.json", b'{"Records": [1, ')
    bucket.sqs.send_message(QueueUrl=bucket.queue_url, MessageBody="hello, not an S3 event")
    rig = SourceRig(tmp_path, s3_settings(bucket, moto, format="json", max_receive_count=1))
    await run_until(rig, lambda: len(rig.events()) == 2 and bucket.empty(),
                    "two dead letters and an empty queue")
    reasons = sorted(e[SOURCE_FAILURE] for e in rig.events())
    assert reasons[0].startswith("SQS message: message body is not JSON")
    assert reasons[1].startswith(f"s3://{bucket.bucket}/bad.json: not a JSON document")
    assert [e["message"] for e in rig.events() if "message" in e] == ["hello, not an S3 event"]


async def test_visibility_renewed_while_the_journal_is_full(tmp_path: Path,
                                                            moto: MotoServer) -> None:
    """An object of 30 records, appended 5 at a time into a queue bounded at 10: the source
    pauses mid-object with the message in hand, renews its visibility timeout (2 s) so nobody
    else can receive it, and finishes once the queue drains; then the message is deleted."""
    bucket = LogBucket(moto, visibility_timeout=2)
    queue = MemoryQueue(10)
    bucket.put(cloudtrail_key(7), cloudtrail_file([cloudtrail_record(i) for i in range(30)]))
    rig = SourceRig(tmp_path, s3_settings(bucket, moto, visibility_timeout_seconds=2,
                                          batch_events=5), queue=queue)
    await rig.source.start()
    drained: list[dict[str, Any]] = []

    def drain() -> None:
        while (batch := queue.read_nowait(100)) is not None:
            drained.extend(batch.events)
            queue.ack(batch.partition, batch.last_offset)

    try:
        await wait_until(lambda: rig.metric("vigil_component_pull_lease_extensions_total") >= 2,
                         10, message="two visibility renewals")
        assert queue.over_bound() and queue.pending() == 10
        other = bucket.sqs.receive_message(QueueUrl=bucket.queue_url, WaitTimeSeconds=0)
        assert other.get("Messages", []) == []
        assert bucket.counts() == (0, 1)
        await wait_until(lambda: (drain(), len(drained) == 30 and bucket.empty())[1], 10,
                         message="every record journaled and the message deleted")
    finally:
        await rig.source.stop()
    assert sorted(e["eventID"] for e in drained) == sorted(
        cloudtrail_record(i)["eventID"] for i in range(30))


async def test_backoff_on_an_unreachable_endpoint_then_clean_stop(tmp_path: Path) -> None:
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) > 50:
            raise AssertionError("no stop")

    settings = {"type": "s3_sqs", "tenant": "demo",
                "queue_url": "http://127.0.0.1:9/000000000000/nowhere",
                "aws": {"endpoint_url": "http://127.0.0.1:9", "region": "us-east-1"},
                "backoff": {"initial_seconds": 1, "max_seconds": 8}}
    rig = SourceRig(tmp_path, settings, sleep=sleep)
    await rig.source.start()
    await wait_until(lambda: len(delays) >= 5, 60, message="five retries")
    await rig.source.stop()
    assert rig.metric("vigil_component_pull_retries_total", operation="connect") >= 5
    steps = [1, 2, 4, 8, 8]
    assert all(step / 2 <= d <= step for step, d in zip(steps, delays[:5], strict=True))


async def test_role_assumed_through_sts(tmp_path: Path, moto: MotoServer) -> None:
    bucket = LogBucket(moto)
    bucket.put(cloudtrail_key(9), cloudtrail_file([cloudtrail_record(9)]))
    settings = s3_settings(bucket, moto)
    settings["aws"]["role_arn"] = "arn:aws:iam::123456789012:role/vigil-reader"
    settings["aws"]["external_id"] = "tenant-demo"
    rig = SourceRig(tmp_path, settings)
    await run_until(rig, lambda: len(rig.events()) == 1 and bucket.empty(), "one event")
    frozen = rig.source.s3._request_signer._credentials.get_frozen_credentials()  # type: ignore[attr-defined]
    assert frozen.access_key.startswith("ASIA") and frozen.token  # temporary STS keys
    assert json.loads(json.dumps(rig.source.health()))["connected"] is True


async def test_organization_trail_routed_by_account(tmp_path: Path, moto: MotoServer) -> None:
    """One bucket for several clients: each record goes to the tenant of its account, a record
    of an unknown account to _quarantine, never to another tenant."""
    bucket = LogBucket(moto)
    records = [cloudtrail_record(1, recipientAccountId="111111111111"),
               cloudtrail_record(2, recipientAccountId="222222222222"),
               cloudtrail_record(3, recipientAccountId="999999999999")]
    bucket.put(cloudtrail_key(1), cloudtrail_file(records))
    settings = s3_settings(bucket, moto)
    del settings["tenant"]
    settings["routes"] = [
        {"tenant": "demo", "field": "recipientAccountId", "patterns": ["111111111111"]},
        {"tenant": "acme", "field": "recipientAccountId", "patterns": ["222222222222"]}]
    rig = SourceRig(tmp_path, settings)
    await run_until(rig, lambda: len(rig.events("_quarantine")) == 1 and bucket.empty(),
                    "three records routed")
    assert [e["recipientAccountId"] for e in rig.events("demo")] == ["111111111111"]
    assert [e["recipientAccountId"] for e in rig.events("acme")] == ["222222222222"]
    assert rig.metric("vigil_component_quarantined_events_total") == 1
