"""Fair shares of a tenant's journal bound between the sources that write to it.

Without them the source that refills fastest (TCP connections with megabytes waiting in their
kernel buffers) takes every bit of room the tenant's bound frees, and the others (HTTP, told
503) get none. A source is held back once the tenant's partition is half full and the source
holds its share of the bound (the bound divided among the sources that wrote or asked lately),
counting its events appended but not yet acknowledged.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

# A source that appended or asked for room this recently competes for the tenant's bound.
ACTIVE_SECONDS = 5.0
# Below this share of the tenant's bound there is room for everyone.
CONTENDED_RATIO = 0.5


class PartitionedQueue(Protocol):
    partition_max_events: int
    resume_ratio: float

    def pending(self, partition: str | None = None) -> int: ...

    def acked(self, partition: str) -> int: ...


class SourceShares:
    """Per tenant: which sources compete, and each one's events still unacknowledged."""

    def __init__(self, queue: PartitionedQueue,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.queue = queue
        self.clock = clock
        self._batches: dict[tuple[str, str], deque[tuple[int, int]]] = {}
        self._pending: dict[tuple[str, str], int] = {}
        self._active: dict[str, dict[str, float]] = {}

    def appended(self, source: str, tenant: str, last_offset: int, events: int) -> None:
        key = (source, tenant)
        batches = self._batches.get(key)
        if batches is None:
            batches = self._batches[key] = deque()
        batches.append((last_offset, events))
        self._pending[key] = self._pending.get(key, 0) + events
        self.wants(source, tenant)

    def wants(self, source: str, tenant: str) -> None:
        """`source` has events for `tenant` (it appended, or asked whether it may)."""
        self._active.setdefault(tenant, {})[source] = self.clock()

    def pending(self, source: str, tenant: str) -> int:
        """Events `source` appended to `tenant` that are not acknowledged yet."""
        key = (source, tenant)
        batches = self._batches.get(key)
        if not batches:
            return 0
        acked = self.queue.acked(tenant)
        count = self._pending[key]
        while batches and batches[0][0] <= acked:
            count -= batches.popleft()[1]
        self._pending[key] = count
        return count

    def competing(self, tenant: str) -> int:
        sources = self._active.get(tenant)
        if not sources:
            return 0
        horizon = self.clock() - ACTIVE_SECONDS
        for source in [s for s, seen in sources.items() if seen < horizon]:
            del sources[source]
        return len(sources)

    def over_share(self, source: str, tenant: str, ratio: float = 1.0) -> bool:
        """Whether `source` should wait for `tenant`: others compete for a contended bound and
        it holds `ratio` of its share or more."""
        bound = self.queue.partition_max_events
        competing = self.competing(tenant)
        if competing < 2 or self.queue.pending(tenant) < bound * CONTENDED_RATIO:
            return False
        return self.pending(source, tenant) >= bound / competing * ratio

    def has_room(self, source: str, tenant: str) -> Callable[[], bool]:
        """A predicate for a capacity listener: `source` is back under its share."""
        ratio = self.queue.resume_ratio
        return lambda: not self.over_share(source, tenant, ratio)
