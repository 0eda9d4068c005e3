"""The latency benchmark's pure parts: probe lines, percentiles, and missing alerts."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from benchmarks.bench_latency import _PROBE, latency_summary, percentile, probe_line
from benchmarks.full_path import LATENCY_MARKER
from parsers.syslog import parse_syslog


def test_probe_line_is_an_sshd_line_carrying_its_marker() -> None:
    line = probe_line("000042", datetime(2026, 12, 6, 7, 5, 9, tzinfo=UTC))
    parsed = parse_syslog(line, received_at=datetime(2026, 12, 6, 7, 5, 10, tzinfo=UTC))
    assert parsed["log.syslog.appname"] == "sshd"
    assert parsed["message"].startswith(f"{LATENCY_MARKER}000042 ")
    match = _PROBE.search('{"message": "' + parsed["message"] + '"}')
    assert match is not None and match.group(1) == "000042"


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(list(reversed(values)), 1.0) == 100.0
    assert percentile([3.0], 0.99) == 3.0


def test_latency_is_store_time_minus_send_time() -> None:
    sent = {f"{i:06d}": 1000.0 + i for i in range(100)}
    stored = {name: at + 0.25 for name, at in sent.items()}
    stored["000007"] = sent["000007"] + 2.0
    stored["000008"] = sent["000008"] + 3.0
    result = latency_summary(sent, stored)
    assert result["alert_latency_p50_seconds"] == 0.25
    assert result["alert_latency_p99_seconds"] == 2.0
    assert result["alert_latency_max_seconds"] == 3.0
    assert (result["alert_latency_probes"], result["alert_latency_missing"]) == (100, 0)


def test_more_than_one_percent_missing_makes_the_p99_null() -> None:
    sent = {f"{i:06d}": float(i) for i in range(100)}
    stored = {name: at + 0.1 for name, at in sent.items() if name not in ("000001", "000002")}
    result = latency_summary(sent, stored)
    assert result["alert_latency_p99_seconds"] is None
    assert result["alert_latency_max_seconds"] is None
    assert result["alert_latency_missing"] == 2
    one_missing = latency_summary(sent, {**stored, "000002": 2.1})
    assert math.isclose(one_missing["alert_latency_p99_seconds"], 0.1)
    assert latency_summary({}, {})["alert_latency_p99_seconds"] is None
