"""`type: eventhubs`: every partition of an Azure Event Hub for one consumer group, through the
client library's `EventHubConsumerClient.receive_batch` (its event processor balances partition
ownership through the checkpoint store). A batch's events are journaled, then the partition's
checkpoint moves past them: a crash or a restart re-reads at most the batches not yet
checkpointed (at-least-once).

Errors: the library retries its own AMQP operations; when a partition or the ownership round
fails anyway, `on_error` waits with exponential backoff (per partition) before the library
tries again. While the journal is over its bound a partition's callback waits, and the client
stops fetching once its prefetch buffer is full. Lag (`last enqueued sequence number - last
read`) is reported per source from the service's runtime information.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from collector.sources.azure.config import BlobCheckpointStoreConfig, EventHubsSourceConfig
from collector.sources.azure.decoding import events_from_body
from collector.sources.base import Source, SourceContext
from collector.sources.pull import ORIGIN, Backoff, Sleep, wait_for_capacity
from core.events import Event

log = logging.getLogger(__name__)

_STOP_GRACE_SECONDS = 10.0
ClientFactory = Callable[[EventHubsSourceConfig, str, Any], Any]


def library_client(config: EventHubsSourceConfig, connection_string: str,
                   checkpoint_store: Any) -> Any:
    """The real client (azure-eventhub, imported only when a source is configured)."""
    from azure.eventhub.aio import EventHubConsumerClient

    return EventHubConsumerClient.from_connection_string(
        connection_string, consumer_group=config.consumer_group,
        eventhub_name=config.eventhub_name, checkpoint_store=checkpoint_store,
        load_balancing_interval=config.load_balancing_interval_seconds)


class EventHubsSource(Source):
    """See the module docstring."""

    config_model = EventHubsSourceConfig
    config: EventHubsSourceConfig

    def __init__(self, context: SourceContext, *, sleep: Sleep = asyncio.sleep,
                 client_factory: ClientFactory = library_client) -> None:
        super().__init__(context)
        self.sleep = sleep
        self.client_factory = client_factory
        self.telemetry = context.telemetry
        self.client: Any = None
        self.checkpoint_store: Any = None
        self.stopping: asyncio.Event | None = None
        self.partitions: dict[str, dict[str, Any]] = {}  # partition id -> health detail
        self._backoffs: dict[str, Backoff] = {}
        self._delivering = 0
        self._task: asyncio.Task[None] | None = None
        self._partition = self.config.tenant

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self.stopping = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"source {self.context.source_id}")
        log.info("consuming Event Hub", extra={
            "source": self.context.source_id, "eventhub": self.config.eventhub_name,
            "consumer_group": self.config.consumer_group,
            "checkpoint_store": self.config.checkpoint_store.type})

    async def stop(self) -> None:
        """Stop taking batches, let batches being journaled finish and checkpoint, then close
        the client (partitions are released; what was not checkpointed is read again)."""
        if self.stopping is None:
            return
        self.stopping.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle(), _STOP_GRACE_SECONDS)
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 30)
            except TimeoutError:
                self._task.cancel()
        store_close = getattr(self.checkpoint_store, "close", None)
        if store_close is not None:
            with contextlib.suppress(Exception):
                await store_close()

    async def _idle(self) -> None:
        while self._delivering:
            await asyncio.sleep(0.01)

    def decode_lines(self, lines: list[bytes]) -> list[Event]:
        """Each line as the body of one Event Hubs event (`vigil test`, `vigil process`)."""
        now = self.context.clock()
        return [e for line in lines for e in events_from_body(line, self.config.format, now)]

    def health(self) -> dict[str, Any]:
        return {"eventhub": self.config.eventhub_name, "consumer_group":
                self.config.consumer_group, "partitions": dict(self.partitions)}

    # -- the client -----------------------------------------------------------------------

    def _checkpoint_store(self) -> Any:
        store = self.config.checkpoint_store
        if isinstance(store, BlobCheckpointStoreConfig):
            from azure.eventhub.extensions.checkpointstoreblobaio import BlobCheckpointStore

            return BlobCheckpointStore.from_connection_string(
                store.read(self.context.conf_dir), store.container)
        from collector.sources.azure.checkpoints import FileCheckpointStore

        base = self.context.data_dir
        directory = store.path or (base / "eventhubs" / self.context.source_id
                                   if base is not None else None)
        if directory is None:
            raise ValueError("the file checkpoint store needs a data directory or a `path`")
        if not directory.is_absolute() and self.context.conf_dir is not None \
                and store.path is not None:
            directory = self.context.conf_dir / directory
        store_files = FileCheckpointStore(directory)
        store_files.forget_ownership()
        return store_files

    async def _run(self) -> None:
        assert self.stopping is not None
        backoff = Backoff(self.config.backoff, sleep=self.sleep)
        while not self.stopping.is_set():
            try:
                if self.checkpoint_store is None:
                    self.checkpoint_store = self._checkpoint_store()
                secret = self.config.connection.read(self.context.conf_dir)
                self.client = self.client_factory(self.config, secret, self.checkpoint_store)
                del secret
                await self.client.receive_batch(
                    on_event_batch=self._on_batch, on_error=self._on_error,
                    max_batch_size=self.config.max_batch_size,
                    max_wait_time=self.config.max_wait_seconds,
                    starting_position="-1" if self.config.starting_position == "earliest"
                    else "@latest",
                    track_last_enqueued_event_properties=True, prefetch=self.config.prefetch)
                if self.stopping.is_set():
                    return
                raise RuntimeError("the Event Hubs client stopped receiving")
            except Exception as exc:
                if self.stopping.is_set():
                    return
                self.telemetry.pull_retry("receive")
                self.telemetry.error("service", "receive")
                log.warning("Event Hubs client failed; starting again with backoff", extra={
                    "source": self.context.source_id, "error": _describe(exc),
                    "attempt": backoff.failures + 1})
                if self.client is not None:
                    with contextlib.suppress(Exception):
                        await self.client.close()
                await backoff.wait(self.stopping)

    async def _on_error(self, partition_context: Any, error: Exception) -> None:
        """The library reports an error of a partition (or of the ownership round when there
        is no partition); waiting here delays its next attempt."""
        assert self.stopping is not None
        partition = getattr(partition_context, "partition_id", None) or ""
        self.telemetry.pull_retry("partition" if partition else "load_balancing")
        self.telemetry.error("service", "receive")
        backoff = self._backoffs.setdefault(partition,
                                            Backoff(self.config.backoff, sleep=self.sleep))
        log.warning("Event Hubs error; retrying with backoff", extra={
            "source": self.context.source_id, "partition": partition or None,
            "error": _describe(error), "attempt": backoff.failures + 1})
        await backoff.wait(self.stopping)

    # -- one batch ------------------------------------------------------------------------

    async def _on_batch(self, partition_context: Any, batch: list[Any]) -> None:
        assert self.stopping is not None
        if self.stopping.is_set() or not batch:
            return
        partition = partition_context.partition_id
        self.telemetry.pulled("received", len(batch))
        self._delivering += 1
        try:
            events = self._events(partition_context, batch)
            self.context.count_parse_errors(events)
            if not await wait_for_capacity(self.context.queue, self._partition, self.stopping):
                return  # not checkpointed: read again after the restart
            try:
                await self.context.deliver(events)
            except Exception:
                self.telemetry.pulled("failed", len(batch))
                raise  # the library ends the partition's run; it resumes at the checkpoint
        finally:
            self._delivering -= 1
        await partition_context.update_checkpoint(batch[-1])
        self.telemetry.pulled("acknowledged", len(batch))
        self._backoffs.pop(partition, None)
        self._track_lag(partition_context, batch[-1])

    def _events(self, partition_context: Any, batch: list[Any]) -> list[Event]:
        fmt = self.config.format
        prefix = (f"eventhubs://{partition_context.fully_qualified_namespace}/"
                  f"{partition_context.eventhub_name}/{partition_context.partition_id}/")
        events: list[Event] = []
        size = 0
        for item in batch:
            body = b"".join(item.body) if not isinstance(item.body, bytes | str) else item.body
            if isinstance(body, str):
                body = body.encode()
            size += len(body)
            enqueued = item.enqueued_time
            stamp = enqueued if isinstance(enqueued, datetime) else self.context.clock()
            origin = prefix + str(item.sequence_number)
            for event in events_from_body(body, fmt, stamp):
                event[ORIGIN] = origin
                events.append(event)
        self.telemetry.received_bytes(size, self.config.tenant or "")
        return events

    def _track_lag(self, partition_context: Any, last: Any) -> None:
        latest = partition_context.last_enqueued_event_properties or {}
        detail = {"sequence_number": last.sequence_number,
                  "last_enqueued_sequence_number": latest.get("sequence_number")}
        if latest.get("sequence_number") is not None and last.sequence_number is not None:
            detail["lag"] = max(0, int(latest["sequence_number"]) - int(last.sequence_number))
        self.partitions[partition_context.partition_id] = detail
        self.telemetry.backlog(sum(p.get("lag", 0) for p in self.partitions.values()))


def _describe(exc: BaseException) -> str:
    """An error for the log; the library's messages name the namespace, never the key."""
    return f"{type(exc).__name__}: {exc}"
