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
