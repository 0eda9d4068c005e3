"""`vigil cluster status`: what JetStream says about the cluster: the processes whose
heartbeat is alive (role, host), each tenant shard with its owner and its consumer's lag, and
the streams' usage."""

from __future__ import annotations

from typing import Any

import orjson

from collector.cluster.stream import alerts_stream, connect
from collector.config.models import ClusterConfig


async def cluster_status(config: ClusterConfig) -> dict[str, Any]:
    from nats.js.errors import NoKeysError

    streams = await connect(config, "vigil-cluster-status", buckets=True)
    try:
        js, leases = streams.js, streams.leases
        try:
            keys = sorted(await leases.keys())
        except NoKeysError:
            keys = []
        processes: list[dict[str, Any]] = []
        owners: dict[str, str] = {}
        for key in keys:
            kind, _, rest = key.partition(".")
            try:
                entry = await leases.get(key)
            except Exception:
                continue  # expired meanwhile
            if kind == "shard":
                owners[rest] = (entry.value or b"").decode()
            else:
                info = orjson.loads(entry.value or b"{}")
                processes.append({"role": kind, "node": rest, **info})
        shards: list[dict[str, Any]] = []
        lag: dict[str, int] = {}
        for consumer in await js.consumers_info(config.stream):
            subject = consumer.config.filter_subject or ""
            parts = subject.split(".")
            if len(parts) != 4:
                continue
            tenant, shard = parts[2], parts[3]
            pending = consumer.num_pending or 0
            unacked = consumer.num_ack_pending or 0
            lag[tenant] = lag.get(tenant, 0) + pending + unacked
            shards.append({"shard": f"{tenant}.{shard}", "owner": owners.get(f"{tenant}.{shard}"),
                           "pending_records": pending, "unacknowledged_records": unacked,
                           "acknowledged_sequence": consumer.ack_floor.stream_seq
                           if consumer.ack_floor else 0})
        usage = {}
        for name in (config.stream, alerts_stream(config)):
            state = (await js.stream_info(name)).state
            usage[name] = {"messages": state.messages, "bytes": state.bytes,
                           "first_sequence": state.first_seq, "last_sequence": state.last_seq}
        return {"processes": processes, "shards": sorted(shards, key=lambda s: s["shard"]),
                "lag_records": dict(sorted(lag.items())), "streams": usage}
    finally:
        await streams.nc.close()
