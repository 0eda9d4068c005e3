"""Dead-letter replay inside the daemon: files `vigil dlq replay` marked go back into the queue.

Replayed events keep their source and the tenant of the dead-letter partition they lie in (the
journal partition they came from), so after a pipeline fix the same pipeline takes them again,
and they travel through the journal like any other input. The file is renamed `.replayed` only
after the queue holds them durably.
"""

from __future__ import annotations

import logging
from pathlib import Path

from collector.queue import EventQueue
from collector.routing import QUARANTINE
from core.events import TENANT, Event
from core.telemetry import Telemetry
from sinks.dead_letter import (
    REPLAY_SUFFIX,
    dead_letter_files,
    mark_replayed,
    read_dead_letters,
    restore_event,
)

log = logging.getLogger(__name__)


def partition_of(root: Path, path: Path) -> str:
    """The tenant of a dead-letter file from its directory; "" when it is not under one."""
    top = path.relative_to(root).parts[0] if path.is_relative_to(root) else ""
    return top.removeprefix("tenant=") if top.startswith("tenant=") else ""


class DeadLetterReplayer:
    """Checked from the daemon's tick; one marked file at a time, so a large replay cannot hold
    the loop or flood the queue past its bound."""

    def __init__(self, root: Path, queue: EventQueue, telemetry: Telemetry,
                 tenants: set[str]) -> None:
        self.root = root
        self.queue = queue
        self.telemetry = telemetry
        self.tenants = tenants

    async def replay_next(self) -> int:
        """Replay the oldest marked file, if any and if the queue has room; events replayed."""
        if self.queue.over_bound() or not self.root.is_dir():
            return 0
        marked = dead_letter_files(self.root, suffixes=(REPLAY_SUFFIX,))
        if not marked:
            return 0
        path = marked[0]
        # The tenant is the dead-letter partition the file lies in (`tenant=<t>/...`), as the
        # sink wrote it from the journal partition, never a field of a record.
        tenant = partition_of(self.root, path)
        if tenant not in self.tenants:  # the tenant was removed since: never guess another
            tenant = QUARANTINE
        by_tenant: dict[str, list[Event]] = {}
        for record in read_dead_letters(path):
            event = restore_event(record.event)
            event[TENANT] = tenant
            by_tenant.setdefault(tenant, []).append(event)
        for tenant, events in by_tenant.items():
            offset = self.queue.append(tenant, events)
            await self.queue.wait_durable(tenant, offset)
            self.telemetry.dead_letter_replayed.labels(tenant).inc(len(events))
        mark_replayed(path)
        count = sum(len(events) for events in by_tenant.values())
        log.info("dead letters replayed", extra={"file": str(path), "events": count})
        return count
