"""Decoding S3 objects and SQS notification bodies (pure functions, no server): gzip members,
truncation, every `format`, chunk boundaries, and each notification shape AWS sends."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime

import pytest

from collector.sources.aws.notifications import NotANotification, ObjectRef, objects_in_message
from collector.sources.aws.objects import (
    Inflater,
    ObjectFailure,
    ObjectReader,
    RecordDecoder,
)
from core.events import PARSE_ERROR

NOW = datetime(2024, 5, 14, tzinfo=UTC)


class Chunked(io.BytesIO):
    """A body that hands out at most `size` bytes per read, like a network stream."""

    def __init__(self, data: bytes, size: int) -> None:
        super().__init__(data)
        self.size = size

    def read(self, amt: int | None = None) -> bytes:  # type: ignore[override]
        return super().read(min(amt or self.size, self.size))


def decode(data: bytes, fmt: str = "auto", compression: str = "auto", chunk: int = 7,
           max_document: int = 1 << 20, batch: int = 1000) -> list[dict]:
    reader = ObjectReader(Chunked(data, chunk), RecordDecoder(fmt, NOW, max_document),  # type: ignore[arg-type]
                          Inflater(compression))  # type: ignore[arg-type]
    events: list[dict] = []
    while not reader.done:
        events += reader.next_batch(batch)
    return events


def test_cloudtrail_document_split_into_records_across_gzip_members() -> None:
    records = [{"eventName": f"E{i}", "eventVersion": "1.08"} for i in range(5)]
    data = (gzip.compress(json.dumps({"Records": records[:2]}).encode() + b"\n")
            + gzip.compress(json.dumps({"Records": records[2:]}).encode()))
    assert [e["eventName"] for e in decode(data)] == ["E0", "E1", "E2", "E3", "E4"]


def test_pretty_printed_document_and_top_level_array() -> None:
    pretty = json.dumps({"Records": [{"a": 1}, {"a": 2}]}, indent=2).encode()
    assert [e["a"] for e in decode(pretty)] == [1, 2]
    array = json.dumps([{"a": 1}, 5], indent=1).encode()
    first, second = decode(array)
    assert first["a"] == 1 and second[PARSE_ERROR].startswith("array element is a number")


def test_object_with_other_keys_is_one_event() -> None:
    (event,) = decode(b'{"Records": [], "other": 1}')
    assert event["other"] == 1 and event["Records"] == []


def test_ndjson_keeps_bad_lines_marked_and_text_lines() -> None:
    events = decode(b'{"a": 1}\n[1]\n"str"\n{bad\n', chunk=3)
    assert events[0]["a"] == 1
    assert [e.get(PARSE_ERROR, "")[:20] for e in events[1:]] == [
        "array element is a n", "not a JSON object bu", "invalid JSON: unexpec"[:20]]
    lines = decode(b"first line\r\nsecond\n\nthird", chunk=4)
    assert [e["message"] for e in lines] == ["first line", "second", "third"]
    assert all(e["@timestamp"] == NOW for e in lines)


def test_auto_falls_back_to_marked_lines_when_nothing_parses_whole() -> None:
    events = decode(b'{"a":\n1}\n{"b": 2\n')
    assert len(events) == 3 and all(PARSE_ERROR in e for e in events)


def test_explicit_formats() -> None:
    assert [e["message"] for e in decode(b'{"a": 1}\n', fmt="lines")] == ['{"a": 1}']
    with pytest.raises(ObjectFailure, match="not a JSON document"):
        decode(b'{"Records": [1, ', fmt="json")
    assert decode(b"", fmt="json") == []
    (event,) = decode(gzip.compress(b'{"a": 1}'), fmt="ndjson", compression="gzip")
    assert event["a"] == 1
    (raw,) = decode(b"\x1f\x8bnot-really", fmt="lines", compression="none")
    assert raw["message"].endswith("not-really")


def test_corrupt_and_truncated_gzip_fail() -> None:
    with pytest.raises(ObjectFailure, match="not valid gzip"):
        decode(b"\x1f\x8b\x08\x00garbage-garbage-garbage")
    whole = gzip.compress(b'{"a": 1}\n' * 1000)
    with pytest.raises(ObjectFailure, match="truncated"):
        decode(whole[: len(whole) // 2])


def test_document_over_the_limit_fails() -> None:
    with pytest.raises(ObjectFailure, match="over 64 bytes"):
        decode(b'{"Records": [\n' + b'{"a": 1},\n' * 20 + b"{}]}", fmt="json", max_document=64)


def test_batches_are_capped() -> None:
    reader = ObjectReader(Chunked(b"x\n" * 25, 1000), RecordDecoder("lines", NOW, 1000),
                          Inflater("none"))
    sizes = []
    while not reader.done:
        sizes.append(len(reader.next_batch(10)))
    assert sizes == [10, 10, 5] and reader.read_bytes == 50


# -- notifications ------------------------------------------------------------------------

S3_EVENT = {"Records": [{
    "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
    "s3": {"bucket": {"name": "trail"}, "object": {"key": "AWSLogs/a+b%3Dc.json.gz",
                                                      "size": 10}}},
    {"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete",
     "s3": {"bucket": {"name": "trail"}, "object": {"key": "gone"}}}]}


def test_direct_and_sns_wrapped_s3_notifications() -> None:
    expected = [ObjectRef("trail", "AWSLogs/a b=c.json.gz", 10)]
    assert objects_in_message(json.dumps(S3_EVENT)) == expected
    sns = {"Type": "Notification", "MessageId": "1", "TopicArn": "arn:aws:sns:x",
           "Message": json.dumps(S3_EVENT)}
    assert objects_in_message(json.dumps(sns)) == expected


def test_eventbridge_cloudtrail_sns_and_test_events() -> None:
    bridge = {"version": "0", "detail-type": "Object Created", "source": "aws.s3",
              "detail": {"bucket": {"name": "b"}, "object": {"key": "k k", "size": 5}}}
    assert objects_in_message(json.dumps(bridge)) == [ObjectRef("b", "k k", 5)]
    bridge["detail-type"] = "Object Deleted"
    assert objects_in_message(json.dumps(bridge)) == []
    trail = {"s3Bucket": "b", "s3ObjectKey": ["k1", "k2"]}
    assert objects_in_message(json.dumps(trail)) == [ObjectRef("b", "k1"), ObjectRef("b", "k2")]
    assert objects_in_message(json.dumps({"Service": "Amazon S3",
                                          "Event": "s3:TestEvent"})) == []


@pytest.mark.parametrize("body, message", [
    ("not json", "message body is not JSON"),
    ("[1]", "not a JSON object"),
    ('{"hello": 1}', "not an S3 event notification"),
    ('{"Records": [{"eventSource": "aws:sqs"}]}', "other than S3 events"),
    ('{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}]}',
     "without s3.bucket.name"),
    ('{"Type": "Notification", "Message": "oops"}', "SNS Message is not JSON"),
])
def test_bodies_that_are_not_notifications(body: str, message: str) -> None:
    with pytest.raises(NotANotification, match=message):
        objects_in_message(body)
