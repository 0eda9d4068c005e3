"""The csv step: Palo Alto logs, quoting, short and long rows, and column list errors."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.steps import build_step

from core.step import StepFailure

# PAN-OS 10.1 traffic log fields in syslog order (the first 47; FUTURE_USE -> `_`).
PAN_TRAFFIC_COLUMNS = [
    "_", "panw.receive_time", "observer.serial_number", "panw.type", "panw.subtype", "_",
    "panw.generated_time", "source.ip", "destination.ip", "source.nat.ip",
    "destination.nat.ip", "rule.name", "source.user.name", "destination.user.name",
    "network.application", "panw.vsys", "observer.ingress.zone", "observer.egress.zone",
    "observer.ingress.interface.name", "observer.egress.interface.name", "panw.log_action",
    "_", "panw.session_id", "panw.repeat_count", "source.port", "destination.port",
    "source.nat.port", "destination.nat.port", "panw.flags", "network.transport",
    "event.action", "network.bytes", "source.bytes", "destination.bytes", "network.packets",
    "event.start", "event.duration", "panw.url_category", "_", "panw.sequence_number",
    "panw.action_flags", "source.geo.name", "destination.geo.name", "_", "source.packets",
    "destination.packets", "panw.session_end_reason",
]
PAN_TRAFFIC = (
    "1,2024/05/14 09:12:01,012801096514,TRAFFIC,end,2561,2024/05/14 09:12:01,10.20.30.40,"
    "93.184.216.34,203.0.113.5,93.184.216.34,allow-web,acme\\jdoe,,ssl,vsys1,trust,untrust,"
    "ethernet1/2,ethernet1/1,forward-to-siem,2024/05/14 09:12:01,1184523,1,52344,443,41233,"
    "443,0x40001c,tcp,allow,6942,1510,5432,22,2024/05/14 09:11:45,15,"
    "computer-and-internet-info,0,7199254740993,0x0,10.0.0.0-10.255.255.255,United States,0,"
    "11,11,tcp-fin,0,0,0,0,,PA-3220,from-policy,,,0,,0,,N/A,0,0,0,0"
)


csv_step = partial(build_step, "csv")


def test_palo_alto_traffic_log_with_future_use_columns_skipped() -> None:
    step = csv_step(columns=PAN_TRAFFIC_COLUMNS, extra_columns="ignore")
    event = step.apply({"message": PAN_TRAFFIC})
    del event["message"]
    assert event == {
        "panw.receive_time": "2024/05/14 09:12:01", "observer.serial_number": "012801096514",
        "panw.type": "TRAFFIC", "panw.subtype": "end",
        "panw.generated_time": "2024/05/14 09:12:01", "source.ip": "10.20.30.40",
        "destination.ip": "93.184.216.34", "source.nat.ip": "203.0.113.5",
        "destination.nat.ip": "93.184.216.34", "rule.name": "allow-web",
        "source.user.name": "acme\\jdoe", "network.application": "ssl", "panw.vsys": "vsys1",
        "observer.ingress.zone": "trust", "observer.egress.zone": "untrust",
        "observer.ingress.interface.name": "ethernet1/2",
        "observer.egress.interface.name": "ethernet1/1", "panw.log_action": "forward-to-siem",
        "panw.session_id": "1184523", "panw.repeat_count": "1", "source.port": "52344",
        "destination.port": "443", "source.nat.port": "41233", "destination.nat.port": "443",
        "panw.flags": "0x40001c", "network.transport": "tcp", "event.action": "allow",
        "network.bytes": "6942", "source.bytes": "1510", "destination.bytes": "5432",
        "network.packets": "22", "event.start": "2024/05/14 09:11:45", "event.duration": "15",
        "panw.url_category": "computer-and-internet-info",
        "panw.sequence_number": "7199254740993", "panw.action_flags": "0x0",
        "source.geo.name": "10.0.0.0-10.255.255.255", "destination.geo.name": "United States",
        "source.packets": "11", "destination.packets": "11",
        "panw.session_end_reason": "tcp-fin",
    }


def test_palo_alto_threat_url_is_quoted_and_holds_commas() -> None:
    line = ('1,2024/05/14 09:13:07,012801096514,THREAT,url,2561,2024/05/14 09:13:07,'
            '10.20.30.41,198.51.100.80,"shop.example.com/cart?items=1,2,3&q=""x""",'
            'block-url')
    step = csv_step(columns=["_", "t", "serial", "type", "subtype", "_", "gen", "source.ip",
                             "destination.ip", "url.original", "event.action"])
    event = step.apply({"message": line})
    assert event["url.original"] == 'shop.example.com/cart?items=1,2,3&q="x"'
    assert (event["destination.ip"], event["event.action"]) == ("198.51.100.80", "block-url")


def test_short_and_long_rows() -> None:
    columns = ["a", "b", "c", "d"]
    with pytest.raises(StepFailure, match="^3 values for 4 columns$"):
        csv_step(columns=columns).apply({"message": "1,2,3"})
    with pytest.raises(StepFailure, match="^5 values for 4 columns$"):
        csv_step(columns=columns).apply({"message": "1,2,3,4,5"})
    short = csv_step(columns=columns, missing_columns="ignore").apply({"message": "1,,3"})
    assert short == {"message": "1,,3", "a": "1", "c": "3"}
    long = csv_step(columns=columns, extra_columns="ignore").apply({"message": "1,2,3,4,5"})
    assert long == {"message": "1,2,3,4,5", "a": "1", "b": "2", "c": "3", "d": "4"}
    with pytest.raises(StepFailure, match="^0 values for 4 columns$"):
        csv_step(columns=columns).apply({"message": ""})


def test_delimiter_trim_target_and_empty_values() -> None:
    step = csv_step(columns=["user.name", "_", "event.action", "reason"], delimiter="\t",
                    trim=True, target="squid", keep_empty_values=True)
    assert step.apply({"message": " jdoe \tx\t DENIED\t"}) == {
        "message": " jdoe \tx\t DENIED\t", "squid.user.name": "jdoe",
        "squid.event.action": "DENIED", "squid.reason": ""}
    spaced = csv_step(columns=["a", "b"], skip_initial_space=True, quote_char="'")
    assert spaced.apply({"message": "x, 'y, z'"})["b"] == "y, z"
    escaped = csv_step(columns=["a", "b"], escape_char="\\")
    assert escaped.apply({"message": "x\\,y,z"}) == {"message": "x\\,y,z", "a": "x,y", "b": "z"}


def test_a_line_break_outside_quotes_is_a_failure() -> None:
    with pytest.raises(StepFailure, match="^message is not one CSV row: new-line character"):
        csv_step(columns=["a", "b"]).apply({"message": "1,2\n3,4"})


def test_column_list_errors(config_errors: Callable[[str], list[str]], tmp_path: Path) -> None:
    path = tmp_path / "30-pipelines.yaml"
    assert config_errors("""
    pipelines:
      p:
        dataset: x
        steps:
          - type: csv
            columns: []
          - type: csv
            columns: [source.ip, _, user.name, source.ip, " ", "a b", _, user.name]
          - type: csv
            columns: [_, _]
            delimiter: ";;"
          - {type: csv, columns: [a], quote_char: ",", escape_char: ""}
    """) == [
        f"{path}:6:18: pipelines.p.steps[0].columns: needs at least one column name",
        f"{path}:8:44: pipelines.p.steps[1].columns[3]: duplicate column 'source.ip' (first at "
        "columns[0])",
        f"{path}:8:55: pipelines.p.steps[1].columns[4]: column name is empty (use `_` to skip "
        "a column)",
        f"{path}:8:60: pipelines.p.steps[1].columns[5]: column name 'a b' is not a field name "
        "(letters, digits, _ @ . -)",
        f"{path}:8:70: pipelines.p.steps[1].columns[7]: duplicate column 'user.name' (first at "
        "columns[2])",
        f"{path}:11:20: pipelines.p.steps[2].delimiter: must be exactly one character, got ';;'",
        f"{path}:12:65: pipelines.p.steps[3].escape_char: must be exactly one character, got ''",
    ]
    assert config_errors("""
    pipelines:
      p:
        dataset: x
        steps:
          - {type: csv, columns: [_, _]}
          - {type: csv, columns: [a], quote_char: ","}
    """)[0:2] == [
        f"{path}:5:30: pipelines.p.steps[0].columns: every column is skipped (`_`)",
        f"{path}:6:9: pipelines.p.steps[1]: delimiter, quote_char and escape_char must differ",
    ]


STEPS = [csv_step(columns=["a", "b", "_"]),
         csv_step(columns=["a"], extra_columns="ignore", missing_columns="ignore",
                  escape_char="\\", delimiter=";", trim=True)]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet=',;"\\\n\r\x00ab '), st.binary(), st.integers()))
def test_no_input_raises_anything_but_step_failure(value: Any) -> None:
    for step in STEPS:
        with contextlib.suppress(StepFailure):
            step.apply({"message": value})
