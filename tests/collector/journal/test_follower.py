"""The worker processes' read side of the journal (`collector.journal.follower`): every record
the main process announces durable is read once, in order, across segment rolls, records
larger than one read, deletions of acknowledged segments and restarts from a position."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from collector.journal import Journal, QueueConfig
from collector.journal.follower import JournalFollower


async def follow(tmp_path: Path, start: int = -1, records: int = 2000) -> tuple[int, list[int]]:
    """Append while a follower reads and acknowledges; returns (appended, offsets read)."""
    journal = Journal(tmp_path / "journal", QueueConfig(segment_bytes=4_000_000))
    follower = JournalFollower(tmp_path / "journal", journal.epoch, lambda p, o: None)
    rng = random.Random(1)
    got: list[int] = []
    appended = 0
    for i in range(records):
        # Every 20th record is larger than one read of the follower (256 KiB), and the
        # follower often waits at the end of the file when such a record arrives.
        big = i % 20 == 0
        k = 60 if big else rng.randint(1, 60)
        pad = 9000 if big else rng.randint(10, 300)
        journal.append("demo", [{"n": appended + x, "pad": "x" * pad} for x in range(k)])
        appended += k
        if i == records // 2:
            await journal.sync()
            follower.assign("demo", start, 0)
            reader = asyncio.create_task(read(journal, follower, got, rng))
            handing = asyncio.create_task(hand_off(journal, follower))
        if i % 7 == 0:
            await asyncio.sleep(0)
    await journal.sync()
    journal.close()
    await asyncio.wait_for(handing, 30)
    await asyncio.wait_for(reader, 30)
    await journal.aclose()
    return appended, got


async def read(journal: Journal, follower: JournalFollower, got: list[int],
               rng: random.Random) -> None:
    while (batch := await follower.read(rng.choice([7, 100, 5000]))) is not None:
        assert [e["n"] for e in batch.events] == list(range(batch.first_offset,
                                                            batch.last_offset + 1))
        got.extend(e["n"] for e in batch.events)
        follower.ack("demo", batch.last_offset)
        journal.ack("demo", batch.last_offset)  # segments behind it get deleted
        await asyncio.sleep(0)


async def hand_off(journal: Journal, follower: JournalFollower) -> None:
    while True:
        await journal.wait_readable()
        ends = journal.hand_off()
        if not ends and journal.closed:
            follower.close()
            return
        follower.announce(ends, set())


async def test_a_follower_reads_every_announced_record_once_in_order(tmp_path: Path) -> None:
    appended, got = await follow(tmp_path)
    assert got == list(range(appended))


async def test_a_follower_starts_after_the_acknowledged_position(tmp_path: Path) -> None:
    appended, got = await follow(tmp_path, start=12_345)
    assert got == list(range(12_346, appended))
