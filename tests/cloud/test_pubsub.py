"""The Pub/Sub source in-process with the real client library against Google's Pub/Sub
emulator (a real gRPC server on loopback): LogEntries decoded, acknowledged once journaled,
held messages nacked on stop and redelivered, backoff when the subscription is missing, ack
deadlines extended while the journal is full.

Faked: Google Cloud itself (the emulator stands in for the service; it runs without
credentials). Vigil's queue is the MemoryQueue.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cloud.pubsub_rig import PROJECT, PubSubEmulator, Topic, audit_entry
from cloud.rig import SourceRig
from support.daemon import wait_until

from collector.queue import MemoryQueue
from core.events import PARSE_ERROR

pytestmark = pytest.mark.usefixtures("pubsub")


def settings(topic: Topic, **extra: Any) -> dict[str, Any]:
    return {"type": "pubsub", "tenant": "demo", "subscription": topic.subscription,
            "backoff": {"initial_seconds": 0.05, "max_seconds": 0.5}, **extra}


async def test_log_entries_acknowledged_after_journaling(tmp_path: Path,
                                                         pubsub: PubSubEmulator) -> None:
    topic = Topic(pubsub)
    ids = topic.publish(*(json.dumps(audit_entry(i)).encode() for i in range(20)),
                        **{"logging.googleapis.com/timestamp": "2024-05-14T09:30:00Z"})
    rig = SourceRig(tmp_path, settings(topic))
    await rig.source.start()
    try:
        await wait_until(lambda: rig.metric("vigil_component_pulled_messages_total",
                                            result="acknowledged") == 20, 20,
                         message="20 acknowledged")
    finally:
        await rig.source.stop()
    events = sorted(rig.events(), key=lambda e: e["insertId"])
    assert len(events) == 20
    first = events[0]
    assert first["protoPayload"]["methodName"] == "v1.compute.instances.insert"
    assert first["logName"].endswith("cloudaudit.googleapis.com%2Factivity")
    assert first["@timestamp"].isoformat() == "2024-05-14T09:30:00.123456+00:00"
    assert first["vigil.dataset"] == "gcp.pubsub" and first["vigil.tenant"] == "demo"
    assert {e["vigil.origin"] for e in events} == {
        f"pubsub://{topic.subscription}/{i}" for i in ids}
    assert topic.pull() == []  # nothing left to redeliver


async def test_formats(tmp_path: Path, pubsub: PubSubEmulator) -> None:
    topic = Topic(pubsub)
    topic.publish(b"plain text line", b"[1, 2]", b'{"a": 1}', b"\xff\xfe")
    rig = SourceRig(tmp_path, settings(topic, format="json"))
    await rig.source.start()
    try:
        await wait_until(lambda: len(rig.events()) == 4, 20, message="4 events")
    finally:
        await rig.source.stop()
    by_message = {e.get("message", "object"): e for e in rig.events()}
    assert by_message["object"]["a"] == 1
    assert by_message["plain text line"][PARSE_ERROR].startswith("invalid JSON")
    assert by_message["[1, 2]"][PARSE_ERROR] == "not a JSON object but an array"
    assert rig.metric("vigil_component_errors_total", error_type="parse", stage="receive") == 3


async def _holding(tmp_path: Path, pubsub: PubSubEmulator, count: int
                   ) -> tuple[Topic, SourceRig, MemoryQueue]:
    """A started source holding `count` published messages: its queue is already full."""
    topic = Topic(pubsub, ack_deadline=60)
    queue = MemoryQueue(1)
    queue.append("demo", [{"message": "filler"}])
    topic.publish(*(json.dumps(audit_entry(i)).encode() for i in range(count)))
    rig = SourceRig(tmp_path, settings(topic), queue=queue)
    await rig.source.start()
    try:
        await wait_until(lambda: rig.source.health()["held_messages"] == count, 20,
                         message=f"{count} held messages")
    except BaseException:
        await rig.source.stop()
        raise
    return topic, rig, queue


async def test_held_messages_nacked_on_stop_are_redelivered(tmp_path: Path,
                                                            pubsub: PubSubEmulator) -> None:
    """The queue is over its bound: messages are held (flow control), never acknowledged;
    stopping nacks them (ModifyAckDeadline 0 once the stream is closed, recorded on its way to
    the emulator), and another consumer gets them at once, not after the 60 s deadline.

    Google's emulator fails on the cancelled stream (a NoSuchMethodError in its RST_STREAM
    handling, in its log) and, in about one run in five, keeps the dead stream as a consumer:
    every redelivery then goes to it, past any deadline, and no other consumer ever gets the
    messages. The nack is therefore checked on the RPC; the redelivery is checked when the
    emulator gets it right and reported as an expected failure when it does not."""
    topic, rig, _ = await _holding(tmp_path, pubsub, 5)
    client = rig.source.client
    nacks: list[dict[str, Any]] = []
    modify = client.modify_ack_deadline
    client.modify_ack_deadline = lambda **kw: (nacks.append(kw), modify(**kw))[1]
    held = {m.ack_id for m in rig.source._in_hand} | {
        m.ack_id for m in list(rig.source._inbox._queue)}  # type: ignore[union-attr]
    await rig.source.stop()
    assert [(n["subscription"], set(n["ack_ids"]), n["ack_deadline_seconds"]) for n in nacks] \
        == [(topic.subscription, held, 0)] and len(held) == 5
    assert rig.metric("vigil_component_pulled_messages_total", result="released") == 5
    assert rig.metric("vigil_component_pulled_messages_total", result="acknowledged") == 0
    redelivered: list[Any] = []
    try:
        await wait_until(lambda: (redelivered.extend(topic.pull()), len(redelivered) >= 5)[1],
                         5, message="the nacked messages redelivered")
    except AssertionError:
        pytest.xfail("the emulator kept the cancelled stream as a consumer (see the docstring); "
                     f"{len(redelivered)} of 5 redelivered")
    assert sorted(json.loads(m.message.data)["insertId"] for m in redelivered) == [
        f"insert-{i}" for i in range(5)]


async def test_missing_subscription_backs_off(tmp_path: Path, pubsub: PubSubEmulator) -> None:
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)

    rig = SourceRig(tmp_path, {"type": "pubsub", "tenant": "demo",
                               "subscription": f"projects/{PROJECT}/subscriptions/nothing-here",
                               "backoff": {"initial_seconds": 1, "max_seconds": 4}},
                    sleep=sleep)
    await rig.source.start()
    try:
        await wait_until(lambda: len(delays) >= 4, 30, message="four retries")
    finally:
        await rig.source.stop()
    assert rig.metric("vigil_component_pull_retries_total", operation="subscribe") >= 4
    assert all(step / 2 <= d <= step for step, d in zip([1, 2, 4, 4], delays, strict=False))
    assert rig.source.health()["subscribed"] is False


@pytest.mark.slow
async def test_deadlines_extended_while_the_journal_is_full(tmp_path: Path,
                                                            pubsub: PubSubEmulator) -> None:
    """Held for 25 s with a 10 s ack deadline: the library keeps extending it, so a second
    consumer gets nothing; once there is room every message is journaled and acked once."""
    topic, rig, queue = await _holding(tmp_path, pubsub, 3)
    try:
        import asyncio
        import time

        deadline = time.monotonic() + 25
        while time.monotonic() < deadline:
            assert await asyncio.to_thread(topic.pull) == []
        batch = queue.read_nowait(10)
        assert batch is not None
        queue.ack("demo", batch.last_offset)
        await wait_until(lambda: rig.metric("vigil_component_pulled_messages_total",
                                            result="acknowledged") == 3, 20,
                         message="3 acknowledged")
    finally:
        await rig.source.stop()
    assert sorted(e["insertId"] for e in rig.events()) == ["insert-0", "insert-1", "insert-2"]
