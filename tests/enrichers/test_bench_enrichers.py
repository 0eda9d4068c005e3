"""`python -m benchmarks.bench_enrichers` with a tiny workload: the JSON contract of its last
line and figures that say the measured steps really ran."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from support.daemon import REPO

RATES = ("geoip_cached_events_per_second", "geoip_uncached_events_per_second",
         "geoip_lru_functools_lookups_per_second", "geoip_lru_ordereddict_lookups_per_second",
         "maxminddb_get_per_second", "maxminddb_memory_mode_get_per_second",
         "geoip2_city_per_second", "lookup_events_per_second", "threat_intel_events_per_second")


def test_bench_enrichers_prints_one_json_object_last() -> None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_enrichers"], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "BENCH_EVENTS": "500", "BENCH_NETWORKS": "500"})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["events"] == 500
    assert all(result[key] > 0 for key in RATES)
    assert 0 < result["geoip_cache_hit_ratio"] < 1
    assert result["maxminddb_vs_geoip2"] > 0 and result["maxminddb_vs_geoip2_small_records"] > 0
    assert result["threat_intel_indicators"] >= 9_500
    assert 0 < result["threat_intel_matched_ratio"] < 1
