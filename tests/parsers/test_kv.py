"""The kv step: FortiGate logs, separators, quoting, trimming, key selection, and errors."""

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

# FortiOS 7 forward traffic log, in the layout of Fortinet's Log Message Reference example.
FORTIGATE_TRAFFIC = (
    'date=2023-11-14 time=10:12:33 eventtime=1699956753411432127 tz="+0100" '
    'logid="0000000013" type="traffic" subtype="forward" level="notice" vd="root" '
    'srcip=192.168.1.110 srcport=53512 srcintf="internal" srcintfrole="lan" '
    'dstip=142.250.185.78 dstport=443 dstintf="wan1" dstintfrole="wan" srccountry="Reserved" '
    'dstcountry="Germany" sessionid=8765432 proto=6 action="close" policyid=12 '
    'policytype="policy" poluuid="9c2f1d6e-8a4b-51ee-1c2d-3f4a5b6c7d8e" '
    'policyname="LAN-to-Internet" service="HTTPS" trandisp="snat" transip=203.0.113.10 '
    'transport=53512 appid=40568 app="HTTPS.BROWSER" appcat="Web.Client" apprisk="medium" '
    'duration=62 sentbyte=4721 rcvdbyte=18230 sentpkt=25 rcvdpkt=28 utmaction="allow" '
    'osname="Windows" mastersrcmac="00:0c:29:ab:cd:ef" srcmac="00:0c:29:ab:cd:ef" srcserver=0'
)
FORTIGATE_LOGIN = (
    'date=2023-11-14 time=10:14:02 logid="0100032002" type="event" subtype="system" '
    'level="alert" vd="root" logdesc="Admin login failed" sn="0" user="admin" '
    'ui="https(198.51.100.23)" method="https" srcip=198.51.100.23 dstip=10.0.0.1 '
    'action="login" status="failed" reason="passwd_invalid" '
    'msg="Administrator admin login failed from https(198.51.100.23) because of invalid '
    'password"'
)


kv = partial(build_step, "kv")


def test_fortigate_traffic_log() -> None:
    event = kv().apply({"message": FORTIGATE_TRAFFIC})
    del event["message"]
    assert event == {
        "date": "2023-11-14", "time": "10:12:33", "eventtime": "1699956753411432127",
        "tz": "+0100", "logid": "0000000013", "type": "traffic", "subtype": "forward",
        "level": "notice", "vd": "root", "srcip": "192.168.1.110", "srcport": "53512",
        "srcintf": "internal", "srcintfrole": "lan", "dstip": "142.250.185.78",
        "dstport": "443", "dstintf": "wan1", "dstintfrole": "wan", "srccountry": "Reserved",
        "dstcountry": "Germany", "sessionid": "8765432", "proto": "6", "action": "close",
        "policyid": "12", "policytype": "policy",
        "poluuid": "9c2f1d6e-8a4b-51ee-1c2d-3f4a5b6c7d8e", "policyname": "LAN-to-Internet",
        "service": "HTTPS", "trandisp": "snat", "transip": "203.0.113.10",
        "transport": "53512", "appid": "40568", "app": "HTTPS.BROWSER",
        "appcat": "Web.Client", "apprisk": "medium", "duration": "62", "sentbyte": "4721",
        "rcvdbyte": "18230", "sentpkt": "25", "rcvdpkt": "28", "utmaction": "allow",
        "osname": "Windows", "mastersrcmac": "00:0c:29:ab:cd:ef",
        "srcmac": "00:0c:29:ab:cd:ef", "srcserver": "0",
    }


def test_fortigate_event_with_spaces_in_quoted_values_and_prefix_selection() -> None:
    step = kv(target="fortinet", include_keys=["user", "srcip", "status", "msg", "logdesc"])
    event = step.apply({"message": FORTIGATE_LOGIN})
    assert event == {
        "message": FORTIGATE_LOGIN, "fortinet.logdesc": "Admin login failed",
        "fortinet.user": "admin", "fortinet.srcip": "198.51.100.23",
        "fortinet.status": "failed",
        "fortinet.msg": "Administrator admin login failed from https(198.51.100.23) because "
                        "of invalid password"}


def test_quotes_escapes_and_empty_values() -> None:
    line = r'''a="say \"hi\"" b='it''s' c="C:\\dir\x" d="" e= f=plain "g"=h'''
    assert kv().apply({"message": line}) == {
        "message": line, "a": 'say "hi"', "b": "'it''s'", "c": r"C:\dir\x", "f": "plain",
        '"g"': "h"}
    kept = kv(keep_empty_values=True, unescape=False, quotes=['"']).apply({"message": line})
    assert (kept["a"], kept["b"], kept["d"], kept["e"]) == ('"say', "'it''s'", "", "")


def test_values_running_to_the_next_key() -> None:
    line = "user=John Smith act=login ok src=10.0.0.1  url=http://x/?a=b c"
    assert kv(value_until_next_key=True).apply({"message": line}) == {
        "message": line, "user": "John Smith", "act": "login ok", "src": "10.0.0.1",
        "url": "http://x/?a=b c"}
    assert kv().apply({"message": line})["user"] == "John"


def test_custom_separators_trimming_case_prefix_and_duplicates() -> None:
    line = "Src:[10.0.0.1] ; SRC:[10.0.0.2] ;Proto:TCP;; junk ;dst:x"
    step = kv(field_split="; ", value_split=":", trim_value="[] ", transform_key="lower",
              prefix="fw_", exclude_keys=["dst"], duplicate_keys="list")
    assert step.apply({"message": line}) == {
        "message": line, "fw_src": ["10.0.0.1", "10.0.0.2"], "fw_proto": "TCP"}
    last = kv(field_split="; ", value_split=":", trim_value="[] ", transform_key="lower",
              duplicate_keys="last")
    assert last.apply({"message": line})["src"] == "10.0.0.2"
    arrow = kv(value_split="=>", field_split=",")
    assert arrow.apply({"message": "a=>1,b=>x=>y,c"}) == {
        "message": "a=>1,b=>x=>y,c", "a": "1", "b": "x=>y"}


def test_no_pairs_is_a_failure() -> None:
    with pytest.raises(StepFailure, match="^no key=value pairs found$"):
        kv().apply({"message": "just some words"})
    with pytest.raises(StepFailure, match="^field 'kv' is missing$"):
        kv(field="kv").apply({"message": "a=1"})


def test_config_errors(config_errors: Callable[[str], list[str]], tmp_path: Path) -> None:
    path = tmp_path / "30-pipelines.yaml"
    assert config_errors("""
    pipelines:
      p:
        dataset: x
        steps:
          - type: kv
            quotes: ['"', "<>"]
          - type: kv
            field_split: " ="
          - type: kv
            value_split: ""
            transform_key: title
    """) == [
        f"{path}:6:17: pipelines.p.steps[0].quotes: a quote is one character, got '<>'",
        f"{path}:7:9: pipelines.p.steps[1]: field_split shares '=' with value_split or quotes",
        f"{path}:10:22: pipelines.p.steps[2].value_split: String should have at least 1 "
        "character",
        f"{path}:11:24: pipelines.p.steps[2].transform_key: Input should be 'none', 'lower' or "
        "'upper'",
    ]


@pytest.mark.parametrize("text", [
    "a" * 200_000, "x" + " " * 200_000 + "y", 'k="v ' * 40_000, "=" * 200_000,
    'k="' + '\\"' * 100_000, "k=v " * 50_000,
])
def test_long_hostile_lines_take_linear_time(text: str) -> None:
    # A regex that rescans a token from each of its characters needs minutes here.
    for step in (kv(), kv(value_until_next_key=True)):
        started = time.perf_counter()
        with contextlib.suppress(StepFailure):
            step.apply({"message": text})
        assert time.perf_counter() - started < 2.0


STEPS = [kv(), kv(value_until_next_key=True, duplicate_keys="list"),
         kv(field_split=",;", value_split="=>", quotes=["'"], trim_value="\"'",
            keep_empty_values=True)]


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.text(),
    st.text(alphabet=" =\"'\\,;>ab\t").map(lambda s: s * 3),
    st.binary(), st.integers()))
def test_no_input_raises_anything_but_step_failure(value: Any) -> None:
    for step in STEPS:
        with contextlib.suppress(StepFailure):
            step.apply({"message": value})
