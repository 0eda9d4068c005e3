"""The harness measures a daemon's whole process tree: worker processes' CPU counts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from benchmarks.harness import (
    LakeRowCounter,
    cpu_seconds,
    process_tree,
    tree_cpu_seconds,
    tree_peak_rss_mb,
)

BURN = ("import sys, time\n"
        "end = time.process_time() + 0.4\n"
        "while time.process_time() < end: pass\n"
        "print('burnt', flush=True)\n"
        "sys.stdin.read()\n")


def test_tree_cpu_counts_a_live_child_and_a_reaped_one() -> None:
    me = os.getpid()
    own_before, tree_before = cpu_seconds(me), tree_cpu_seconds(me)
    child = subprocess.Popen([sys.executable, "-c", BURN], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"burnt\n"
        assert child.pid in process_tree(me)
        live = tree_cpu_seconds(me) - tree_before
        assert live - (cpu_seconds(me) - own_before) >= 0.3
        assert tree_peak_rss_mb(me) > tree_peak_rss_mb(child.pid) > 1
    finally:
        child.communicate(b"", timeout=30)
    assert child.pid not in process_tree(me)
    assert tree_cpu_seconds(me) - tree_before >= live - 0.02


def test_lake_counter_leaves_out_excluded_datasets(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for dataset, rows in (("linux.auth", 3), ("alerts", 2)):
        directory = tmp_path / dataset / "tenant=demo"
        directory.mkdir(parents=True)
        pq.write_table(pa.table({"n": list(range(rows))}), directory / "a.parquet")
    assert LakeRowCounter(tmp_path).count() == 5
    assert LakeRowCounter(tmp_path, exclude=("alerts",)).count() == 3
