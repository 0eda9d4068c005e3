"""Journal behaviour: exact round trips, replay after restart, segment lifecycle, fsync policies,
fairness and bounds across partitions, the lock, the factory."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from collector.config.models import GlobalConfig
from collector.journal import (
    Journal,
    JournalEncodeError,
    JournalLockedError,
    QueueConfig,
    open_queue,
)
from collector.journal.codec import decode_events, encode_events
from collector.queue import MemoryQueue

Factory = Callable[..., Journal]
Drain = Callable[..., Any]


def syslog_event(n: int) -> dict[str, Any]:
    received = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC) + timedelta(seconds=n)
    return {
        "@timestamp": received - timedelta(milliseconds=250),
        "vigil.received_at": received,
        "message": f"Failed password for invalid user admin{n} from 203.0.113.7 port 4{n:04d} "
                   "ssh2" + "x" * 150,
        "host.name": "bastion-01", "log.syslog.appname": "sshd", "log.syslog.procid": 4242 + n,
        "log.syslog.priority": 38, "source.ip": "203.0.113.7", "source.port": 40000 + n,
        "user.name": f"admin{n}", "event.outcome": "failure", "vigil.tenant": "acme",
        "vigil.dataset": "linux.auth", "event.risk": 0.25, "tags": ["ssh", "auth"],
        "labels": {"env": "prod", "zone": None, "nested": {"ok": True}},
    }


def test_codec_round_trips_every_value_type_exactly() -> None:
    events = [
        syslog_event(1),
        {"s": "", "unicode": "ünïcødé ✓", "i": -(2**63), "u": 2**64 - 1, "big": 2**80,
         "neg_big": -(2**90), "f": 1e-300, "nan_free": -0.0, "inf": float("inf"), "t": True,
         "f0": False, "none": None, "empty_list": [], "empty_dict": {},
         "naive": datetime(2024, 1, 2, 3, 4, 5, 6),
         "aware": datetime(1970, 1, 1, tzinfo=UTC), "before_epoch": datetime(1901, 3, 4,
                                                                              tzinfo=UTC),
         "nested": [{"when": datetime(2030, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)}, [1, [2]]],
         "bytes": b"\x00\xff"},
    ]
    decoded = decode_events(encode_events(events))
    assert decoded == events
    for key in ("@timestamp", "vigil.received_at"):
        assert decoded[0][key].tzinfo is not None and decoded[0][key].utcoffset() == timedelta(0)
    assert decoded[1]["naive"].tzinfo is None
    assert type(decoded[1]["big"]) is int and decoded[1]["big"] == 2**80
    # Non-UTC offsets come back as the same instant in UTC (every event time is UTC).
    plus2 = datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert decode_events(encode_events([{"t": plus2}]))[0]["t"] == plus2


async def test_unstorable_value_is_refused_before_anything_is_written(open_journal: Factory
                                                                      ) -> None:
    journal = open_journal()
    with pytest.raises(JournalEncodeError, match="set"):
        journal.append("acme", [{"ok": 1}, {"bad": {1, 2}}])
    assert journal.append("acme", [{"ok": 2}]) == 0  # the offset was not consumed
    assert journal.pending() == 1


async def test_round_trip_through_segments(open_journal: Factory, drain: Drain) -> None:
    journal = open_journal(segment_bytes=64 * 1024)
    sent = [syslog_event(n) for n in range(600)]
    for start in range(0, 600, 7):
        journal.append("acme", sent[start:start + 7])
    got = await drain(journal, max_events=64)
    assert [e for _, _, e in got] == sent
    assert [o for _, o, _ in got] == list(range(600))
    assert len(journal.health()["partitions"]["acme"]) and journal.pending() == 0


async def test_restart_replays_exactly_the_unacknowledged(tmp_path: Path, open_journal: Factory,
                                                          drain: Drain) -> None:
    journal = open_journal(segment_bytes=64 * 1024)
    epoch = journal.epoch
    for n in range(300):
        journal.append("acme" if n % 2 else "globex", [syslog_event(n)])
    await journal.sync()
    batch = await journal.read(100)
    assert batch is not None
    journal.ack(batch.partition, batch.last_offset - 10)
    await journal.aclose()

    reopened = open_journal()
    assert reopened.epoch == epoch
    acked = batch.last_offset - 10
    assert reopened.acked(batch.partition) == acked
    assert reopened.pending() == 300 - (acked + 1)
    got = await drain(reopened)
    replayed = {p: [o for q, o, _ in got if q == p] for p in ("acme", "globex")}
    assert replayed[batch.partition] == list(range(acked + 1, 150))
    other = "acme" if batch.partition == "globex" else "globex"
    assert replayed[other] == list(range(150))
    # Offsets continue after the last one ever handed out; they are never reused.
    assert reopened.append("acme", [{"n": "new"}]) == 150
    await reopened.aclose()


async def test_crash_without_checkpoint_replays_from_older_position(open_journal: Factory,
                                                                    drain: Drain) -> None:
    """abandon() drops the journal like SIGKILL: written data stays in the page cache, the
    latest acknowledgement may not be persisted, so more is replayed, never less."""
    journal = open_journal(checkpoint_interval_ms=60_000)
    for n in range(50):
        journal.append("acme", [syslog_event(n)])
    await journal.sync()
    got = await drain(journal)
    assert len(got) == 50
    journal.abandon()
    reopened = open_journal(checkpoint_interval_ms=60_000)
    assert [o for _, o, _ in await drain(reopened)] == list(range(50))
    assert reopened.append("acme", [{}]) == 50


async def test_acknowledged_segments_are_deleted(tmp_path: Path, open_journal: Factory,
                                                 drain: Drain) -> None:
    journal = open_journal(segment_bytes=64 * 1024, checkpoint_interval_ms=1)
    for n in range(1000):
        journal.append("acme", [syslog_event(n)])
    part = tmp_path / "journal" / "acme"
    before = sorted(part.glob("*.seg"))
    assert len(before) > 5
    got = await drain(journal, ack=False, expect=1000)
    assert len(got) == 1000
    journal.ack("acme", 499)
    await journal.sync()
    await journal._round(force_checkpoint=True)
    middle = sorted(part.glob("*.seg"))
    # Every remaining segment still holds an unacknowledged event.
    assert 1 <= len(middle) < len(before)
    assert all(int(p.stem) <= 999 for p in middle)
    bases = [int(p.stem) for p in before]
    kept_from = max(b for b in bases if b <= 500)
    assert [int(p.stem) for p in middle] == [b for b in bases if b >= kept_from]
    journal.ack("acme", 999)
    await journal._round(force_checkpoint=True)
    assert len(sorted(part.glob("*.seg"))) == 1  # the active segment stays for appends
    assert journal.pending() == 0


async def test_fsync_always_group_commits_and_reads_only_durable(open_journal: Factory) -> None:
    journal = open_journal(fsync="always")
    offsets = [journal.append("acme", [{"n": n}]) for n in range(20)]
    assert journal.read_nowait(100) is None  # not yet durable: no sink may see it
    await asyncio.gather(*(journal.wait_durable("acme", o) for o in offsets))
    assert journal._partitions["acme"].durable_end == 20
    # Twenty appends made before the loop ran share one or two fsync rounds.
    assert 1 <= journal.fsync_rounds <= 2
    batch = journal.read_nowait(100)
    assert batch is not None and len(batch) == 20


async def test_fsync_interval_waits_for_the_next_tick(open_journal: Factory) -> None:
    journal = open_journal(fsync={"interval_ms": 30})
    rounds = journal.fsync_rounds
    last = journal.append("acme", [{"n": 1}])
    await journal.wait_durable("acme", last)
    assert journal.fsync_rounds == rounds + 1
    assert journal._partitions["acme"].durable_end == last + 1


async def test_fsync_never_is_visible_at_once_and_never_fsyncs(open_journal: Factory) -> None:
    journal = open_journal(fsync="never")
    last = journal.append("acme", [{"n": 1}])
    await journal.wait_durable("acme", last)
    assert journal.read_nowait(10) is not None
    await journal.sync()
    assert journal.fsync_rounds == 0


async def test_flooding_tenant_cannot_starve_the_others(open_journal: Factory) -> None:
    journal = open_journal(fsync="never")
    for n in range(100):
        journal.append("flood", [{"n": i} for i in range(n * 50, n * 50 + 50)])
    journal.append("quiet", [{"q": 1}])
    journal.append("quiet2", [{"q": 2}])
    seen = []
    for _ in range(3):
        batch = await journal.read(100)
        assert batch is not None
        seen.append(batch.partition)
    # Round robin: the quiet tenants are served within one turn, whatever the backlog.
    assert sorted(seen) == ["flood", "quiet", "quiet2"]


async def test_bounds_per_partition_and_total(open_journal: Factory) -> None:
    journal = open_journal(fsync="never", max_events=100, partition_max_events=30)
    journal.append("flood", [{}] * 30)
    assert journal.over_bound("flood")
    assert not journal.over_bound("quiet")  # the others keep flowing
    assert not journal.over_bound()
    flood_resumed: list[str] = []
    journal.add_capacity_listener(lambda: flood_resumed.append("flood"), "flood")
    for tenant in ("b", "c", "d"):
        journal.append(tenant, [{}] * 23)
    assert journal.pending() == 99 and not journal.over_bound()
    journal.append("e", [{}])
    assert journal.over_bound() and journal.over_bound("quiet")
    total_resumed: list[str] = []
    journal.add_capacity_listener(lambda: total_resumed.append("total"))
    batch = await journal.read(30)
    assert batch is not None
    assert batch.partition == "flood"
    journal.ack("flood", 5)  # 94 pending: under the total, over its resume level (80)
    assert not journal.over_bound() and total_resumed == [] and flood_resumed == []
    journal.ack("flood", 29)
    assert total_resumed == ["total"] and flood_resumed == ["flood"]
    health = journal.health()
    assert health["partitions"]["flood"]["pending_events"] == 0
    assert health["pending_events"] == 70 and health["backpressure"] is False


async def test_byte_bound(open_journal: Factory) -> None:
    journal = open_journal(fsync="never", max_bytes=100_000, partition_max_bytes=50_000)
    while journal.disk_bytes("big") < 50_000:
        journal.append("big", [syslog_event(1)])
    assert journal.over_bound("big") and not journal.over_bound("small")
    assert not journal.over_bound()


async def test_second_open_is_refused_while_locked(tmp_path: Path, open_journal: Factory) -> None:
    journal = open_journal()
    with pytest.raises(JournalLockedError):
        Journal(tmp_path / "journal")
    await journal.aclose()
    Journal(tmp_path / "journal").abandon()


async def test_invalid_partition_name(open_journal: Factory) -> None:
    journal = open_journal()
    for name in ("../x", "", "a/b", "LOCK"):
        with pytest.raises(Exception, match="partition name"):
            journal.append(name, [{}])


async def test_open_queue_factory(tmp_path: Path) -> None:
    settings = GlobalConfig()
    journal = open_queue(settings, tmp_path)
    assert isinstance(journal, Journal) and journal.directory == tmp_path / "journal"
    assert journal.max_events == settings.limits.queue_max_events
    await journal.aclose()

    class WithQueue(GlobalConfig):
        queue: QueueConfig = QueueConfig(type="memory")

    memory = open_queue(WithQueue(), tmp_path)
    assert isinstance(memory, MemoryQueue)


def test_queue_config_yaml_shapes() -> None:
    assert QueueConfig(fsync="never").fsync_mode() == "never"
    config = QueueConfig.model_validate({"fsync": {"interval_ms": 50}})
    assert config.fsync_mode() == "interval" and config.fsync_interval() == 0.05
    with pytest.raises(ValueError):
        QueueConfig.model_validate({"fsync": "sometimes"})
    with pytest.raises(ValueError):
        QueueConfig.model_validate({"fsync": {"interval_ms": 5, "extra": 1}})
