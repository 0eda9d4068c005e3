"""The journal benchmark runs end to end on a small workload and ends with one JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_bench_journal_smoke(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_journal", "--events", "2000",
         "--deliver-events", "400", "--clients", "8", "--dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["events"] == 2000 and 9 <= summary["avg_fields"] <= 13
    for name in ("memory", "always", "interval_10ms", "never"):
        assert summary["results"][f"stream/{name}"]["events_per_s"] > 0
        assert summary["results"][f"deliver/{name}"]["events_per_s"] > 0
    assert summary["results"]["stream/never"]["fsync_rounds"] == 0
    assert summary["results"]["deliver/always"]["fsync_rounds"] >= 1
    assert list(tmp_path.iterdir()) == []  # the journals are removed afterwards
