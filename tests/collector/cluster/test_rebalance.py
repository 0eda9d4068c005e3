"""Rebalancing toward a worker that joins: a worker hands over only what is above its share's
ceiling, only while another live worker is below its floor, the last shards in name order; a
handover deletes the leases only once what was fetched is committed and acknowledged, and is
called off when that does not happen in time."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from collector.cluster import rebalance
from collector.cluster.consumer import Shard
from collector.cluster.rebalance import hand_over, share, surplus


def shards(*tenants: str) -> list[tuple[str, int]]:
    return [(t, 0) for t in tenants]


FIVE = shards("_quarantine", "acme", "bravo", "charlie", "demo")


def test_a_worker_holding_everything_hands_the_surplus_to_one_that_joined() -> None:
    assert share(5, 2) == (2, 3)
    assert surplus(FIVE, [0], 5) == [("demo", 0), ("charlie", 0)]
    assert surplus(FIVE, [0, 0], 5) == [("demo", 0), ("charlie", 0), ("bravo", 0)]


def test_nothing_moves_within_the_shares() -> None:
    # Alone, or at the ceiling: nothing to give.
    assert surplus(FIVE, [], 5) == []
    assert surplus(FIVE[:3], [2], 5) == []
    # Within one of the least loaded worker: nothing moves (8 over 3: 3 + 3 + 2).
    assert surplus(shards("a", "b", "c"), [3, 2], 8) == []
    # Someone below the floor: down to the ceiling.
    assert surplus(shards("a", "b", "c", "d"), [3, 1], 8) == [("d", 0)]
    # Two more than the least loaded: one shard (4 + 2 + 2 becomes 3 + 3 + 2; 7 over 3 as
    # 3 + 3 + 1 becomes 2 + 2 + 3 when both give one).
    assert surplus(shards("a", "b", "c", "d"), [2, 2], 8) == [("d", 0)]
    assert surplus(shards("a", "b", "c"), [3, 1], 7) == [("c", 0)]
    assert surplus(shards("a", "b"), [2, 3], 7) == []


def test_a_shard_is_never_passed_back() -> None:
    # After a handover both are within (floor, ceiling): neither gives again.
    first, second = FIVE[:3], FIVE[3:]
    assert surplus(first, [len(second)], 5) == []
    assert surplus(second, [len(first)], 5) == []


class FakeLeases:
    def __init__(self) -> None:
        self.deleted: list[tuple[str, int | None]] = []

    async def delete(self, key: str, last: int | None = None) -> bool:
        self.deleted.append((key, last))
        return True


class FakeConnection:
    async def flush(self, timeout: float = 0) -> None:
        return None


class FakeQueue:
    """What `hand_over` uses of `StreamQueue`: its shards, the daemon's commit and the
    acknowledgements, here counted instead of sent."""

    def __init__(self, shards: list[Shard], drains: bool = True) -> None:
        self.node = "w0"
        self.config = SimpleNamespace(lease_seconds=0.1)
        self.closed = False
        self.owned = {s.key: s for s in shards}
        self.streams = SimpleNamespace(leases=FakeLeases(), nc=FakeConnection())
        self.voluntary_releases = 0
        self.commits: list[list[str]] = []
        self.resumed: list[str] = []
        self.drains = drains

    async def on_handover(self, leaving: list[str]) -> None:
        self.commits.append(leaving)

    async def flush_acks(self) -> None:
        if self.drains:  # what was fetched is acknowledged
            for shard in self.owned.values():
                shard.acked = shard.delivered

    async def heartbeat(self) -> None:
        return None

    def resume(self, shard: Shard) -> None:
        shard.releasing = False
        self.resumed.append(shard.tenant)


async def test_a_handover_commits_checkpoints_and_deletes_the_leases_by_revision() -> None:
    keep, leave = Shard("acme", 0, revision=7), Shard("demo", 0, revision=9)
    leave.delivered = 5  # fetched, acknowledged once committed
    queue = FakeQueue([keep, leave])
    await hand_over(queue, [leave])  # type: ignore[arg-type]
    assert queue.commits[-1] == ["demo"]  # the last commit drops demo's detection state
    assert queue.streams.leases.deleted == [("shard.demo.0", 9)]
    assert list(queue.owned) == [("acme", 0)] and leave.lost and not keep.lost
    assert queue.voluntary_releases == 1


async def test_a_handover_that_does_not_drain_is_called_off(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rebalance, "HANDOVER_MIN_SECONDS", 0.3)
    stuck = Shard("demo", 0, revision=9)
    stuck.delivered = 5  # never acknowledged: a sink failing
    queue = FakeQueue([stuck], drains=False)
    await hand_over(queue, [stuck])  # type: ignore[arg-type]
    assert queue.resumed == ["demo"] and not stuck.releasing
    assert queue.streams.leases.deleted == [] and ("demo", 0) in queue.owned
    assert all(leaving == [] for leaving in queue.commits)  # its state kept
    assert queue.voluntary_releases == 0
