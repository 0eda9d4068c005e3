"""DeadLetterSink: JSON lines per tenant and date, named by offsets, read back for replay."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from collector.pipeline.runner import dead_letter
from core.events import DEAD_LETTERS, Batch
from core.schema import DatasetSchemas
from core.sink import SinkContext
from core.telemetry import Telemetry
from sinks.dead_letter import (
    REPLAY_SUFFIX,
    DeadLetterConfig,
    DeadLetterSink,
    dead_letter_files,
    mark_for_replay,
    mark_replayed,
    read_dead_letters,
    restore_event,
)

FAILED = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
RECEIVED = datetime(2026, 11, 23, 8, 29, 59, 123456, tzinfo=UTC)


async def test_records_round_trip(tmp_path: Path) -> None:
    telemetry = Telemetry()
    sink = DeadLetterSink("dlq", DeadLetterConfig(), SinkContext(tmp_path, "e7", telemetry,
                                                                 DatasetSchemas()))
    await sink.start()
    original = {"vigil.tenant": "acme", "vigil.source": "tcp_json", "message": "{bad",
                "@timestamp": RECEIVED, "vigil.received_at": RECEIVED, "n": 3}
    sink.write(Batch("acme", [dead_letter(original, "app", "0-json", "not JSON", FAILED)],
                     40, 44, None, kind=DEAD_LETTERS))
    assert sink.uncommitted_floor("acme") == 40
    await sink.stop()
    assert sink.uncommitted_floor("acme") is None
    (path,) = dead_letter_files(tmp_path / "dlq", "acme")
    assert path.relative_to(tmp_path).as_posix() == \
        "dlq/tenant=acme/date=2026-11-23/e7-000000000040-000000000044.jsonl"
    (record,) = read_dead_letters(path)
    assert (record.tenant, record.pipeline, record.step, record.error) == \
        ("acme", "app", "0-json", "not JSON")
    assert record.failed_at == "2026-11-23T08:30:00+00:00"
    assert restore_event(record.event) == original
    assert telemetry.sample("vigil_dead_letter_files_written_total", tenant="acme") == 1
    marked = mark_for_replay(path)
    assert dead_letter_files(tmp_path / "dlq") == []
    assert dead_letter_files(tmp_path / "dlq", suffixes=(REPLAY_SUFFIX,)) == [marked]
    replayed = mark_replayed(marked)
    assert replayed.name == "e7-000000000040-000000000044.jsonl.replayed"
    assert dead_letter_files(tmp_path / "dlq", suffixes=("", REPLAY_SUFFIX)) == []
