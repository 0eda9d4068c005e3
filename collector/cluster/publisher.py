"""The collector role's drain: journal records -> the events stream, in order, each stored once.

Each journal record (its payload unchanged: the msgpack map `{"s": shared, "e": events}`) is one
message on `<prefix>.events.<tenant>.<shard>` whose deduplication id is (collector, journal
epoch, partition, record offset): a retry after a timeout, or the replay after a restart, is
stored once within the stream's duplicate window. A journal position is acknowledged only once
JetStream acknowledged every record up to it, so while NATS is unreachable the journal grows
(its bounds turn that into backpressure) and drains later in order.

Senders hear back (`Journal.wait_durable`, through `Journal.forwarded` = `wait_forwarded`) once
JetStream stored their events; while NATS is unreachable, or after
`sender_ack_timeout_seconds` behind a backlog, once the local journal has them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from collector.cluster.stream import (
    HDR_COLLECTOR,
    HDR_OFFSET,
    MSG_ID,
    Streams,
    connect,
    events_subject,
    shard_of,
)
from collector.config.models import ClusterConfig
from collector.journal import Journal
from core.events import Batch
from core.telemetry import Telemetry

log = logging.getLogger(__name__)

RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)


class JournalPublisher:
    """Reads the journal like a worker and publishes its records instead of processing them."""

    def __init__(self, journal: Journal, config: ClusterConfig, node: str,
                 stopping: Callable[[], bool], telemetry: Telemetry | None = None) -> None:
        self.journal = journal
        self.telemetry = telemetry or journal.telemetry
        # partition -> the last event offset JetStream stored; senders waiting for more.
        self.forwarded_to: dict[str, int] = {}
        self._waiters: dict[str, list[tuple[int, asyncio.Future[str]]]] = {}
        self.config = config
        self.node = node
        self.stopping = stopping
        self.streams: Streams | None = None
        self.shard = shard_of(node, config.shards)
        self.published = 0  # records JetStream acknowledged
        self.duplicates = 0  # ... of which it had stored before (a retry)
        self.publish_seconds = 0.0
        self.failing: str | None = None

    async def _connected(self) -> Streams:
        attempt = 0
        while self.streams is None:
            try:
                self.streams = await connect(self.config, f"vigil-collector-{self.node}")
                log.info("publishing to JetStream", extra={"servers": self.config.servers,
                                                           "stream": self.config.stream})
                self.failing = None
            except Exception as exc:
                self._failed(exc)
                await asyncio.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
                attempt += 1
        return self.streams

    def _failed(self, exc: BaseException) -> None:
        if self.failing is None:
            log.warning("cannot publish to JetStream; records stay in the journal and are "
                        "published later, in order", extra={"error": repr(exc)})
        self.failing = repr(exc)
        self._release_waiters("journal_unreachable")

    async def run(self) -> None:
        """Publish until the journal is closed and drained."""
        while True:
            batch = await self.journal.read(self.config.publish_batch_events)
            if batch is None:
                return
            await self.publish(batch)
            self.journal.ack(batch.partition, batch.last_offset)
            self._forwarded(batch.partition, batch.last_offset)

    async def wait_forwarded(self, partition: str, offset: int) -> None:
        """`Journal.forwarded`: return once JetStream stored `partition` up to `offset`; at
        once while NATS is unreachable, and after `sender_ack_timeout_seconds` at the latest
        (the journal has the events: they are published later, in order)."""
        if self.forwarded_to.get(partition, -1) >= offset:
            after = "jetstream"
        elif self.failing is not None:
            after = "journal_unreachable"
        else:
            future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            waiters = self._waiters.setdefault(partition, [])
            waiters.append((offset, future))
            try:
                after = await asyncio.wait_for(asyncio.shield(future),
                                               self.config.sender_ack_timeout_seconds)
            except TimeoutError:
                after = "journal_timeout"
                if (offset, future) in waiters:
                    waiters.remove((offset, future))
        self.telemetry.cluster_sender_acks.labels(after).inc()

    def _forwarded(self, partition: str, offset: int) -> None:
        self.forwarded_to[partition] = max(offset, self.forwarded_to.get(partition, -1))
        waiters = self._waiters.get(partition)
        if not waiters:
            return
        waiting = []
        for entry in waiters:
            if entry[0] <= offset:
                if not entry[1].done():
                    entry[1].set_result("jetstream")
            else:
                waiting.append(entry)
        self._waiters[partition] = waiting

    def _release_waiters(self, after: str) -> None:
        for waiters in self._waiters.values():
            for _, future in waiters:
                if not future.done():
                    future.set_result(after)
        self._waiters.clear()

    async def publish(self, batch: Batch) -> None:
        """Every record the batch starts (a record it begins inside was published with the
        batch before), acknowledged by JetStream; retried until it is."""
        originals: Any = batch.originals
        records = [(first, bytes(payload)) for first, payload in originals.records
                   if first >= batch.first_offset]
        subject = events_subject(self.config, batch.partition, self.shard)
        attempt = 0
        while records:
            streams = await self._connected()
            started = time.perf_counter()
            done = 0
            try:
                futures = [await streams.js.publish_async(
                    subject, payload, headers=self._headers(batch.partition, first),
                    wait_stall=self.config.publish_timeout_seconds)
                    for first, payload in records]
                for future in futures:
                    ack = await asyncio.wait_for(future, self.config.publish_timeout_seconds)
                    done += 1
                    self.duplicates += 1 if ack.duplicate else 0
            except Exception as exc:
                # Pipelined: what was stored before the failure is deduplicated on the retry.
                records = records[done:]
                self._failed(exc)
                await asyncio.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
                attempt += 1
                continue
            self.publish_seconds += time.perf_counter() - started
            self.published += len(records)
            if self.failing:
                log.info("publishing to JetStream again")
                self.failing = None
            records = []

    def _headers(self, partition: str, first: int) -> dict[str, str]:
        return {MSG_ID: f"{self.node}:{self.journal.epoch}:{partition}:{first}",
                HDR_COLLECTOR: self.node, HDR_OFFSET: str(first)}

    async def close(self) -> None:
        self._release_waiters("journal_unreachable")
        if self.streams is not None:
            try:
                await self.streams.nc.drain()
            except Exception:
                log.debug("nats drain at stop failed", exc_info=True)
            self.streams = None

    def health(self) -> dict[str, Any]:
        return {"published_records": self.published, "duplicates": self.duplicates,
                "failing": self.failing, "shard": self.shard}
