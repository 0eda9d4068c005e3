"""Damaged segment files written by the test: start-up never blocks, the loss is exactly the
damaged records, they are counted and logged with file and byte offset, and fsck agrees."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from collector.cli import main
from collector.journal import Journal
from core.telemetry import Telemetry

Factory = Callable[..., Journal]
Drain = Callable[..., Any]
RECORDS = 40


async def write_records(journal: Journal, partition: str = "acme") -> list[tuple[int, int]]:
    """RECORDS records of 3 events each; returns each record's byte range in its segment."""
    spans = []
    for r in range(RECORDS):
        start = journal.disk_bytes(partition)
        journal.append(partition, [{"r": r, "i": i, "message": "m" * 60} for i in range(3)])
        spans.append((start, journal.disk_bytes(partition)))
    await journal.sync()
    await journal.aclose()
    return spans


def segment(tmp_path: Path, partition: str = "acme") -> Path:
    (path,) = sorted((tmp_path / "journal" / partition).glob("*.seg"))
    return path


def patch(path: Path, pos: int, data: bytes) -> None:
    with path.open("r+b") as f:
        f.seek(pos)
        f.write(data)


async def reopen_and_read(open_journal: Factory, drain: Drain) -> tuple[Journal, list[int],
                                                                        Telemetry]:
    telemetry = Telemetry()
    journal = open_journal(telemetry=telemetry)
    got = await drain(journal)
    return journal, sorted({e["r"] for _, _, e in got}), telemetry


def fsck(tmp_path: Path, *extra: str) -> int:
    return main(["journal", "fsck", "--data-dir", str(tmp_path), *extra])


async def test_corrupt_record_in_the_middle_costs_only_itself(
        tmp_path: Path, open_journal: Factory, drain: Drain, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    spans = await write_records(open_journal())
    path = segment(tmp_path)
    start, end = spans[17]
    patch(path, (start + end) // 2, b"\xff\x00\xff")  # inside record 17's payload

    assert fsck(tmp_path) == 1
    out = capsys.readouterr().out
    assert f"{path}: byte {start}: corrupt record(s), {end - start} bytes, 1 record(s), " \
           "3 event(s), offsets 51..53" in out

    with caplog.at_level(logging.ERROR, logger="collector.journal"):
        journal, seen, telemetry = await reopen_and_read(open_journal, drain)
    assert seen == [r for r in range(RECORDS) if r != 17]
    assert telemetry.sample("vigil_journal_damaged_records_total", partition="acme") == 1
    assert telemetry.sample("vigil_journal_damaged_bytes_total", partition="acme") == end - start
    (record,) = [r for r in caplog.records if "damage" in r.getMessage()]
    assert record.__dict__["byte_offset"] == start and record.__dict__["file"] == str(path)
    assert journal.pending() == 0  # the lost offsets are a gap, not pending work
    await journal.aclose()

    assert fsck(tmp_path, "--repair") == 0
    assert "rewritten without 1 damaged range(s)" in capsys.readouterr().out
    assert fsck(tmp_path) == 0
    assert list((path.parent / "damaged").iterdir())  # the damaged bytes are kept aside
    journal = open_journal()
    assert journal.append("acme", [{}]) == RECORDS * 3  # offsets are never reused


async def test_torn_tail_is_cut_and_offsets_are_not_reused(
        tmp_path: Path, open_journal: Factory, drain: Drain) -> None:
    spans = await write_records(open_journal())
    path = segment(tmp_path)
    cut = spans[-1][0] + 10  # a write torn in the middle of the last record's header
    with path.open("r+b") as f:
        f.truncate(cut)
    assert fsck(tmp_path) == 1
    journal, seen, telemetry = await reopen_and_read(open_journal, drain)
    assert seen == list(range(RECORDS - 1))
    assert telemetry.sample("vigil_journal_damaged_records_total", partition="acme") == 1
    assert path.stat().st_size == spans[-1][0]  # cut at the last intact record
    assert (path.parent / "damaged" / f"{path.name}.{spans[-1][0]}").read_bytes().__len__() == 10
    # The lost record's offsets (117..119) may be in a sink already: new ones come after.
    assert journal.append("acme", [{"r": "new"}]) > (RECORDS - 1) * 3 + 2
    got = await drain(journal)
    assert [e["r"] for _, _, e in got] == ["new"]
    await journal.aclose()
    assert fsck(tmp_path) == 0


async def test_bad_length_and_zeroed_ranges_resync_on_the_next_record(
        tmp_path: Path, open_journal: Factory, drain: Drain) -> None:
    spans = await write_records(open_journal())
    path = segment(tmp_path)
    patch(path, spans[5][0] + 8, (2**31).to_bytes(4, "little"))  # record 5: absurd length
    zero_from, zero_to = spans[20][0] + 3, spans[22][0] + 5  # records 20..22 zeroed
    patch(path, zero_from, bytes(zero_to - zero_from))
    journal, seen, telemetry = await reopen_and_read(open_journal, drain)
    assert seen == [r for r in range(RECORDS) if r not in (5, 20, 21, 22)]
    # The zeroed range has no record start left: its records are counted from its length.
    assert telemetry.sample("vigil_journal_damaged_records_total", partition="acme") == 4
    assert telemetry.sample("vigil_journal_damaged_events_total", partition="acme") == 12
    assert [(d.pos, d.end) for d in journal.damage] == [spans[5], (spans[20][0], spans[23][0])]
    await journal.aclose()


async def test_bad_segment_header_and_unreadable_checkpoint_do_not_block(
        tmp_path: Path, open_journal: Factory, drain: Drain) -> None:
    await write_records(open_journal())
    path = segment(tmp_path)
    patch(path, 0, b"garbage!")
    (tmp_path / "journal" / "checkpoints.json").write_text("{not json")
    journal, seen, _ = await reopen_and_read(open_journal, drain)
    assert seen == list(range(RECORDS))  # every record is intact; the header is not needed
    offset = journal.append("acme", [{"r": "new"}])
    assert offset == RECORDS * 3
    assert len(list(path.parent.glob("*.seg"))) == 2  # appends moved to a fresh segment
    await journal.aclose()
    assert fsck(tmp_path, "--repair") == 0
    assert fsck(tmp_path) == 0


async def test_damage_appearing_while_running_is_skipped_when_read(
        tmp_path: Path, open_journal: Factory, drain: Drain) -> None:
    journal = open_journal()
    spans = []
    for r in range(10):
        start = journal.disk_bytes("acme")
        journal.append("acme", [{"r": r}])
        spans.append((start, journal.disk_bytes("acme")))
    await journal.sync()
    patch(segment(tmp_path), sum(spans[4]) // 2, b"\xff")
    got = await drain(journal)
    assert sorted(e["r"] for _, _, e in got) == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert [(d.pos, d.end, d.lost_from, d.lost_to) for d in journal.damage] == [
        (spans[4][0], spans[5][0], 4, 5)]
    assert journal.pending() == 0


async def test_fsck_refuses_while_a_journal_is_open_and_stats_work(
        tmp_path: Path, open_journal: Factory, capsys: pytest.CaptureFixture[str]) -> None:
    journal = open_journal()
    journal.append("acme", [{}] * 5)
    journal.append("globex", [{}] * 2)
    await journal.sync()
    assert fsck(tmp_path) == 75
    assert "in use by a running daemon" in capsys.readouterr().err
    assert main(["journal", "stats", "--data-dir", str(tmp_path), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["in_use"] is True and stats["epoch"] == journal.epoch
    rows = {row["partition"]: row for row in stats["partitions"]}
    assert rows["acme"]["pending_events"] == 5 and rows["acme"]["last_offset"] == 4
    assert rows["globex"]["acked_offset"] is None and rows["globex"]["segments"] == 1
    batch = await journal.read(10)
    assert batch is not None
    journal.ack(batch.partition, batch.last_offset)
    await journal.aclose()
    assert main(["journal", "stats", "--data-dir", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert "not in use" in table and "2 partition(s), 2 pending event(s)" in table
    assert main(["journal", "stats", "--data-dir", str(tmp_path / "nowhere")]) == 66


async def test_zero_filled_tail_reports_the_events_it_lost_by_estimate(
        tmp_path: Path, open_journal: Factory, drain: Drain) -> None:
    spans = await write_records(open_journal())
    path = segment(tmp_path)
    patch(path, spans[30][0], bytes(spans[-1][1] - spans[30][0]))  # records 30..39 zeroed
    journal, seen, telemetry = await reopen_and_read(open_journal, drain)
    assert seen == list(range(30))
    (damage,) = journal.damage
    assert damage.tail and damage.estimated
    assert (damage.records, damage.events) == (10, 30)  # no record start left to count
    assert "~30 event(s) (estimated)" in damage.describe()
    assert telemetry.sample("vigil_journal_damaged_events_total", partition="acme") == 30
    await journal.aclose()


async def test_a_lost_tail_before_the_next_segment_counts_its_events_exactly(
        tmp_path: Path, open_journal: Factory, drain: Drain) -> None:
    journal = open_journal(segment_bytes=65536)
    for r in range(RECORDS):
        journal.append("acme", [{"r": r, "i": i, "message": "m" * 1000} for i in range(3)])
    await journal.sync()
    await journal.aclose()
    first, second = sorted((tmp_path / "journal" / "acme").glob("*.seg"))[:2]
    size = first.stat().st_size
    patch(first, size // 2, bytes(size - size // 2))  # its second half zeroed
    journal, seen, telemetry = await reopen_and_read(open_journal, drain)
    (damage,) = journal.damage
    assert damage.tail and not damage.estimated
    assert damage.events == int(second.stem) - damage.lost_from
    assert len(seen) * 3 + damage.events == RECORDS * 3
    await journal.aclose()
