"""A gzip body of many empty members: answered within bounded time (inflating is linear, the
number of members is bounded, the work is off the event loop) while /healthz keeps answering
within 100 ms; an ordinary multi-member body still goes through."""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from support.daemon import VigilProcess, lake_count, wait_for, write_conf

TOKEN = "gzip-token-0123456789abcdef"


@pytest.fixture
def daemon(tmp_path: Path):
    write_conf(tmp_path / "conf.d", {
        "vigil": {"control": {"address": "127.0.0.1:0"}},
        "tenants": {"demo": {"name": "Demo"}},
        "sources": {"http": {"type": "http", "address": "127.0.0.1:0", "tenant": "demo",
                             "tokens": {"demo": {"tenant": "demo", "sha256": hashlib.sha256(
                                 TOKEN.encode()).hexdigest()}}}},
        "sinks": {"lake": {"type": "parquet_lake", "flush": {"max_seconds": 0.2}}},
    })
    process = VigilProcess(tmp_path / "conf.d", tmp_path / "data").start()
    yield process
    process.kill()


def post_gzip(daemon: VigilProcess, body: bytes) -> tuple[int, dict[str, Any]]:
    host, port = daemon.source_address("http")
    request = urllib.request.Request(
        f"http://{host}:{port}/v1/logs", data=body, method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Encoding": "gzip"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def healthz_latency(daemon: VigilProcess) -> float:
    started = time.monotonic()
    status, _ = daemon.http("/healthz", timeout=30)
    assert status == 200
    return time.monotonic() - started


def test_empty_member_bomb_is_answered_quickly_and_the_daemon_stays_responsive(
        daemon: VigilProcess) -> None:
    bomb = gzip.compress(b"") * (4 * 1024 * 1024 // 20)  # ~4 MB of empty members
    result: dict[str, Any] = {}

    def send() -> None:
        started = time.monotonic()
        result["reply"] = post_gzip(daemon, bomb)
        result["seconds"] = time.monotonic() - started

    sender = threading.Thread(target=send)
    sender.start()
    latencies = []
    while sender.is_alive():
        latencies.append(healthz_latency(daemon))
        time.sleep(0.01)
    sender.join()
    status, reply = result["reply"]
    assert status in (400, 413), reply
    assert "member" in json.dumps(reply)
    assert result["seconds"] < 5, result["seconds"]
    assert max(latencies, default=0.0) < 0.1, max(latencies)


def test_padding_and_many_members_up_to_the_bound_still_inflate(daemon: VigilProcess) -> None:
    body = b"".join(gzip.compress(json.dumps({"n": i}).encode() + b"\n") for i in range(50))
    status, reply = post_gzip(daemon, body + b"\0" * 16)
    assert status == 200 and reply == {"accepted": 50}, reply
    wait_for(lambda: lake_count(daemon.data_dir) == 50, 20, message="50 events in the lake")


def test_large_ordinary_body_inflates_off_the_loop(daemon: VigilProcess) -> None:
    lines = b"".join(json.dumps({"n": i, "pad": "x" * 200}).encode() + b"\n"
                     for i in range(20000))
    status, reply = post_gzip(daemon, gzip.compress(lines))
    assert status == 200 and reply == {"accepted": 20000}, reply
