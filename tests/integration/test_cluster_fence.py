"""A worker paused past its shard lease (a GC pause, a frozen VM: SIGSTOP here) while it holds
uncommitted rows: another worker takes the shard over and writes those records from the
stream; when the paused one wakes, it must not commit its copy (other file names: the rows
would be in the lake twice). Real `nats-server -js`, moto S3, every role an OS process."""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from pathlib import Path

from cloud.moto_rig import AWS_ENV, MotoServer
from support.cluster import BUCKET, bucket_lake, cluster_conf, stream_drained
from support.crash import TOKENS
from support.daemon import VigilProcess, wait_for
from support.nats import NatsServer, nats_server_binary


def post(collector: VigilProcess, ids: list[str]) -> None:
    body = "\n".join(json.dumps({"id": i, "message": f"http {i}"}) for i in ids).encode()
    request = urllib.request.Request(
        "http://{}:{}/v1/logs".format(*collector.source_address("http")), data=body,
        method="POST", headers={"Authorization": f"Bearer {TOKENS['demo']}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def shard(worker: VigilProcess, name: str) -> dict | None:
    found: dict | None = ((worker.readyz()[1].get("cluster") or {}).get("shards") or {}).get(name)
    return found


def test_a_worker_paused_past_its_lease_does_not_commit_what_the_next_owner_wrote(
        tmp_path: Path) -> None:
    nats_server_binary()
    moto = MotoServer()
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    nats = NatsServer(tmp_path / "nats")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **AWS_ENV}

    def process(name: str, role: str, flush: dict[str, float] | None = None) -> VigilProcess:
        conf = cluster_conf(tmp_path, name, role, nats.url, moto.url, flush=flush,
                            lease_seconds=2)
        return VigilProcess(conf, tmp_path / f"data-{name}", env=env)

    collector = process("collector0", "collector")
    # The paused worker buffers its rows for 6 s. It holds record A; the next owner gets A and
    # B (sent during the pause) within one flush, so its file is named by A's first offset and
    # B's last, not A's: the paused worker's file would not overwrite it but add to it.
    paused = process("worker0", "worker", {"max_rows": 2000, "max_seconds": 6})
    successor = process("worker1", "worker", {"max_rows": 2000, "max_seconds": 1})
    first, second = [f"demo-a{n}" for n in range(50)], [f"demo-b{n}" for n in range(50)]
    ids = first + second
    try:
        collector.start(timeout=120)
        paused.start(timeout=120)
        wait_for(lambda: shard(paused, "demo.0") is not None, timeout=30,
                 message="demo's shard on the first worker")
        post(collector, first)  # answered once JetStream stored it
        wait_for(lambda: (shard(paused, "demo.0") or {}).get("delivered", 0) >= 1
                 and paused.readyz()[1]["sinks"]["lake"]["buffered_events"] >= 50,
                 timeout=30, message="the record buffered by the first worker")
        assert paused.proc is not None
        os.kill(paused.proc.pid, signal.SIGSTOP)
        assert not list(s3.list_objects_v2(Bucket=BUCKET).get("Contents", ())), \
            "the first worker committed before the pause: the scenario did not happen"
        post(collector, second)
        successor.start(timeout=120)
        wait_for(lambda: shard(successor, "demo.0") is not None, timeout=30,
                 message="demo's shard taken over")
        wait_for(lambda: stream_drained(nats.url), timeout=60,
                 message="the successor wrote and acknowledged the record")
        os.kill(paused.proc.pid, signal.SIGCONT)
        wait_for(lambda: shard(paused, "demo.0") is None
                 and paused.readyz()[1]["sinks"]["lake"]["buffered_events"] == 0,
                 timeout=30, message="the woken worker giving the shard up")
        for proc in (paused, successor, collector):
            assert proc.stop(timeout=60) == 0, proc.log()[-3000:]
    finally:
        for proc in (collector, paused, successor):
            if proc.proc is not None and proc.proc.poll() is None:
                os.kill(proc.proc.pid, signal.SIGCONT)
            proc.kill()
        nats.stop()
        found = bucket_lake(s3, tmp_path / "bucket")
        moto.stop()
    assert [found[i] for i in ids] == [1] * len(ids), {i: found[i] for i in ids if found[i] != 1}
    assert "lost a shard lease" in paused.log()
