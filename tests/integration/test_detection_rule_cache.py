"""The compiled-rule cache in the real daemon: the first start compiles every rule file and
writes `<data_dir>/cache/rules/`; a restart and a SIGHUP reload take the files from it; a rule
edited before a reload is compiled again, and the edit takes effect; a corrupt cache file is
ignored, counted and rewritten."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import yaml
from support.daemon import REPO, VigilProcess, basic_config, wait_for, write_conf

CACHE = "vigil_detection_rule_cache_files_total"
RULE_ID = "0c7d6a39-3b0e-4b8e-9a51-7f7d0c1e2a01"


def write_rule(rules: Path, needle: str) -> None:
    rules.mkdir(parents=True, exist_ok=True)
    rule = {"title": f"needle {needle}", "id": RULE_ID, "level": "high",
            "logsource": {"product": "linux", "service": "syslog"},
            "detection": {"keywords": [needle], "condition": "keywords"}}
    (rules / "needle.yml").write_text(yaml.safe_dump(rule), encoding="utf-8")


def configure(conf: Path, suppression: str) -> None:
    config = basic_config(flush_seconds=0.2)
    config["vigil"]["detection"] = {"suppression": suppression}
    # One process loads the rules, so the counts below are per load (with worker processes
    # each worker loads them, and counts multiply by the workers).
    config["vigil"]["workers"] = 1
    config["rules"] = {"local": {"path": "local-rules"}}
    write_conf(conf, config)
    if not (conf / "30-linux-system.yaml").exists():  # the `syslog` dataset's pipeline
        shipped = yaml.safe_load((REPO / "conf.d" / "30-linux-system.yaml").read_text("utf-8"))
        shipped.pop("tests", None)  # its cases name sources this configuration lacks
        (conf / "30-linux-system.yaml").write_text(yaml.safe_dump(shipped), encoding="utf-8")
        (conf / "enrich").symlink_to(REPO / "conf.d" / "enrich")


def counts(daemon: VigilProcess) -> dict[str, float]:
    return {result: daemon.metric(CACHE, result=result)
            for result in ("hit", "miss", "invalid", "uncached", "write_error")}


def send(daemon: VigilProcess, message: str) -> None:
    with socket.create_connection(daemon.source_address("syslog_tcp")) as sock:
        sock.sendall(f"<13>Nov 23 10:00:00 web1 app[7]: {message}\n".encode())


def test_restart_and_reload_take_rules_from_the_cache(tmp_path: Path) -> None:
    conf, data = tmp_path / "conf.d", tmp_path / "data"
    configure(conf, "1h")
    write_rule(conf / "local-rules", "first-needle")

    daemon = VigilProcess(conf, data).start()
    try:
        first = counts(daemon)
        assert first["miss"] > 1 and first["hit"] == 0 and first["invalid"] == 0
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    cache_file = data / "cache" / "rules" / "compiled.json"
    assert cache_file.is_file() and cache_file.stat().st_mode & 0o077 == 0

    daemon = VigilProcess(conf, data).start()
    try:
        restarted = counts(daemon)
        assert restarted["miss"] == 0 and restarted["hit"] == first["miss"]
        # The rule as cached detects.
        send(daemon, "found first-needle here")
        wait_for(lambda: daemon.metric("vigil_detection_matches_total", tenant="demo") >= 1,
                 message="a match of the cached rule")

        # Reload with the detection settings changed: every file from the cache again.
        configure(conf, "2h")
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: daemon.metric(CACHE, result="hit") >= 2 * first["miss"],
                 message="a reload through the cache")
        assert counts(daemon)["miss"] == 0

        # The rule edited, then a reload: that file (only) is compiled again and takes effect.
        write_rule(conf / "local-rules", "second-needle")
        configure(conf, "3h")
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: daemon.metric(CACHE, result="miss") >= 1, message="the edit compiled")
        assert daemon.metric(CACHE, result="hit") == 3 * first["miss"] - 1
        matched = daemon.metric("vigil_detection_matches_total", tenant="demo")
        send(daemon, "found second-needle here")
        wait_for(lambda: daemon.metric("vigil_detection_matches_total", tenant="demo")
                 > matched, message="a match of the edited rule")
        assert daemon.stop() == 0
    finally:
        daemon.kill()

    cache_file.write_bytes(b"\x00 not a cache")
    daemon = VigilProcess(conf, data).start()
    try:
        corrupt = counts(daemon)
        assert corrupt["invalid"] == 1 and corrupt["miss"] == first["miss"]
        assert corrupt["hit"] == 0
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    assert cache_file.read_bytes().startswith(b"{")  # rebuilt
