"""Alerts between roles: workers publish detection's alert batches on
`<prefix>.alerts.<tenant>` (the sink below, acknowledged like any sink), the control role
consumes them into its alert store, which upserts by alert id, so a redelivery or a replay
after a takeover refreshes the alert instead of adding one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from collector.cluster.stream import Streams, alerts_stream, alerts_subject
from collector.config.models import ClusterConfig
from collector.detection.alerts import ALERTS_DATASET
from collector.journal.codec import decode_events, encode_events
from core.config import SinkConfig
from core.events import ALERTS, Batch, Event
from core.sink import Sink, SinkContext

log = logging.getLogger(__name__)

ALERT_PUBLISH_SINK = "_alert_stream"


class AlertPublishConfig(SinkConfig):
    type: str = "alert_stream"


class AlertPublishSink(Sink):
    """Detection's alerts to the alerts stream; committed once JetStream acknowledged."""

    config_model = AlertPublishConfig
    accepts = frozenset({ALERTS})

    def __init__(self, sink_id: str, config: AlertPublishConfig, context: SinkContext,
                 cluster: ClusterConfig, streams: Callable[[], Streams | None]) -> None:
        super().__init__(sink_id, config, context)
        self.cluster = cluster
        self.streams = streams
        self._pending: list[Batch] = []
        self.published = 0
        self.failing: str | None = None

    async def start(self) -> None:
        return None

    def write(self, batch: Batch) -> None:
        if batch.events:
            self._pending.append(batch)

    async def flush(self, *, force: bool = False) -> None:
        streams = self.streams()
        while self._pending and streams is not None:
            batch = self._pending[0]
            try:
                await streams.js.publish(alerts_subject(self.cluster, batch.partition),
                                         encode_events(batch.events),
                                         timeout=self.cluster.publish_timeout_seconds)
            except Exception as exc:
                if self.failing is None:
                    log.warning("alerts not published; kept and retried (their events stay "
                                "unacknowledged)", extra={"error": repr(exc)})
                self.failing = repr(exc)
                raise
            self._pending.pop(0)
            self.published += len(batch.events)
            self.failing = None

    def uncommitted_floor(self, partition: str) -> int | None:
        floors = [b.first_offset for b in self._pending if b.partition == partition]
        return min(floors) if floors else None

    def discard(self, partition: str) -> int:
        dropped = sum(len(b.events) for b in self._pending if b.partition == partition)
        self._pending = [b for b in self._pending if b.partition != partition]
        return dropped

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.flush(force=True)

    def health(self) -> dict[str, Any]:
        return {"buffered_batches": len(self._pending), "published_alerts": self.published,
                "failing": self.failing}


async def consume_alerts(streams: Streams, cluster: ClusterConfig, durable: str,
                         store: Callable[[], Sink], stopping: Callable[[], bool],
                         lock: asyncio.Lock) -> None:
    """The control role: alerts from the stream into the current `store()`; a message is
    acknowledged once the store committed it (redelivered otherwise). `lock` is held while
    writing and committing, so a reload swaps the store between fetches."""
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.api import AckPolicy, ConsumerConfig

    stream = alerts_stream(cluster)
    sub = await streams.js.pull_subscribe(
        f"{cluster.subject_prefix}.alerts.>", durable=durable, stream=stream,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=60.0))
    while not stopping():
        try:
            msgs = await sub.fetch(256, timeout=1.0)
        except (NatsTimeout, TimeoutError):
            continue
        except Exception:
            log.debug("alert fetch failed; retried", exc_info=True)
            await asyncio.sleep(0.5)
            continue
        async with lock:
            sink = store()
            for msg in msgs:
                tenant = msg.subject.rsplit(".", 1)[-1]
                seq = msg.metadata.sequence.stream
                events: list[Event] = decode_events(msg.data)
                sink.write(Batch(tenant, events, seq, seq, ALERTS_DATASET, kind=ALERTS))
        tenants = {m.subject.rsplit(".", 1)[-1] for m in msgs}
        while True:
            async with lock:
                swapped = sink is not store()  # a reload stopped it (its stop committed)
                if not swapped:
                    try:
                        await sink.flush(force=True)
                    except Exception:
                        log.warning("alert store flush failed; retried", exc_info=True)
                committed = all(sink.uncommitted_floor(t) is None for t in tenants)
            if committed:
                break
            if stopping() or swapped:
                # Unacknowledged: redelivered (after ack_wait, or to the next start).
                msgs = []
                break
            await asyncio.sleep(0.5)
        for msg in msgs:
            await msg.ack()
