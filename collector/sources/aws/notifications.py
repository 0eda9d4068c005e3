"""The S3 objects an SQS message announces: S3 event notifications sent to the queue directly,
the same wrapped in an SNS envelope, EventBridge "Object Created" events, and CloudTrail's own
SNS notification (`s3Bucket` + `s3ObjectKey`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import orjson


class NotANotification(ValueError):
    """The message body is not an S3 notification of any known shape."""


@dataclass(frozen=True, slots=True)
class ObjectRef:
    bucket: str
    key: str
    size: int | None = None


def objects_in_message(body: str) -> list[ObjectRef]:
    """The new objects a message body announces; [] for messages that announce none (the S3
    test event, removals); NotANotification when the body has no known shape."""
    doc = _json_object(body, "message body")
    if doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str):
        doc = _json_object(doc["Message"], "SNS Message")  # SNS without raw delivery
    if doc.get("Event") == "s3:TestEvent":
        return []
    records = doc.get("Records")
    if isinstance(records, list):
        return _from_s3_records(records)
    if doc.get("source") == "aws.s3" and isinstance(doc.get("detail"), dict):
        return _from_eventbridge(doc)
    if isinstance(doc.get("s3Bucket"), str) and isinstance(doc.get("s3ObjectKey"), list):
        return [ObjectRef(doc["s3Bucket"], key) for key in doc["s3ObjectKey"]
                if isinstance(key, str)]
    raise NotANotification("not an S3 event notification (direct, SNS, EventBridge or "
                           "CloudTrail): no Records, detail or s3ObjectKey")


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise NotANotification(f"{what} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise NotANotification(f"{what} is not a JSON object")
    return doc


def _from_s3_records(records: list[Any]) -> list[ObjectRef]:
    found = []
    for record in records:
        if not isinstance(record, dict) or record.get("eventSource") != "aws:s3":
            raise NotANotification("Records hold something other than S3 events")
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        try:
            bucket = record["s3"]["bucket"]["name"]
            # Keys are URL-encoded in S3 notifications (a space arrives as '+').
            key = unquote_plus(record["s3"]["object"]["key"])
        except (KeyError, TypeError):
            raise NotANotification("S3 event without s3.bucket.name / s3.object.key") from None
        found.append(ObjectRef(bucket, key, _size(record["s3"]["object"].get("size"))))
    return found


def _from_eventbridge(doc: dict[str, Any]) -> list[ObjectRef]:
    if doc.get("detail-type") != "Object Created":
        return []
    detail = doc["detail"]
    try:
        return [ObjectRef(detail["bucket"]["name"], detail["object"]["key"],
                          _size(detail["object"].get("size")))]
    except (KeyError, TypeError):
        raise NotANotification("EventBridge event without detail.bucket.name / "
                               "detail.object.key") from None


def _size(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
