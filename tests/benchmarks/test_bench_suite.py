"""`make bench`'s summary: every figure issue 15 names is a key of the last JSON line, null with a
reason when it could not be measured, and other helpers' measurements are called when present."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest
from support.daemon import REPO

from benchmarks.bench_suite import SECTIONS, external_measure, summary

ISSUE_KEYS = (
    "vigil_events_per_second", "ratio_vs_syslog_ng", "vigil_cpu_seconds_per_event",
    "vigil_peak_rss_mb", "full_vigil_events_per_second", "full_syslog_ng_events_per_second",
    "full_ratio_vs_syslog_ng", "full_cpu_seconds_per_event", "scaling_2_vs_1_workers",
    "http_json_events_per_second", "alert_latency_p99_seconds", "lake_compression_ratio",
    "rules_startup_seconds",
)


def test_summary_holds_every_issue_key_even_when_nothing_ran() -> None:
    result = summary({"full_vigil_events_per_second": 1234.5})
    assert set(ISSUE_KEYS) <= result.keys()
    assert result["full_vigil_events_per_second"] == 1234.5
    assert result["scaling_2_vs_1_workers"] is None


def test_a_missing_module_gives_null_and_a_reason() -> None:
    assert external_measure("benchmarks.no_such_bench", "measure", "some_ratio") == {
        "some_ratio": None, "some_ratio_reason": "benchmarks.no_such_bench does not exist yet"}


def test_a_missing_function_gives_null_and_a_reason() -> None:
    result = external_measure("benchmarks.workload", "measure_nothing", "some_ratio")
    assert result == {"some_ratio": None,
                      "some_ratio_reason": "benchmarks.workload.measure_nothing does not exist yet"}


def test_a_present_function_is_called_and_its_key_lifted(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("benchmarks.fake_lake")
    module.measure_lake_compression = lambda: {"lake_compression_ratio": 9.5, "raw_bytes": 10}
    monkeypatch.setitem(sys.modules, "benchmarks.fake_lake", module)
    result = external_measure("benchmarks.fake_lake", "measure_lake_compression",
                              "lake_compression_ratio")
    assert result == {"lake_compression_ratio": 9.5,
                      "measure_lake_compression": {"lake_compression_ratio": 9.5,
                                                   "raw_bytes": 10}}


def test_a_failing_or_keyless_function_gives_null_and_a_reason(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def fails() -> dict[str, float]:
        raise OSError("disk on fire")

    module = types.ModuleType("benchmarks.fake_rules")
    module.fails = fails
    module.keyless = lambda: {"other": 1}
    module.erring = lambda: {"rules_startup_error": "no SigmaHQ data"}
    monkeypatch.setitem(sys.modules, "benchmarks.fake_rules", module)
    failed = external_measure("benchmarks.fake_rules", "fails", "rules_startup_seconds")
    assert failed["rules_startup_seconds"] is None
    assert "disk on fire" in failed["rules_startup_seconds_reason"]
    keyless = external_measure("benchmarks.fake_rules", "keyless", "rules_startup_seconds")
    assert keyless == {"rules_startup_seconds": None, "rules_startup_seconds_reason":
                       "benchmarks.fake_rules.keyless returned no 'rules_startup_seconds'"}
    erring = external_measure("benchmarks.fake_rules", "erring", "rules_startup_seconds")
    assert erring["rules_startup_seconds_reason"] == (
        "benchmarks.fake_rules.erring returned no 'rules_startup_seconds'; no SigmaHQ data")


def test_suite_with_every_section_skipped_prints_every_key_last() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_suite", "--skip", ",".join(SECTIONS)],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(ISSUE_KEYS) <= result.keys()
    assert all(result[key] is None for key in ISSUE_KEYS)
    assert all(result[f"{name}_skipped"] for name in SECTIONS)


def test_suite_refuses_an_unknown_section() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_suite", "--skip", "bare,warp"],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "unknown section(s) ['warp']" in proc.stderr
