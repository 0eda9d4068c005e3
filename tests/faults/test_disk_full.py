"""A full disk under the whole data directory with detection enabled (the default): ingest
pauses (HTTP 503), every writer waits and retries instead of exiting, the daemon starts on the
full disk and waits, and once space returns nothing acknowledged is lost or duplicated."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
from faults.conftest import fill_disk, http_source, leftover_temporaries, post
from support.daemon import VigilProcess, basic_config, lake_rows, wait_for, write_conf
from support.tmpfs import small_tmpfs

EPISODE_LOG = "writes failing; retrying until they succeed"


def alive(daemon: VigilProcess) -> bool:
    assert daemon.proc is not None
    if daemon.proc.poll() is not None:
        raise AssertionError(f"daemon exited ({daemon.proc.returncode}):\n" + daemon.log())
    return True


def test_full_disk_pauses_ingest_starts_waiting_and_recovers(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path, "32m") as disk:
        config = basic_config(flush_seconds=0.2)
        config["sources"]["http"] = http_source()
        config["vigil"]["queue"] = {"probe_interval_ms": 100}
        config["vigil"]["detection"] = {"state_interval": "1s"}
        conf = tmp_path / "conf.d"
        write_conf(conf, config)
        data = disk / "data"
        acknowledged: list[str] = []
        sent = 0

        def send(daemon: VigilProcess) -> int:
            nonlocal sent
            messages = [f"fault-{sent}-{i}" for i in range(50)]
            sent += 1
            status = post(daemon, messages)
            if status == 200:
                acknowledged.extend(messages)
            return status

        daemon = VigilProcess(conf, data).start()
        try:
            for _ in range(5):
                assert send(daemon) == 200
            wait_for(lambda: len(lake_rows(data)) == len(acknowledged), timeout=15,
                     message="the first events in the lake")
            ballast = fill_disk(disk)
            wait_for(lambda: alive(daemon) and send(daemon) == 503, timeout=20,
                     message="HTTP 503 on the full disk")
            # Detection saves its state every second: the save meets the full disk, is counted
            # and retried, and the daemon keeps running.
            wait_for(lambda: alive(daemon) and daemon.metric(
                "vigil_storage_write_errors_total", writer="detection_state") >= 2,
                timeout=15, message="detection's state save failing, counted, retried")
            assert alive(daemon)
            status, ready = daemon.readyz()
            assert status == 503 and ready["storage"]["failing"]
            assert daemon.metric("vigil_storage_failing", writer="detection_state") == 1
            assert daemon.stop() == 0  # a clean stop on the full disk, then a start on it

            daemon = VigilProcess(conf, data).start(ready_path=None)
            wait_for(lambda: alive(daemon) and daemon.readyz()[0] == 503, timeout=15,
                     message="/readyz answering not ready")
            wait_for(lambda: alive(daemon) and send(daemon) == 503, timeout=15,
                     message="HTTP 503 after a start on the full disk")
            wait_for(lambda: alive(daemon) and daemon.metric(
                "vigil_storage_write_errors_total", writer="detection_state") >= 2,
                timeout=15, message="the restarted daemon waiting on its writers")
            assert daemon.log().count(EPISODE_LOG) <= len(
                {"detection_state", "coverage_state", "alert_store", "journal"}) + 3

            os.unlink(ballast)  # space returns
            wait_for(lambda: alive(daemon) and daemon.readyz()[0] == 200, timeout=30,
                     message="/readyz ready once space returned")
            assert daemon.metric("vigil_storage_failing") == 0
            for _ in range(5):
                assert send(daemon) == 200
            assert "writes recovered" in daemon.log()
            assert daemon.stop() == 0
        finally:
            daemon.kill()
        rows = lake_rows(data, "SELECT message, count(*) AS n FROM lake "
                               "WHERE message LIKE 'fault-%' GROUP BY message")
        counts = {row["message"]: row["n"] for row in rows}
        lost = [m for m in acknowledged if m not in counts]
        assert not lost, f"{len(lost)} acknowledged events lost"
        assert all(n == 1 for n in counts.values()), "duplicated events in the lake"
        assert leftover_temporaries(data) == []


def test_full_lake_disk_holds_back_ingest_and_recovers(tmp_path: Path) -> None:
    """Only the lake's disk is full: its flushes fail and are retried (counted, logged once,
    no temporary files), nothing is acknowledged, so the journal's bound pauses ingest."""
    with small_tmpfs(tmp_path, "2m") as disk:
        config = basic_config(flush_seconds=0.2)
        config["sources"]["http"] = http_source()
        config["sinks"]["lake"]["path"] = str(disk / "lake")
        config["vigil"]["queue"] = {"partition_max_events": 2000}
        config["vigil"]["detection"] = {"enabled": False}
        conf = tmp_path / "conf.d"
        write_conf(conf, config)
        data = tmp_path / "data"
        acknowledged: list[str] = []
        daemon = VigilProcess(conf, data).start()
        try:
            ballast = fill_disk(disk)
            batch = 0

            def send() -> int:
                nonlocal batch
                messages = [f"fault-{batch}-{i}" for i in range(100)]
                batch += 1
                status = post(daemon, messages)
                if status == 200:
                    acknowledged.extend(messages)
                return status

            wait_for(lambda: alive(daemon) and send() == 503, timeout=30,
                     message="HTTP 503 once the unwritten lake holds the journal at its bound")
            # The lake runs in a worker process: its counts reach /metrics and /readyz with
            # the worker's next status, which may come after the journal's bound said 503.
            wait_for(lambda: daemon.metric("vigil_storage_write_errors_total", writer="lake")
                     >= 1 and daemon.metric("vigil_storage_failing", writer="lake") == 1
                     and "lake" in daemon.readyz()[1].get("storage", {}).get("failing", []),
                     timeout=15, message="the lake's failing writes in /metrics and /readyz")
            assert daemon.readyz()[0] == 503
            assert daemon.log().count("lake writes failing") == 1
            assert leftover_temporaries(disk) == []
            os.unlink(ballast)
            wait_for(lambda: alive(daemon) and daemon.readyz()[0] == 200, timeout=30,
                     message="/readyz ready once the lake's disk has room")
            assert send() == 200
            assert daemon.stop() == 0
        finally:
            daemon.kill()
        files = str(disk / "lake" / "**" / "*.parquet")
        found = dict(duckdb.connect().execute(
            f"SELECT message, count(*) FROM read_parquet('{files}') GROUP BY message").fetchall())
        assert [m for m in acknowledged if m not in found] == []
        assert set(found.values()) == {1}
        assert leftover_temporaries(disk) == []


def test_a_first_start_on_a_full_disk_waits_for_space(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path, "8m") as disk:
        config = basic_config(flush_seconds=0.2)
        config["sources"]["http"] = http_source()
        config["vigil"]["queue"] = {"probe_interval_ms": 100}
        conf = tmp_path / "conf.d"
        write_conf(conf, config)
        data = disk / "data"
        ballast = fill_disk(disk)
        daemon = VigilProcess(conf, data).start(ready_path=None)
        try:
            wait_for(lambda: alive(daemon) and daemon.readyz()[0] == 503, timeout=15,
                     message="/readyz answering not ready")
            wait_for(lambda: alive(daemon) and post(daemon, ["early"]) == 503, timeout=15,
                     message="HTTP 503 on the full disk")
            os.unlink(ballast)
            wait_for(lambda: alive(daemon) and daemon.readyz()[0] == 200, timeout=30,
                     message="/readyz ready once space returned")
            assert post(daemon, ["fault-first-start"]) == 200
            assert daemon.stop() == 0
        finally:
            daemon.kill()
        assert lake_rows(data, "SELECT count(*) AS n FROM lake WHERE message = "
                               "'fault-first-start'") == [{"n": 1}]
        assert leftover_temporaries(data) == []
