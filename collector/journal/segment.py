"""Segment files: one partition's records in order, `<first offset>.seg`, rolled by size.

`scan_segment` verifies every record of a file and locates damage (bad length or CRC, torn
tail), resynchronising on the next intact record so one bad record costs only itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from collector.journal.codec import (
    OK,
    RECORD_MAGIC,
    SEGMENT_HEADER_SIZE,
    SEGMENT_MAGIC,
    parse_at,
    resync,
)

SUFFIX = ".seg"


def segment_name(base: int) -> str:
    return f"{base:020d}{SUFFIX}"


def segment_base(path: Path) -> int | None:
    """The first offset a segment file holds, from its name; None for other files."""
    if path.suffix != SUFFIX or not path.stem.isdigit():
        return None
    return int(path.stem)


@dataclass(frozen=True)
class Damage:
    """A byte range of a segment holding no intact record."""

    path: Path
    pos: int
    end: int  # where intact data resumes, or the file size
    tail: bool  # nothing intact follows in this file
    lost_from: int  # first offset that was expected there
    lost_to: int | None  # offset of the next intact record; unknown for a tail
    # Damaged records in the range: record starts seen, or (zero-filled, no start left) the
    # length over the file's mean record size; at least 1.
    records: int
    # Events lost: exact from the offsets around the range when an intact record follows,
    # else estimated from the length at the file's mean bytes per event.
    events: int = 0
    estimated: bool = True

    @property
    def length(self) -> int:
        return self.end - self.pos

    def describe(self) -> str:
        what = "torn or corrupt tail" if self.tail else "corrupt record(s)"
        lost = (f"offsets {self.lost_from}..{self.lost_to - 1}" if self.lost_to is not None
                else f"offsets from {self.lost_from}")
        events = f"~{self.events} event(s) (estimated)" if self.estimated else \
            f"{self.events} event(s)"
        return (f"{self.path}: byte {self.pos}: {what}, {self.length} bytes, "
                f"{self.records} record(s), {events}, {lost}")


def sized_damage(damage: Damage, record_bytes: float, event_bytes: float) -> Damage:
    """`damage` with its records and events counted from offsets or estimated from its length
    at the given mean sizes (of the intact records around it)."""
    records = max(damage.records, round(damage.length / record_bytes)) if record_bytes else \
        damage.records
    if damage.lost_to is not None:
        return replace(damage, records=records, events=damage.lost_to - damage.lost_from,
                       estimated=False)
    events = round(damage.length / event_bytes) if event_bytes else records
    return replace(damage, records=records, events=max(events, 1), estimated=True)


@dataclass
class SegmentScan:
    """What a full verification of one segment file found."""

    path: Path
    base: int
    size: int
    header_ok: bool
    records: int = 0
    events: int = 0
    end_offset: int = 0  # offset after the last intact record (the base when none)
    good_size: int = SEGMENT_HEADER_SIZE  # byte position after the last intact record
    damage: list[Damage] = field(default_factory=list)


def scan_segment(path: Path, base: int, data: bytes) -> SegmentScan:
    """Verify every record of a segment file's contents."""
    header_ok = data[:SEGMENT_HEADER_SIZE] == SEGMENT_MAGIC
    scan = SegmentScan(path, base, len(data), header_ok, end_offset=base)
    expected = base
    pos = SEGMENT_HEADER_SIZE
    if not header_ok and len(data) < SEGMENT_HEADER_SIZE:
        scan.good_size = 0
        if data:
            scan.damage.append(Damage(path, 0, len(data), True, base, None, 1))
        return scan
    while pos < len(data):
        status, record, _ = parse_at(data, pos)
        if status == OK and record is not None and record.first_offset >= expected:
            scan.records += 1
            scan.events += record.count
            expected = record.end_offset
            scan.good_size = pos = record.end
            continue
        following = resync(data, pos, expected)
        end = following.pos if following is not None else len(data)
        records = max(1, data.count(RECORD_MAGIC, pos, end))
        lost_to = following.first_offset if following is not None else None
        scan.damage.append(Damage(path, pos, end, following is None, expected, lost_to, records))
        pos = end
    scan.end_offset = expected
    if scan.damage:
        intact = scan.good_size - SEGMENT_HEADER_SIZE - sum(
            d.length for d in scan.damage if d.end <= scan.good_size)
        record_bytes = intact / scan.records if scan.records else 0.0
        event_bytes = intact / scan.events if scan.events else 0.0
        scan.damage = [sized_damage(d, record_bytes, event_bytes) for d in scan.damage]
    return scan


@dataclass
class Segment:
    """A segment file as the running journal tracks it."""

    path: Path
    base: int
    size: int  # bytes of intact records (plus the header); reads never go past it
    end_offset: int  # offset after its last record
    events: int
    write_fd: int | None = None
    read_fd: int | None = None
    broken: bool = False  # a failed write could not be rolled back: append elsewhere
    # Known damaged ranges, start -> end, so a read skips them without counting them again.
    damage: dict[int, int] = field(default_factory=dict)
