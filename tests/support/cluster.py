"""A Vigil cluster on loopback: one conf.d per process (the same sections; only `vigil.role`
and `vigil.cluster.node_id` differ), a real nats-server and a moto S3 bucket for the lake;
helpers that read the lake from the bucket and JetStream's state."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from support.crash import TOKENS, lake_ids
from support.daemon import REPO, VigilProcess, write_conf

BUCKET = "vigil-lake"


def cluster_conf(tmp_path: Path, name: str, role: str, nats_url: str, s3_url: str,
                 bucket: str = BUCKET, tokens: dict[str, str] | None = None,
                 flush: dict[str, float] | None = None, **cluster: Any) -> Path:
    """The crash harness's configuration (two tenants, HTTP with tokens, TCP syslog, the Linux
    auth pipeline and built-in rules) in `role`, the lake on S3; `tokens` (tenant -> HTTP
    token) replaces the two tenants, `flush` the lake's flush policy."""
    conf = tmp_path / f"conf-{name}"
    tokens = tokens or TOKENS
    write_conf(conf, {
        "vigil": {"role": role, "control": {"address": "127.0.0.1:0"},
                  "detection": {"state_interval": "1s"},
                  "cluster": {"servers": [nats_url], "node_id": name, "lease_seconds": 3,
                              **cluster}},
        "tenants": {tenant: {"name": tenant.title()} for tenant in tokens},
        "sources": {
            "syslog_tcp": {"type": "syslog_tcp", "address": "127.0.0.1:0", "tenant": "demo"},
            "http": {"type": "http", "address": "127.0.0.1:0", "dataset": "json", "tokens": {
                tenant: {"tenant": tenant, "sha256": hashlib.sha256(token.encode()).hexdigest()}
                for tenant, token in tokens.items()}},
        },
        "sinks": {"lake": {"type": "s3_lake", "bucket": bucket, "prefix": "lake/",
                           "aws": {"endpoint_url": s3_url, "region": "us-east-1"},
                           "flush": flush or {"max_rows": 2000, "max_seconds": 0.3}}},
    })
    shutil.copy(REPO / "conf.d" / "30-linux-auth.yaml", conf / "30-linux-auth.yaml")
    shutil.copytree(REPO / "conf.d" / "enrich", conf / "enrich")
    return conf


def bucket_lake(s3: Any, target: Path, bucket: str = BUCKET) -> Counter[str]:
    """The bucket's lake downloaded under `target`/lake; ids counted like the local lake's."""
    shutil.rmtree(target, ignore_errors=True)
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix="lake/"):
        for item in page.get("Contents", ()):
            path = target / item["Key"]
            path.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, item["Key"], str(path))
    return lake_ids(target)


def shard_owners(workers: list[VigilProcess]) -> dict[str, VigilProcess]:
    """`tenant.shard` -> the worker whose /readyz lists it."""
    owners = {}
    for worker in workers:
        if worker.proc is None or worker.proc.poll() is not None:
            continue
        _, ready = worker.readyz()
        for shard in (ready.get("cluster") or {}).get("shards") or {}:
            owners[shard] = worker
    return owners


def js_call(url: str, fn: Any) -> Any:
    """`await fn(js)` on a fresh connection (test-side reads of JetStream)."""
    async def run() -> Any:
        import nats

        nc = await nats.connect(url)
        try:
            return await fn(nc.jetstream())
        finally:
            await nc.close()

    return asyncio.run(run())


def stream_drained(url: str, stream: str = "VIGIL") -> bool:
    """Every shard consumer has acknowledged everything its subject holds."""
    async def check(js: Any) -> bool:
        consumers = await js.consumers_info(stream)
        if not consumers:
            return False
        return all(c.num_pending == 0 and c.num_ack_pending == 0 for c in consumers)

    result: bool = js_call(url, check)
    return result


def kv_value(url: str, bucket: str, key: str) -> bytes | None:
    async def get(js: Any) -> bytes | None:
        from nats.js.errors import KeyNotFoundError

        kv = await js.key_value(bucket)
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            return None
        value: bytes | None = entry.value
        return value

    found: bytes | None = js_call(url, get)
    return found
