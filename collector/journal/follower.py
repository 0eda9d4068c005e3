"""The journal's read side in a worker process: the segment files of the partitions it owns,
read directly, up to the durable end the main process announces.

The main process appends, fsyncs, checkpoints and deletes segments; it tells the owner of a
partition "durable up to N" and takes back "acknowledged up to M" (`collector.processes`).
Every record below N is whole in the files when N arrives (it was written, then fsynced), so
a record that ends past the file's end here is one being written now, never damage.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.journal.codec import (
    BAD,
    INCOMPLETE,
    OK,
    SEGMENT_HEADER_SIZE,
    decode_events,
    parse_at,
    resync,
)
from collector.journal.files import FileLayer
from collector.journal.segment import Damage, segment_base
from core.events import Batch, Event

log = logging.getLogger(__name__)

READ_CHUNK = 256 * 1024


@dataclass
class KnownDamage:
    """What the main process found at open: damaged byte ranges per segment base, and the
    intact size of segments whose torn tail could not be cut."""

    ranges: dict[int, dict[int, int]] = field(default_factory=dict)
    limits: dict[int, int] = field(default_factory=dict)

    def to_wire(self) -> dict[str, list[list[int]]]:
        return {"ranges": [[b, p, e] for b, r in self.ranges.items() for p, e in r.items()],
                "limits": [[b, size] for b, size in self.limits.items()]}

    @classmethod
    def from_wire(cls, doc: dict[str, list[list[int]]] | None) -> KnownDamage:
        known = cls()
        for base, pos, end in (doc or {}).get("ranges", []):
            known.ranges.setdefault(base, {})[pos] = end
        for base, size in (doc or {}).get("limits", []):
            known.limits[base] = size
        return known


class PartitionFollower:
    """Reads one partition's records from `start` on, never past the announced durable end."""

    def __init__(self, name: str, directory: Path, start: int, *,
                 files: FileLayer | None = None, known: KnownDamage | None = None,
                 on_damage: Callable[[Damage], None] | None = None) -> None:
        self.name = name
        self.directory = directory
        self.files = files or FileLayer()
        self.known = known or KnownDamage()
        self.on_damage = on_damage
        self.read_next = start
        self.visible_end = start
        self._base: int | None = None
        self._fd: int | None = None
        self._pos = 0
        self._chunk = b""
        self._chunk_at = 0
        self._leftover: list[Event] = []
        self._leftover_first = 0

    def announce(self, end: int) -> None:
        """The main process: offsets below `end` are durable."""
        self.visible_end = max(self.visible_end, end)

    def readable(self) -> bool:
        return bool(self._leftover) or self.read_next < self.visible_end

    def all_read(self) -> bool:
        return not self._leftover and self.read_next >= self.visible_end

    def take(self, max_events: int) -> Batch | None:
        """Up to `max_events` contiguous events from the read position (a batch never spans
        a gap in the offsets)."""
        events: list[Event] = []
        first = self.read_next
        if self._leftover:
            first = self._leftover_first
            events = self._leftover[:max_events]
            self._leftover = self._leftover[max_events:]
            self._leftover_first += len(events)
            self.read_next = first + len(events)
        while len(events) < max_events and self.read_next < self.visible_end:
            record_events, record_first = self._next_record()
            if record_events is None:
                break
            if record_first > self.read_next:
                if events:
                    self._leftover, self._leftover_first = record_events, record_first
                    break
                first = self.read_next = record_first
            need = max_events - len(events)
            events.extend(record_events[:need])
            if len(record_events) > need:
                self._leftover = record_events[need:]
                self._leftover_first = record_first + need
            self.read_next = record_first + min(need, len(record_events))
        if not events:
            return None
        return Batch(self.name, events, first, first + len(events) - 1)

    # -- segments -------------------------------------------------------------------------

    def _segments(self) -> list[tuple[int, Path]]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        found = [(base, self.directory / n) for n in names
                 if (base := segment_base(Path(n))) is not None]
        return sorted(found)

    def _open(self, base: int, path: Path) -> bool:
        self._close()
        try:
            self._fd = self.files.open_read(path)
        except FileNotFoundError:
            return False
        self._base, self._pos, self._chunk, self._chunk_at = base, SEGMENT_HEADER_SIZE, b"", 0
        return True

    def _close(self) -> None:
        if self._fd is not None:
            self.files.close(self._fd)
        self._fd = None

    def _position(self) -> bool:
        """Open the segment holding the read position (at start, or after the last one)."""
        for _ in range(3):  # a segment deleted between listing and opening: list again
            segments = self._segments()
            if not segments:
                return False
            candidates = [s for s in segments if s[0] <= self.read_next] or segments[:1]
            if self._open(*candidates[-1]):
                return True
        return False

    def _advance(self) -> bool:
        """Move to the segment after the current one; False when there is none (yet)."""
        later = [s for s in self._segments() if self._base is None or s[0] > self._base]
        return bool(later) and self._open(*later[0])

    def _read(self, pos: int, size: int) -> tuple[bytes, int]:
        chunk, at = self._chunk, self._chunk_at
        if at <= pos and pos + size <= at + len(chunk):
            return chunk, at
        assert self._fd is not None
        data = self.files.pread(self._fd, max(size, READ_CHUNK), pos)
        self._chunk, self._chunk_at = data, pos
        return data, pos

    def _at_end(self) -> tuple[None, int]:
        """No record at the position: the next segment, or (none) the rest is a gap."""
        if self._advance():
            return None, -1
        # Every record below the durable end is in the files, so what is missing is a gap.
        self.read_next = max(self.read_next, self.visible_end)
        return None, 0

    def _next_record(self) -> tuple[list[Event] | None, int]:
        while True:
            if self._fd is None and not self._position():
                self.read_next = max(self.read_next, self.visible_end)
                return None, 0
            assert self._base is not None
            limit = self.known.limits.get(self._base)
            known = self.known.ranges.get(self._base, {}).get(self._pos)
            if known is not None:
                self._pos = known
                continue
            if limit is not None and self._pos >= limit:
                events, first = self._at_end()
                if first < 0:
                    continue
                return events, first
            data, at = self._read(self._pos, 0)
            status, record, needed = parse_at(data, self._pos - at, at)
            while status == INCOMPLETE:  # the header first, then the whole record
                data, at = self._read(self._pos, needed)
                if len(data) - (self._pos - at) < needed:
                    break  # the file ends inside it: a record being written
                status, record, needed = parse_at(data, self._pos - at, at)
            if status == INCOMPLETE or (status == BAD and self._pos - at >= len(data)):
                # The file ends here (or inside a record being written): read on elsewhere.
                events, first = self._at_end()
                if first < 0:
                    continue
                return events, first
            if status != OK or record is None:
                self._skip_damage()
                continue
            if record.first_offset >= self.visible_end:
                return None, 0
            self._pos = record.end
            if record.end_offset <= self.read_next:
                continue
            payload = memoryview(data)[record.payload_start - at:record.end - at]
            events = decode_events(payload)
            skip = self.read_next - record.first_offset
            if skip > 0:
                return events[skip:], self.read_next
            return events, record.first_offset

    def _skip_damage(self) -> None:
        """Damage that appeared after the main process opened the journal: resynchronise on
        the next intact record (its offsets say what was lost) and report it."""
        assert self._fd is not None and self._base is not None
        size = os.fstat(self._fd).st_size
        data = self.files.pread(self._fd, size - self._pos, self._pos)
        following = resync(data, 0, self.read_next, self._pos)
        end = following.pos if following is not None else size
        lost_to = following.first_offset if following is not None else self.visible_end
        damage = Damage(Path(self.directory / f"{self._base:020d}.seg"), self._pos, end,
                        following is None, self.read_next, lost_to, 1,
                        events=max(lost_to - self.read_next, 0), estimated=False)
        self.known.ranges.setdefault(self._base, {})[self._pos] = end
        if self.on_damage is not None:
            self.on_damage(damage)
        self._pos = end

    def close(self) -> None:
        self._close()


class JournalFollower:
    """The `EventQueue` a worker process reads: the partitions assigned to it, read round
    robin; acknowledgements go back to the main process through `on_ack`."""

    def __init__(self, directory: Path, epoch: str, on_ack: Callable[[str, int], None], *,
                 files: FileLayer | None = None,
                 on_damage: Callable[[str, Damage], None] | None = None) -> None:
        self.directory = Path(directory)
        self.epoch = epoch
        self.on_ack = on_ack
        self.files = files or FileLayer()
        self.on_damage = on_damage
        self.max_events = 0
        self._partitions: dict[str, PartitionFollower] = {}
        self._order: list[str] = []
        self._acked: dict[str, int] = {}
        self._replay_end: dict[str, int] = {}
        self._over_bound: set[str] = set()
        self._closed = False
        self._readable: asyncio.Event | None = None

    def assign(self, name: str, acked: int, replay_end: int,
               known: KnownDamage | None = None) -> None:
        """Own `name` from its acknowledged position on (a replay up to `replay_end`)."""
        if name in self._partitions:
            return
        on_damage = self.on_damage
        report = None
        if on_damage is not None:
            def report(damage: Damage) -> None:
                on_damage(name, damage)
        self._partitions[name] = PartitionFollower(
            name, self.directory / name, acked + 1, files=self.files, known=known,
            on_damage=report)
        self._order.append(name)
        self._acked[name] = acked
        self._replay_end[name] = replay_end

    def announce(self, ends: dict[str, int], over_bound: set[str]) -> None:
        """Durable ends from the main process, and the partitions over their bound."""
        for name, end in ends.items():
            follower = self._partitions.get(name)
            if follower is not None:
                follower.announce(end)
        self._over_bound = over_bound
        self._wake()

    def _wake(self) -> None:
        if self._readable is not None:
            self._readable.set()

    async def read(self, max_events: int) -> Batch | None:
        while True:
            batch = self._take(max_events)
            if batch is not None:
                return batch
            if self._closed and all(p.all_read() for p in self._partitions.values()):
                return None
            if self._readable is None:
                self._readable = asyncio.Event()
            self._readable.clear()
            await self._readable.wait()

    def _take(self, max_events: int) -> Batch | None:
        order = self._order
        for _ in range(len(order)):
            name = order[0]
            order.append(order.pop(0))
            follower = self._partitions[name]
            if follower.readable():
                batch = follower.take(max_events)
                if batch is not None:
                    return batch
        return None

    def ack(self, partition: str, offset: int) -> None:
        follower = self._partitions.get(partition)
        if follower is None:
            return
        offset = min(offset, follower.read_next - 1)
        if offset > self._acked.get(partition, -1):
            self._acked[partition] = offset
            self.on_ack(partition, offset)

    def acked(self, partition: str) -> int:
        return self._acked.get(partition, -1)

    def replay_end(self, partition: str) -> int:
        return self._replay_end.get(partition, 0)

    def owns(self, partition: str) -> bool:
        return partition in self._partitions

    def over_bound(self, partition: str | None = None) -> bool:
        return partition in self._over_bound if partition is not None else bool(self._over_bound)

    async def wait_durable(self, partition: str, offset: int) -> None:
        return None  # workers never append

    def append(self, partition: str, events: list[Event],
               shared: Mapping[str, Any] | None = None) -> int:
        raise RuntimeError("a worker process does not append to the journal")

    def add_capacity_listener(self, callback: Callable[[], None], partition: str | None = None,
                              until: Callable[[], bool] | None = None) -> None:
        callback()

    def pending(self) -> int:
        return sum(max(f.visible_end - self._acked.get(n, -1) - 1, 0)
                   for n, f in self._partitions.items())

    def partitions(self) -> list[str]:
        return list(self._partitions)

    def close(self) -> None:
        """No more announcements: read what is durable, then `read` returns None."""
        self._closed = True
        self._wake()

    def release(self) -> None:
        for follower in self._partitions.values():
            follower.close()
