"""What every source is given and must provide.

A source turns bytes from the outside into events and hands them to `SourceContext.emit`, which
stamps provenance, decides the tenant, appends to the queue and counts, once per batch.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

from collector.config.models import SourceConfig
from collector.events import DATASET, RECEIVED_AT, SOURCE, TENANT, Event
from collector.queue import EventQueue
from collector.routing import QUARANTINE, TenantRouter
from collector.telemetry import ComponentTelemetry

log = logging.getLogger(__name__)


class SourceContext:
    """The runtime services a source uses; built by the daemon for each source."""

    def __init__(self, source_id: str, config: SourceConfig, queue: EventQueue,
                 telemetry: ComponentTelemetry, router: TenantRouter,
                 clock: Callable[[], datetime]) -> None:
        self.source_id = source_id
        self.config = config
        self.queue = queue
        self.telemetry = telemetry
        self.router = router
        self.clock = clock

    def emit(self, events: list[Event], peer: str | None = None) -> dict[str, int]:
        """Route, stamp and enqueue events that arrived together from one peer; returns the
        last queue offset appended per tenant partition."""
        if not events:
            return {}
        by_tenant: dict[str, list[Event]] = {}
        source_id, dataset, route = self.source_id, self.config.dataset, self.router.route
        now = self.clock()
        for event in events:
            tenant = route(event, peer)
            event[TENANT] = tenant
            event[SOURCE] = source_id
            event.setdefault(DATASET, dataset)
            event.setdefault(RECEIVED_AT, now)
            bucket = by_tenant.get(tenant)
            if bucket is None:
                by_tenant[tenant] = [event]
            else:
                bucket.append(event)
        offsets = {}
        for tenant, bucket in by_tenant.items():
            offsets[tenant] = self.queue.append(tenant, bucket)
            self.telemetry.received(len(bucket), tenant)
            if tenant == QUARANTINE:
                self.telemetry.discarded("quarantined", len(bucket))
        return offsets

    async def deliver(self, events: list[Event], peer: str | None = None) -> None:
        """`emit`, then wait until the events are durable in the queue: the point after which
        a source may acknowledge them to its peer (HTTP 2xx, SQS delete, Pub/Sub ack)."""
        for partition, offset in self.emit(events, peer).items():
            await self.queue.wait_durable(partition, offset)


class Source(ABC):
    """A component that receives or pulls events."""

    config_model: ClassVar[type[SourceConfig]]
    kind: ClassVar[str] = "source"

    def __init__(self, context: SourceContext) -> None:
        self.context = context
        self.config: Any = context.config

    @abstractmethod
    async def start(self) -> None:
        """Bind listeners / start pulling; return once ready to receive."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop accepting; hand everything already read to the queue; close."""

    def health(self) -> dict[str, Any]:
        """Detail for /readyz."""
        return {}
