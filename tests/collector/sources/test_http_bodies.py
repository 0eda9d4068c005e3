"""HTTP bodies into events: JSON object / array / NDJSON, HEC envelopes and raw lines, gzip under
a size limit, tokens hashed and compared, and the keys a sender may not set."""

from __future__ import annotations

import gzip
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collector.sources.http.bodies import (
    BadEncoding,
    BodyTooLarge,
    decode_hec_events,
    decode_hec_raw,
    decode_logs,
    inflate_gzip,
)
from collector.sources.http.config import HttpTokenConfig
from collector.sources.http.tokens import TokenTable, parse_authorization
from collector.sources.json_events import event_from_object, parse_timestamp
from core.events import MESSAGE, PARSE_ERROR, TIMESTAMP

NOW = datetime(2024, 5, 14, 9, 30, tzinfo=UTC)


def test_one_object_an_array_and_ndjson() -> None:
    assert [e["a"] for e in decode_logs(b'{"a": 1}', NOW).events] == [1]
    assert [e["a"] for e in decode_logs(b'[{"a": 1}, {"a": 2}]', NOW).events] == [1, 2]
    decoded = decode_logs(b'{"a": 1}\n{"a": 2}\r\n\n{"a": 3}', NOW)
    assert [e["a"] for e in decoded.events] == [1, 2, 3] and decoded.problems == []


def test_bad_ndjson_lines_are_kept_marked_and_named() -> None:
    decoded = decode_logs(b'{"a": 1}\n{"a": \n[1]\n{"a": 4}\n', NOW)
    assert len(decoded.events) == 4 and decoded.invalid == 2
    assert [p["line"] for p in decoded.problems] == [2, 3]
    assert decoded.problems[1]["error"] == "not a JSON object but an array"
    assert decoded.events[1][MESSAGE] == '{"a": ' and PARSE_ERROR in decoded.events[1]
    assert decoded.events[3]["a"] == 4


def test_array_elements_that_are_not_objects() -> None:
    decoded = decode_logs(b'[{"a": 1}, "text", 3]', NOW)
    assert decoded.problems == [{"element": 1, "error": "not a JSON object but a string"},
                                {"element": 2, "error": "not a JSON object but a number"}]
    assert [e.get(MESSAGE) for e in decoded.events] == [None, '"text"', "3"]


def test_reserved_keys_and_timestamps_from_senders() -> None:
    event = event_from_object({"vigil.tenant": "acme", "@timestamp": "2024-05-14T09:00:00Z",
                               "x": {"y": 1}}, NOW)
    assert event["payload.vigil.tenant"] == "acme" and "vigil.tenant" not in event
    assert event[TIMESTAMP] == datetime(2024, 5, 14, 9, 0, tzinfo=UTC)
    assert event["x"] == {"y": 1}
    event = event_from_object({"@timestamp": "yesterday"}, NOW)
    assert event[TIMESTAMP] == NOW and event["payload.@timestamp"] == "yesterday"
    for value in (1715677200, 1715677200000, "1715677200.5", 1715677200000000000):
        assert parse_timestamp(value).replace(microsecond=0) == datetime(2024, 5, 14, 9, 0,
                                                                         tzinfo=UTC)
    assert parse_timestamp(True) is None and parse_timestamp(float("nan")) is None


def test_hec_concatenated_envelopes() -> None:
    body = (b'{"event": "login ok", "time": 1715677200.25, "host": "web1", "source": "auth",'
            b' "sourcetype": "linux_secure", "index": "main", "fields": {"env": "prod"}}'
            b'{"event": {"action": "x", "vigil.dataset": "evil"}}  \n'
            b'{"event": "third"}')
    decoded = decode_hec_events(body, NOW, {"sourcetype": "default_st", "host": "qhost"})
    first, second, third = decoded.events
    assert first[MESSAGE] == "login ok" and first["host.hostname"] == "web1"
    assert first[TIMESTAMP] == datetime(2024, 5, 14, 9, 0, 0, 250000, tzinfo=UTC)
    assert (first["splunk.source"], first["splunk.sourcetype"], first["splunk.index"]) == \
        ("auth", "linux_secure", "main")
    assert first["splunk.fields.env"] == "prod"
    assert second["action"] == "x" and second["payload.vigil.dataset"] == "evil"
    assert second["splunk.sourcetype"] == "default_st" and second["host.hostname"] == "qhost"
    assert third[MESSAGE] == "third" and decoded.first_invalid is None


def test_hec_bad_envelopes_are_kept_and_the_first_is_named() -> None:
    decoded = decode_hec_events(b'{"event": "a"}{"time": 1}{"event": ""}{"event": "d"}{bad',
                                NOW, {})
    assert decoded.first_invalid == 1 and decoded.hec_code == 12
    assert [p["event"] for p in decoded.problems] == [1, 2, 4]
    assert len(decoded.events) == 5
    assert decoded.events[4][MESSAGE] == "{bad" and PARSE_ERROR in decoded.events[4]


def test_hec_raw_lines() -> None:
    decoded = decode_hec_raw(b"line one\r\n\nline two\n", NOW, {"host": "h"})
    assert [(e[MESSAGE], e["host.hostname"]) for e in decoded.events] == \
        [("line one", "h"), ("line two", "h")]


def test_gzip_limits_and_members() -> None:
    data = b'{"a": 1}\n' * 1000
    assert inflate_gzip(gzip.compress(data), len(data)) == data
    assert inflate_gzip(gzip.compress(data[:9]) + gzip.compress(data[9:18]), 100) == data[:18]
    with pytest.raises(BodyTooLarge):
        inflate_gzip(gzip.compress(b"\0" * 10_000_000), 1_000_000)  # a small bomb
    with pytest.raises(BadEncoding):
        inflate_gzip(b"not gzip", 100)
    with pytest.raises(BadEncoding):
        inflate_gzip(gzip.compress(data)[:-12], len(data))


def test_tokens_hashed_and_compared(tmp_path: Path) -> None:
    secret_file = tmp_path / "acme.token"
    secret_file.write_text("s3cr3t-acme-token\n")
    table = TokenTable.from_config({
        "demo": HttpTokenConfig(tenant="demo",
                                sha256=hashlib.sha256(b"demo-token").hexdigest()),
        "acme": HttpTokenConfig(tenant="acme", token_file=Path("acme.token")),
    }, tmp_path)
    assert table.lookup("demo-token").tenant == "demo"
    assert table.lookup("s3cr3t-acme-token").name == "acme"
    assert table.lookup("demo-token ") is None and table.lookup("") is None
    assert parse_authorization("Bearer demo-token") == "demo-token"
    assert parse_authorization("splunk  demo-token ") == "demo-token"
    assert parse_authorization("Basic abc") is None and parse_authorization("Bearer") is None
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="token .x.: token file .*empty is empty"):
        TokenTable.from_config({"x": HttpTokenConfig(token_file=Path("empty"))}, tmp_path)


def test_token_files_are_re_read_when_they_change(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    secret_file = tmp_path / "acme.token"
    secret_file.write_text("first-token\n")
    table = TokenTable.from_config(
        {"acme": HttpTokenConfig(tenant="acme", token_file=Path("acme.token"))}, tmp_path)
    assert table.refresh() == 0 and table.lookup("first-token") is not None
    new = tmp_path / "acme.token.new"
    new.write_text("second-token\n")
    new.replace(secret_file)
    assert table.refresh() == 1
    assert table.lookup("second-token").tenant == "acme"  # type: ignore[union-attr]
    assert table.lookup("first-token") is None
    secret_file.write_text("")  # emptied: refused, not kept
    assert table.refresh() == 1 and table.lookup("second-token") is None
    secret_file.unlink()
    assert table.refresh() == 1 and table.refresh() == 0  # reported once, not every tick
    assert table.stats() == {"reloads": 1, "reload_errors": 2}
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("file unusable; its previous version is dropped until it is fixed") \
        == 2
    logged = " ".join(str(vars(r)) for r in caplog.records)
    assert "first-token" not in logged and "second-token" not in logged
