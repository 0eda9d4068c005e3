"""One partition (tenant) of the journal: its segments, append position, reader and checkpoint.

Everything here runs on the event loop thread except `SyncJob` (collector/journal/sync.py),
which the journal hands to its I/O thread. Offsets are dense except where damage or a crash
left a gap; gaps are tracked so pending counts stay exact and a batch never spans one.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from collector.journal.codec import (
    INCOMPLETE,
    OK,
    SEGMENT_HEADER_SIZE,
    SEGMENT_MAGIC,
    RecordOriginals,
    decode_events,
    encode_record,
    parse_at,
    resync,
)
from collector.journal.files import FileLayer
from collector.journal.segment import Damage, Segment, scan_segment, segment_base, segment_name
from collector.journal.sync import SyncJob, write_error
from core.events import Batch, Event

log = logging.getLogger(__name__)

DAMAGED_DIR = "damaged"
READ_CHUNK = 256 * 1024


@dataclass(frozen=True)
class CheckpointRepair:
    """A partition's checkpoint found missing or wrong at open, and what replaced it."""

    reason: str  # missing | past_end
    claimed_acked: int | None
    segments_end: int  # offset after the last record the segments hold
    replayed: int  # offsets from the oldest segment on, now read again


class Partition:
    """Segments and positions of one partition."""

    def __init__(self, name: str, directory: Path, files: FileLayer, segment_bytes: int) -> None:
        self.name = name
        self.directory = directory
        self.files = files
        self.segment_bytes = segment_bytes
        self.segments: list[Segment] = []
        self.next_offset = 0
        self.durable_end = 0
        self.acked = -1
        self.checkpointed: dict[str, int] | None = None
        self.gaps: list[tuple[int, int]] = []  # [start, end) offset ranges with no record
        self.unsynced: list[Segment] = []  # segments written since the last fsync
        self.dir_dirty = False
        self.waiters: deque[tuple[int, Any]] = deque()  # (offset, future), offsets ascending
        self.read_next = 0
        self._cursor: Segment | None = None
        self._cursor_pos = 0
        self._leftover: list[Event] = []
        self._leftover_first = 0
        # The record the leftover events were decoded from: (its first offset, its payload).
        self._leftover_record: tuple[int, bytes | memoryview] = (0, b"")
        self._cached: tuple[Segment, int, bytes] | None = None
        self.damage_found: list[Damage] = []  # this process's findings, for stats and metrics
        self.repair: CheckpointRepair | None = None  # what `load` had to repair

    # -- opening ------------------------------------------------------------------------

    def load(self, checkpoint: dict[str, int] | None) -> list[Damage]:
        """Scan every segment, cut damaged tails, restore positions; returns the damage."""
        damage: list[Damage] = []
        paths = sorted((base, path) for path in self.directory.iterdir()
                       if (base := segment_base(path)) is not None)
        end = 0
        for index, (base, path) in enumerate(paths):
            scan = scan_segment(path, base, self.files.read_file(path))
            if scan.damage and scan.damage[-1].tail and index + 1 < len(paths):
                # The next segment's name says where the lost tail's offsets ended.
                tail = scan.damage[-1]
                scan.damage[-1] = replace(tail, events=paths[index + 1][0] - tail.lost_from,
                                          estimated=False)
            damage.extend(scan.damage)
            segment = Segment(path, base, scan.good_size, scan.end_offset, scan.events,
                              broken=not scan.header_ok)
            for d in scan.damage:
                if d.tail:
                    self._cut_tail(segment, d)
                else:
                    segment.damage[d.pos] = d.end
                    self._add_gap(d.lost_from, d.lost_to if d.lost_to is not None else 0)
            if index and base > end:
                self._add_gap(end, base)
            if scan.damage and scan.damage[-1].tail:
                # The records lost in a tail may have had offsets up to one per byte; never
                # reuse them: a sink may already hold them under those offsets.
                tail = scan.damage[-1]
                next_base = paths[index + 1][0] if index + 1 < len(paths) else None
                bumped = tail.lost_from + tail.length
                segment_end = next_base if next_base is not None else bumped
                self._add_gap(scan.end_offset, segment_end)
                end = segment_end
            else:
                end = scan.end_offset
            self.segments.append(segment)
        first = self.segments[0].base if self.segments else 0
        self.repair = None
        if checkpoint is not None and self.segments and checkpoint["acked"] >= end:
            # It claims records the segments never held (the last segment is never deleted,
            # so they would be there): wrong. Replay the segments; sinks recognise what they
            # already committed. Offsets it claims stay unused, a sink may hold them.
            self.repair = CheckpointRepair("past_end", checkpoint["acked"], end, end - first)
            if checkpoint["next_offset"] > end:
                self._add_gap(end, checkpoint["next_offset"])
                end = checkpoint["next_offset"]
            checkpoint = None
        elif checkpoint is None and self.segments and end > first:
            self.repair = CheckpointRepair("missing", None, end, end - first)
        if checkpoint is not None:
            self.acked = max(checkpoint["acked"], first - 1)
            if checkpoint["next_offset"] > end:
                self._add_gap(end, checkpoint["next_offset"])
                end = checkpoint["next_offset"]
            end = max(end, checkpoint["acked"] + 1)
            self.checkpointed = checkpoint
        else:
            self.acked = first - 1
        self.next_offset = self.durable_end = end
        self.read_next = self.acked + 1
        self.gaps = [g for g in self.gaps if g[1] > self.read_next]
        self.damage_found = damage
        return damage

    def _cut_tail(self, segment: Segment, damage: Damage) -> None:
        """Keep the damaged bytes aside (nothing is thrown away silently) and truncate."""
        try:
            data = self.files.read_file(segment.path)[damage.pos:damage.end]
            aside = self.directory / DAMAGED_DIR
            self.files.mkdir(aside)
            self.files.write_atomic(aside / f"{segment.path.name}.{damage.pos}", data)
            self.files.truncate_path(segment.path, damage.pos)
        except OSError as exc:
            # Reads stop at the last intact record anyway; appends go to a new segment.
            log.error("journal tail could not be cut; appending to a new segment",
                      extra={"file": str(segment.path), "error": str(exc)})
            segment.broken = True

    def _add_gap(self, start: int, end: int) -> None:
        if end > start:
            self.gaps.append((start, end))

    # -- appending ----------------------------------------------------------------------

    @property
    def active(self) -> Segment | None:
        return self.segments[-1] if self.segments else None

    def append(self, events: list[Event], shared: Mapping[str, Any] | None = None) -> int:
        """Write one record (`shared`: what every event has in common, stored once); returns
        the offset of its last event. Raises JournalWriteError with nothing partial left
        behind."""
        record = encode_record(self.next_offset, events, shared)
        segment = self.active
        if (segment is None or segment.broken
                or (segment.size + len(record) > self.segment_bytes
                    and segment.size > SEGMENT_HEADER_SIZE)):
            segment = self._roll()
        if segment.write_fd is None:
            try:
                segment.write_fd = self.files.open_append(segment.path, create=False)
            except OSError as exc:
                raise write_error(exc, "open") from exc
        old_size = segment.size
        try:
            self.files.write_all(segment.write_fd, record)
        except OSError as exc:
            try:
                self.files.truncate(segment.write_fd, old_size)
            except OSError:
                segment.broken = True
            raise write_error(exc, "append") from exc
        n = len(events)
        segment.size += len(record)
        segment.end_offset = self.next_offset + n
        segment.events += n
        self.next_offset += n
        if not self.unsynced or self.unsynced[-1] is not segment:
            self.unsynced.append(segment)
        return self.next_offset - 1

    def _roll(self) -> Segment:
        previous = self.active
        if previous is not None and previous.base == self.next_offset:
            # An empty segment (broken by a failed write) holds this name: replace it.
            self._drop(previous)
            self.files.unlink(previous.path)
            previous = self.active
        path = self.directory / segment_name(self.next_offset)
        try:
            fd = self.files.open_append(path, create=True)
        except OSError as exc:
            raise write_error(exc, "segment creation") from exc
        try:
            self.files.write_all(fd, SEGMENT_MAGIC)
        except OSError as exc:
            self.files.close(fd)
            self.files.unlink(path)
            raise write_error(exc, "segment creation") from exc
        segment = Segment(path, self.next_offset, SEGMENT_HEADER_SIZE, self.next_offset, 0,
                          write_fd=fd)
        if previous is not None and previous.write_fd is not None and previous not in self.unsynced:
            self.files.close(previous.write_fd)
            previous.write_fd = None
        self.segments.append(segment)
        self.unsynced.append(segment)
        self.dir_dirty = True
        return segment

    def _drop(self, segment: Segment) -> None:
        for fd in (segment.read_fd, segment.write_fd):
            if fd is not None:
                self.files.close(fd)
        segment.read_fd = segment.write_fd = None
        self.segments.remove(segment)
        if segment in self.unsynced:
            self.unsynced.remove(segment)
        if self._cursor is segment:
            self._cursor = None
        if self._cached is not None and self._cached[0] is segment:
            self._cached = None

    # -- durability ---------------------------------------------------------------------

    def sync_job(self, *, fsync: bool, checkpoint: bool) -> SyncJob:
        fds = [s.write_fd for s in self.unsynced if s.write_fd is not None]
        state = {"acked": self.acked, "next_offset": self.next_offset}
        saved = state if checkpoint else self.checkpointed
        acked = saved["acked"] if saved else -1
        delete = [s for s in self.segments[:-1] if s.end_offset - 1 <= acked
                  and s not in self.unsynced and s is not self._cursor]
        sync_dir, self.dir_dirty = self.dir_dirty, False
        return SyncJob(self, fds, self.next_offset, sync_dir, state if checkpoint else None,
                       delete, fsync)

    def sync_done(self, job: SyncJob) -> None:
        """Back on the loop: publish durability, close synced rolled segments, drop deleted."""
        if job.error is None:
            self.durable_end = max(self.durable_end, job.target_end)
            synced = [s for s in self.unsynced if s.end_offset <= job.target_end]
            for segment in synced:
                if segment is not self.active and segment.write_fd is not None:
                    self.files.close(segment.write_fd)
                    segment.write_fd = None
            self.unsynced = [s for s in self.unsynced if s not in synced
                             or (s is self.active and s.end_offset > job.target_end)]
        elif job.sync_dir:
            self.dir_dirty = True
        if job.checkpoint is not None and job.checkpoint_saved:
            self.checkpointed = job.checkpoint
        for segment in job.deleted:
            if segment in self.segments:
                self._drop(segment)

    def published_end(self, mode: str) -> int:
        """Offsets below this may be read: durable ones, or all written ones under `never`."""
        return self.next_offset if mode == "never" else self.durable_end

    # -- reading ------------------------------------------------------------------------

    def readable(self, visible_end: int) -> bool:
        return bool(self._leftover) or self.read_next < visible_end

    def take(self, max_events: int, visible_end: int, on_damage: Callable[[Damage], None]
             ) -> Batch | None:
        """Up to `max_events` contiguous events from the read position, below `visible_end`;
        the batch can give back each event as read (`Batch.originals`) from its records."""
        events: list[Event] = []
        first = self.read_next
        records: list[tuple[int, bytes | memoryview]] = []
        if self._leftover:
            first = self._leftover_first
            events = self._leftover[:max_events]
            self._leftover = self._leftover[max_events:]
            self._leftover_first += len(events)
            self.read_next = first + len(events)
            records.append(self._leftover_record)
        while len(events) < max_events and self.read_next < visible_end:
            record_events, record_first, record = self._next_record(visible_end, on_damage)
            if record_events is None:
                break
            if record_first > self.read_next:
                if events:  # a gap: the batch ends before it
                    self._leftover, self._leftover_first = record_events, record_first
                    self._leftover_record = record
                    break
                first = self.read_next = record_first
            records.append(record)
            need = max_events - len(events)
            events.extend(record_events[:need])
            if len(record_events) > need:
                self._leftover = record_events[need:]
                self._leftover_first = record_first + need
                self._leftover_record = record
            self.read_next = record_first + min(need, len(record_events))
        if not events:
            return None
        originals = RecordOriginals(self.name, first)
        for record_first, payload in records:
            originals.add(record_first, payload)
        return Batch(self.name, events, first, first + len(events) - 1, originals=originals)

    def _next_record(self, visible_end: int, on_damage: Callable[[Damage], None]
                     ) -> tuple[list[Event] | None, int, tuple[int, bytes | memoryview]]:
        """Decode the next record holding offsets at or after the read position: its events
        from there, the offset of the first, and (the record's first offset, its payload)."""
        while True:
            segment = self._cursor_segment()
            if segment is None:
                return None, 0, (0, b"")
            if self._cursor_pos >= segment.size:
                if segment is self.active:
                    # Every record written is in the files: what remains below the end is a gap.
                    self.read_next = max(self.read_next, min(visible_end, self.next_offset))
                    return None, 0, (0, b"")
                self._advance_segment(segment)
                continue
            pos = self._cursor_pos
            known = segment.damage.get(pos)
            if known is not None:
                self._cursor_pos = known
                continue
            data, start = self._chunk(segment, pos, 0)
            status, record, needed = parse_at(data, pos - start, start)
            if status == INCOMPLETE and pos + needed <= segment.size:
                data, start = self._chunk(segment, pos, needed)
                status, record, needed = parse_at(data, pos - start, start)
            if status != OK or record is None:
                self._skip_damage(segment, pos, on_damage)
                continue
            if record.first_offset >= visible_end:
                return None, 0, (0, b"")
            self._cursor_pos = record.end
            if record.end_offset <= self.read_next:
                continue
            payload = memoryview(data)[record.payload_start - start:record.end - start]
            events = decode_events(payload)
            skip = self.read_next - record.first_offset
            kept = (record.first_offset, payload)
            if skip > 0:
                return events[skip:], self.read_next, kept
            return events, record.first_offset, kept

    def _chunk(self, segment: Segment, pos: int, needed: int) -> tuple[bytes, int]:
        """Bytes of `segment` from at most `pos` on; one pread serves many small records."""
        cached = self._cached
        if (needed == 0 and cached is not None and cached[0] is segment
                and cached[1] <= pos < cached[1] + len(cached[2])):
            return cached[2], cached[1]
        fd = segment.read_fd
        if fd is None:
            fd = segment.read_fd = self.files.open_read(segment.path)
        data = self.files.pread(fd, min(max(needed, READ_CHUNK), segment.size - pos), pos)
        self._cached = (segment, pos, data)
        return data, pos

    def _cursor_segment(self) -> Segment | None:
        if self._cursor is not None and self._cursor in self.segments:
            return self._cursor
        # Position on the segment holding the read offset (after open or a deletion).
        candidates = [s for s in self.segments if s.base <= self.read_next]
        segment = candidates[-1] if candidates else (self.segments[0] if self.segments else None)
        self._cursor = segment
        self._cursor_pos = SEGMENT_HEADER_SIZE
        return segment

    def _advance_segment(self, segment: Segment) -> None:
        if segment.read_fd is not None:
            self.files.close(segment.read_fd)
            segment.read_fd = None
        self._cached = None
        index = self.segments.index(segment)
        self._cursor = self.segments[index + 1]
        self._cursor_pos = SEGMENT_HEADER_SIZE

    def _skip_damage(self, segment: Segment, pos: int, on_damage: Callable[[Damage], None]
                     ) -> None:
        # Damage that appeared after open (e.g. the disk changed a byte under us).
        data, _ = self._chunk(segment, pos, segment.size - pos)
        following = resync(data, 0, self.read_next, pos)
        end = following.pos if following is not None else segment.size
        lost_to = following.first_offset if following is not None else segment.end_offset
        damage = Damage(segment.path, pos, end, following is None, self.read_next, lost_to, 1,
                        events=lost_to - self.read_next, estimated=False)
        segment.damage[pos] = end
        self._add_gap(self.read_next, lost_to)
        self.damage_found.append(damage)
        on_damage(damage)
        self._cursor_pos = end

    # -- acknowledgement and figures ----------------------------------------------------

    def ack(self, offset: int) -> bool:
        """Returns True when the acknowledged position moved."""
        offset = min(offset, self.read_next - 1)
        if offset <= self.acked:
            return False
        self.acked = offset
        if self.gaps:
            self.gaps = [g for g in self.gaps if g[1] > offset + 1]
        return True

    def pending(self) -> int:
        count = self.next_offset - self.acked - 1
        for start, end in self.gaps:
            count -= max(0, end - max(start, self.acked + 1))
        return max(count, 0)

    def disk_bytes(self) -> int:
        return sum(s.size for s in self.segments)

    def all_read(self) -> bool:
        return not self._leftover and self.read_next >= self.next_offset

    def close_files(self) -> None:
        for segment in self.segments:
            for fd in (segment.read_fd, segment.write_fd):
                if fd is not None:
                    self.files.close(fd)
            segment.read_fd = segment.write_fd = None

    def stats(self) -> dict[str, Any]:
        return {"segments": len(self.segments), "disk_bytes": self.disk_bytes(),
                "first_offset": self.segments[0].base if self.segments else self.next_offset,
                "next_offset": self.next_offset, "acked_offset": self.acked,
                "durable_end": self.durable_end, "pending_events": self.pending()}
