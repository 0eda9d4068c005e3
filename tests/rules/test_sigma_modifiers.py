"""Every Sigma modifier and condition form, with rules written here and exact (non-)matches."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

RULE_ID = "11111111-1111-4111-8111-111111111111"


def fires(sigma: SimpleNamespace, tmp_path: Path, detection: dict[str, Any],
          event: dict[str, Any]) -> bool:
    engine = sigma.engine_on(sigma.write_rule(tmp_path, "r", detection, id=RULE_ID))
    return bool(engine.evaluate("linux.auth", [event]))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sel(**fields: Any) -> dict[str, Any]:
    return {"sel": fields, "condition": "sel"}


CASES = [
    # plain values: case-insensitive by default, exact otherwise
    ("eq", sel(foo="Bar"), {"foo": "bAR"}, True),
    ("eq whole value", sel(foo="Bar"), {"foo": "Bars"}, False),
    ("eq missing field", sel(foo="Bar"), {"other": "Bar"}, False),
    ("list is OR", sel(foo=["a", "b"]), {"foo": "B"}, True),
    ("list is OR, miss", sel(foo=["a", "b"]), {"foo": "c"}, False),
    ("cased", {"sel": {"foo|cased": "Bar"}, "condition": "sel"}, {"foo": "Bar"}, True),
    ("cased miss", {"sel": {"foo|cased": "Bar"}, "condition": "sel"}, {"foo": "bar"}, False),
    ("cased contains", {"sel": {"foo|cased|contains": "aB"}, "condition": "sel"},
     {"foo": "xaBx"}, True),
    ("cased contains miss", {"sel": {"foo|cased|contains": "aB"}, "condition": "sel"},
     {"foo": "xabx"}, False),
    # wildcards
    ("star", sel(foo="a*c"), {"foo": "ABBBC"}, True),
    ("star miss", sel(foo="a*c"), {"foo": "abd"}, False),
    ("question", sel(foo="a?c"), {"foo": "abc"}, True),
    ("question is one char", sel(foo="a?c"), {"foo": "abbc"}, False),
    ("escaped star", sel(foo="a\\*b"), {"foo": "a*b"}, True),
    ("escaped star is literal", sel(foo="a\\*b"), {"foo": "axb"}, False),
    ("escaped question", sel(foo="what\\?"), {"foo": "what?"}, True),
    ("escaped question literal", sel(foo="what\\?"), {"foo": "whatx"}, False),
    ("backslash kept", sel(foo="C:\\Windows\\\\*"), {"foo": "c:\\windows\\x.exe"}, True),
    ("backslash-star is a literal star", sel(foo="C:\\Windows\\*"), {"foo": "c:\\windows*"},
     True),
    ("backslash-star is no wildcard", sel(foo="C:\\Windows\\*"),
     {"foo": "c:\\windows\\x.exe"}, False),
    ("lone star needs a value", sel(foo="*"), {"foo": "anything"}, True),
    ("lone star, absent", sel(foo="*"), {"bar": "x"}, False),
    # contains / startswith / endswith / all
    ("contains", {"sel": {"foo|contains": "MID"}, "condition": "sel"}, {"foo": "a mid b"}, True),
    ("contains miss", {"sel": {"foo|contains": "mid"}, "condition": "sel"}, {"foo": "m i d"},
     False),
    ("startswith", {"sel": {"foo|startswith": "ab"}, "condition": "sel"}, {"foo": "ABC"}, True),
    ("startswith miss", {"sel": {"foo|startswith": "bc"}, "condition": "sel"}, {"foo": "abc"},
     False),
    ("endswith", {"sel": {"foo|endswith": ".EXE"}, "condition": "sel"}, {"foo": "x.exe"}, True),
    ("endswith miss", {"sel": {"foo|endswith": ".exe"}, "condition": "sel"}, {"foo": "x.exe "},
     False),
    ("contains all", {"sel": {"foo|contains|all": ["a1", "b2"]}, "condition": "sel"},
     {"foo": "b2 then a1"}, True),
    ("contains all, one missing", {"sel": {"foo|contains|all": ["a1", "b2"]},
                                   "condition": "sel"}, {"foo": "a1 only"}, False),
    ("contains list any", {"sel": {"foo|contains": ["a1", "b2"]}, "condition": "sel"},
     {"foo": "only b2"}, True),
    ("many contains (automaton)",
     {"sel": {"foo|contains": [f"word{i:02d}" for i in range(30)]}, "condition": "sel"},
     {"foo": "xx word17 yy"}, True),
    ("many contains (automaton) miss",
     {"sel": {"foo|contains": [f"word{i:02d}" for i in range(30)]}, "condition": "sel"},
     {"foo": "xx word99 yy"}, False),
    # regular expressions
    ("re", {"sel": {"foo|re": "^ab+c$"}, "condition": "sel"}, {"foo": "abbc"}, True),
    ("re is case-sensitive", {"sel": {"foo|re": "^ab+c$"}, "condition": "sel"}, {"foo": "ABBC"},
     False),
    ("re|i", {"sel": {"foo|re|i": "^ab+c$"}, "condition": "sel"}, {"foo": "ABBC"}, True),
    ("re searches", {"sel": {"foo|re": "b+c"}, "condition": "sel"}, {"foo": "xxbbcxx"}, True),
    ("re|s dot matches newline", {"sel": {"foo|re|s": "a.b"}, "condition": "sel"},
     {"foo": "a\nb"}, True),
    ("re without s", {"sel": {"foo|re": "a.b"}, "condition": "sel"}, {"foo": "a\nb"}, False),
    ("re|m anchors per line", {"sel": {"foo|re|m": "^b$"}, "condition": "sel"},
     {"foo": "a\nb\nc"}, True),
    ("re without m", {"sel": {"foo|re": "^b$"}, "condition": "sel"}, {"foo": "a\nb\nc"}, False),
    ("re on a number", {"sel": {"foo|re": "^42$"}, "condition": "sel"}, {"foo": 42}, True),
    # cidr
    ("cidr v4", {"sel": {"ip|cidr": "10.0.0.0/8"}, "condition": "sel"}, {"ip": "10.2.3.4"}, True),
    ("cidr v4 miss", {"sel": {"ip|cidr": "10.0.0.0/8"}, "condition": "sel"}, {"ip": "11.0.0.1"},
     False),
    ("cidr v6", {"sel": {"ip|cidr": "2001:db8::/32"}, "condition": "sel"},
     {"ip": "2001:db8:1::5"}, True),
    ("cidr v6 miss", {"sel": {"ip|cidr": "2001:db8::/32"}, "condition": "sel"},
     {"ip": "2001:db9::5"}, False),
    ("cidr v6 vs v4", {"sel": {"ip|cidr": "2001:db8::/32"}, "condition": "sel"},
     {"ip": "10.0.0.1"}, False),
    ("cidr garbage", {"sel": {"ip|cidr": "10.0.0.0/8"}, "condition": "sel"},
     {"ip": "not-an-ip"}, False),
    ("cidr list", {"sel": {"ip|cidr": ["192.168.0.0/16", "fe80::/10"]}, "condition": "sel"},
     {"ip": "fe80::1"}, True),
    # encodings
    ("base64", {"sel": {"foo|base64": "abc"}, "condition": "sel"}, {"foo": "YWJj"}, True),
    ("base64 is exact", {"sel": {"foo|base64": "abc"}, "condition": "sel"}, {"foo": "YWJjZA=="},
     False),
    ("base64|contains", {"sel": {"foo|base64|contains": "abc"}, "condition": "sel"},
     {"foo": "xx YWJj yy"}, True),
    *[(f"base64offset|contains offset {n}",
       {"sel": {"foo|base64offset|contains": "http://evil"}, "condition": "sel"},
       {"foo": "-enc " + b64(b"x" * n + b"http://evil/payload")}, True) for n in range(3)],
    ("base64offset|contains miss",
     {"sel": {"foo|base64offset|contains": "http://evil"}, "condition": "sel"},
     {"foo": b64(b"http://good/payload")}, False),
    *[(f"utf16le|base64offset|contains offset {n}",
       {"sel": {"foo|utf16le|base64offset|contains": "ping -n"}, "condition": "sel"},
       {"foo": b64(("abc"[:n] + "ping -n 3 x").encode("utf-16le"))}, True) for n in range(3)],
    ("utf16le|base64offset|contains miss",
     {"sel": {"foo|utf16le|base64offset|contains": "ping -n"}, "condition": "sel"},
     {"foo": b64(b"ping -n")}, False),
    ("wide|base64offset|contains",
     {"sel": {"foo|wide|base64offset|contains": "iex"}, "condition": "sel"},
     {"foo": b64("z iex(".encode("utf-16le"))}, True),
    ("utf16be|base64", {"sel": {"foo|utf16be|base64": "ab"}, "condition": "sel"},
     {"foo": b64("ab".encode("utf-16-be"))}, True),
    ("utf16 (with BOM)|base64offset|contains",
     {"sel": {"foo|utf16|base64offset|contains": "ab"}, "condition": "sel"},
     {"foo": b64("\ufeffab".encode("utf-16-le"))}, True),
    # windash
    *[(f"windash {form!r}", {"sel": {"foo|windash|contains": " -enc "}, "condition": "sel"},
       {"foo": f"powershell {form}enc abc"}, True)
      for form in ("-", "/", "\u2013", "\u2014", "\u2015")],
    ("windash miss", {"sel": {"foo|windash|contains": " -enc "}, "condition": "sel"},
     {"foo": "powershell enc abc"}, False),
    ("windash other dash kept", {"sel": {"foo|windash|contains": " -a-b"}, "condition": "sel"},
     {"foo": "x /a-b"}, True),
    # exists / null
    ("exists true", {"sel": {"foo|exists": True}, "condition": "sel"}, {"foo": ""}, True),
    ("exists true, absent", {"sel": {"foo|exists": True}, "condition": "sel"}, {"x": 1}, False),
    ("exists false", {"sel": {"foo|exists": False}, "condition": "sel"}, {"x": 1}, True),
    ("exists false, present", {"sel": {"foo|exists": False}, "condition": "sel"}, {"foo": 1},
     False),
    ("null absent", sel(foo=None), {"x": 1}, True),
    ("null None", sel(foo=None), {"foo": None}, True),
    ("null empty", sel(foo=None), {"foo": ""}, True),
    ("null present", sel(foo=None), {"foo": "v"}, False),
    ("not null", {"sel": {"foo": None}, "condition": "not sel"}, {"foo": "v"}, True),
    # numbers and comparisons
    ("number int", sel(EventID=4625), {"EventID": 4625}, True),
    ("number string", sel(EventID=4625), {"EventID": "4625"}, True),
    ("number miss", sel(EventID=4625), {"EventID": 4626}, False),
    ("string pattern vs int", sel(EventID="4625"), {"EventID": 4625}, True),
    ("gt", {"sel": {"n|gt": 5}, "condition": "sel"}, {"n": 6}, True),
    ("gt equal", {"sel": {"n|gt": 5}, "condition": "sel"}, {"n": 5}, False),
    ("gt string number", {"sel": {"n|gt": 5}, "condition": "sel"}, {"n": "7"}, True),
    ("gt not a number", {"sel": {"n|gt": 5}, "condition": "sel"}, {"n": "seven"}, False),
    ("gte", {"sel": {"n|gte": 5}, "condition": "sel"}, {"n": 5}, True),
    ("lt", {"sel": {"n|lt": 5}, "condition": "sel"}, {"n": 4.5}, True),
    ("lt miss", {"sel": {"n|lt": 5}, "condition": "sel"}, {"n": 5}, False),
    ("lte", {"sel": {"n|lte": 5}, "condition": "sel"}, {"n": 5}, True),
    ("bool", sel(flag=True), {"flag": True}, True),
    ("bool string", sel(flag=True), {"flag": "true"}, True),
    ("bool miss", sel(flag=True), {"flag": False}, False),
    ("neq", {"sel": {"foo|neq": "x"}, "condition": "sel"}, {"foo": "y"}, True),
    ("neq miss", {"sel": {"foo|neq": "x"}, "condition": "sel"}, {"foo": "X"}, False),
    ("hour", {"sel": {"@timestamp|hour": 13}, "condition": "sel"},
     {"@timestamp": datetime(2026, 1, 2, 13, 5, tzinfo=UTC)}, True),
    ("hour miss", {"sel": {"@timestamp|hour": 13}, "condition": "sel"},
     {"@timestamp": "2026-01-02T14:05:00Z"}, False),
    ("month from text", {"sel": {"@timestamp|month": 1}, "condition": "sel"},
     {"@timestamp": "2026-01-02T14:05:00Z"}, True),
    # fieldref
    ("fieldref", {"sel": {"a|fieldref": "b"}, "condition": "sel"}, {"a": "X", "b": "x"}, True),
    ("fieldref miss", {"sel": {"a|fieldref": "b"}, "condition": "sel"}, {"a": "x", "b": "y"},
     False),
    ("fieldref other absent", {"sel": {"a|fieldref": "b"}, "condition": "sel"}, {"a": "x"}, False),
    ("fieldref contains", {"sel": {"a|fieldref|contains": "b"}, "condition": "sel"},
     {"a": "xxUSERxx", "b": "user"}, True),
    ("fieldref endswith", {"sel": {"a|fieldref|endswith": "b"}, "condition": "sel"},
     {"a": "c:\\x\\evil.exe", "b": "evil.exe"}, True),
    ("fieldref startswith miss", {"sel": {"a|fieldref|startswith": "b"}, "condition": "sel"},
     {"a": "c:\\x\\evil.exe", "b": "evil.exe"}, False),
    # lists inside events
    ("list-valued field", sel(foo="b"), {"foo": ["a", "B"]}, True),
    ("list-valued field miss", sel(foo="c"), {"foo": ["a", "b"]}, False),
    # keywords (field-less) search message
    ("keyword", {"keywords": ["Failed password"], "condition": "keywords"},
     {"message": "sshd: failed PASSWORD for root"}, True),
    ("keyword miss", {"keywords": ["Failed password"], "condition": "keywords"},
     {"message": "accepted password"}, False),
    ("keyword wildcard", {"keywords": ["Failed * for root"], "condition": "keywords"},
     {"message": "x Failed password for root y"}, True),
    ("keyword not in other fields", {"keywords": ["secret"], "condition": "keywords"},
     {"user.name": "secret"}, False),
    ("keyword all", {"keywords": {"|all": ["alpha", "beta"]}, "condition": "keywords"},
     {"message": "beta alpha"}, True),
    ("keyword all miss", {"keywords": {"|all": ["alpha", "beta"]}, "condition": "keywords"},
     {"message": "alpha"}, False),
    # conditions
    ("and of items", sel(a="1", b="2"), {"a": "1", "b": "2"}, True),
    ("and of items, one wrong", sel(a="1", b="2"), {"a": "1", "b": "3"}, False),
    ("list of maps is OR", {"sel": [{"a": "1"}, {"b": "2"}], "condition": "sel"}, {"b": "2"},
     True),
    ("not", {"sel": {"a": "1"}, "f": {"b": "2"}, "condition": "sel and not f"},
     {"a": "1", "b": "2"}, False),
    ("not, filter absent", {"sel": {"a": "1"}, "f": {"b": "2"}, "condition": "sel and not f"},
     {"a": "1"}, True),
    ("1 of selection_*", {"selection_a": {"a": "1"}, "selection_b": {"b": "2"},
                          "condition": "1 of selection_*"}, {"b": "2"}, True),
    ("all of selection_*", {"selection_a": {"a": "1"}, "selection_b": {"b": "2"},
                            "condition": "all of selection_*"}, {"b": "2"}, False),
    ("all of them", {"s1": {"a": "1"}, "s2": {"b": "2"}, "condition": "all of them"},
     {"a": "1", "b": "2"}, True),
    ("1 of them", {"s1": {"a": "1"}, "s2": {"b": "2"}, "condition": "1 of them"}, {"a": "1"}, True),
    ("parentheses", {"a": {"a": "1"}, "b": {"b": "2"}, "c": {"c": "3"},
                     "condition": "a and (b or c)"}, {"a": "1", "c": "3"}, True),
    ("parentheses miss", {"a": {"a": "1"}, "b": {"b": "2"}, "c": {"c": "3"},
                          "condition": "(a and b) or c"}, {"a": "1"}, False),
    ("not 1 of filter_*", {"sel": {"a": "1"}, "filter_x": {"b": "2"}, "filter_y": {"c": "3"},
                           "condition": "sel and not 1 of filter_*"}, {"a": "1", "c": "3"}, False),
    ("several conditions OR", {"s1": {"a": "1"}, "s2": {"b": "2"}, "condition": ["s1", "s2"]},
     {"b": "2"}, True),
]


@pytest.mark.parametrize(("detection", "event", "expected"),
                         [pytest.param(d, e, x, id=name) for name, d, e, x in CASES])
def test_modifier(sigma: SimpleNamespace, tmp_path: Path, detection: dict[str, Any],
                  event: dict[str, Any], expected: bool) -> None:
    assert fires(sigma, tmp_path, detection, event) is expected


def test_required_fields_union_and_intersection(sigma: SimpleNamespace, tmp_path: Path) -> None:
    """Fields a rule needs: every field of an AND, only the common ones across OR branches."""
    detection = {"a": {"x": "1", "y": "2"}, "b": {"x": "3", "z": "4"}, "f": {"w": "5"},
                 "condition": "(a or b) and not f"}
    engine = sigma.engine_on(sigma.write_rule(tmp_path, "r", detection, id=RULE_ID))
    rule = engine.rules_for("linux.auth")[0]
    assert rule.fields("linux.auth") == frozenset({"x"})
    [requirement] = engine.ruleset.requirements()
    assert requirement.fields == {"linux.auth": frozenset({"x"})}
    assert (requirement.info.product, requirement.info.service) == ("linux", "auth")
