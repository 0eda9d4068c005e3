"""`make bench` end to end with a tiny workload: the real daemon, the real syslog-ng (when
installed), the JSON contract of the last output line, and matching counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from support.daemon import REPO

from benchmarks.peers.syslog_ng import find_syslog_ng

EVENTS = 2000
FIELDS = ("workload", "events", "vigil_events_per_second", "vigil_cpu_seconds_per_event",
          "vigil_peak_rss_mb", "syslog_ng_events_per_second", "syslog_ng_cpu_seconds_per_event",
          "syslog_ng_peak_rss_mb", "ratio_vs_syslog_ng")


def test_bench_e2e_prints_one_json_object_last_with_matching_counts() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_e2e"], cwd=REPO, capture_output=True,
        text=True, timeout=90, env={**os.environ, "BENCH_EVENTS": str(EVENTS)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(FIELDS) <= result.keys()
    # The benchmark exits non-zero unless both programs counted exactly EVENTS; these restate it.
    assert result["events"] == EVENTS
    assert result["workload"] == "mixed-syslog"
    assert result["vigil_parse_errors"] == 0
    assert result["vigil_events_per_second"] > 0
    assert 0 < result["vigil_cpu_seconds_per_event"] < 0.01
    assert result["vigil_peak_rss_mb"] > 10
    if find_syslog_ng() is None:
        assert result["syslog_ng_events_per_second"] is None
        assert result["ratio_vs_syslog_ng"] is None
    else:
        assert result["syslog_ng_events_per_second"] > 0
        assert result["syslog_ng_peak_rss_mb"] > 1
        assert result["ratio_vs_syslog_ng"] == round(
            result["vigil_events_per_second"] / result["syslog_ng_events_per_second"], 4)


def test_bench_e2e_vigil_only_leaves_syslog_ng_fields_null() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_e2e", "--events", "500", "--no-syslog-ng"],
        cwd=REPO, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["events"] == 500
    assert result["syslog_ng_events_per_second"] is None
    assert result["ratio_vs_syslog_ng"] is None
