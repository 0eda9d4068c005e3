"""Rebalancing toward a worker that joins: a worker hands over only what is above its share's
ceiling, only while another live worker is below its floor, the last shards in name order."""

from __future__ import annotations

from collector.cluster.rebalance import share, surplus


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
    # Above the ceiling (8 over 3: floor 2, ceiling 3), but nobody below the floor...
    assert surplus(shards("a", "b", "c", "d"), [2, 2], 8) == []
    # ... until someone is: down to the ceiling only.
    assert surplus(shards("a", "b", "c", "d"), [3, 1], 8) == [("d", 0)]


def test_a_shard_is_never_passed_back() -> None:
    # After a handover both are within (floor, ceiling): neither gives again.
    first, second = FIVE[:3], FIVE[3:]
    assert surplus(first, [len(second)], 5) == []
    assert surplus(second, [len(first)], 5) == []
