"""The journal's side of worker processes (`collector.processes`): hand durable ends to the
process owning a partition, which reads the segment files itself
(`collector.journal.follower`) and acknowledges through `Journal.ack`.

`HandOff` is the part of `Journal` that does it, like `BackgroundRounds` for the fsync rounds.
"""

from __future__ import annotations

import asyncio

from collector.journal.config import QueueConfig
from collector.journal.follower import KnownDamage
from collector.journal.partition import Partition


class HandOff:
    """Durable ends handed to worker processes, counted as read."""

    # Owned by the journal.
    config: QueueConfig
    _partitions: dict[str, Partition]
    _closed: bool
    _readable: asyncio.Event | None

    def _ensure_task(self) -> None:
        raise NotImplementedError  # the rounds': starts the background task on this loop

    def hand_off(self) -> dict[str, int]:
        """The durable ends that moved since the last call, per partition, counted as read:
        the worker process owning a partition reads the segment files up to its end itself
        (`collector.journal.follower`), and acknowledges through `ack`."""
        mode = self.config.fsync_mode()
        ends = {}
        for name, partition in self._partitions.items():
            end = partition.published_end(mode)
            if end > partition.read_next:
                partition.read_next = end
                ends[name] = end
        return ends

    @property
    def closed(self) -> bool:
        return self._closed

    def handed_end(self, partition: str) -> int:
        """The offset after the last one handed off (or read) of a partition."""
        p = self._partitions.get(partition)
        return p.read_next if p is not None else 0

    async def wait_readable(self) -> None:
        """Return once new durable records may be there (or the journal closed)."""
        self._ensure_task()
        assert self._readable is not None
        if self._closed or any(p.published_end(self.config.fsync_mode()) > p.read_next
                               for p in self._partitions.values()):
            return
        self._readable.clear()
        await self._readable.wait()

    def known_damage(self, partition: str) -> KnownDamage:
        """Damage found at open (skipped ranges, segments whose torn tail was not cut), so a
        worker process skips it without counting it again."""
        known = KnownDamage()
        p = self._partitions.get(partition)
        for segment in p.segments if p is not None else []:
            if segment.damage:
                known.ranges[segment.base] = dict(segment.damage)
            if segment.broken:
                known.limits[segment.base] = segment.size
        return known
