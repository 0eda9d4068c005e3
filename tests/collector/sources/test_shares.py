"""Fair shares of a tenant's bound between the sources that write to it."""

from __future__ import annotations

from collector.sources.shares import ACTIVE_SECONDS, SourceShares


class FakeQueue:
    partition_max_events = 1000
    resume_ratio = 0.8

    def __init__(self) -> None:
        self.acked_at: dict[str, int] = {}
        self.pending_events: dict[str, int] = {}

    def pending(self, partition: str | None = None) -> int:
        return self.pending_events.get(partition or "", 0)

    def acked(self, partition: str) -> int:
        return self.acked_at.get(partition, -1)


def test_a_source_alone_may_fill_the_bound() -> None:
    queue = FakeQueue()
    shares = SourceShares(queue, clock=lambda: 0.0)
    shares.appended("tcp", "acme", 899, 900)
    queue.pending_events["acme"] = 900
    assert not shares.over_share("tcp", "acme")


def test_with_a_competitor_a_source_waits_at_its_share_until_acknowledged() -> None:
    queue = FakeQueue()
    now = [0.0]
    shares = SourceShares(queue, clock=lambda: now[0])
    shares.appended("tcp", "acme", 599, 600)
    queue.pending_events["acme"] = 600
    shares.wants("http", "acme")
    assert shares.over_share("tcp", "acme")      # 600 >= 1000 / 2
    assert not shares.over_share("http", "acme")
    room = shares.has_room("tcp", "acme")
    assert not room()
    queue.acked_at["acme"] = 599                 # everything acknowledged
    queue.pending_events["acme"] = 0
    assert room() and shares.pending("tcp", "acme") == 0
    # A competitor that went quiet no longer counts.
    shares.appended("tcp", "acme", 1199, 600)
    queue.pending_events["acme"] = 600
    now[0] = ACTIVE_SECONDS + 1
    shares.wants("tcp", "acme")
    assert not shares.over_share("tcp", "acme")
