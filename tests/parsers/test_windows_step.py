"""The windows_event step: the three JSON shapes of a Windows event (EVTX-as-JSON, Winlogbeat,
NXLog) to one field set; unrecognised records fail; a bad timezone is a config error."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from core.step import StepContext, StepFailure
from parsers.windows import WindowsEventConfig, WindowsEventStep

# Winlogbeat's 4688 test event (elastic/beats x-pack/winlogbeat testdata), trimmed.
WINLOGBEAT = {"@timestamp": "2019-11-14T17:10:15.1515514Z",
              "message": "A new process has been created.", "host": {"name": "vagrant"},
              "winlog": {"channel": "Security", "computer_name": "vagrant", "event_id": "4688",
                         "record_id": "5010", "process": {"pid": 4, "thread": {"id": 5076}},
                         "provider_name": "Microsoft-Windows-Security-Auditing",
                         "event_data": {"SubjectUserName": "vagrant"}}}
# NXLog im_msvistalog output (NXLog 6 names: TaskValue, ExecutionProcessID).
NXLOG = {"EventTime": "2021-03-31T12:03:46.974060+03:00", "Hostname": "hostname3",
         "EventType": "AUDIT_SUCCESS", "Severity": "INFO", "EventID": 4769,
         "SourceName": "Microsoft-Windows-Security-Auditing", "RecordNumber": 152410252,
         "ExecutionProcessID": 596, "Channel": "Security",
         "Category": "Kerberos Service Ticket Operations", "TargetUserName": "user1$@DOMAIN.RU",
         "SourceModuleType": "im_msvistalog"}
EVTX = {"Event": {"System": {"Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
                             "EventID": 11, "EventRecordID": 83239,
                             "Channel": "Microsoft-Windows-Sysmon/Operational",
                             "Computer": "swachchhanda",
                             "TimeCreated": {"#attributes": {
                                 "SystemTime": "2026-04-17T05:24:53.092051Z"}}},
                  "EventData": {"Image": "C:\\x.exe", "ProcessId": 15596}}}
SOURCE_KEYS = {"@timestamp": datetime(2030, 1, 1, tzinfo=UTC), "vigil.tenant": "demo",
               "vigil.source": "tcp_json"}


def step(**config: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    built = WindowsEventStep(WindowsEventConfig.model_validate(
        {"type": "windows_event", **config}), StepContext(None))  # type: ignore[arg-type]
    return built.apply


def common(event: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(event.get(k) for k in ("winlog.event_id", "winlog.channel",
                                         "winlog.provider_name", "winlog.computer_name",
                                         "host.hostname", "winlog.record_id", "@timestamp"))


def test_winlogbeat_shape() -> None:
    out = step()({**SOURCE_KEYS, **WINLOGBEAT, "@timestamp": datetime(2019, 11, 14, 17, 10, 15,
                                                                        151551, tzinfo=UTC)})
    assert common(out) == (4688, "Security", "Microsoft-Windows-Security-Auditing", "vagrant",
                           "vagrant", 5010, datetime(2019, 11, 14, 17, 10, 15, 151551, tzinfo=UTC))
    assert out["winlog.event_data.SubjectUserName"] == "vagrant"
    assert out["winlog.process.thread.id"] == 5076 and out["vigil.tenant"] == "demo"
    assert "winlog" not in out and "host" not in out


def test_nxlog_shape_keeps_vigil_keys_out_of_event_data() -> None:
    out = step()({**SOURCE_KEYS, **NXLOG})
    assert common(out) == (4769, "Security", "Microsoft-Windows-Security-Auditing", "hostname3",
                           "hostname3", 152410252,
                           datetime(2021, 3, 31, 9, 3, 46, 974060, tzinfo=UTC))
    assert out["winlog.event_data.TargetUserName"] == "user1$@DOMAIN.RU"
    assert out["winlog.task"] == "Kerberos Service Ticket Operations"
    assert out["winlog.process.pid"] == 596 and out["log.level"] == "info"
    assert out["vigil.source"] == "tcp_json"
    assert not [k for k in out if k.startswith("winlog.event_data.") and
                (k.endswith("@timestamp") or ".vigil." in k)]
    assert "EventID" not in out


def test_nxlog_local_time_takes_the_configured_zone() -> None:
    out = step(timezone="Europe/Paris")({**NXLOG, "EventTime": "2021-03-31 12:03:46"})
    assert out["@timestamp"] == datetime(2021, 3, 31, 10, 3, 46, tzinfo=UTC)


def test_evtx_shape_keeps_other_keys() -> None:
    out = step()({**SOURCE_KEYS, **EVTX, "agent": "chainsaw"})
    assert common(out) == (11, "Microsoft-Windows-Sysmon/Operational", "Microsoft-Windows-Sysmon",
                           "swachchhanda", "swachchhanda", 83239,
                           datetime(2026, 4, 17, 5, 24, 53, 92051, tzinfo=UTC))
    assert out["winlog.event_data.Image"] == "C:\\x.exe" and out["agent"] == "chainsaw"
    assert "Event" not in out


def test_record_in_a_field_as_json_text() -> None:
    out = step(field="message", format="nxlog")({"message": orjson.dumps(NXLOG).decode()})
    assert out["winlog.event_id"] == 4769 and "message" not in out


@pytest.mark.parametrize(("config", "event", "reason"), [
    ({}, {"a": 1}, "not a Windows event record"),
    ({"format": "evtx"}, {"Event": {"System": "x"}}, "not an EVTX-as-JSON record"),
    ({"format": "nxlog"}, {"Channel": "Security"}, "not an NXLog Windows record"),
    ({"field": "message"}, {"message": "{not json"}, "message is not JSON"),
    ({"field": "message"}, {"message": "[1]"}, "message holds list, not an object"),
    ({"field": "message"}, {}, "field 'message' is missing"),
])
def test_unrecognised_records_fail(config: dict[str, Any], event: dict[str, Any],
                                   reason: str) -> None:
    with pytest.raises(StepFailure, match=reason):
        step(**config)(event)


def test_bad_timezone_is_reported_at_its_key(config_errors: Callable[[str], list[str]]) -> None:
    errors = config_errors("""
        pipelines:
          win:
            dataset: windows.event
            steps:
              - type: windows_event
                timezone: Mars/Olympus
        """)
    assert [e[e.index("30-pipelines.yaml"):] for e in errors] == [
        "30-pipelines.yaml:6:19: pipelines.win.steps[0].timezone: unknown time zone "
        "'Mars/Olympus'"]


def test_xml_events_parse_and_hostile_xml_is_refused() -> None:
    """Sysmon for Linux's XML: data names become winlog.event_data.<Name>; an entity
    expansion bomb, an external entity and an oversized record are step failures."""
    import pytest

    from core.step import StepFailure
    from parsers.windows import MAX_XML_BYTES, flatten_windows_event, parse_event_xml

    doc = parse_event_xml('<Event><System><Provider Name="Linux-Sysmon"/><EventID>3</EventID>'
                          '<Channel>Linux-Sysmon/Operational</Channel></System><EventData>'
                          '<Data Name="DestinationIp">198.51.100.7</Data><Data Name="Initiated">'
                          'true</Data></EventData></Event>')
    flat = flatten_windows_event(doc)
    assert (flat["winlog.event_id"], flat["winlog.provider_name"]) == (3, "Linux-Sysmon")
    assert flat["winlog.event_data.DestinationIp"] == "198.51.100.7"
    bomb = ('<?xml version="1.0"?><!DOCTYPE e [<!ENTITY a "aaaaaaaaaa">'
            + "".join(f'<!ENTITY {c} "{("&" + p + ";") * 10}">'
                      for p, c in zip("abcdefgh", "bcdefghi", strict=True))
            + ']><Event><System><EventID>&i;</EventID></System></Event>')
    external = ('<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                '<Event><System><EventID>&x;</EventID></System></Event>')
    for hostile in (bomb, external, "<Event>" + " " * MAX_XML_BYTES + "</Event>", "<Other/>"):
        with pytest.raises(StepFailure):
            parse_event_xml(hostile)
