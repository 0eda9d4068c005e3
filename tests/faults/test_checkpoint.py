"""The journal's checkpoint lost, wrong, or its segments zero-filled: the lake still holds each
acknowledged event exactly once, and every repair is reported with counts."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

from faults.conftest import TOKEN, http_source
from support.daemon import VigilProcess, basic_config, lake_rows, wait_for, write_conf

HOURS = 100


def config(flush_seconds: float) -> dict[str, Any]:
    sections = basic_config(flush_seconds=flush_seconds)
    sections["sources"]["http"] = http_source()
    sections["vigil"]["detection"] = {"enabled": False}
    return sections


def send(daemon: VigilProcess, posts: int, per_post: int = 50) -> int:
    """`posts` requests whose events spread over HOURS hour partitions; returns events sent."""
    total = 0
    for i in range(posts):
        events = [{"message": f"ckpt-{i}-{j}",
                   "@timestamp": f"2026-11-{1 + (i + j) % HOURS // 24:02d}T"
                                 f"{(i + j) % HOURS % 24:02d}:30:00Z"} for j in range(per_post)]
        assert post_events(daemon, events) == 200
        total += len(events)
    return total


def post_events(daemon: VigilProcess, events: list[dict[str, Any]]) -> int:
    host, port = daemon.source_address("http")
    body = b"".join(json.dumps(e).encode() + b"\n" for e in events)
    request = urllib.request.Request(f"http://{host}:{port}/v1/logs", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def settled(daemon: VigilProcess) -> bool:
    ready = daemon.readyz()[1]
    return (ready.get("queue", {}).get("pending_events") == 0
            and all(s.get("buffered_events", 0) == 0 and s.get("buffered_alerts", 0) == 0
                    for s in ready.get("sinks", {}).values()))


def counts(data: Path) -> dict[str, int]:
    rows = lake_rows(data, "SELECT message, count(*) AS n FROM lake "
                           "WHERE message LIKE 'ckpt-%' GROUP BY message")
    return {row["message"]: int(row["n"]) for row in rows}


def test_lost_checkpoint_after_a_multi_partition_run_duplicates_nothing(tmp_path: Path) -> None:
    conf, data = tmp_path / "conf.d", tmp_path / "data"
    write_conf(conf, config(0.2))
    daemon = VigilProcess(conf, data).start()
    try:
        sent = send(daemon, 100)
        wait_for(lambda: sum(counts(data).values()) == sent, timeout=30,
                 message="every event in the lake")
        assert daemon.stop() == 0
        assert list((data / "journal" / "demo").glob("*.seg")), "the replay needs its segment"
        (data / "journal" / "checkpoints.json").unlink()  # lost

        daemon = VigilProcess(conf, data).start()
        wait_for(lambda: settled(daemon), timeout=30, message="the replay done")
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    found = counts(data)
    assert len(found) == sent
    assert sum(found.values()) == sent, f"{sum(found.values()) - sent} duplicated"
    log = daemon.log()
    assert "journal checkpoint missing" in log
    assert re.search(r"already in committed files.*sink=lake.*events=5000", log), log[-3000:]


def test_checkpoint_past_the_end_is_reported_and_skips_nothing(tmp_path: Path) -> None:
    conf, data = tmp_path / "conf.d", tmp_path / "data"
    write_conf(conf, config(60))  # nothing committed, nothing acknowledged before the kill
    daemon = VigilProcess(conf, data).start()
    try:
        sent = send(daemon, 20)
        daemon.kill()
        epoch = (data / "journal" / "EPOCH").read_text().strip()
        (data / "journal" / "checkpoints.json").write_text(json.dumps({
            "version": 1, "epoch": epoch,
            "partitions": {"demo": {"acked": 50_000, "next_offset": 50_001}}}))

        write_conf(conf, config(0.2))
        daemon = VigilProcess(conf, data).start()
        wait_for(lambda: sum(counts(data).values()) >= sent, timeout=30,
                 message="the events the checkpoint claimed acknowledged, replayed")
        wait_for(lambda: settled(daemon), timeout=30, message="the replay done")
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    found = counts(data)
    assert len(found) == sent and sum(found.values()) == sent
    log = daemon.log()
    assert "journal checkpoint past the end of its segments" in log
    assert "claimed_acked=50000" in log


def test_zero_filled_segment_is_reported_with_the_events_it_lost(tmp_path: Path) -> None:
    conf, data = tmp_path / "conf.d", tmp_path / "data"
    write_conf(conf, config(60))
    daemon = VigilProcess(conf, data).start()
    try:
        sent = send(daemon, 100)
        daemon.kill()
        (segment,) = (data / "journal" / "demo").glob("*.seg")
        raw = bytearray(segment.read_bytes())
        start, end = len(raw) // 4, 3 * len(raw) // 4
        raw[start:end] = bytes(end - start)
        segment.write_bytes(bytes(raw))

        write_conf(conf, config(0.2))
        daemon = VigilProcess(conf, data).start()
        wait_for(lambda: settled(daemon), timeout=30, message="the replay done")
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    kept = sum(counts(data).values())
    assert 0 < kept < sent
    (line,) = [line for line in daemon.log().splitlines() if "journal damage skipped" in line]
    reported = re.search(r"(\d+) event\(s\)", line)
    assert reported is not None, line
    assert int(reported.group(1)) == sent - kept, line
