"""The cef step: vendor events, the specification's escaping rules, ECS mapping, failures."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.steps import build_step

from core.step import StepFailure

# Trend Micro Deep Security firewall event, as in Trend Micro's "Syslog message formats"
# documentation (CEF), behind the syslog header the Deep Security Manager sends.
TREND_FIREWALL = (
    "<134>May 14 09:12:00 dsm01 CEF:0|Trend Micro|Deep Security Agent|10.0.0.3685|20|"
    "Log for TCP Port 80|0|cn1=1 cn1Label=Host ID dvc=hostname act=Log "
    "dmac=00:50:56:F5:7F:47 smac=00:0C:29:EB:35:DE TrendMicroDsFrameType=IP "
    "src=192.168.126.150 dst=72.14.204.147 out=1019 cs3=DF MF cs3Label=Fragmentation Bits "
    "proto=TCP spt=49617 dpt=80 cs2=0x00 ACK PSH cs2Label=TCP Flags cnt=1 "
    "TrendMicroDsPacketData=AFB/AAACAE1jAAA="
)
# Trend Micro Deep Security anti-malware event (same documentation): escaped backslashes.
TREND_MALWARE = (
    "CEF:0|Trend Micro|Deep Security Agent|10.0.0.3685|4000000|Eicar_test_file|6|cn1=1 "
    "cn1Label=Host ID dvchost=hostname cn2=205 cn2Label=Quarantine File Size "
    "filePath=C:\\\\Users\\\\trend\\\\Desktop\\\\eicar.exe act=Delete result=Delete "
    "msg=Realtime TrendMicroDsFileMD5=44D88612FEA8A8F36DE82E1278ABB02F"
)


cef = partial(build_step, "cef")


def test_vendor_event_after_a_syslog_header_with_ecs_names() -> None:
    event = cef().apply({"message": TREND_FIREWALL})
    del event["message"]
    assert event == {
        "cef.version": "0", "cef.device.vendor": "Trend Micro",
        "cef.device.product": "Deep Security Agent", "cef.device.version": "10.0.0.3685",
        "cef.device.event_class_id": "20", "cef.name": "Log for TCP Port 80",
        "cef.severity": "0", "observer.vendor": "Trend Micro",
        "observer.product": "Deep Security Agent", "observer.version": "10.0.0.3685",
        "event.code": "20", "event.severity": 0, "cef.cn1": "1", "cef.cn1Label": "Host ID",
        "cef.dvc": "hostname",  # not an address, so not observer.ip
        "event.action": "Log", "destination.mac": "00:50:56:F5:7F:47",
        "source.mac": "00:0C:29:EB:35:DE", "cef.TrendMicroDsFrameType": "IP",
        "source.ip": "192.168.126.150", "destination.ip": "72.14.204.147",
        "destination.bytes": 1019, "cef.cs3": "DF MF", "cef.cs3Label": "Fragmentation Bits",
        "network.transport": "tcp", "source.port": 49617, "destination.port": 80,
        "cef.cs2": "0x00 ACK PSH", "cef.cs2Label": "TCP Flags", "cef.cnt": "1",
        "cef.TrendMicroDsPacketData": "AFB/AAACAE1jAAA=",
        # custom fields paired with their labels
        "cef.label.host_id": "1", "cef.label.fragmentation_bits": "DF MF",
        "cef.label.tcp_flags": "0x00 ACK PSH",
    }


def test_without_ecs_every_key_stays_under_the_prefix() -> None:
    event = cef(ecs=False, target="trend", labels=False).apply({"message": TREND_MALWARE})
    del event["message"]
    assert event == {
        "trend.version": "0", "trend.device.vendor": "Trend Micro",
        "trend.device.product": "Deep Security Agent", "trend.device.version": "10.0.0.3685",
        "trend.device.event_class_id": "4000000", "trend.name": "Eicar_test_file",
        "trend.severity": "6", "trend.cn1": "1", "trend.cn1Label": "Host ID",
        "trend.dvchost": "hostname", "trend.cn2": "205",
        "trend.cn2Label": "Quarantine File Size",
        "trend.filePath": "C:\\Users\\trend\\Desktop\\eicar.exe", "trend.act": "Delete",
        "trend.result": "Delete", "trend.msg": "Realtime",
        "trend.TrendMicroDsFileMD5": "44D88612FEA8A8F36DE82E1278ABB02F",
    }


@pytest.mark.parametrize(("line", "name", "act"), [
    # The specification's own examples of escaping (CEF rev. 25, "Character Encoding").
    ("CEF:0|security|threatmanager|1.0|100|detected a \\| in message|10|src=10.0.0.1 "
     "act=blocked a | dst=1.1.1.1", "detected a | in message", "blocked a |"),
    ("CEF:0|security|threatmanager|1.0|100|detected a \\\\ in packet|10|src=10.0.0.1 "
     "act=blocked a \\\\ dst=1.1.1.1", "detected a \\ in packet", "blocked a \\"),
    ("CEF:0|security|threatmanager|1.0|100|detected a = in message|10|src=10.0.0.1 "
     "act=blocked a \\= dst=1.1.1.1", "detected a = in message", "blocked a ="),
])
def test_specification_escaping_examples(line: str, name: str, act: str) -> None:
    event = cef().apply({"message": line})
    assert (event["cef.name"], event["event.action"]) == (name, act)
    assert (event["source.ip"], event["destination.ip"]) == ("10.0.0.1", "1.1.1.1")


def test_multi_line_values_names_for_severity_and_full_key_names() -> None:
    line = ("CEF:1|Vendor|Product|2.0|sig-7|Name|Very-High|msg=Detected a threat.\\n No action "
            "needed. sourceAddress=2001:db8::1 destinationPort=https deviceDirection=1 "
            "proto=17 empty= rt=May 14 2024 09:12:00")
    event = cef().apply({"message": line})
    assert event["event.severity"] == 10
    assert event["cef.msg"] == "Detected a threat.\n No action needed."
    assert event["source.ip"] == "2001:db8::1"
    assert event["cef.destinationPort"] == "https"  # not a number: kept as written
    assert (event["network.direction"], event["network.transport"]) == ("outbound", "udp")
    assert "cef.empty" not in event and event["cef.rt"] == "May 14 2024 09:12:00"
    assert cef(keep_empty_values=True).apply({"message": line})["cef.empty"] == ""


def test_header_without_extension() -> None:
    event = cef().apply({"message": "CEF:0|V|P|1|42|Heartbeat|Low"})
    assert (event["cef.name"], event["event.severity"]) == ("Heartbeat", 3)
    assert cef().apply({"message": "CEF:0|V|P|1|42|Heartbeat|5|"})["event.severity"] == 5


@pytest.mark.parametrize(("config", "line", "reason"), [
    ({}, "<134>May 14 host hello", "no CEF header ('CEF:' not found)"),
    ({"search": False}, "<134>x CEF:0|a|b|c|d|e|1|src=1.1.1.1",
     "no CEF header ('CEF:' not found)"),
    ({}, "CEF:0|a|b|c", "malformed CEF header: expected 7 fields separated by `|` after "
                        "`CEF:`"),
    ({}, "CEF:0|a|b|c|d|e|1|garbage src=1.1.1.1",
     "CEF extension has text before its first key: 'garbage'"),
    ({}, "CEF:0|a|b|c|d|e|1|just words", "CEF extension holds no key=value pair"),
])
def test_failures(config: dict[str, Any], line: str, reason: str) -> None:
    with pytest.raises(StepFailure) as info:
        cef(**config).apply({"message": line})
    assert str(info.value) == reason


def test_config_errors(config_errors: Callable[[str], list[str]], tmp_path: Path) -> None:
    path = tmp_path / "30-pipelines.yaml"
    assert config_errors("""
    pipelines:
      p:
        dataset: x
        steps:
          - {type: cef, ecs: maybe, prefix: x}
    """) == [
        f"{path}:5:26: pipelines.p.steps[0].ecs: Input should be a valid boolean, unable to "
        "interpret input",
        f"{path}:5:33: pipelines.p.steps[0].prefix: unknown key 'prefix'",
    ]


@pytest.mark.parametrize("text", [
    "CEF:0|a|b|c|d|e|1|k=v" + " " * 200_000 + "x", "CEF:0" + "|" * 200_000,
    "CEF:0|" + "\\" * 200_000, "CEF:0|a|b|c|d|e|1|" + "k=v " * 50_000, "CEF:" * 50_000,
])
def test_long_hostile_lines_take_linear_time(text: str) -> None:
    started = time.perf_counter()
    with contextlib.suppress(StepFailure):
        cef().apply({"message": text})
    assert time.perf_counter() - started < 2.0


STEPS = [cef(), cef(ecs=False, search=False, keep_empty_values=True)]


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.text(),
    st.text(alphabet="CEF:|\\= abn1").map(lambda s: "CEF:0|" + s),
    st.lists(st.sampled_from(["src=", "spt=", "dpt=", "proto=", "\\", "|", "=", " ", "x", "9",
                              "deviceDirection=", "::1", "Very-High"])).map(
        lambda parts: "CEF:0|a|b|c|d|e|" + "".join(parts)),
    st.binary(), st.integers()))
def test_no_input_raises_anything_but_step_failure(value: Any) -> None:
    for step in STEPS:
        with contextlib.suppress(StepFailure):
            step.apply({"message": value})
