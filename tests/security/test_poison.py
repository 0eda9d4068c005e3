"""Poison events never stop the daemon (issue 13 break 2, issue 14 item 2).

An exception for one event, in a pipeline, in detection or in a sink's conversion, sends that
event to its tenant's dead letter with the reason; the rest of its batch goes on, the journal
position advances, and a replay after a restart does not crash. A worker that stops for any
unhandled reason makes the daemon exit non-zero, so systemd restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.daemon import VigilProcess, lake_count, lake_rows, wait_for
from support.tenants import (
    DEEP_APP,
    dead_letters,
    post,
    send_lines,
    syslog_line,
    two_tenant_conf,
)

from collector.pipeline.runner import PipelineSet
from collector.runtime import Daemon
from collector.worker import Worker
from rules.engine import DetectionEngine


def deep_json(depth: int) -> bytes:
    """A JSON object nested `depth` levels (deeper than orjson encodes)."""
    return b'{"k":' * depth + b"1" + b"}" * depth


def json_lines(n: int, tag: str, start: int = 0) -> list[bytes]:
    return [orjson.dumps({"msg": f"{tag}-{i}", "n": i}) for i in range(start, start + n)]


# -- in-process: a failure injected where a bug would sit ---------------------------------
# (`workers: 1`: the pipelines run in the daemon's own process, where the test patches them;
# tests/integration/test_workers.py kills a worker process instead.)


async def started_daemon(tmp_path: Path) -> Daemon:
    conf = two_tenant_conf(tmp_path / "conf.d", shipped=False, workers=1)
    daemon = Daemon(conf, data_dir=tmp_path / "data")
    await daemon.start()
    return daemon


def emit_lines(daemon: Daemon, source_id: str, lines: list[bytes]) -> None:
    source = daemon.sources[source_id]
    source.context.emit(source.decode_lines(lines))


async def drain(daemon: Daemon, data: Path, expected_lake: int, expected_dead: int) -> None:
    async def settled() -> bool:
        await daemon.tick()
        return (lake_count(data) >= expected_lake
                and len(dead_letters(data)) >= expected_dead)

    deadline = asyncio.get_running_loop().time() + 20
    while not await settled():
        assert asyncio.get_running_loop().time() < deadline, "events did not settle"
        await asyncio.sleep(0.1)


async def test_a_pipeline_raising_on_one_event_dead_letters_it_and_the_batch_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = PipelineSet.select
    original_batch = PipelineSet.select_batch

    def select(self: PipelineSet, event: dict[str, Any]) -> Any:
        if event.get("msg") == "poison":
            raise RuntimeError("pipeline bug on this one")
        return original(self, event)

    def select_batch(self: PipelineSet, events: list[dict[str, Any]]) -> Any:
        # Selection runs over the whole batch first; raising there, the runner selects event
        # by event and only the event it raises on again leaves.
        if any(event.get("msg") == "poison" for event in events):
            raise RuntimeError("pipeline bug in this batch")
        return original_batch(self, events)

    monkeypatch.setattr(PipelineSet, "select", select)
    monkeypatch.setattr(PipelineSet, "select_batch", select_batch)
    daemon = await started_daemon(tmp_path)
    data = tmp_path / "data"
    try:
        lines = json_lines(5, "ok") + [orjson.dumps({"msg": "poison"})] + json_lines(5, "ok", 5)
        emit_lines(daemon, "tcp_json_demo", lines)
        await drain(daemon, data, 10, 1)
        (record,) = dead_letters(data)
        assert record["event"]["msg"] == "poison"
        assert "RuntimeError" in record["error"] and "pipeline bug on this one" in record["error"]
        assert record["vigil.tenant"] == "demo"
        assert lake_count(data) == 10
        assert daemon._worker_task is not None and not daemon._worker_task.done()
        assert daemon.telemetry.total("vigil_poison_events_total") == 1
    finally:
        assert await daemon.shutdown() == 0


async def test_detection_raising_on_one_event_dead_letters_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = DetectionEngine.evaluate

    def evaluate(self: DetectionEngine, dataset: str, events: list, tenant: str) -> Any:
        if any(e.get("msg") == "poison" for e in events):
            raise KeyError("rule bug on this one")
        return original(self, dataset, events, tenant)

    monkeypatch.setattr(DetectionEngine, "evaluate", evaluate)
    daemon = await started_daemon(tmp_path)
    data = tmp_path / "data"
    try:
        lines = json_lines(5, "ok") + [orjson.dumps({"msg": "poison"})] + json_lines(5, "ok", 5)
        emit_lines(daemon, "tcp_json_acme", lines)
        await drain(daemon, data, 10, 1)
        (record,) = dead_letters(data)
        assert record["event"]["msg"] == "poison"
        assert "detection" in record["error"] and "KeyError" in record["error"]
        assert record["vigil.tenant"] == "acme"
        assert lake_count(data) == 10
        assert daemon._worker_task is not None and not daemon._worker_task.done()
    finally:
        assert await daemon.shutdown() == 0


async def test_a_lake_conversion_failure_dead_letters_the_row_and_writes_the_rest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A row the lake cannot convert (no sender can reach one since nesting is bounded at the
    edge and in the json step, so the conversion is made to raise on a marked row)."""
    import sinks.lake.sink as lake_sink

    original = lake_sink.events_to_table

    def events_to_table(events: list, fields: Any, *args: Any) -> Any:
        if any(e.get("msg") == "poison" for e in events):
            raise TypeError("Recursion limit reached")
        return original(events, fields, *args)

    monkeypatch.setattr(lake_sink, "events_to_table", events_to_table)
    daemon = await started_daemon(tmp_path)
    data = tmp_path / "data"
    try:
        lines = json_lines(4, "ok") + [orjson.dumps({"msg": "poison"})] + json_lines(4, "ok", 4)
        emit_lines(daemon, "tcp_json_demo", lines)
        await drain(daemon, data, 8, 1)
        (record,) = dead_letters(data)
        assert "lake" in record["error"] and "TypeError" in record["error"]
        assert lake_count(data) == 8
        # Nothing stays buffered for a retry: the position advances past the poison row.
        await daemon.tick()
        assert daemon.sinks["lake"].buffered_events() == 0
        assert daemon.queue.pending() == 0
    finally:
        assert await daemon.shutdown() == 0


async def test_a_worker_that_dies_makes_the_daemon_exit_non_zero(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def die(self: Worker) -> None:
        await asyncio.sleep(0.2)
        raise RuntimeError("worker bug")

    monkeypatch.setattr(Worker, "run", die)
    conf = two_tenant_conf(tmp_path / "conf.d", shipped=False, workers=1)
    daemon = Daemon(conf, data_dir=tmp_path / "data")
    code = await asyncio.wait_for(daemon.run(), 30)
    assert code != 0


async def test_a_worker_that_returns_while_not_stopping_exits_non_zero(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def quit_early(self: Worker) -> None:
        await asyncio.sleep(0.2)

    monkeypatch.setattr(Worker, "run", quit_early)
    conf = two_tenant_conf(tmp_path / "conf.d", shipped=False, workers=1)
    daemon = Daemon(conf, data_dir=tmp_path / "data")
    code = await asyncio.wait_for(daemon.run(), 30)
    assert code != 0


# -- the real daemon ------------------------------------------------------------------------


def test_issue_repro_list_tenant_does_not_stop_the_daemon(tmp_path: Path) -> None:
    """The exact report: `{"vigil": {"tenant": ["a"]}}` posted to /v1/logs."""
    conf = two_tenant_conf(tmp_path / "conf.d")
    data = tmp_path / "data"
    daemon = VigilProcess(conf, data).start()
    try:
        assert post(daemon, "/v1/logs", b'{"vigil": {"tenant": ["a"]}}', "demo") == 200
        assert post(daemon, "/v1/logs", b"\n".join(json_lines(20, "after")), "demo") == 200
        wait_for(lambda: lake_count(data) + len(dead_letters(data)) >= 21
                 or daemon.proc.poll() is not None, timeout=20, message="events settled")
        assert daemon.proc.poll() is None, "daemon exited:\n" + daemon.log()
        after = lake_rows(data, "SELECT count(*) AS n FROM lake WHERE msg LIKE 'after-%'")
        assert after[0]["n"] == 20
        assert lake_count(data) + len(dead_letters(data)) == 21
        assert daemon.stop() == 0
    finally:
        daemon.kill()


def test_a_deep_object_does_not_block_its_tenant(tmp_path: Path) -> None:
    """Issue 14 item 2: a 300-deep object (here through a pipeline that keeps a JSON body
    whole, refused by the json step's nesting bound) is dead-lettered, not retried for ever;
    the tenant's position advances and 1,000s more events go through a small queue."""
    conf = two_tenant_conf(tmp_path / "conf.d", queue_max_events=1000)
    data = tmp_path / "data"
    daemon = VigilProcess(conf, data).start()
    try:
        poison = syslog_line(DEEP_APP, deep_json(300))
        send_lines(daemon, "syslog_demo", [poison])
        # The same object straight over HTTP: refused at the edge (400) or dead-lettered.
        http_status = post(daemon, "/v1/logs", deep_json(300), "demo")
        assert http_status in (200, 400)
        expected_dead = 2 if http_status == 200 else 1
        wait_for(lambda: len(dead_letters(data)) >= expected_dead, timeout=20,
                 message="the poison events in the dead letter")
        sent = 0
        for chunk in range(8):
            body = b"\n".join(json_lines(400, "more", chunk * 400))
            # 503 is backpressure (the tenant's bound is 500): a blocked tenant never clears it.
            wait_for(lambda body=body: post(daemon, "/v1/logs", body, "demo") == 200,
                     timeout=20, interval=0.2, message="the tenant accepting events again")
            sent += 400
        wait_for(lambda: lake_count(data) >= sent, timeout=30, message="later events in lake")
        assert lake_count(data) == sent
        assert daemon.proc.poll() is None
        assert all("nested deeper" in r["error"] for r in dead_letters(data))
        # Logged once per cause, not a traceback per retry.
        assert sum("Traceback" in line for line in daemon.log_lines) <= 2, daemon.log()
        assert daemon.stop() == 0
    finally:
        daemon.kill()


def test_a_poison_event_replayed_after_a_restart_does_not_crash(tmp_path: Path) -> None:
    conf = two_tenant_conf(tmp_path / "conf.d")
    data = tmp_path / "data"
    daemon = VigilProcess(conf, data).start()
    poison = syslog_line(DEEP_APP, deep_json(300))
    try:
        send_lines(daemon, "syslog_acme", [poison])
        assert post(daemon, "/v1/logs", b'{"vigil": {"tenant": ["a"]}}', "acme") == 200
        assert post(daemon, "/v1/logs", b"\n".join(json_lines(10, "ok")), "acme") == 200
        daemon.signal(signal.SIGKILL)  # whatever was processed, the journal replays the rest
        daemon.proc.wait(10)
        daemon.start()
        wait_for(lambda: lake_count(data) + len(dead_letters(data)) >= 12
                 or daemon.proc.poll() is not None, timeout=20, message="events settled")
        assert daemon.proc.poll() is None, "daemon exited after restart:\n" + daemon.log()
        ok = lake_rows(data, "SELECT count(*) AS n FROM lake WHERE msg LIKE 'ok-%'")
        assert ok[0]["n"] == 10
        deep = [r for r in dead_letters(data) if "nested deeper" in r["error"]]
        assert len(deep) == 1 and deep[0]["event"]["log.syslog.appname"] == DEEP_APP
        assert all(r["vigil.tenant"] == "acme" for r in dead_letters(data))
        # Each event once, in the lake or the dead letter, across the kill and the replay.
        assert lake_count(data) + len(dead_letters(data)) == 12
        assert daemon.stop() == 0
    finally:
        daemon.kill()


def test_an_event_the_journal_cannot_encode_is_kept_as_text_not_refused() -> None:
    """A lone surrogate (HEC's decoder lets it through) used to fail the whole append: HTTP 503
    for ever to a sender that retries, a TCP stream held for ever."""
    from collector.journal.codec import ENCODING_ERROR, decode_events, encode_events

    deep = orjson.loads(deep_json(600))
    events = [{"ok": 1}, {"text": "\ud800", "n": 2}, {"body": deep}]
    decoded = decode_events(encode_events(events))
    assert decoded[0] == {"ok": 1}
    assert decoded[1]["text"] == '"\\ud800"' and decoded[1]["n"] == 2
    assert "text" in decoded[1][ENCODING_ERROR]
    assert decoded[2]["body"] == deep  # deep, yet within what msgpack stores


# -- a sink failure that no single row explains -----------------------------------------------


class Rejected(list):
    def __call__(self, partition: str, events: list, component: str, exc: BaseException,
                 scope: str) -> None:
        self.append((partition, len(events), component, type(exc).__name__, scope))


def failing_lake(tmp_path: Path, error: Exception) -> tuple[Any, Rejected, list[float], list]:
    from core.schema import DatasetSchemas
    from core.sink import SinkContext
    from core.telemetry import Telemetry
    from sinks.lake.sink import LakeConfig, LakeSink

    clock = [0.0]
    attempts: list[float] = []
    rejected = Rejected()
    context = SinkContext(tmp_path, "e1", Telemetry(), DatasetSchemas(),
                          monotonic=lambda: clock[0], reject=rejected)
    sink = LakeSink("lake", LakeConfig(), context)

    async def write(table: Any, target: Path) -> int:
        attempts.append(clock[0])
        raise error

    sink.writer.write = write  # type: ignore[method-assign]
    return sink, rejected, clock, attempts


async def test_a_buffer_that_keeps_failing_backs_off_then_is_quarantined(
        tmp_path: Path) -> None:
    from core.events import Batch

    sink, rejected, clock, attempts = failing_lake(tmp_path, RuntimeError("not one row's"))
    await sink.start()
    events = [{"@timestamp": None, "msg": f"m{i}", "vigil.offset": i} for i in range(3)]
    sink.write(Batch("demo", events, 0, 2, "app"))
    for _ in range(200):  # force-flush every 0.1 s of the sink's clock, like a blocked tenant
        with contextlib.suppress(RuntimeError):
            await sink.flush(force=True)
        clock[0] += 0.1
    # 0.5, 1, 2, 4 s apart, not 6 times a second; then the buffer leaves for the dead letter.
    gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
    assert gaps == pytest.approx([0.5, 1.0, 2.0, 4.0], abs=0.15)
    assert rejected == [("demo", 3, "lake", "RuntimeError", "batch")]
    assert sink.buffered_events() == 0 and sink.uncommitted_floor("demo") is None


async def test_an_environmental_failure_is_retried_for_as_long_as_it_lasts(
        tmp_path: Path) -> None:
    import errno

    from core.events import Batch

    sink, rejected, clock, attempts = failing_lake(
        tmp_path, OSError(errno.ENOSPC, "No space left on device"))
    await sink.start()
    sink.write(Batch("demo", [{"@timestamp": None, "msg": "m", "vigil.offset": 0}], 0, 0, "app"))
    for _ in range(1200):
        with contextlib.suppress(OSError):
            await sink.flush(force=True)
        clock[0] += 0.1
    assert rejected == [] and sink.uncommitted_floor("demo") == 0
    # Never quarantined, never more often than once a second (space coming back is noticed).
    gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
    assert len(attempts) > 100 and min(gaps) >= 0.95
