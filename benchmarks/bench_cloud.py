"""Events per second through each pulled cloud source, in-process, into a MemoryQueue that a
task drains and acknowledges (no pipelines, no sinks): notification or stream handling,
download, decompression, decoding, routing and the cloud acknowledgement.

- s3_sqs: gzipped CloudTrail files in a bucket of a moto server (a subprocess on loopback),
  announced on SQS; done when every record is queued and the queue is empty (deleted).
- pubsub: LogEntries published beforehand to Google's Pub/Sub emulator (skipped when absent);
  done when every message is acknowledged.
- eventhubs: diagnostic-settings bodies (`records` arrays) in the in-memory hub of the tests'
  consumer boundary (no AMQP: the library's event processor, decoding and the file checkpoint
  store are what is measured); done when every event is checkpointed.

The servers share the machine's two cores with the source, so the figures are lower bounds of
the source and mostly measure the stand-ins (moto's Python S3, the Java emulator).

    .venv/bin/python -m benchmarks.bench_cloud [--records N]

The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


async def drain(queue: Any, stop: asyncio.Event) -> None:
    while not stop.is_set():
        batch = queue.read_nowait(10_000)
        if batch is None:
            await asyncio.sleep(0.005)
            continue
        queue.ack(batch.partition, batch.last_offset)


async def measure(rig: Any, done: Callable[[], bool], events: int, timeout: float = 600
                  ) -> dict[str, Any]:
    stop = asyncio.Event()
    drainer = asyncio.create_task(drain(rig.queue, stop))
    started = time.perf_counter()
    await rig.source.start()
    deadline = started + timeout
    while not done():
        if time.perf_counter() > deadline:
            raise TimeoutError("the source did not finish")
        await asyncio.sleep(0.01)
    seconds = time.perf_counter() - started
    await rig.source.stop()
    stop.set()
    await drainer
    received = rig.metric("vigil_component_received_events_total", tenant="demo")
    return {"events": events, "received": int(received), "seconds": round(seconds, 3),
            "events_per_second": round(events / seconds)}


def received(rig: Any) -> float:
    return float(rig.metric("vigil_component_received_events_total", tenant="demo"))


async def bench_s3(tmp: Path, records: int) -> dict[str, Any]:
    from cloud.moto_rig import (
        AWS_ENV,
        LogBucket,
        MotoServer,
        cloudtrail_file,
        cloudtrail_key,
        cloudtrail_record,
    )
    from cloud.rig import SourceRig

    os.environ.update(AWS_ENV)
    server = MotoServer()
    try:
        bucket = LogBucket(server)
        per_object = 5000
        objects = max(1, records // per_object)
        for n in range(objects):
            bucket.put(cloudtrail_key(n), cloudtrail_file(
                [cloudtrail_record(n * per_object + i) for i in range(per_object)]))
        rig = SourceRig(tmp, {"type": "s3_sqs", "tenant": "demo", "queue_url": bucket.queue_url,
                              "aws": {"endpoint_url": server.url, "region": "us-east-1"},
                              "wait_time_seconds": 1})
        total = objects * per_object
        result = await measure(rig, lambda: received(rig) >= total and bucket.empty(), total)
        return {**result, "objects": objects}
    finally:
        server.stop()


async def bench_pubsub(tmp: Path, records: int) -> dict[str, Any]:
    from cloud.pubsub_rig import PubSubEmulator, Topic, audit_entry, emulator_binary
    from cloud.rig import SourceRig

    if emulator_binary() is None:
        return {"skipped": "Pub/Sub emulator not installed"}
    emulator = PubSubEmulator(tmp)
    try:
        os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
        topic = Topic(emulator)
        messages = min(records, 20_000)
        for start in range(0, messages, 1000):
            topic.publish(*(json.dumps(audit_entry(i)).encode()
                            for i in range(start, min(messages, start + 1000))))
        rig = SourceRig(tmp, {"type": "pubsub", "tenant": "demo",
                              "subscription": topic.subscription})
        return await measure(rig, lambda: rig.metric(
            "vigil_component_pulled_messages_total", result="acknowledged") >= messages,
            messages)
    finally:
        emulator.stop()
        os.environ.pop("PUBSUB_EMULATOR_HOST", None)


async def bench_eventhubs(tmp: Path, records: int) -> dict[str, Any]:
    from cloud.eventhubs_rig import CONNECTION_STRING, FakeHub
    from cloud.rig import SourceRig

    from collector.sources.azure.source import library_client

    os.environ["VIGIL_BENCH_EH"] = CONNECTION_STRING
    hub = FakeHub(partitions=4)
    per_event = 100
    bodies = max(4, records // per_event)
    record = {"time": "2024-05-14T09:30:00Z", "category": "Administrative",
              "operationName": "MICROSOFT.COMPUTE/VIRTUALMACHINES/DELETE",
              "resourceId": "/SUBSCRIPTIONS/S1/RESOURCEGROUPS/RG", "resultType": "Success"}
    body = json.dumps({"records": [record] * per_event}).encode()
    for n in range(bodies):
        hub.send(str(n % 4), body)
    rig = SourceRig(tmp, {"type": "eventhubs", "tenant": "demo", "eventhub_name": "logs",
                          "connection": {"connection_string_env": "VIGIL_BENCH_EH"},
                          "max_wait_seconds": 0.2, "load_balancing_interval_seconds": 1},
                    client_factory=lambda c, s, st: hub.attach(library_client(c, s, st)))
    total = bodies * per_event
    return {**await measure(rig, lambda: received(rig) >= total and rig.metric(
        "vigil_component_pulled_messages_total", result="acknowledged") >= bodies, total),
        "partitions": 4}


async def main(records: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, bench in (("s3_sqs", bench_s3), ("pubsub", bench_pubsub),
                        ("eventhubs", bench_eventhubs)):
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = await bench(Path(tmp), records)
        print(f"{name}: {results[name]}", flush=True)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    print(json.dumps({"bench": "cloud", "records": args.records,
                      "results": asyncio.run(main(args.records))}))
