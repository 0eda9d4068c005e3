"""The leef step: IBM's LEEF 1.0 and 2.0 examples, custom delimiters, ECS mapping, failures."""

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

# IBM QRadar "Log Event Extended Format (LEEF)" documentation examples.
LEEF_1 = ("LEEF:1.0|Microsoft|MSExchange|4.0 SP1|15345|src=192.0.2.0\tdst=172.50.123.1\t"
          "sev=5\tcat=anomaly\tsrcPort=81\tdstPort=21\tusrName=joe.black")
LEEF_2 = "LEEF:2.0|Lancope|StealthWatch|1.0|41|^|src=10.0.1.8^dst=10.0.0.5^sev=5^srcPort=81^" \
         "dstPort=21"


leef = partial(build_step, "leef")


def test_leef_1_with_tab_separated_attributes() -> None:
    assert leef().apply({"message": LEEF_1}) == {
        "message": LEEF_1, "leef.version": "1.0", "leef.vendor": "Microsoft",
        "leef.product": "MSExchange", "leef.product_version": "4.0 SP1",
        "leef.event_id": "15345", "observer.vendor": "Microsoft",
        "observer.product": "MSExchange", "observer.version": "4.0 SP1", "event.code": "15345",
        "source.ip": "192.0.2.0", "destination.ip": "172.50.123.1", "event.severity": 5,
        "leef.cat": "anomaly", "source.port": 81, "destination.port": 21,
        "user.name": "joe.black",
    }


def test_leef_2_with_a_caret_delimiter_after_a_syslog_header() -> None:
    line = "<13>May 14 09:12:00 sw01 " + LEEF_2
    assert leef(ecs=False).apply({"message": line}) == {
        "message": line, "leef.version": "2.0", "leef.vendor": "Lancope",
        "leef.product": "StealthWatch", "leef.product_version": "1.0", "leef.event_id": "41",
        "leef.src": "10.0.1.8", "leef.dst": "10.0.0.5", "leef.sev": "5",
        "leef.srcPort": "81", "leef.dstPort": "21",
    }


@pytest.mark.parametrize("delimiter", ["x5E", "0x5E", "0x5e"])
def test_leef_2_hex_delimiters(delimiter: str) -> None:
    line = f"LEEF:2.0|Lancope|StealthWatch|1.0|41|{delimiter}|src=10.0.1.8^dstPort=21"
    event = leef().apply({"message": line})
    assert (event["source.ip"], event["destination.port"]) == ("10.0.1.8", 21)


def test_leef_2_without_a_delimiter_field_uses_tabs() -> None:
    for line in ("LEEF:2.0|V|P|1|7||proto=6\turl=http://x/?a=b\tdevTime=May 14 2024 09:12:00",
                 "LEEF:2.0|V|P|1|7|proto=6\turl=http://x/?a=b\tdevTime=May 14 2024 09:12:00"):
        event = leef().apply({"message": line})
        assert (event["network.transport"], event["url.original"]) == ("tcp", "http://x/?a=b")
        assert event["leef.devTime"] == "May 14 2024 09:12:00"


def test_space_separated_leef_1_falls_back_to_key_scanning() -> None:
    line = "LEEF:1.0|Palo Alto Networks|PAN-OS|10.1|allow|cat=TRAFFIC usrName=acme\\jdoe " \
           "src=10.1.1.1 identHostName=ws 42 srcPostNAT=198.51.100.2 srcBytes=12"
    event = leef().apply({"message": line})
    assert (event["user.name"], event["host.hostname"]) == ("acme\\jdoe", "ws 42")
    assert (event["source.nat.ip"], event["source.bytes"]) == ("198.51.100.2", 12)


@pytest.mark.parametrize(("line", "reason"), [
    ("CEF:0|a|b|c|d|e|1|", "no LEEF header ('LEEF:' not found)"),
    ("LEEF:1.0|a|b", "malformed LEEF header: expected 5 fields separated by `|` after "
                     "`LEEF:`"),
    ("LEEF:1.0|a|b|c|d|no pairs here", "LEEF attributes holds no key=value pair"),
])
def test_failures(line: str, reason: str) -> None:
    with pytest.raises(StepFailure) as info:
        leef().apply({"message": line})
    assert str(info.value) == reason


def test_config_errors(config_errors: Callable[[str], list[str]], tmp_path: Path) -> None:
    path = tmp_path / "30-pipelines.yaml"
    assert config_errors("""
    pipelines:
      p:
        dataset: x
        steps:
          - {type: leef, search: [], delimiter: "^"}
    """) == [
        f"{path}:5:30: pipelines.p.steps[0].search: Input should be a valid boolean",
        f"{path}:5:34: pipelines.p.steps[0].delimiter: unknown key 'delimiter'",
    ]


STEPS = [leef(), leef(ecs=False, search=False, keep_empty_values=True)]


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.text(),
    st.lists(st.sampled_from(["LEEF:2.0|", "LEEF:1.0|", "a|", "x5E|", "0x|", "^|", "|", "\t",
                              "src=", "srcPort=", "sev=", "High", "=", " ", "x", "9", "^"])
             ).map("".join),
    st.binary(), st.integers()))
def test_no_input_raises_anything_but_step_failure(value: Any) -> None:
    for step in STEPS:
        with contextlib.suppress(StepFailure):
            step.apply({"message": value})
