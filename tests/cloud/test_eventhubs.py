"""The Event Hubs source with the real azure-eventhub client and event processor, the service
replaced at the consumer boundary (see `cloud.eventhubs_rig`: the AMQP receive link and the
partition-id management call are in-memory): every partition read, `records` split,
checkpoints in the data directory written only after the journal append, a restart resuming
at the checkpoints, lag from the runtime information, backoff on link errors, no checkpoint
while the journal is full, a missing secret retried and never logged. The blob checkpoint
store runs against Azurite (a real Azure Storage emulator) when it is installed.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from cloud.azurite_rig import Azurite
from cloud.eventhubs_rig import CONNECTION_STRING, NAMESPACE, FakeHub
from cloud.rig import SourceRig
from support.daemon import wait_until

from collector.queue import MemoryQueue
from collector.sources.azure.checkpoints import FileCheckpointStore
from collector.sources.azure.source import library_client


def settings(**extra: Any) -> dict[str, Any]:
    return {"type": "eventhubs", "tenant": "demo", "eventhub_name": "logs",
            "connection": {"connection_string_env": "VIGIL_TEST_EH"},
            "max_wait_seconds": 0.2, "load_balancing_interval_seconds": 1,
            "backoff": {"initial_seconds": 0.05, "max_seconds": 0.2}, **extra}


def activity(n: int) -> dict[str, Any]:
    """An Azure activity log record as diagnostic settings export it."""
    return {"time": f"2024-05-14T09:30:{n:02d}Z", "category": "Administrative",
            "operationName": "MICROSOFT.COMPUTE/VIRTUALMACHINES/DELETE",
            "resourceId": f"/SUBSCRIPTIONS/S1/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.COMPUTE/"
                          f"VIRTUALMACHINES/VM{n}",
            "resultType": "Success", "callerIpAddress": "81.2.69.160",
            "identity": {"claims": {"name": "ann"}}}


def body(*numbers: int) -> bytes:
    return json.dumps({"records": [activity(n) for n in numbers]}).encode()


def rig_for(tmp_path: Path, hub: FakeHub, queue: Any = None, **extra: Any) -> SourceRig:
    return SourceRig(tmp_path, settings(**extra), queue=queue,
                     client_factory=lambda config, secret, store: hub.attach(
                         library_client(config, secret, store)))


@pytest.fixture(autouse=True)
def connection_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_TEST_EH", CONNECTION_STRING)


async def test_all_partitions_records_and_checkpoints(tmp_path: Path) -> None:
    hub = FakeHub(partitions=3)
    hub.send("0", body(0, 1), body(2))
    hub.send("1", body(3))
    hub.send("2", b"plain text event", b'{"not": "records"}')
    rig = rig_for(tmp_path, hub)
    await rig.source.start()
    try:
        await wait_until(lambda: len(rig.events()) == 6, 20, message="6 events")
        await wait_until(lambda: rig.metric("vigil_component_pulled_messages_total",
                                            result="acknowledged") == 5, 10,
                         message="5 checkpointed")
    finally:
        await rig.source.stop()
    events = rig.events()
    ops = sorted(e["resourceId"][-3:] for e in events if "resourceId" in e)
    assert ops == ["VM0", "VM1", "VM2", "VM3"]
    vm0 = next(e for e in events if e.get("resourceId", "").endswith("VM0"))
    assert vm0["identity"]["claims"]["name"] == "ann"
    assert vm0["vigil.origin"] == f"eventhubs://{NAMESPACE}/logs/0/0"
    assert vm0["@timestamp"].isoformat() == "2024-05-14T09:20:00+00:00"  # enqueued time
    assert {e.get("message") for e in events} >= {"plain text event"}
    store = FileCheckpointStore(tmp_path / "eventhubs" / "cloud")
    checkpoints = {c["partition_id"]: c["sequence_number"]
                   for c in await store.list_checkpoints(NAMESPACE, "logs", "$Default")}
    assert checkpoints == {"0": 1, "1": 0, "2": 1}
    assert rig.source.health()["partitions"]["0"]["lag"] == 0


async def test_restart_resumes_after_the_checkpoint(tmp_path: Path) -> None:
    hub = FakeHub(partitions=1)
    hub.send("0", body(0), body(1))
    first = rig_for(tmp_path, hub)
    await first.source.start()
    await wait_until(lambda: first.metric("vigil_component_pulled_messages_total",
                                          result="acknowledged") == 2, 20, message="2 checkpointed")
    await first.source.stop()
    hub.send("0", body(2))
    second = rig_for(tmp_path, hub)
    await second.source.start()
    try:
        await wait_until(lambda: len(second.events()) == 1, 20, message="the new event")
    finally:
        await second.source.stop()
    assert second.events()[0]["resourceId"].endswith("VM2")
    assert ("0", "100") in hub.consumers_created  # resumed from the checkpoint's offset


async def test_no_checkpoint_while_the_journal_is_full_and_lag(tmp_path: Path) -> None:
    hub = FakeHub(partitions=1)
    hub.send("0", *(body(n) for n in range(10)))
    queue = MemoryQueue(1)
    queue.append("demo", [{"message": "filler"}])
    rig = rig_for(tmp_path, hub, queue=queue, max_batch_size=4)
    await rig.source.start()
    try:
        await wait_until(lambda: rig.metric("vigil_component_pulled_messages_total",
                                            result="received") == 4, 20, message="a batch in hand")
        store = FileCheckpointStore(tmp_path / "eventhubs" / "cloud")
        assert await store.list_checkpoints(NAMESPACE, "logs", "$Default") == []
        batch = queue.read_nowait(10)
        assert batch is not None
        queue.ack("demo", batch.last_offset)
        await wait_until(lambda: rig.metric("vigil_component_pulled_messages_total",
                                            result="acknowledged") >= 4, 20, message="checkpointed")
        assert rig.metric("vigil_component_pull_backlog_messages") == 6
    finally:
        await rig.source.stop()


async def test_link_errors_back_off_and_recover(tmp_path: Path) -> None:
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)

    hub = FakeHub(partitions=1)
    hub.fail_receive["0"] = [ConnectionError("link detached"), ConnectionError("again")]
    hub.send("0", body(5))
    rig = SourceRig(tmp_path, settings(backoff={"initial_seconds": 2, "max_seconds": 8}),
                    sleep=sleep, client_factory=lambda c, s, st: hub.attach(
                        library_client(c, s, st)))
    await rig.source.start()
    try:
        await wait_until(lambda: len(rig.events()) == 1, 30,
                         message="the event after two link errors")
    finally:
        await rig.source.stop()
    assert rig.metric("vigil_component_pull_retries_total", operation="partition") == 2
    assert 1 <= delays[0] <= 2 and 2 <= delays[1] <= 4


async def test_missing_secret_is_retried_not_logged(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("VIGIL_TEST_EH")
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)
        await asyncio.sleep(0.01)

    hub = FakeHub(partitions=1)
    rig = SourceRig(tmp_path, settings(), sleep=sleep,
                    client_factory=lambda c, s, st: hub.attach(library_client(c, s, st)))
    await rig.source.start()
    await wait_until(lambda: len(delays) >= 2, 10, message="retries")
    monkeypatch.setenv("VIGIL_TEST_EH", CONNECTION_STRING)
    hub.send("0", body(1))
    await wait_until(lambda: len(rig.events()) == 1, 20,
                     message="the event once the secret is there")
    await rig.source.stop()
    errors = [getattr(r, "error", "") for r in caplog.records]
    assert "ValueError: environment variable VIGIL_TEST_EH is empty or not set" in errors
    assert not any("c2VjcmV0" in str(r.__dict__) for r in caplog.records)


async def test_file_store_claims_compare_etags(tmp_path: Path) -> None:
    """Two processors racing for a partition: the second claim, made with the etag both had
    listed, fails, as with the blob store; the file survives a new store instance."""
    store = FileCheckpointStore(tmp_path)
    base = {"fully_qualified_namespace": NAMESPACE, "eventhub_name": "logs",
            "consumer_group": "$Default", "partition_id": "0"}
    (first,) = await store.claim_ownership([{**base, "owner_id": "a", "etag": None}])
    assert await store.claim_ownership([{**base, "owner_id": "b", "etag": None}]) == []
    (renewed,) = await store.claim_ownership([{**base, "owner_id": "a",
                                               "etag": first["etag"]}])
    assert renewed["etag"] != first["etag"]
    await store.update_checkpoint({**base, "sequence_number": 7, "offset": "700"})
    again = FileCheckpointStore(tmp_path)
    assert [o["owner_id"] for o in await again.list_ownership(NAMESPACE, "logs", "$Default")] \
        == ["a"]
    (checkpoint,) = await again.list_checkpoints(NAMESPACE, "logs", "$Default")
    assert (checkpoint["sequence_number"], checkpoint["offset"]) == (7, "700")
    assert await again.list_checkpoints(NAMESPACE, "other", "$Default") == []


async def test_blob_checkpoint_store_on_azurite(tmp_path: Path, azurite: Azurite,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The blob checkpoint store option against Azurite (a real Azure Storage emulator over
    HTTP): ownership and checkpoints land in the container, read back by another store."""
    from azure.eventhub.extensions.checkpointstoreblobaio import BlobCheckpointStore
    from azure.eventhub.extensions.checkpointstoreblobaio._vendor.storage.blob.aio import (
        ContainerClient,
    )

    container = f"checkpoints-{uuid.uuid4().hex[:8]}"
    async with ContainerClient.from_connection_string(azurite.connection_string,
                                                      container) as client:
        await client.create_container()
    monkeypatch.setenv("VIGIL_TEST_BLOB", azurite.connection_string)
    hub = FakeHub(partitions=2)
    hub.send("0", body(0), body(1))
    hub.send("1", body(2))
    rig = rig_for(tmp_path, hub, checkpoint_store={
        "type": "blob", "container": container, "connection_string_env": "VIGIL_TEST_BLOB"})
    await rig.source.start()
    try:
        await wait_until(lambda: rig.metric("vigil_component_pulled_messages_total",
                                            result="acknowledged") == 3, 30,
                         message="3 checkpointed")
    finally:
        await rig.source.stop()
    async with BlobCheckpointStore.from_connection_string(azurite.connection_string,
                                                          container) as store:
        checkpoints = {c["partition_id"]: c["sequence_number"]
                       for c in await store.list_checkpoints(NAMESPACE, "logs", "$Default")}
        owners = await store.list_ownership(NAMESPACE, "logs", "$Default")
    assert checkpoints == {"0": 1, "1": 0}
    assert {o["partition_id"] for o in owners} == {"0", "1"}
    assert not (tmp_path / "eventhubs").exists()


async def test_claims_of_a_killed_run_do_not_block_the_restart(tmp_path: Path) -> None:
    """A daemon killed without releasing its partitions leaves fresh ownership claims in the
    file; the restarted source (load balancing every 1 s, so those claims would hold it off for
    ~6 s) reads at once from the checkpoint."""
    store = FileCheckpointStore(tmp_path / "eventhubs" / "cloud")
    base = {"fully_qualified_namespace": NAMESPACE, "eventhub_name": "logs",
            "consumer_group": "$Default"}
    await store.claim_ownership([{**base, "partition_id": "0", "owner_id": "killed-run",
                                  "etag": None}])
    await store.update_checkpoint({**base, "partition_id": "0", "sequence_number": 0,
                                   "offset": "0"})
    hub = FakeHub(partitions=1)
    hub.send("0", body(0), body(1))
    rig = rig_for(tmp_path, hub)
    started = asyncio.get_running_loop().time()
    await rig.source.start()
    try:
        await wait_until(lambda: len(rig.events()) == 1, 20,
                         message="the event after the checkpoint")
    finally:
        await rig.source.stop()
    assert asyncio.get_running_loop().time() - started < 4
    assert rig.events()[0]["resourceId"].endswith("VM1")
