"""PartitionedFileSink under faults: replays recognised by committed file names, a refused
write kept and retried without leftovers, a failed manifest append cut back."""

from __future__ import annotations

import errno
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collector.pipeline.runner import dead_letter
from core.durable import WriteEpisodes, storage_error_type, write_atomic
from core.events import DEAD_LETTERS, OFFSET, Batch
from core.schema import DatasetSchemas
from core.sink import SinkContext
from core.telemetry import Telemetry
from sinks.commits import CommitManifest, ManifestEntry, committed_ranges
from sinks.dead_letter import DeadLetterConfig, DeadLetterSink, read_dead_letters

FAILED = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)


def batch(first: int, last: int) -> Batch:
    events = []
    for offset in range(first, last + 1):
        event = dead_letter({"vigil.tenant": "acme", "message": f"m{offset}"}, "app", "0-json",
                            "bad", FAILED)
        event[OFFSET] = offset
        events.append(event)
    return Batch("acme", events, first, last, None, kind=DEAD_LETTERS)


def sink(root: Path, telemetry: Telemetry, replay_end: int = 0,
         clock: list[float] | None = None) -> DeadLetterSink:
    now = clock if clock is not None else [0.0]
    context = SinkContext(root, "e7", telemetry, DatasetSchemas(), monotonic=lambda: now[0],
                          acknowledged=lambda partition: -1, recover=True,
                          replay_end=lambda partition: replay_end)
    return DeadLetterSink("dlq", DeadLetterConfig(), context)


def test_committed_ranges_merge_this_epochs_names(tmp_path: Path) -> None:
    for name in ("e7-000000000000-000000000009.jsonl", "e7-000000000005-000000000012.jsonl",
                 "e7-000000000020-000000000029.jsonl.replayed",
                 "e8-000000000040-000000000049.jsonl",
                 ".e7-000000000050-000000000059.jsonl.tmp", "notes.txt"):
        (tmp_path / name).write_text("")
    assert committed_ranges(tmp_path, "e7") == [(0, 12), (20, 29)]
    assert committed_ranges(tmp_path / "missing", "e7") == []


async def test_a_replay_skips_what_committed_file_names_cover(tmp_path: Path) -> None:
    telemetry = Telemetry()
    first = sink(tmp_path, telemetry)
    await first.start()
    first.write(batch(0, 9))
    await first.stop()
    (tmp_path / "state" / "dlq.commits.jsonl").unlink()  # the commit records are gone too

    again = sink(tmp_path, telemetry, replay_end=15)
    await again.start()
    again.write(batch(5, 14))  # a replay cut differently: 5..9 are in the lake already
    await again.stop()
    lines = [r.event["message"] for path in sorted((tmp_path / "dlq").rglob("*.jsonl"))
             for r in read_dead_letters(path)]
    assert sorted(lines, key=lambda m: int(m[1:])) == [f"m{i}" for i in range(15)]
    assert telemetry.sample("vigil_sink_replayed_committed_events_total", sink="dlq",
                            partition="acme") == 5


async def test_a_refused_write_is_kept_counted_once_and_retried(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    telemetry = Telemetry()
    clock = [0.0]
    target = sink(tmp_path, telemetry, clock=clock)
    await target.start()
    target.write(batch(0, 4))

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("core.durable.os.replace", full)
    with caplog.at_level(logging.ERROR, logger="core.durable"):
        for _ in range(3):
            with pytest.raises(OSError):
                await target.flush(force=True)
            await target.flush(force=True)  # within a second of the failure: not tried
            clock[0] += 1.0
    assert [r.getMessage() for r in caplog.records].count(
        "dlq writes failing; retrying until they succeed") == 1
    assert telemetry.sample("vigil_storage_write_errors_total", writer="dlq",
                            error_type="no_space") == 3
    assert telemetry.sample("vigil_storage_failing", writer="dlq") == 1
    assert list(tmp_path.rglob(".*.tmp")) == []
    assert target.uncommitted_floor("acme") == 0
    monkeypatch.undo()
    await target.flush(force=True)
    assert telemetry.sample("vigil_storage_failing", writer="dlq") == 0
    assert target.uncommitted_floor("acme") is None
    assert len(list((tmp_path / "dlq").rglob("*.jsonl"))) == 1


def test_a_failed_manifest_append_is_cut_back(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = CommitManifest(tmp_path / "m.jsonl")
    manifest.record(ManifestEntry("a", {"acme": [0, 4]}))
    size = manifest.path.stat().st_size

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("sinks.commits.os.fsync", full)
    with pytest.raises(OSError):
        manifest.record(ManifestEntry("b", {"acme": [5, 9]}))
    assert manifest.path.stat().st_size == size
    monkeypatch.undo()
    manifest.record(ManifestEntry("c", {"acme": [10, 14]}))
    assert [e.file for e in manifest.load()] == ["a", "c"]


def test_write_atomic_leaves_nothing_on_failure(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.json"
    write_atomic(path, b"old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("core.durable.os.fsync", full)
    with pytest.raises(OSError):
        write_atomic(path, b"new")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_error_types_and_episodes() -> None:
    import sqlite3

    assert storage_error_type(OSError(errno.ENOSPC, "x")) == "no_space"
    assert storage_error_type(sqlite3.OperationalError("database or disk is full")) == "no_space"
    assert storage_error_type(sqlite3.OperationalError("disk I/O error")) == "io_error"
    assert storage_error_type(ValueError("nope")) == "other"
    episodes = WriteEpisodes()
    episodes.failed("w", OSError(errno.EIO, "x"))
    assert episodes.failing() == {"w": "io_error"}
    episodes.succeeded("w")
    assert episodes.failing() == {}


async def test_a_start_up_trim_the_disk_refused_runs_before_any_name_is_trusted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file committed past the acknowledged position must be trimmed before its name may
    say what is committed; on a full disk the trim waits for the first flush that works."""
    telemetry = Telemetry()
    first = sink(tmp_path, telemetry)
    await first.start()
    first.write(batch(0, 9))
    await first.stop()  # committed, never acknowledged (acknowledged() is -1)

    context = SinkContext(tmp_path, "e7", telemetry, DatasetSchemas(),
                          acknowledged=lambda partition: 4, recover=True,
                          replay_end=lambda partition: 10)
    again = DeadLetterSink("dlq", DeadLetterConfig(), context)

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("sinks.dead_letter.DeadLetterSink.trim_file", full)
    await again.start()  # the trim fails: counted, the start completes
    assert telemetry.sample("vigil_storage_failing", writer="dlq") == 1
    again.write(batch(5, 9))  # the replay after the acknowledged position
    monkeypatch.undo()
    await again.flush(force=True)
    await again.stop()
    lines = [r.event["message"] for path in sorted((tmp_path / "dlq").rglob("*.jsonl"))
             for r in read_dead_letters(path)]
    assert sorted(lines, key=lambda m: int(m[1:])) == [f"m{i}" for i in range(10)]
    assert telemetry.sample("vigil_storage_failing", writer="dlq") == 0
