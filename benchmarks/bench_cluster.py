"""The cluster roles on NATS JetStream (docs/scale-out.md): worker throughput with 1, 2 and 3
worker processes, and the JetStream publish overhead per event. Prints JSON.

Workers: a collector process journals and publishes `--events` syslog lines of the benchmark
mix for three tenants (TCP, one listener each) while no worker runs; then k workers start and
the time from the first shard a worker took (its log's stamp) to the stream drained (every
record processed, its lake file committed, acknowledged) gives events/s. The lake is local
Parquet (S3 would measure moto).
Publish overhead: journal-style payloads (msgpack records of `--record-events` events) to a
real nats-server through the collector's pipelined `publish_async` with deduplication ids,
against encoding alone.

    python -m benchmarks.bench_cluster [--events 60000] [--workers 1,2,3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.harness import tree_cpu_seconds
from benchmarks.workload import syslog_lines
from tests.support.daemon import REPO, VigilProcess, wait_for, write_conf

# tests/support's cluster helpers import their siblings as `support.*` (pytest's pythonpath).
sys.path.insert(0, str(REPO / "tests"))
from support.cluster import js_call  # noqa: E402
from support.nats import NatsServer  # noqa: E402

TENANTS = ("t1", "t2", "t3")


def source_id(tenant: str) -> str:
    # The shipped Linux auth file's tests name `syslog_tcp`: the first tenant's listener.
    return "syslog_tcp" if tenant == TENANTS[0] else f"tcp_{tenant}"


def conf(workdir: Path, name: str, role: str, url: str) -> Path:
    path = workdir / f"conf-{name}"
    write_conf(path, {
        "vigil": {"role": role, "control": {"address": "127.0.0.1:0"}, "workers": 1,
                  "detection": {"state_interval": "2s"},
                  "cluster": {"servers": [url], "node_id": name, "lease_seconds": 1,
                              "max_ack_pending": 256}},
        "tenants": {t: {"name": t} for t in TENANTS},
        "sources": {source_id(t): {"type": "syslog_tcp", "address": "127.0.0.1:0", "tenant": t}
                    for t in TENANTS},
        "sinks": {"lake": {"type": "parquet_lake",
                           "flush": {"max_rows": 20000, "max_seconds": 1.0}}},
    })
    shutil.copy(REPO / "conf.d" / "30-linux-auth.yaml", path / "30-linux-auth.yaml")
    shutil.copytree(REPO / "conf.d" / "enrich", path / "enrich")
    return path


def workers_run(workdir: Path, events: int, count: int) -> dict[str, Any]:
    run = workdir / f"w{count}"
    nats = NatsServer(run / "nats")
    collector = VigilProcess(conf(run, "c", "collector", nats.url), run / "data-c").start()
    workers: list[VigilProcess] = []
    try:
        lines = syslog_lines(events)
        for index, tenant in enumerate(TENANTS):
            chunk = lines[index::len(TENANTS)]
            with socket.create_connection(collector.source_address(source_id(tenant))) as sock:
                sock.sendall(b"".join(line + b"\n" for line in chunk))
        wait_for(lambda: collector.readyz()[1]["cluster"]["published_records"] > 0
                 and collector.readyz()[1]["queue"]["pending_events"] == 0, timeout=300,
                 message="the collector's journal published")
        workers = [VigilProcess(conf(run, f"w{i}", "worker", nats.url), run / f"data-w{i}")
                   for i in range(count)]

        def start(worker: VigilProcess) -> float:
            # CPU from the worker's readiness on: it takes shards one lease period later.
            worker.start(timeout=120)
            assert worker.proc is not None
            return tree_cpu_seconds(worker.proc.pid)

        with ThreadPoolExecutor(count) as starts:
            cpu = sum(starts.map(start, workers))
        wait_for(lambda: drained(nats.url, len(TENANTS) + 1), timeout=600, interval=0.1,
                 message="the stream drained")
        ended = time.time()
        cpu = sum(tree_cpu_seconds(w.proc.pid) for w in workers if w.proc) - cpu
        # From the first shard a worker took (its log's stamp): nothing is processed before it;
        # shards taken later, or handed over to a worker that joined later, fall inside.
        taken = [datetime.fromisoformat(m.group(1)).timestamp() for w in workers
                 for line in w.log_lines if 'msg="shard taken"' in line
                 and (m := re.match(r"ts=(\S+)", line))]
        elapsed = ended - min(taken)
        return {"workers": count, "events": events, "seconds": round(elapsed, 2),
                "events_per_second": round(events / elapsed),
                "worker_cpu_us_per_event": round(cpu / events * 1e6, 1)}
    finally:
        for proc in [collector, *workers]:
            proc.kill()
        nats.stop()


def drained(url: str, shards: int) -> bool:
    """Every shard has its consumer and each has acknowledged everything (a consumer is
    recreated when its shard changes hands: until then the stream is not drained)."""
    async def check(js: Any) -> bool:
        consumers = await js.consumers_info("VIGIL")
        return len(consumers) == shards and all(
            c.num_pending == 0 and c.num_ack_pending == 0 for c in consumers)

    result: bool = js_call(url, check)
    return result


async def _publish(url: str, records: int, per_record: int) -> dict[str, Any]:
    import nats as nats_client

    from collector.cluster.stream import MSG_ID, ensure_streams
    from collector.config.models import ClusterConfig
    from collector.journal.codec import decode_events, encode_events
    from core.events import SOURCE, TENANT

    sample = [{"message": line.decode(), "log.syslog.appname": "sshd"}
              for line in syslog_lines(per_record)]
    payload = encode_events(sample, {TENANT: "t1", SOURCE: "tcp_t1"})
    started = time.perf_counter()
    for _ in range(records):
        decode_events(encode_events(decode_events(payload), {TENANT: "t1"}))
    codec = (time.perf_counter() - started) / records
    nc = await nats_client.connect(url)
    js = nc.jetstream()
    config = ClusterConfig(servers=[url], stream=f"BENCH{per_record}",
                           subject_prefix=f"bench{per_record}")
    await ensure_streams(config, js)
    subject = f"bench{per_record}.events.t1.0"
    started = time.perf_counter()
    sent = 0
    while sent < records:
        futures = [await js.publish_async(subject, payload, headers={MSG_ID: f"c:e:t1:{i}"})
                   for i in range(sent, min(records, sent + 256))]
        for future in futures:
            await future
        sent += len(futures)
    elapsed = time.perf_counter() - started
    await nc.close()
    return {"events_per_record": per_record, "records": records,
            "publish_us_per_record": round(elapsed / records * 1e6, 1),
            "publish_us_per_event": round(elapsed / (records * per_record) * 1e6, 2),
            "codec_us_per_event": round(codec / per_record * 1e6, 2),
            "payload_bytes_per_event": round(len(payload) / per_record)}


def publish_overhead(workdir: Path) -> list[dict[str, Any]]:
    nats = NatsServer(workdir / "nats-publish")
    try:
        return [asyncio.run(_publish(nats.url, records, size))
                for records, size in ((20000, 1), (2000, 20), (500, 200))]
    finally:
        nats.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--skip-workers", action="store_true")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    try:
        result: dict[str, Any] = {"cpus": os.cpu_count(), "publish": publish_overhead(workdir)}
        if not args.skip_workers:
            result["workers"] = [workers_run(workdir, args.events, int(k))
                                 for k in args.workers.split(",")]
        json.dump(result, sys.stdout, indent=2)
        print()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
