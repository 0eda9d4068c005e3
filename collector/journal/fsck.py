"""Offline inspection and repair of a journal directory (`vigil journal stats|fsck`).

Reads every segment with the same verification the daemon uses at start; `repair` cuts torn
tails and rewrites segments without their damaged ranges, keeping the damaged bytes aside.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.journal.codec import SEGMENT_HEADER_SIZE, SEGMENT_MAGIC
from collector.journal.files import FileLayer
from collector.journal.layout import (
    CHECKPOINT_FILE,
    EPOCH_FILE,
    LOCK_FILE,
    partition_dirs,
    read_checkpoints,
)
from collector.journal.partition import DAMAGED_DIR
from collector.journal.segment import Damage, SegmentScan, scan_segment, segment_base


@dataclass
class PartitionReport:
    name: str
    directory: Path
    segments: list[SegmentScan]
    acked: int | None  # None: no checkpoint (everything replays)

    @property
    def disk_bytes(self) -> int:
        return sum(s.size for s in self.segments)

    @property
    def events(self) -> int:
        return sum(s.events for s in self.segments)

    @property
    def first_offset(self) -> int | None:
        return self.segments[0].base if self.segments else None

    @property
    def last_offset(self) -> int | None:
        ends = [s.end_offset for s in self.segments if s.records]
        return max(ends) - 1 if ends else None

    @property
    def damage(self) -> list[Damage]:
        return [d for s in self.segments for d in s.damage]

    @property
    def pending(self) -> int:
        """Events after the acknowledged position (gaps left by damage excluded)."""
        if self.last_offset is None:
            return 0
        start = (self.acked if self.acked is not None else -1) + 1
        count = self.last_offset + 1 - max(start, self.first_offset or 0)
        for d in self.damage:
            if d.lost_to is not None:
                count -= max(0, d.lost_to - max(d.lost_from, start))
        return max(count, 0)

    def as_dict(self) -> dict[str, Any]:
        return {"partition": self.name, "segments": len(self.segments),
                "disk_bytes": self.disk_bytes, "events": self.events,
                "first_offset": self.first_offset, "last_offset": self.last_offset,
                "acked_offset": self.acked, "pending_events": self.pending,
                "damaged_ranges": len(self.damage),
                "damaged_records": sum(d.records for d in self.damage)}


@dataclass
class JournalReport:
    directory: Path
    epoch: str | None
    in_use: bool
    partitions: list[PartitionReport] = field(default_factory=list)

    @property
    def damage(self) -> list[Damage]:
        return [d for p in self.partitions for d in p.damage]


def is_locked(directory: Path, files: FileLayer | None = None) -> bool:
    """True while another process (a daemon) holds the journal."""
    files = files or FileLayer()
    if not (directory / LOCK_FILE).exists():
        return False
    fd = files.lock(directory / LOCK_FILE)
    if fd is None:
        return True
    files.unlock(fd)
    return False


def _segments(part_dir: Path) -> list[tuple[int, Path]]:
    """A partition's segment files with their base offsets, in offset order."""
    return sorted((b, p) for p in part_dir.iterdir() if (b := segment_base(p)) is not None)


def segment_bytes(directory: Path) -> int:
    """The size of every segment file: what `inspect` reads (a progress bar's total)."""
    return sum(path.stat().st_size for part_dir in partition_dirs(directory)
               for _, path in _segments(part_dir))


def inspect(directory: Path, files: FileLayer | None = None,
            advance: Callable[[float], None] | None = None) -> JournalReport:
    """Verify every segment of every partition; changes nothing. `advance(n)` is told the
    bytes of each segment once it is verified (a progress bar's)."""
    files = files or FileLayer()
    epoch_path = directory / EPOCH_FILE
    epoch = epoch_path.read_text().strip() if epoch_path.exists() else None
    report = JournalReport(directory, epoch, is_locked(directory, files))
    checkpoints = read_checkpoints(directory / CHECKPOINT_FILE)
    for part_dir in partition_dirs(directory):
        scans = []
        for base, path in _segments(part_dir):
            data = files.read_file(path)
            scans.append(scan_segment(path, base, data))
            if advance is not None:
                advance(len(data))
        checkpoint = checkpoints.get(part_dir.name)
        report.partitions.append(PartitionReport(
            part_dir.name, part_dir, scans, checkpoint["acked"] if checkpoint else None))
    return report


def repair(report: JournalReport, files: FileLayer | None = None) -> list[str]:
    """Cut or rewrite every damaged segment; returns what was done, one line each."""
    files = files or FileLayer()
    actions = []
    for partition in report.partitions:
        for scan in partition.segments:
            if not scan.damage and scan.header_ok:
                continue
            data = files.read_file(scan.path)
            aside = partition.directory / DAMAGED_DIR
            files.mkdir(aside)
            for d in scan.damage:
                files.write_atomic(aside / f"{scan.path.name}.{d.pos}", data[d.pos:d.end])
            if scan.header_ok and len(scan.damage) == 1 and scan.damage[0].tail:
                files.truncate_path(scan.path, scan.damage[0].pos)
                files.fsync_dir(scan.path.parent)
                actions.append(f"{scan.path}: truncated at byte {scan.damage[0].pos} "
                               f"({scan.damage[0].length} bytes kept in {aside})")
                continue
            kept = bytearray(SEGMENT_MAGIC)
            pos = SEGMENT_HEADER_SIZE
            for d in sorted(scan.damage, key=lambda d: d.pos):
                kept += data[pos:d.pos] if d.pos > pos else b""
                pos = max(pos, d.end)
            kept += data[pos:]
            files.write_atomic(scan.path, bytes(kept))
            removed = sum(d.length for d in scan.damage)
            actions.append(f"{scan.path}: rewritten without {len(scan.damage)} damaged "
                           f"range(s), {removed} bytes (kept in {aside})")
    return actions
