"""The process model's pieces that need no process: metric samples of worker processes merged
into /metrics, and detection state files merged per tenant (`collector.processes`)."""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from core.telemetry import Telemetry
from rules.state import Ownership, merge_detection, read_docs


def test_worker_samples_are_summed_and_survive_a_worker_exiting() -> None:
    main, worker = Telemetry(), Telemetry()
    main.lake_rows.labels("syslog", "demo").inc(1)
    worker.lake_rows.labels("syslog", "demo").inc(5)
    worker.lake_rows.labels("syslog", "acme").inc(2)
    worker.detection_rules.set(12)  # every worker loads the same rules: not summed
    worker.detection_active_rules.labels("acme").set(3)  # a tenant lives in one worker
    main.remote.update("w0", worker.snapshot())
    main.remote.update("w1", worker.snapshot())
    assert main.sample("vigil_lake_rows_written_total", dataset="syslog", tenant="demo") == 11
    assert main.sample("vigil_detection_rules") == 12
    assert main.sample("vigil_detection_active_rules", tenant="acme") == 6
    text = main.render().decode()
    assert 'vigil_lake_rows_written_total{dataset="syslog",tenant="acme"} 4.0' in text
    assert text.count("vigil_build_info{") == 1
    main.remote.retire("w1")  # its counters stay, its gauges go
    assert main.total("vigil_lake_rows_written_total") == 1 + 7 + 7
    assert main.sample("vigil_detection_active_rules", tenant="acme") == 3


def save(path: Path, tenants: dict[str, str], owned: list[str] | str, mtime: int) -> None:
    doc = {"version": 1, "owned": owned,
           "correlation": {"version": 1, "tenants": {t: {"mark": v} for t, v in tenants.items()}},
           "new_values": [], "alerts": [], "watermarks": {}}
    path.write_bytes(orjson.dumps(doc))
    os.utime(path, ns=(mtime, mtime))


def test_each_tenant_comes_from_the_newest_file_of_a_process_that_owned_it(
        tmp_path: Path) -> None:
    save(tmp_path / "detection.json", {"demo": "old", "acme": "old"}, "*", 1)
    save(tmp_path / "detection.w0.json", {"demo": "w0"}, ["demo"], 2)
    save(tmp_path / "detection.w1.json", {}, ["acme"], 3)  # acme owned, with empty state
    docs = read_docs(tmp_path, "detection")
    merged = merge_detection(docs, Ownership(), 1)
    assert merged is not None
    assert merged["correlation"]["tenants"] == {"demo": {"mark": "w0"}}
    only_demo = merge_detection(docs, Ownership("w5", owns=lambda t: t == "demo"), 1)
    assert only_demo is not None and list(only_demo["correlation"]["tenants"]) == ["demo"]
    save(tmp_path / "detection.json", {"demo": "single"}, "*", 4)  # back to one process
    merged = merge_detection(read_docs(tmp_path, "detection"), Ownership(), 1)
    assert merged is not None and merged["correlation"]["tenants"] == {"demo": {"mark": "single"}}
