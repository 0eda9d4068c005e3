"""EVTX-as-JSON documents flattened into the windows.event shape (parsers/windows.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from parsers.windows import (
    flatten_windows_event,
    is_windows_event,
    iter_json_documents,
    parse_system_time,
)

SYSTEM = {
    "Provider": {"#attributes": {"Name": "Microsoft-Windows-Eventlog", "Guid": "{fc65}"}},
    "EventID": {"#attributes": {"Qualifiers": 0}, "#text": "1102"},
    "Level": 4,
    "TimeCreated": {"#attributes": {"SystemTime": "2026-04-17T05:24:53.0920512Z"}},
    "EventRecordID": "83239",
    "Execution": {"#attributes": {"ProcessID": 3208, "ThreadID": 1724}},
    "Channel": "Security",
    "Computer": "dc01.example.org",
    "Security": {"#attributes": {"UserID": "S-1-5-18"}},
}


def test_system_fields() -> None:
    event = flatten_windows_event({"Event": {"System": SYSTEM, "EventData": {"A": "1"}}})
    assert event["winlog.event_id"] == 1102
    assert event["winlog.channel"] == "Security"
    assert event["winlog.provider_name"] == "Microsoft-Windows-Eventlog"
    assert event["winlog.computer_name"] == event["host.hostname"] == "dc01.example.org"
    assert event["winlog.record_id"] == 83239
    assert event["winlog.process.pid"] == 3208
    assert event["winlog.user.identifier"] == "S-1-5-18"
    assert event["@timestamp"] == datetime(2026, 4, 17, 5, 24, 53, 92051, tzinfo=UTC)
    assert event["winlog.event_data.A"] == "1"


def test_user_data_wrapper_is_dropped() -> None:
    doc = {"Event": {"System": SYSTEM, "UserData": {"LogFileCleared": {
        "#attributes": {"xmlns": "http://manifests.microsoft.com/win/2004/08/windows/eventlog"},
        "SubjectUserSid": "S-1-5-21-1", "SubjectUserName": "admin",
        "SubjectDomainName": "EXAMPLE"}}}}
    event = flatten_windows_event(doc)
    assert event["winlog.user_data.SubjectUserName"] == "admin"
    assert event["winlog.user_data.SubjectDomainName"] == "EXAMPLE"
    assert not any(key.startswith("winlog.event_data.") for key in event)
    assert not any("LogFileCleared" in key or "#attributes" in key for key in event)


def test_unnamed_data_and_text_values() -> None:
    doc = {"Event": {"System": SYSTEM, "EventData": {
        "Data": ["first", {"#text": "second"}], "Binary": None,
        "Named": {"#attributes": {"x": 1}, "#text": "value"}}}}
    event = flatten_windows_event(doc)
    assert event["winlog.event_data.param1"] == "first"
    assert event["winlog.event_data.param2"] == "second"
    assert event["winlog.event_data.Binary"] is None
    assert event["winlog.event_data.Named"] == "value"


def test_is_windows_event() -> None:
    assert is_windows_event({"Event": {"System": {}}})
    assert not is_windows_event({"Event": "x"})
    assert not is_windows_event({"message": "x"})
    assert not is_windows_event(["Event"])


@pytest.mark.parametrize(("text", "expected"), [
    ('{"a": 1}', [{"a": 1}]),
    ('{"a": 1}\n{"a": 2}\n', [{"a": 1}, {"a": 2}]),
    ('{\n  "a": 1\n}{\n  "a": 2\n}', [{"a": 1}, {"a": 2}]),
    ('[{"a": 1}, {"a": 2}]', [[{"a": 1}, {"a": 2}]]),
    ("  \n", []),
])
def test_iter_json_documents(text: str, expected: list[object]) -> None:
    assert list(iter_json_documents(text)) == expected


def test_iter_json_documents_reports_bad_json() -> None:
    with pytest.raises(ValueError):
        list(iter_json_documents('{"a": 1} {oops'))


def test_parse_system_time_variants() -> None:
    assert parse_system_time("2026-01-02T03:04:05Z") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_system_time("2026-01-02 03:04:05.1+02:00") == datetime(
        2026, 1, 2, 1, 4, 5, 100000, tzinfo=UTC)
    assert parse_system_time("yesterday") is None
