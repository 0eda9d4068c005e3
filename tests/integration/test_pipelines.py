"""Pipelines inside the real daemon: events take their pipeline's dataset in the lake, and an
event a step fails on lands in the tenant's dead-letter area, counted, with nothing lost."""

from __future__ import annotations

import socket
from pathlib import Path

from support.daemon import VigilProcess, basic_config, lake_rows, wait_for, write_conf

from sinks.dead_letter import dead_letter_files, read_dead_letters


def test_pipeline_dataset_and_dead_letter(tmp_path: Path) -> None:
    config = basic_config(flush_seconds=0.2)
    config["pipelines"] = {"app": {
        "dataset": "app.json", "match": {"field": "log.syslog.appname", "equals": "app"},
        "steps": [{"type": "json"}, {"type": "convert"}], "schema": {"count": "int"}}}
    write_conf(tmp_path / "conf.d", config)
    daemon = VigilProcess(tmp_path / "conf.d", tmp_path / "data").start()
    try:
        with socket.create_connection(daemon.source_address("syslog_tcp")) as sock:
            sock.sendall(b'<13>Nov 23 10:00:00 h app: {"count": "7", "user": {"name": "ann"}}\n'
                         b"<13>Nov 23 10:00:01 h app: {broken\n"
                         b"<13>Nov 23 10:00:02 h cron[9]: unrelated\n")
        dlq = tmp_path / "data" / "dlq"
        wait_for(lambda: dead_letter_files(dlq, "demo"), message="the dead-letter file")
        wait_for(lambda: len(lake_rows(tmp_path / "data")) == 2, message="two lake rows")
        query = "SELECT * FROM lake WHERE \"vigil.dataset\" = '{}'"
        (parsed,) = lake_rows(tmp_path / "data", query.format("app.json"))
        assert parsed["count"] == 7 and parsed["user.name"] == "ann"
        assert parsed["tenant"] == "demo" and parsed["vigil.pipeline"] == "app"
        (other,) = lake_rows(tmp_path / "data", query.format("syslog"))
        assert other["message"] == "unrelated"
        (record,) = [r for f in dead_letter_files(dlq, "demo") for r in read_dead_letters(f)]
        assert record.event["message"] == "{broken" and record.step == "0-json"
        assert record.event["vigil.source"] == "syslog_tcp"
        assert daemon.metric("vigil_dead_letter_events_total", tenant="demo") == 1
        assert daemon.stop() == 0
    finally:
        daemon.kill()


def test_dead_letters_replay_through_the_daemon_after_a_fix(tmp_path: Path) -> None:
    """A broken pipeline dead-letters; after the fix (SIGHUP), `vigil dlq replay` puts the
    events back through the queue and the fixed pipeline takes them."""
    import signal
    import subprocess
    import sys

    config = basic_config(flush_seconds=0.2)
    pipeline = {"dataset": "app.kv", "match": {"field": "log.syslog.appname", "equals": "app"},
                "steps": [{"type": "json"}]}  # wrong: the app logs key=value text
    config["pipelines"] = {"app": pipeline}
    write_conf(tmp_path / "conf.d", config)
    data = tmp_path / "data"
    daemon = VigilProcess(tmp_path / "conf.d", data).start()
    try:
        with socket.create_connection(daemon.source_address("syslog_tcp")) as sock:
            sock.sendall(b"<13>Nov 23 10:00:00 h app: user=ann action=login\n"
                         b"<13>Nov 23 10:00:01 h app: user=bob action=logout\n")
        wait_for(lambda: daemon.metric("vigil_dead_letter_files_written_total") >= 1,
                 message="dead letters committed")
        cli = [sys.executable, "-m", "collector.cli", "dlq"]
        listed = subprocess.run([*cli, "list", "-c", str(tmp_path / "conf.d"), "--data-dir",
                                 str(data)], capture_output=True, text=True, check=True)
        assert "2  demo / app / 0-json: message is not JSON" in listed.stdout
        pipeline["steps"] = [{"type": "set", "fields": {"fixed": "yes"}}]
        write_conf(tmp_path / "conf.d", config)
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: daemon.metric("vigil_config_reloads_total", result="success") == 1,
                 message="the fixed pipeline")
        replay = subprocess.run([*cli, "replay", "-c", str(tmp_path / "conf.d"), "--data-dir",
                                 str(data), "--wait", "20"], capture_output=True, text=True)
        assert replay.returncode == 0, replay.stderr
        # Piped: no progress bar, the summary line (issue 18).
        assert "\x1b[" not in replay.stdout + replay.stderr
        assert replay.stdout.splitlines()[-1].startswith("replayed 1 file(s), 2 event(s) in ")
        wait_for(lambda: len(lake_rows(data)) == 2, message="the replayed events in the lake")
        rows = lake_rows(data, "SELECT * FROM lake ORDER BY message")
        assert [(r["message"], r["fixed"], r["vigil.source"]) for r in rows] == [
            ("user=ann action=login", "yes", "syslog_tcp"),
            ("user=bob action=logout", "yes", "syslog_tcp")]
        assert daemon.metric("vigil_dead_letter_replayed_events_total", tenant="demo") == 2
        assert dead_letter_files(data / "dlq") == []
    finally:
        daemon.kill()
