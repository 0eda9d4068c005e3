"""Committed files: their offset-carrying names and the write-ahead manifest that lets a
restart trim what was committed past the acknowledged position (`sinks.files` writes them).

Replays: with a journal, a position is acknowledged only after every sink committed everything
before it, yet a file may be committed ahead of that position (another buffer of the tenant was
still open). Before each commit the file is recorded in a small write-ahead manifest; on start,
every recorded file that holds offsets past the acknowledged position is trimmed to the rows at
or below it (rows carry `vigil.offset`), and the replay writes the rest again: each event lands
once. Invariant relied on: the rows of a file belong to one queue partition (its tenant).

The file names alone also say what is committed, whatever the checkpoint says: a buffer takes
every event of its directory from its first batch to its last, so an event of this epoch whose
offset lies in the `<first>-<last>` range of a file in its directory is in that file. While a
replay re-reads offsets an earlier run processed (below the queue's end at open), events so
covered are skipped and counted, so a lost or wrong checkpoint never duplicates a row.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from core.durable import fsync_directory, write_atomic

# `<first>-<last>.<extension...>` after the epoch prefix of a committed file's name.
COMMITTED_NAME = re.compile(r"(\d{12,})-(\d{12,})\.[A-Za-z0-9.]+")


def trimmed_name(path: Path, last_kept: int) -> Path:
    """`<epoch>-<first>-<last>.<ext>` renamed for the offsets a trimmed file still holds."""
    stem, _, extension = path.name.partition(".")
    epoch, first, _ = stem.rsplit("-", 2)
    return path.with_name(f"{epoch}-{first}-{last_kept:012d}.{extension}")


def committed_ranges(directory: Path, epoch: str) -> list[tuple[int, int]]:
    """The offsets this epoch's committed files in `directory` cover, as sorted disjoint
    `[first, last]` ranges (any extension: `.jsonl.replayed` dead letters count)."""
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    ranges = []
    prefix = f"{epoch}-"
    for name in names:
        if not name.startswith(prefix):
            continue
        match = COMMITTED_NAME.fullmatch(name[len(prefix):])
        if match is not None:
            ranges.append((int(match[1]), int(match[2])))
    merged: list[tuple[int, int]] = []  # disjoint: a replay may have left overlapping names
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def remove_file(path: Path) -> None:
    """Unlink and make the removal durable."""
    path.unlink()
    fsync_directory(path.parent)


def temporary_name(target: Path) -> Path:
    """Hidden, so readers globbing `*.parquet` / `*.jsonl` never pick a file being written."""
    return target.with_name(f".{target.name}.tmp")


@dataclass
class ManifestEntry:
    """A file committed while its offsets may not all be acknowledged yet."""

    file: str  # relative to the sink's root
    offsets: dict[str, list[int]]  # partition -> [first, last]

    def acknowledged_by(self, acknowledged: Callable[[str], int]) -> bool:
        return all(acknowledged(p) >= last for p, (_, last) in self.offsets.items())


class CommitManifest:
    """Write-ahead list of committed files not yet covered by the acknowledged position."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: list[ManifestEntry] = []

    def load(self) -> list[ManifestEntry]:
        entries = []
        if self.path.exists():
            for line in self.path.read_bytes().splitlines():
                try:
                    doc = orjson.loads(line)
                    entries.append(ManifestEntry(str(doc["file"]), dict(doc["offsets"])))
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue  # a torn last line: its file was never renamed into place
        return entries

    def record(self, entry: ManifestEntry) -> None:
        """Append and fsync before the file is committed; a failed append is cut off again,
        so the next one does not land on a torn line."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = orjson.dumps({"file": entry.file, "offsets": entry.offsets},
                            option=orjson.OPT_APPEND_NEWLINE)
        with open(self.path, "ab") as handle:
            size = handle.tell()
            try:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(handle.fileno(), size)
                raise
        self.entries.append(entry)

    def prune(self, acknowledged: Callable[[str], int], *, force: bool = False) -> None:
        """Forget acknowledged entries; rewrite the file when that halves it (or `force`)."""
        kept = [e for e in self.entries if not e.acknowledged_by(acknowledged)]
        if force or (len(self.entries) >= 64 and len(kept) * 2 <= len(self.entries)):
            write_atomic(self.path, b"".join(orjson.dumps({"file": e.file, "offsets": e.offsets},
                                                          option=orjson.OPT_APPEND_NEWLINE)
                                             for e in kept))
            self.entries = kept


def manifest_path(data_dir: Path, sink_id: str, slot: str = "") -> Path:
    """A sink's commit manifest; one per worker process slot."""
    suffix = f".{slot}" if slot else ""
    return data_dir / "state" / f"{sink_id}.commits{suffix}.jsonl"


def other_manifests(path: Path) -> list[Path]:
    """The same sink's manifests of the other process slots."""
    sink_id = path.name.split(".commits", 1)[0]
    return [p for p in path.parent.glob(f"{sink_id}.commits*.jsonl") if p != path]
