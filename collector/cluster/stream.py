"""The JetStream side every role shares: the connection, subject names (tenant ids validated
where they become subject tokens), the streams and key-value buckets, and record messages."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
from dataclasses import dataclass
from typing import Any

from collector.config.models import ClusterConfig
from core.config import is_tenant_id
from core.errors import VigilError

log = logging.getLogger(__name__)

QUARANTINE = "_quarantine"
# Buckets: shard leases and worker heartbeats (entries expire with the lease), detection
# checkpoints and consumer floors (kept).
LEASES_BUCKET = "vigil_leases"
STATE_BUCKET = "vigil_state"
# Message headers of a record.
MSG_ID = "Nats-Msg-Id"
HDR_COLLECTOR = "Vigil-Collector"
HDR_OFFSET = "Vigil-Offset"
# Stream sequence -> event offsets: event i of the record stored at sequence s is
# s * RECORD_SPAN + i, unique, increasing and stable across redeliveries.
RECORD_SPAN = 1 << 20
_NODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")


class ClusterError(VigilError):
    """A cluster setting or a name that cannot become a subject."""


def tenant_token(tenant: str) -> str:
    """A tenant id as a subject token: only the strict slug (or the quarantine partition), so
    no id can inject `.`, `*` or `>` into a subject."""
    if tenant != QUARANTINE and not is_tenant_id(tenant):
        raise ClusterError(f"tenant id {tenant!r} cannot be a subject token")
    return tenant


def events_subject(config: ClusterConfig, tenant: str, shard: int) -> str:
    return f"{config.subject_prefix}.events.{tenant_token(tenant)}.{int(shard)}"


def alerts_subject(config: ClusterConfig, tenant: str) -> str:
    return f"{config.subject_prefix}.alerts.{tenant_token(tenant)}"


def alerts_stream(config: ClusterConfig) -> str:
    return f"{config.stream}_ALERTS"


def consumer_name(tenant: str, shard: int) -> str:
    return f"shard_{tenant_token(tenant)}_{int(shard)}"


def lease_key(tenant: str, shard: int) -> str:
    return f"shard.{tenant_token(tenant)}.{int(shard)}"


def node_id(config: ClusterConfig, role: str, control_address: str) -> str:
    """This process's cluster name: configured, else host name and control port."""
    if config.node_id:
        return config.node_id
    port = control_address.rpartition(":")[2] or str(os.getpid())
    name = re.sub(r"[^A-Za-z0-9_-]", "_", f"{role}-{socket.gethostname()}-{port}")
    return name[:63] if _NODE_RE.fullmatch(name[:63]) else f"{role}-{os.getpid()}"


def shard_of(node: str, shards: int) -> int:
    """The shard a collector's records of a tenant go to: one per collector keeps each
    collector's records of a tenant in order on one subject."""
    import zlib

    return zlib.crc32(node.encode()) % shards


@dataclass
class Streams:
    """A connection with JetStream and the key-value buckets, set up idempotently."""

    nc: Any
    js: Any
    leases: Any = None
    state: Any = None


async def connect(config: ClusterConfig, name: str, *, buckets: bool = False,
                  connect_timeout: float = 2.0) -> Streams:
    """Connect (reconnecting forever in the background), create the streams if missing and,
    with `buckets`, the key-value buckets."""
    import nats

    async def error_cb(exc: Exception) -> None:
        log.debug("nats connection error", extra={"error": str(exc)})

    # With reconnection forever, nats-py's first connect also retries forever: bounded here,
    # so that a caller learns NATS is unreachable (a collector then answers its senders from
    # its journal and says so) instead of waiting without a word.
    try:
        nc = await asyncio.wait_for(nats.connect(
            servers=list(config.servers), name=name, connect_timeout=connect_timeout,
            max_reconnect_attempts=-1, reconnect_time_wait=0.5, allow_reconnect=True,
            error_cb=error_cb), timeout=connect_timeout * 2 + 1)
    except TimeoutError:
        raise ClusterError(f"cannot reach NATS at {', '.join(config.servers)}") from None
    js = nc.jetstream(timeout=config.publish_timeout_seconds)
    streams = Streams(nc, js)
    await ensure_streams(config, js)
    if buckets:
        streams.leases = await _bucket(js, LEASES_BUCKET, config, ttl=config.lease_seconds)
        streams.state = await _bucket(js, STATE_BUCKET, config, ttl=None)
    return streams


async def ensure_streams(config: ClusterConfig, js: Any) -> None:
    from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
    from nats.js.errors import NotFoundError

    limits = config.limits
    wanted = [
        StreamConfig(name=config.stream, subjects=[f"{config.subject_prefix}.events.>"],
                     storage=StorageType.FILE, num_replicas=config.replicas,
                     # A record leaves the stream once its shard's owner acknowledged it: the
                     # per-subject limit bounds a tenant shard's backlog, not its history.
                     retention=RetentionPolicy.WORK_QUEUE,
                     max_msgs_per_subject=limits.tenant_max_messages,
                     max_bytes=limits.max_bytes or -1, max_age=limits.max_age.total_seconds(),
                     discard=DiscardPolicy.NEW,
                     duplicate_window=config.duplicate_window.total_seconds()),
        StreamConfig(name=alerts_stream(config), subjects=[f"{config.subject_prefix}.alerts.>"],
                     storage=StorageType.FILE, num_replicas=config.replicas,
                     max_age=limits.max_age.total_seconds(),
                     duplicate_window=config.duplicate_window.total_seconds()),
    ]
    for stream in wanted:
        try:
            await js.stream_info(stream.name)
        except NotFoundError:
            try:
                await js.add_stream(stream)
                log.info("stream created", extra={"stream": stream.name,
                                                  "subjects": stream.subjects})
            except Exception as exc:  # another process created it first
                if "already in use" not in str(exc):
                    raise


async def _bucket(js: Any, name: str, config: ClusterConfig, ttl: float | None) -> Any:
    from nats.js.errors import BucketNotFoundError

    try:
        return await js.key_value(name)
    except BucketNotFoundError:
        from nats.js.api import KeyValueConfig

        try:
            return await js.create_key_value(KeyValueConfig(
                bucket=name, history=1, ttl=ttl, replicas=config.replicas))
        except Exception:
            return await js.key_value(name)  # created by another process meanwhile


class Heartbeat:
    """A role's entry `<role>.<node>` in the leases bucket, renewed every third of a lease:
    `vigil cluster status` lists the processes whose entry has not expired."""

    def __init__(self, config: ClusterConfig, role: str, node: str) -> None:
        self.config = config
        self.role = role
        self.node = node
        self.streams: Streams | None = None
        self._next = 0.0
        self._task: Any = None

    def tick(self, extra: dict[str, Any] | None = None) -> None:
        """From the daemon's tick: start a beat when one is due (never two at once)."""
        import asyncio
        import time

        now = time.monotonic()
        if now < self._next or (self._task is not None and not self._task.done()):
            return
        self._next = now + self.config.lease_seconds / 3
        self._task = asyncio.ensure_future(self._beat(extra or {}))

    async def _beat(self, extra: dict[str, Any]) -> None:
        import orjson

        try:
            if self.streams is None:
                self.streams = await connect(self.config, f"vigil-{self.role}-{self.node}",
                                             buckets=True)
            await self.streams.leases.put(f"{self.role}.{self.node}", orjson.dumps({
                "role": self.role, "host": socket.gethostname(), "pid": os.getpid(), **extra}))
        except Exception as exc:
            log.debug("heartbeat failed", extra={"error": repr(exc)})

    async def close(self) -> None:
        if self.streams is not None:
            try:
                await self.streams.leases.delete(f"{self.role}.{self.node}")
                await self.streams.nc.close()
            except Exception:
                log.debug("heartbeat close failed", exc_info=True)
            self.streams = None
