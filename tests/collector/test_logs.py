"""One log line per cause per interval, saying how many were held back."""

from __future__ import annotations

import logging

import pytest

from collector.logs import RateLimitedLog


def test_rate_limited_log_says_how_many_it_held_back(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    notes = RateLimitedLog(logging.getLogger("test.notes"), interval=60, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, "test.notes"):
        for _ in range(5):
            notes.log(logging.WARNING, "refused", "connection refused")
        notes.log(logging.WARNING, "evicted", "connection evicted")
        now[0] = 61
        notes.log(logging.WARNING, "refused", "connection refused")
    lines = [(r.getMessage(), r.__dict__["suppressed"]) for r in caplog.records]
    assert lines == [("connection refused", 0), ("connection evicted", 0),
                     ("connection refused", 4)]


def test_rate_limited_log_keeps_a_bounded_set_of_causes(caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    """Causes name peers: 10,000 spoofed UDP senders hold 4 entries and `_other`."""
    now = [0.0]
    notes = RateLimitedLog(logging.getLogger("test.bound"), interval=60, clock=lambda: now[0],
                           max_causes=4)
    with caplog.at_level(logging.INFO, "test.bound"):
        for n in range(10_000):
            notes.log(logging.WARNING, f"198.51.100.{n}|garbage", "input kept unparsed")
        assert len(notes._last) == 5
        now[0] = 61  # the quiet ones are forgotten, a new cause gets its own line again
        notes.log(logging.WARNING, "203.0.113.9|garbage", "input kept unparsed")
    causes = [r.__dict__["cause"] for r in caplog.records]
    assert causes[:5] == [f"198.51.100.{n}|garbage" for n in range(4)] + ["_other"]
    assert causes[5:] == ["203.0.113.9|garbage"]
