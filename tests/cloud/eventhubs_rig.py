"""The Event Hubs service replaced at the client's consumer boundary.

No Event Hubs emulator runs here (Microsoft's is a container image). The real
`EventHubConsumerClient` is built from a connection string; only its two calls that reach the
service over AMQP are replaced: `_create_consumer` (the per-partition AMQP receive link) by
`FakeConsumer`, which reads an in-memory partition log the way the library's link hands events
to the event processor (batches up to `max_batch_size`, an empty batch after `max_wait_time`),
and `get_partition_ids` (a management request). Events are built the way the library builds
received ones (`EventData._from_message` on an AMQP message carrying the sequence number,
offset, enqueued time and the runtime information of the last enqueued event). Everything
else is the library's own: the event processor, partition ownership and load balancing, the
checkpoint store calls, partition contexts, on_error.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from azure.eventhub import EventData
from azure.eventhub._pyamqp.message import Message

CONNECTION_STRING = ("Endpoint=sb://vigil-test.servicebus.windows.net/;SharedAccessKeyName="
                     "listen;SharedAccessKey=c2VjcmV0LWtleS1ub3QtcmVhbA==;EntityPath=logs")
NAMESPACE = "vigil-test.servicebus.windows.net"


class FakeHub:
    """Partition logs; what the service would hold."""

    def __init__(self, partitions: int = 2) -> None:
        self.logs: dict[str, list[bytes]] = {str(p): [] for p in range(partitions)}
        self.fail_receive: dict[str, list[Exception]] = {}
        self.consumers_created: list[tuple[str, Any]] = []
        self.base_ms = 1715678400000

    def send(self, partition: str, *bodies: bytes) -> None:
        self.logs[partition].extend(bodies)

    def event(self, partition: str, sequence: int) -> EventData:
        log = self.logs[partition]
        message = Message(
            data=[log[sequence]],
            message_annotations={b"x-opt-sequence-number": sequence,
                                 b"x-opt-offset": str(sequence * 100).encode(),
                                 b"x-opt-enqueued-time": self.base_ms + sequence * 1000},
            delivery_annotations={b"last_enqueued_sequence_number": len(log) - 1,
                                  b"last_enqueued_offset": str((len(log) - 1) * 100).encode(),
                                  b"last_enqueued_time_utc": self.base_ms,
                                  b"runtime_info_retrieval_time_utc": self.base_ms})
        return EventData._from_message(message)

    def attach(self, client: Any) -> Any:
        """Replace the client's service calls with this hub."""
        hub = self

        def create_consumer(consumer_group: str, partition_id: str, event_position: Any,
                            on_event_received: Any, **kwargs: Any) -> FakeConsumer:
            hub.consumers_created.append((partition_id, event_position))
            return FakeConsumer(hub, partition_id, event_position,
                                bool(kwargs.get("event_position_inclusive")), on_event_received)

        async def get_partition_ids() -> list[str]:
            return list(hub.logs)

        client._create_consumer = create_consumer
        client.get_partition_ids = get_partition_ids
        return client


class FakeConsumer:
    """Stands in for `azure.eventhub.aio._consumer_async.EventHubConsumer`."""

    def __init__(self, hub: FakeHub, partition: str, position: Any, inclusive: bool,
                 on_event_received: Any) -> None:
        self.hub = hub
        self.partition = partition
        self.on_event_received = on_event_received
        self.running = True
        if position == "-1":
            self.next = 0
        elif position == "@latest":
            self.next = len(hub.logs[partition])
        else:  # a checkpoint's offset (string): the event after it
            self.next = int(position) // 100 + (0 if inclusive else 1)

    async def receive(self, batch: bool, max_batch_size: int, max_wait_time: float | None
                      ) -> None:
        failures = self.hub.fail_receive.get(self.partition)
        if failures:
            raise failures.pop(0)
        last_call = time.monotonic()
        while self.running:
            log = self.hub.logs[self.partition]
            if self.next < len(log):
                end = min(len(log), self.next + max_batch_size)
                events = [self.hub.event(self.partition, s) for s in range(self.next, end)]
                self.next = end
                await self.on_event_received(events)
                last_call = time.monotonic()
            elif max_wait_time and time.monotonic() - last_call > max_wait_time:
                await self.on_event_received([])
                last_call = time.monotonic()
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        self.running = False
