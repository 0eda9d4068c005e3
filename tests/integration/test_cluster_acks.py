"""When a collector of a cluster answers its senders (issue 19): HTTP 200 (and a cloud pull's
delete/ack, which go through the same `Source.deliver`) only once JetStream acknowledged the
publish; while NATS is unreachable, once the local journal has the events (they drain later).

A real `nats-server -js` on loopback and a collector process (`vigil.role: collector`); no
worker is needed: the test reads the stream itself.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from support.cluster import cluster_conf, js_call
from support.crash import TOKENS
from support.daemon import VigilProcess, wait_for
from support.nats import NatsServer, nats_server_binary

UNUSED_S3 = "http://127.0.0.1:9"  # collectors have no sinks: the workers write the lake


def post(collector: VigilProcess, ids: list[str], timeout: float = 30) -> tuple[int, float]:
    """POST NDJSON events to the collector's HTTP source; (status, seconds it took)."""
    body = "\n".join(json.dumps({"id": i, "message": f"http {i}"}) for i in ids).encode()
    request = urllib.request.Request(
        "http://{}:{}/v1/logs".format(*collector.source_address("http")), data=body,
        method="POST", headers={"Authorization": f"Bearer {TOKENS['demo']}"})
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, time.monotonic() - started


def stream_messages(url: str) -> int:
    async def count(js: Any) -> int:
        from nats.js.errors import NotFoundError

        try:
            info = await js.stream_info("VIGIL")
        except NotFoundError:
            return 0  # no collector has published yet
        return int(info.state.messages)

    found: int = js_call(url, count)
    return found


def test_http_200_comes_after_jetstream_stored_the_events(tmp_path: Path) -> None:
    """Every 200 is answered after the stream holds the request's record: 20 requests one
    after another, the stream read right after each answer (before, the answer came at the
    local fsync and the publish after it, so the stream lagged the answers)."""
    nats_server_binary()
    nats = NatsServer(tmp_path / "nats")
    collector = VigilProcess(cluster_conf(tmp_path, "collector0", "collector", nats.url,
                                          UNUSED_S3), tmp_path / "data")
    try:
        collector.start(timeout=120)
        wait_for(lambda: collector.readyz()[1].get("cluster", {}).get("published_records")
                 is not None, timeout=30, message="the collector's publisher")
        behind = []
        for n in range(20):
            status, _ = post(collector, [f"demo-a{n}"])
            assert status == 200
            stored = stream_messages(nats.url)
            if stored < n + 1:
                behind.append((n + 1, stored))
        assert behind == [], f"answered before JetStream stored the record: {behind}"
        assert collector.metric("vigil_cluster_sender_acks_total", after="jetstream") >= 20
    finally:
        collector.kill()
        nats.stop()


def test_http_200_falls_back_to_the_local_journal_while_nats_is_unreachable(
        tmp_path: Path) -> None:
    """NATS gone: the collector still answers (from its journal's fsync, once its publisher
    knows the stream is unreachable), says so in a metric, and publishes the events once NATS
    is back."""
    nats_server_binary()
    nats = NatsServer(tmp_path / "nats")
    collector = VigilProcess(cluster_conf(tmp_path, "collector0", "collector", nats.url,
                                          UNUSED_S3, publish_timeout_seconds=1.0),
                             tmp_path / "data")
    try:
        collector.start(timeout=120)
        assert post(collector, ["demo-b0"])[0] == 200
        nats.stop()
        statuses = [post(collector, [f"demo-b{n}"]) for n in range(1, 6)]
        assert [s for s, _ in statuses] == [200] * 5, statuses
        # The first waits for the publish to time out (1 s here); the rest do not wait.
        assert all(t < 5 for _, t in statuses[1:]), statuses
        wait_for(lambda: collector.readyz()[1]["cluster"]["failing"], timeout=30,
                 message="the publisher reporting NATS unreachable\n" + collector.log()[-3000:])
        assert collector.metric("vigil_cluster_sender_acks_total",
                                after="journal_unreachable") >= 1
        nats.start()  # same port, same store
        wait_for(lambda: stream_messages(nats.url) == 6, timeout=60,
                 message="the journal drained to the stream")
    finally:
        collector.kill()
        nats.stop()
