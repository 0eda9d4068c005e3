"""What every source that pulls from a cloud service shares (S3/SQS, Pub/Sub, Event Hubs):
exponential backoff with an injectable sleep, waiting for journal capacity before an append,
and `vigil.origin`, which names where an event was read (an S3 object, a message, a partition).
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import orjson
from pydantic import Field, model_validator

from collector.sources.json_events import event_from_object, json_kind, unparsed_event
from core.config import StrictModel
from core.events import Event

# Where an event was read: `s3://bucket/key`, `pubsub://<subscription>/<message id>`,
# `eventhubs://<namespace>/<hub>/<partition>/<sequence number>`. Under `vigil.` so vendor
# pipelines (`nest`) leave it where it is.
ORIGIN = "vigil.origin"

Sleep = Callable[[float], Awaitable[Any]]


def split_records(value: Any, records_key: str, received_at: datetime,
                  raw: Callable[[], bytes]) -> list[Event]:
    """Events of one decoded JSON value as cloud services export them: an object whose only
    key is `records_key` (CloudTrail's `Records`, Azure's `records`) or a top-level array gives
    one event per element; any other object is one event; anything else is kept, marked."""
    if isinstance(value, dict):
        records = value.get(records_key)
        if not (isinstance(records, list) and len(value) == 1):
            return [event_from_object(value, received_at)]
        value = records
    if isinstance(value, list):
        return [event_from_object(element, received_at) if isinstance(element, dict)
                else unparsed_event(orjson.dumps(element).decode(), received_at,
                                    f"array element is {json_kind(element)}, not an object")
                for element in value]
    return [unparsed_event(raw().decode("utf-8", "replace"), received_at,
                           f"not a JSON object but {json_kind(value)}")]


class BackoffConfig(StrictModel):
    """Retries of failed calls to the cloud service: the delay doubles from `initial_seconds`
    up to `max_seconds` (with jitter) and starts again after a success."""

    initial_seconds: float = Field(1.0, gt=0, description="delay after the first failure")
    max_seconds: float = Field(60.0, gt=0, description="longest delay between retries")

    @model_validator(mode="after")
    def _ordered(self) -> BackoffConfig:
        if self.max_seconds < self.initial_seconds:
            raise ValueError("`max_seconds` must not be shorter than `initial_seconds`")
        return self


class Backoff:
    """Exponential backoff with "equal jitter": each delay is between half and all of the
    doubled step, so retries of many sources do not fall into step."""

    def __init__(self, config: BackoffConfig | None = None, *, sleep: Sleep = asyncio.sleep,
                 rand: Callable[[], float] = random.random) -> None:
        self.config = config or BackoffConfig()
        self.sleep = sleep
        self.rand = rand
        self.failures = 0

    def next_delay(self) -> float:
        """Count a failure; the delay to wait before the next attempt."""
        step = min(self.config.max_seconds,
                   self.config.initial_seconds * 2 ** min(self.failures, 32))
        self.failures += 1
        return step / 2 + step / 2 * self.rand()

    async def wait(self, stopping: asyncio.Event | None = None) -> float:
        """Sleep for the next delay (returning early once `stopping` is set); returns it."""
        delay = self.next_delay()
        if stopping is None:
            await self.sleep(delay)
            return delay
        sleeper = asyncio.ensure_future(self.sleep(delay))
        stopper = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            stopper.cancel()
        return delay

    def reset(self) -> None:
        self.failures = 0


async def wait_for_capacity(queue: Any, partition: str | None,
                            stopping: asyncio.Event | None = None) -> bool:
    """Return True once the queue is under its bound (and `partition`, the source's fixed
    tenant, under its own share); False when `stopping` is set first. Pulling sources call it
    before each append, so a full journal pauses them while the cloud service keeps the
    messages."""
    while queue.over_bound() or (partition is not None and queue.over_bound(partition)):
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        wake = functools.partial(_resolve, ready)
        queue.add_capacity_listener(wake, None if queue.over_bound() else partition)
        waiters: set[asyncio.Future[Any]] = {ready}
        stopper = asyncio.ensure_future(stopping.wait()) if stopping is not None else None
        if stopper is not None:
            waiters.add(stopper)
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if stopper is not None:
                stopper.cancel()
            wake()  # a listener that fires later finds the future done
        if stopping is not None and stopping.is_set():
            return False
    return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
