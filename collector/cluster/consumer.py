"""The worker role's queue: tenant shards taken from the events stream under a lease.

The events stream is a work queue: a record leaves it once acknowledged. One durable pull
consumer per shard (`shard_<tenant>_<n>`, explicit acks, in order); a worker owns a shard
while it renews its lease in the `vigil_leases` bucket (an entry that expires after
`lease_seconds`). Taking a shard over recreates its consumer, so the new owner resumes at
the first record not acknowledged, in order, at once instead of after redelivery timeouts.
A record is acknowledged only when the worker acknowledges its last event
(every sink committed it, and detection saved the state that counted it: that state goes to
the `vigil_state` bucket first, where the next owner reads it). A worker holding more than its
share while another holds less hands shards over (`rebalance.py`): it stops fetching them,
finishes what it fetched, commits, checkpoints, acknowledges, then deletes their leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from collector.cluster.rebalance import hand_over, other_workers, surplus
from collector.cluster.stream import (
    QUARANTINE,
    RECORD_SPAN,
    Streams,
    connect,
    consumer_name,
    events_subject,
    lease_key,
)
from collector.config.models import ClusterConfig
from collector.journal.codec import decode_events
from core.events import Batch

log = logging.getLogger(__name__)

ACK_WAIT_SECONDS = 3600.0  # the owner never needs a redelivery: a takeover recreates
READY_RECORDS = 256


@dataclass
class Shard:
    tenant: str
    index: int
    revision: int = 0
    renewed: float = 0.0
    sub: Any = None
    task: asyncio.Task[None] | None = None
    replay_end: int = 0  # event offsets below it may be in files the previous owner committed
    lost: bool = False
    releasing: bool = False  # being handed over: no more fetches, what was fetched finishes
    delivered: int = 0
    acked: int = 0
    acked_seq: int = 0

    @property
    def key(self) -> tuple[str, int]:
        return self.tenant, self.index


@dataclass
class _Delivered:
    last_offset: int
    shard: Shard
    msg: Any


@dataclass
class StreamQueue:
    """`EventQueue` over the events stream for the shards this worker owns."""

    config: ClusterConfig
    node: str
    tenants: Callable[[], Iterable[str]]
    on_acquire: Callable[[str], Awaitable[None]] | None = None
    # Commit what the sinks hold (a shard about to be replayed: what this process buffered of it
    # before must be in committed files, or both copies would be written). Every commit first
    # asks `fence` which tenants' buffered events are no longer this process's to commit.
    on_release: Callable[[], Awaitable[None]] | None = None
    # A handover: commit every sink, save detection's state (its checkpoints staged),
    # acknowledge; then drop the detection state of the tenants given (checkpointed by that save).
    on_handover: Callable[[list[str]], Awaitable[None]] | None = None
    streams: Streams | None = None
    owned: dict[tuple[str, int], Shard] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.epoch = f"js{self.config.stream.lower()}"
        self.max_events = self.config.max_ack_pending * RECORD_SPAN
        self._ready: asyncio.Queue[tuple[Shard, Any]] = asyncio.Queue(READY_RECORDS)
        self._delivered: dict[str, deque[_Delivered]] = {}
        self._ack_due: list[tuple[Shard, Any]] = []
        self._checkpoints: dict[str, bytes] = {}
        self._fenced: set[str] = set()  # tenants lost since the last `fence`
        self._ack_wake = asyncio.Event()
        self._ack_lock = asyncio.Lock()  # checkpoints before acknowledgements, one flush at once
        self.closed = False
        self._tasks: list[asyncio.Task[None]] = []
        self._handover: asyncio.Task[None] | None = None
        self._joined = 0.0
        self.takeovers = 0
        self.voluntary_releases = 0

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self.streams = await connect(self.config, f"vigil-worker-{self.node}", buckets=True)
        self._joined = time.monotonic()
        await self.heartbeat()
        self._tasks = [asyncio.create_task(self._lease_loop(), name="leases"),
                       asyncio.create_task(self._ack_loop(), name="acks")]

    def close(self) -> None:
        """No more records: reading drains what was fetched and then returns None."""
        self.closed = True
        for shard in self.owned.values():
            if shard.task is not None:
                shard.task.cancel()
        with contextlib.suppress(asyncio.QueueFull):
            self._ready.put_nowait((Shard("", -1), None))  # wakes a waiting reader

    async def aclose(self) -> None:
        """The last acknowledgements and checkpoints, then release the leases (another worker
        takes the shards over at once) and disconnect."""
        await self.flush_acks()
        for task in [*self._tasks, self._handover]:
            if task is not None:
                task.cancel()
        if self.streams is None:
            return
        for shard in list(self.owned.values()):
            with contextlib.suppress(Exception):
                await self.streams.leases.delete(lease_key(*shard.key))
        with contextlib.suppress(Exception):
            await self.streams.leases.delete(f"worker.{self.node}")
        # Flush and close, not drain(): records a cancelled fetch received would hold the
        # drain for its whole timeout (30 s); unacknowledged, they go to the next owner.
        with contextlib.suppress(Exception):
            await self.streams.nc.flush(timeout=5)
        with contextlib.suppress(Exception):
            await self.streams.nc.close()

    # -- the queue interface ----------------------------------------------------------------

    async def read(self, max_events: int) -> Batch | None:
        """One record of an owned shard as a batch (offsets from its stream sequence)."""
        while True:
            if self.closed and self._ready.empty():
                return None
            shard, msg = await self._ready.get()
            if msg is None or shard.lost:
                continue
            events = decode_events(msg.data)
            if not events:  # nothing to process: done with it
                self._ack_due.append((shard, msg))
                self._ack_wake.set()
                continue
            seq = msg.metadata.sequence.stream
            first = seq * RECORD_SPAN
            last = first + len(events) - 1
            self._delivered.setdefault(shard.tenant, deque()).append(
                _Delivered(last, shard, msg))
            return Batch(shard.tenant, events, first, last)

    async def wait_durable(self, partition: str, offset: int) -> None:
        return None

    def ack(self, partition: str, offset: int) -> None:
        delivered = self._delivered.get(partition)
        while delivered and delivered[0].last_offset <= offset:
            item = delivered.popleft()
            self._ack_due.append((item.shard, item.msg))
        self._ack_wake.set()

    def over_bound(self, partition: str | None = None) -> bool:
        """Near the consumer's max_ack_pending: the worker commits now rather than at its
        flush deadline (nothing more would be delivered until it does)."""
        bound = max(1, int(self.config.max_ack_pending * 0.75))
        if partition is not None:
            return len(self._delivered.get(partition, ())) >= bound
        return any(len(d) >= bound for d in self._delivered.values())

    def add_capacity_listener(self, callback: Callable[[], None], partition: str | None = None,
                              until: Callable[[], bool] | None = None) -> None:
        callback()

    def pending(self) -> int:
        return sum(len(d) for d in self._delivered.values()) + self._ready.qsize()

    def replay_end(self, partition: str) -> int:
        return max((s.replay_end for s in self.owned.values() if s.tenant == partition),
                   default=0)

    def owns(self, tenant: str) -> bool:
        return any(s.tenant == tenant for s in self.owned.values())

    def owned_tenants(self) -> list[str]:
        return sorted({s.tenant for s in self.owned.values()})

    def stage_checkpoint(self, tenant: str, document: bytes) -> None:
        """Detection state of `tenant` to store before the acknowledgements that follow."""
        self._checkpoints[tenant] = document

    # -- acknowledgements -------------------------------------------------------------------

    async def _ack_loop(self) -> None:
        while True:
            await self._ack_wake.wait()
            self._ack_wake.clear()
            try:
                await self.flush_acks()
            except Exception:
                log.warning("acknowledgements to JetStream failed; retried", exc_info=True)
                await asyncio.sleep(0.5)
                self._ack_wake.set()

    async def flush_acks(self) -> None:
        async with self._ack_lock:
            await self._flush_acks_now()

    async def _flush_acks_now(self) -> None:
        if self.streams is None:
            return
        checkpoints, self._checkpoints = self._checkpoints, {}
        # A shard lost or handed over meanwhile: its next owner writes the tenant's checkpoints
        # now (and this worker's acknowledgements of it are dropped below, consistently).
        owned = set(self.owned_tenants())
        checkpoints = {t: d for t, d in checkpoints.items() if t in owned}
        while checkpoints:
            tenant, document = next(iter(checkpoints.items()))
            try:
                await self.streams.state.put(f"detection.{tenant}", document)
            except BaseException:  # cancelled too: what is left is kept for the next flush
                self._checkpoints = {**checkpoints, **self._checkpoints}
                raise
            del checkpoints[tenant]
        due, self._ack_due = self._ack_due, []
        for index, (shard, msg) in enumerate(due):
            if shard.lost or self.owned.get(shard.key) is not shard:
                continue
            try:
                await msg.ack()
            except BaseException:
                self._ack_due[:0] = due[index:]
                raise
            shard.acked += 1
            shard.acked_seq = msg.metadata.sequence.stream

    # -- leases -----------------------------------------------------------------------------

    def shards(self) -> list[tuple[str, int]]:
        tenants = sorted({*self.tenants(), QUARANTINE})
        return [(t, i) for t in tenants for i in range(self.config.shards)]

    async def heartbeat(self) -> None:
        assert self.streams is not None
        await self.streams.leases.put(f"worker.{self.node}", orjson.dumps({
            "host": socket.gethostname(), "pid": os.getpid(), "role": "worker",
            "shards": [f"{t}.{i}" for t, i in self.owned],
            "voluntary_releases": self.voluntary_releases}))

    async def _lease_loop(self) -> None:
        period = self.config.lease_seconds / 3
        while not self.closed:
            try:
                await self._lease_round()
            except Exception:
                log.warning("lease round failed", exc_info=True)
                await self._drop_expired()
            await asyncio.sleep(period)

    async def _lease_round(self) -> None:
        assert self.streams is not None
        leases = self.streams.leases
        await self.heartbeat()
        for shard in list(self.owned.values()):
            if shard.lost:  # handed over meanwhile
                continue
            try:
                shard.revision = await leases.update(lease_key(*shard.key), self.node.encode(),
                                                     last=shard.revision)
                shard.renewed = time.monotonic()
            except Exception as exc:
                if "wrong last sequence" in str(exc).lower() or "not found" in str(
                        exc).lower():
                    self._lose(shard, "lease taken over")
                else:
                    raise
        # Every worker sees the others before taking shards (one lease period after joining).
        if time.monotonic() - self._joined < self.config.lease_seconds:
            return
        from nats.js.errors import NoKeysError

        try:
            keys = set(await leases.keys())
        except NoKeysError:
            keys = set()
        workers = max(1, sum(1 for k in keys if k.startswith("worker.")))
        wanted = self.shards()
        quota = math.ceil(len(wanted) / workers)
        for tenant, index in wanted:
            if len(self.owned) >= quota:
                break
            if (tenant, index) in self.owned or lease_key(tenant, index) in keys:
                continue
            await self._take(tenant, index)
        if len(self.owned) > quota and (self._handover is None or self._handover.done()):
            others = await other_workers(leases, keys, self.node)
            handed = [self.owned[k] for k in surplus(self.owned, others, len(wanted))]
            if handed:
                self._handover = asyncio.create_task(hand_over(self, handed), name="handover")

    def resume(self, shard: Shard) -> None:
        """Fetch a shard's records again (a handover called off)."""
        shard.releasing = False
        shard.task = asyncio.create_task(self._fetch(shard), name=f"fetch-{shard.tenant}")

    async def wait_handover(self, timeout: float) -> None:
        """Let a handover in progress finish (stopping: it ends at its next step)."""
        if self._handover is not None and not self._handover.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._handover), timeout)

    async def _drop_expired(self) -> None:
        """NATS unreachable: a lease not renewed for two thirds of its time is given up (it
        may be another worker's once it lapses); the next `fence` reports its tenant, so the
        commit that follows drops what the sinks hold of it."""
        self._lose_stale()

    def _lose_stale(self) -> None:
        now = time.monotonic()
        for shard in list(self.owned.values()):
            if not shard.lost and now - shard.renewed > self.config.lease_seconds * 2 / 3:
                self._lose(shard, "lease not renewed in time")

    def fence(self) -> list[str]:
        """Called before the sinks commit (and by the lease loop): shards whose lease was not
        renewed within two thirds of `lease_seconds` are given up, since another worker may
        own them by the time a commit lands (this process was paused, or cannot reach NATS).
        Returns the tenants lost since the last call: what the sinks hold of them must be
        dropped, not committed; the next owner processes those records again from the stream
        (they were never acknowledged). A commit that starts within the two thirds and is
        itself paused past the lease is the window this cannot close (no fencing token in S3)."""
        self._lose_stale()
        lost, self._fenced = self._fenced, set()
        return sorted(lost)

    def _lose(self, shard: Shard, reason: str) -> None:
        """The shard is no longer this worker's. The sinks hold a tenant's events together, so
        its other shards go too (their leases lapse); what was delivered of them is the next
        owner's to process and acknowledge."""
        for other in [s for s in self.owned.values() if s.tenant == shard.tenant] + [shard]:
            other.lost = True
            self.owned.pop(other.key, None)
            if other.task is not None:
                other.task.cancel()
            log.warning("shard lost", extra={"tenant": other.tenant, "shard": other.index,
                                             "reason": reason})
        self._delivered.pop(shard.tenant, None)
        self._fenced.add(shard.tenant)

    async def _take(self, tenant: str, index: int) -> None:
        """Lease the shard, then resume its consumer at the first unacknowledged record."""
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
        from nats.js.errors import NotFoundError

        assert self.streams is not None
        js = self.streams.js
        try:
            revision = await self.streams.leases.create(lease_key(tenant, index),
                                                        self.node.encode())
        except Exception:
            return  # another worker was quicker
        shard = Shard(tenant, index, revision, time.monotonic())
        name = consumer_name(tenant, index)
        if self.on_release is not None:  # this process may have held it before, buffered
            try:
                await self.on_release()
            except Exception:
                log.warning("committing the sinks before taking a shard failed", exc_info=True)
        try:
            info = await js.consumer_info(self.config.stream, name)
        except NotFoundError:
            info = None
        if info is not None:
            # What the previous owner held unacknowledged is delivered again at once.
            shard.acked_seq = info.ack_floor.stream_seq if info.ack_floor else 0
            await js.delete_consumer(self.config.stream, name)
        stream_info = await js.stream_info(self.config.stream)
        shard.replay_end = (stream_info.state.last_seq + 1) * RECORD_SPAN
        if self.on_acquire is not None:
            await self.on_acquire(tenant)
        await js.add_consumer(self.config.stream, ConsumerConfig(
            durable_name=name, filter_subject=events_subject(self.config, tenant, index),
            ack_policy=AckPolicy.EXPLICIT, ack_wait=ACK_WAIT_SECONDS,
            max_ack_pending=self.config.max_ack_pending, deliver_policy=DeliverPolicy.ALL))
        shard.sub = await js.pull_subscribe_bind(durable=name, stream=self.config.stream)
        self.owned[shard.key] = shard
        shard.task = asyncio.create_task(self._fetch(shard), name=f"fetch-{name}")
        self.takeovers += 1
        log.info("shard taken", extra={"tenant": tenant, "shard": index, "worker": self.node,
                                       "previous_acknowledged_sequence": shard.acked_seq})

    async def _fetch(self, shard: Shard) -> None:
        from nats.errors import TimeoutError as NatsTimeout

        while not shard.lost and not shard.releasing and not self.closed:
            try:
                msgs = await shard.sub.fetch(self.config.max_ack_pending, timeout=1.0)
            except (NatsTimeout, TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.debug("fetch failed; retried", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                shard.delivered += 1
                await self._ready.put((shard, msg))

    def health(self) -> dict[str, Any]:
        return {"type": "jetstream", "node": self.node, "pending_records": self.pending(),
                "shards": {f"{t}.{i}": {"acked_sequence": s.acked_seq,
                                        "delivered": s.delivered}
                           for (t, i), s in self.owned.items()},
                "takeovers": self.takeovers, "voluntary_releases": self.voluntary_releases}
