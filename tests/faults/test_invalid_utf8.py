"""Bytes that are not UTF-8 are kept: the message is decoded with U+FFFD for reading, and the
original bytes go to `event.original_base64` for forensic use."""

from __future__ import annotations

import base64
import socket
from pathlib import Path

from support.daemon import VigilProcess, basic_config, lake_rows, wait_for, write_conf

SYSLOG = b"<13>Nov 22 10:00:00 host app: caf\xe9 \xff\xfe broken"
JSON_LINE = b'{"message": "caf\xe9"}'
TEXT_LINE = b"plain \xc3\x28 text"
GOOD = b"<13>Nov 22 10:00:00 host app: caf\xc3\xa9 fine"


def test_invalid_utf8_keeps_the_original_bytes(tmp_path: Path) -> None:
    config = basic_config(flush_seconds=0.2)
    for name, codec in (("json_lines", "json"), ("text_lines", "text")):
        config["sources"][name] = {"type": "tcp_lines", "address": "127.0.0.1:0",
                                   "tenant": "demo", "codec": codec}
    write_conf(tmp_path / "conf.d", config)
    daemon = VigilProcess(tmp_path / "conf.d", tmp_path / "data").start()
    try:
        for source, payload in (("syslog_tcp", SYSLOG + b"\n" + GOOD), ("json_lines", JSON_LINE),
                                ("text_lines", TEXT_LINE)):
            with socket.create_connection(daemon.source_address(source)) as sock:
                sock.sendall(payload + b"\n")
        wait_for(lambda: daemon.metric("vigil_lake_rows_written_total") == 4, timeout=20,
                 message="four rows in the lake")
    finally:
        daemon.stop()
        daemon.kill()
    rows = lake_rows(tmp_path / "data")
    originals = {row["vigil.source"]: row.get("event.original_base64") for row in rows
                 if row.get("event.original_base64")}
    assert originals == {
        "syslog_tcp": base64.b64encode(SYSLOG).decode(),
        "json_lines": base64.b64encode(JSON_LINE).decode(),
        "text_lines": base64.b64encode(TEXT_LINE).decode(),
    }
    syslog = next(r for r in rows if r["vigil.source"] == "syslog_tcp"
                  and r.get("event.original_base64"))
    assert syslog["message"] == "caf\ufffd \ufffd\ufffd broken"  # still readable
    fine = next(r for r in rows if r["message"] == "café fine")
    assert fine.get("event.original_base64") is None  # valid UTF-8 costs nothing extra


def test_pulled_sources_keep_the_original_bytes_too() -> None:
    from datetime import UTC, datetime

    from collector.sources.aws.objects import RecordDecoder
    from collector.sources.gcp.decoding import event_from_data

    now = datetime(2026, 1, 1, tzinfo=UTC)
    for fmt in ("auto", "json", "text"):
        event = event_from_data(TEXT_LINE, fmt, now)
        assert event["event.original_base64"] == base64.b64encode(TEXT_LINE).decode(), fmt
    assert "event.original_base64" not in event_from_data(b"fine text", "text", now)
    decoder = RecordDecoder("lines", now, 1 << 20)
    events = decoder.feed(TEXT_LINE + b"\nfine\n") + decoder.finish()
    assert [e.get("event.original_base64") for e in events] == \
        [base64.b64encode(TEXT_LINE).decode(), None]


def test_http_bodies_keep_the_original_bytes() -> None:
    """/v1/logs (NDJSON lines), HEC events (each envelope its own bytes) and HEC raw lines."""
    from datetime import UTC, datetime

    from collector.sources.http.bodies import decode_hec_events, decode_hec_raw, decode_logs

    now = datetime(2026, 1, 1, tzinfo=UTC)
    (logs,) = decode_logs(JSON_LINE, now).events
    assert logs["event.original_base64"] == base64.b64encode(JSON_LINE).decode()
    good = b'{"event": "fine", "host": "h1"}'
    bad = b'{"event": {"msg": "caf\xe9 \xff"}, "host": "h\xfe2"}'
    first, second = decode_hec_events(good + b"\n" + bad, now, {}).events
    assert "event.original_base64" not in first and first["message"] == "fine"
    assert second["event.original_base64"] == base64.b64encode(bad).decode()
    assert second["msg"] == "caf\ufffd \ufffd" and second["host.hostname"] == "h\ufffd2"
    raw_good, raw_bad = decode_hec_raw(b"ok line\n" + TEXT_LINE, now, {}).events
    assert "event.original_base64" not in raw_good
    assert raw_bad["event.original_base64"] == base64.b64encode(TEXT_LINE).decode()
    assert raw_bad["message"] == "plain \ufffd( text"
