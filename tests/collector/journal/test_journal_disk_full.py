"""Disk full and I/O errors: appends fail cleanly with a typed error and leave nothing partial,
sources see backpressure, the episode is logged once and every failure counted, and the journal
recovers by itself when space returns.

The first tests inject the errors through the journal's file layer (no full disk needed); the
last one fills a real 1 MiB tmpfs and skips where mounting is not permitted.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.daemon import wait_until
from support.tmpfs import small_tmpfs

from collector.journal import FileLayer, Journal, JournalFullError, JournalWriteError
from core.telemetry import Telemetry

Factory = Callable[..., Journal]
Drain = Callable[..., Any]


class FaultyFiles(FileLayer):
    """Fails writes (optionally after writing part of the data), fsyncs and probes on demand,
    the way a full or failing disk does."""

    def __init__(self) -> None:
        self.write_errno: int | None = None
        self.partial = False
        self.fsync_errno: int | None = None

    def write(self, fd: int, data: bytes | memoryview) -> int:
        if self.write_errno is not None:
            if self.partial and len(data) > 1:
                self.partial = False  # a short write first, the error on the next call
                return os.write(fd, data[:len(data) // 2])
            raise OSError(self.write_errno, os.strerror(self.write_errno))
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        if self.fsync_errno is not None:
            raise OSError(self.fsync_errno, os.strerror(self.fsync_errno))
        os.fsync(fd)


async def test_enospc_fails_cleanly_backpressures_and_recovers(
        tmp_path: Path, open_journal: Factory, drain: Drain,
        caplog: pytest.LogCaptureFixture) -> None:
    files = FaultyFiles()
    telemetry = Telemetry()
    journal = open_journal(files=files, telemetry=telemetry, probe_interval_ms=20)
    assert journal.append("acme", [{"n": 0}, {"n": 1}]) == 1
    await journal.sync()
    size = journal.disk_bytes("acme")
    segment = next((tmp_path / "journal" / "acme").glob("*.seg"))

    files.write_errno, files.partial = errno.ENOSPC, True
    resumed: list[bool] = []
    with caplog.at_level(logging.ERROR, logger="collector.journal"):
        for n in range(3):
            with pytest.raises(JournalFullError) as info:
                journal.append("acme", [{"n": 100 + n, "message": "x" * 500}])
            assert info.value.errno == errno.ENOSPC
            assert segment.stat().st_size == size  # the short write was rolled back
        assert journal.over_bound() and journal.over_bound("other")
        journal.add_capacity_listener(lambda: resumed.append(True))
        assert journal.health()["failing"] and not resumed
    assert len([r for r in caplog.records if "writes failing" in r.getMessage()]) == 1
    assert telemetry.sample("vigil_journal_write_errors_total", error_type="no_space") == 3
    assert telemetry.sample("vigil_journal_failing") == 1

    files.write_errno = None  # space returns: the probe notices without any append
    await wait_until(lambda: resumed)
    assert not journal.over_bound() and journal.failing is None
    assert telemetry.sample("vigil_journal_failing") == 0
    assert journal.append("acme", [{"n": 2}]) == 2  # failed appends consumed no offsets
    got = await drain(journal)
    assert [(o, e["n"]) for _, o, e in got] == [(0, 0), (1, 1), (2, 2)]
    await journal.aclose()
    reopened = open_journal()
    assert not reopened.damage and reopened.append("acme", [{}]) == 3


async def test_segment_creation_failure_is_clean(tmp_path: Path, open_journal: Factory,
                                                 drain: Drain) -> None:
    files = FaultyFiles()
    journal = open_journal(files=files, segment_bytes=64 * 1024)
    journal.append("acme", [{"m": "x" * 60_000}])
    files.write_errno = errno.ENOSPC
    with pytest.raises(JournalFullError):
        journal.append("acme", [{"m": "y" * 10_000}])  # needs a new segment
    assert len(list((tmp_path / "journal" / "acme").glob("*.seg"))) == 1
    files.write_errno = None
    assert journal.append("acme", [{"m": "z"}]) == 1
    assert [e["m"][0] for _, _, e in await drain(journal)] == ["x", "z"]


async def test_fsync_error_fails_the_durable_wait(open_journal: Factory) -> None:
    files = FaultyFiles()
    telemetry = Telemetry()
    journal = open_journal(files=files, telemetry=telemetry, probe_interval_ms=20)
    files.fsync_errno = errno.EIO
    last = journal.append("acme", [{"n": 1}])
    with pytest.raises(JournalWriteError, match="fsync"):
        await journal.wait_durable("acme", last)
    assert journal.over_bound()
    assert journal.read_nowait(10) is None  # never handed to sinks while not durable
    assert telemetry.sample("vigil_journal_write_errors_total", error_type="io_error") >= 1
    files.fsync_errno = None
    # A round already under way may still fail; once the probe sees the disk healthy, the next
    # round syncs the record.
    await wait_until(lambda: journal.failing is None)
    await journal.wait_durable("acme", last)
    assert journal.read_nowait(10) is not None


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path) as mounted:
        yield mounted


async def test_real_full_tmpfs(tmpfs: Path, open_journal: Factory, drain: Drain) -> None:
    telemetry = Telemetry()
    journal = open_journal(tmpfs / "journal", telemetry=telemetry,
                           segment_bytes=64 * 1024, probe_interval_ms=20)
    for n in range(20):
        journal.append("acme", [{"n": n, "message": "x" * 400}])
    ballast = tmpfs / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT)
    try:  # fill the file system to the last byte
        for size in (65536, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    written = 20
    with pytest.raises(JournalFullError):
        for n in range(20, 1000):
            journal.append("acme", [{"n": n, "message": "x" * 400}])
            written += 1
    assert journal.over_bound()
    ballast.unlink()  # space returns
    await wait_until(lambda: journal.failing is None)
    assert not journal.over_bound()
    last = journal.append("acme", [{"n": "after"}])
    await journal.wait_durable("acme", last)
    got = await drain(journal)
    assert [e["n"] for _, _, e in got] == [*range(written), "after"]
    assert telemetry.sample("vigil_journal_write_errors_total", error_type="no_space") >= 1
    await journal.aclose()
    reopened = open_journal(tmpfs / "journal")
    assert not reopened.damage
    reopened.abandon()
