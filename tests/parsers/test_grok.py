"""The grok step: pygrok's library with dotted targets and casts, pattern order, anchoring,
engine choice (re where it behaves like regex), and config errors located in the YAML."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st
from support.daemon import SHARED_DATA
from support.steps import build_step

from collector.pipeline.runner import PipelineSet
from core.events import Batch
from core.step import StepFailure
from parsers.grok.expression import GrokError, compile_expression
from parsers.grok.library import bundled_patterns

SSHD_ACCEPTED = ("Accepted %{WORD:event.action} for %{USERNAME:user.name} from "
                 "%{IP:source.ip} port %{INT:source.port:int} %{WORD:network.protocol}")


grok = partial(build_step, "grok")


def test_sshd_line_into_dotted_fields_with_cast() -> None:
    step = grok(patterns=[SSHD_ACCEPTED])
    event = {"message": "Accepted publickey for deploy from 203.0.113.7 port 51234 ssh2"}
    assert step.apply(event) == {
        "message": "Accepted publickey for deploy from 203.0.113.7 port 51234 ssh2",
        "event.action": "publickey", "user.name": "deploy", "source.ip": "203.0.113.7",
        "source.port": 51234, "network.protocol": "ssh2",
    }


def test_cisco_asa_deny_with_the_bundled_firewall_pattern() -> None:
    # ASA-4-106023 as in Cisco's "ASA Series Syslog Messages", message part after the header.
    step = grok(patterns=["%{CISCOFW106023}"])
    line = ('Deny tcp src outside:203.0.113.45/51234 dst inside:10.1.2.3/22 by access-group '
            '"OUTSIDE_IN" [0x0, 0x0]')
    assert step.apply({"message": line}) == {
        "message": line, "action": "Deny", "protocol": "tcp", "src_interface": "outside",
        "src_ip": "203.0.113.45", "src_port": "51234", "dst_interface": "inside",
        "dst_ip": "10.1.2.3", "dst_port": "22", "policy_id": "OUTSIDE_IN",
        "hashcode1": "0x0", "hashcode2": "0x0",
    }


def test_library_captures_nested_in_a_pattern_are_kept_like_logstash() -> None:
    step = grok(patterns=["%{SYSLOGBASE} %{GREEDYDATA:message}"])
    event = step.apply({"message": "May 14 09:12:00 web-1 sshd[1234]: Connection closed"})
    assert event == {"timestamp": "May 14 09:12:00", "logsource": "web-1", "program": "sshd",
                     "pid": "1234", "message": "Connection closed"}


def test_patterns_are_tried_in_order_and_the_first_match_wins() -> None:
    step = grok(patterns=[
        "Failed password for invalid user %{USERNAME:user.name} from %{IP:source.ip}",
        "Failed password for %{USERNAME:user.name} from %{IP:source.ip}",
        "Failed %{WORD:auth} for %{GREEDYDATA:rest}",
    ])
    invalid = step.apply({"message": "Failed password for invalid user admin from 192.0.2.9"})
    assert invalid["user.name"] == "admin" and "rest" not in invalid
    valid = step.apply({"message": "Failed password for root from 192.0.2.9 port 22 ssh2"})
    assert (valid["user.name"], valid["source.ip"]) == ("root", "192.0.2.9")
    assert "auth" not in valid


def test_literal_prefilters_skip_patterns_text_cannot_match() -> None:
    step = grok(patterns=[
        "Failed password for invalid user %{USERNAME:user.name} from %{IP:source.ip}",
        "(?:Accepted|Failed) %{WORD:auth} for %{USERNAME:user.name}",
        "%{GREEDYDATA:rest}",
    ], anchor="none")
    needles = [m[2] for m in step.matchers]
    assert needles[0] == ("Failed password for invalid user ",)
    assert set(needles[1]) == {"Accepted", "Failed"}
    assert needles[2] == ()
    seen: list[str] = []
    match_fn, captures, literals = step.matchers[0]
    step.matchers[0] = (lambda text: seen.append(text) or match_fn(text), captures, literals)
    assert step.apply({"message": "Accepted publickey for deploy"})["auth"] == "publickey"
    assert seen == []  # the first pattern's literal is missing: never searched
    event = step.apply({"message": "x Failed password for invalid user root from 192.0.2.1"})
    assert event["user.name"] == "root" and len(seen) == 1


def test_without_break_on_match_every_matching_pattern_applies() -> None:
    step = grok(break_on_match=False, anchor="none",
                patterns=["from %{IP:source.ip}", "port %{INT:source.port:int}", "user %{WORD:x}"])
    event = step.apply({"message": "Failed password for root from 192.0.2.9 port 22 ssh2"})
    assert (event["source.ip"], event["source.port"], "x" in event) == ("192.0.2.9", 22, False)


def test_no_match_and_missing_field_are_step_failures() -> None:
    step = grok(patterns=[SSHD_ACCEPTED])
    with pytest.raises(StepFailure, match="^no grok pattern matched$"):
        step.apply({"message": "session opened for user root"})
    with pytest.raises(StepFailure, match="^field 'message' is missing$"):
        step.apply({"other": "x"})


def test_bracket_targets_inline_captures_float_and_target_prefix() -> None:
    step = grok(target="nginx", patterns=[
        r"%{IP:[source][ip]} (?<user.name>[a-z]+) %{NUMBER:took:float}s(?P<x.y>!)?"])
    assert step.apply({"message": "10.0.0.1 alice 0.25s"}) == {
        "message": "10.0.0.1 alice 0.25s", "nginx.source.ip": "10.0.0.1",
        "nginx.user.name": "alice", "nginx.took": 0.25}


def test_a_cast_that_fails_names_the_field() -> None:
    step = grok(patterns=["%{NOTSPACE:source.port:int}"])
    assert step.apply({"message": "2.0"})["source.port"] == 2  # Logstash truncates decimals
    with pytest.raises(StepFailure, match=r"^cannot convert source.port='http' to int$"):
        step.apply({"message": "http"})


def test_empty_captures_are_dropped_unless_asked_for() -> None:
    pattern = "user=%{DATA:user.name};"
    assert grok(patterns=[pattern]).apply({"message": "user=;"}) == {"message": "user=;"}
    kept = grok(patterns=[pattern], keep_empty_captures=True).apply({"message": "user=;"})
    assert kept["user.name"] == ""


def test_the_same_field_in_alternatives_uses_whichever_matched() -> None:
    # HTTPD_ERRORLOG is HTTPD20 | HTTPD24, both capture `timestamp` and `loglevel`: two groups
    # of one name, which Python's re rejects unless they are renamed.
    step = grok(patterns=["%{HTTPD_ERRORLOG}"])
    assert step.compiled[0].engine == "re"
    line = "[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok /etc/httpd/conf/workers2"
    event = step.apply({"message": line})
    assert (event["timestamp"], event["loglevel"]) == ("Sun Dec 04 04:47:44 2005", "notice")


@pytest.mark.parametrize(("anchor", "text", "matches"), [
    ("start", "from 192.0.2.1", True), ("start", "x from 192.0.2.1", False),
    ("none", "x from 192.0.2.1 y", True), ("full", "from 192.0.2.1", True),
    ("full", "from 192.0.2.1 y", False),
])
def test_anchor(anchor: str, text: str, matches: bool) -> None:
    step = grok(anchor=anchor, patterns=["from %{IP:source.ip}"])
    if matches:
        assert step.apply({"message": text})["source.ip"] == "192.0.2.1"
    else:
        with pytest.raises(StepFailure):
            step.apply({"message": text})


def test_engine_is_re_where_it_compiles_and_regex_otherwise() -> None:
    assert grok(patterns=[SSHD_ACCEPTED]).compiled[0].engine == "re"
    # An inline flag in the middle of the expression: an error for re since 3.11.
    rails = grok(patterns=["%{RAILS3HEAD}"])
    assert rails.compiled[0].engine == "regex"
    line = ('Started GET "/orders?page=2" for 192.0.2.4 at 2024-05-14 09:12:00 +0000')
    assert rails.apply({"message": line})["clientip"] == "192.0.2.4"
    forced = grok(patterns=[SSHD_ACCEPTED], engine="regex")
    assert forced.compiled[0].engine == "regex"
    assert isinstance(forced.compiled[0].pattern, regex.Pattern)


def test_bundled_library_engine_counts() -> None:
    engines: dict[str, set[str]] = {"re": set(), "regex": set(), "error": set()}
    for name in bundled_patterns():
        try:
            engines[compile_expression(f"%{{{name}}}", bundled_patterns()).engine].add(name)
        except GrokError:
            engines["error"].add(name)
    # RAILS3/RAILS3HEAD: `(?m)` mid-expression; RUUID: `\h`, an escape only regex knows.
    # SHOREWALL has `.?*`, which neither engine (nor Oniguruma) accepts.
    assert engines["regex"] == {"RAILS3", "RAILS3HEAD", "RUUID"}
    assert engines["error"] == {"SHOREWALL"}
    assert len(engines["re"]) == len(bundled_patterns()) - 4


def _corpus() -> list[str]:
    lines = [
        "Accepted publickey for deploy from 203.0.113.7 port 51234 ssh2",
        '198.51.100.4 - - [14/May/2024:09:12:00 +0000] "GET /a?b=1 HTTP/1.1" 200 5123 "-" "curl/8"',
        "2024-05-14T09:12:00.123+02:00 host app[12]: x=1 y=\"two words\" mac=00:1a:2b:3c:4d:5e",
        "fe80::1%eth0 2001:db8::ff00:42:8329 10.0.0.1:8080 C:\\Windows\\x.exe /var/log/x.log",
        "May  4 09:12:00 web-1 CRON[77]: (root) CMD (run-parts /etc/cron.hourly)",
        "Deny tcp src outside:203.0.113.45/51234 dst inside:10.1.2.3/22 by access-group \"A\"",
        "java.lang.NullPointerException at com.acme.Foo.bar(Foo.java:42) 0x1F -3.5e2 UUID "
        "123e4567-e89b-12d3-a456-426614174000 Über naïve ünïcödé ٣٤ 12:61:00",
    ]
    for name in ("OpenSSH/OpenSSH_2k.log", "Apache/Apache_2k.log"):
        path = SHARED_DATA / "loghub" / name
        if path.exists():
            lines += path.read_text().splitlines()[:60:3]
    return lines


def test_patterns_on_re_match_exactly_like_regex() -> None:
    """Differential check of the engine choice: for every bundled pattern compiled with re,
    `regex` (pygrok's engine) finds the same span and groups on realistic lines."""
    corpus = _corpus()
    library = bundled_patterns()
    checked = 0
    for name in library:
        try:
            compiled = compile_expression(f"%{{{name}}}", library)
        except GrokError:
            continue
        if compiled.engine != "re":
            continue
        other = regex.compile(compiled.expanded)
        for line in corpus:
            ours, theirs = compiled.pattern.search(line), other.search(line)
            assert (ours is None) == (theirs is None), (name, line)
            if ours is not None:
                assert (ours.span(), ours.groups()) == (theirs.span(), theirs.groups()), name
            checked += 1
    assert checked >= 290 * len(corpus)


PIPELINE = """
pipelines:
  sshd:
    dataset: linux.auth
    steps:
      - type: grok
        pattern_dirs: [patterns]
        pattern_definitions:
          SSH_USER: "%{USERNAME}"
        patterns:
          - "%{SSHD_ACCEPTED}"
"""


def test_pattern_dirs_resolve_against_conf_dir_and_definitions_override(
        tmp_path: Path, build: Callable[[str], PipelineSet]) -> None:
    (tmp_path / "patterns").mkdir()
    (tmp_path / "patterns" / "sshd").write_text(
        "# sshd\n\nSSHD_ACCEPTED Accepted %{WORD:event.action} for %{SSH_USER:user.name} "
        "from %{IP:source.ip}\nSSH_USER nobody\n")
    pipelines = build(PIPELINE)
    batch = Batch("t", [{"message": "Accepted password for root from 192.0.2.8 port 22 ssh2"}],
                  0, 0)
    [out] = pipelines.process(batch)
    assert out.events[0]["user.name"] == "root"
    assert out.events[0]["source.ip"] == "192.0.2.8"


def test_unknown_pattern_is_reported_at_the_pattern(
        config_errors: Callable[[str], list[str]], tmp_path: Path) -> None:
    path = tmp_path / "30-pipelines.yaml"
    assert config_errors("""
    pipelines:
      sshd:
        dataset: linux.auth
        steps:
          - type: json
          - type: grok
            patterns:
              - "%{IP:source.ip}"
              - "from %{IPV9:source.ip} port %{INT:source.port:integer}"
              - "%{MYPAT}"
              - "%{INT:source..port}"
              - "%{NUMBER:n:int:extra}"
            pattern_definitions:
              MYPAT: "%{IPV4}|%{IPV99}"
              LOOP_A: "x%{LOOP_B}"
              LOOP_B: "%{LOOP_A}"
              BROKEN: "(unclosed"
              bad-name: "x"
    """) == [
        f"{path}:9:13: pipelines.sshd.steps[1].patterns[1]: unknown grok pattern 'IPV9'",
        f"{path}:10:13: pipelines.sshd.steps[1].patterns[2]: unknown grok pattern 'IPV99' "
        "(in grok pattern 'MYPAT')",
        f"{path}:11:13: pipelines.sshd.steps[1].patterns[3]: invalid field name 'source..port' "
        "in %{INT:source..port}",
        f"{path}:12:13: pipelines.sshd.steps[1].patterns[4]: malformed grok reference "
        "'%{NUMBER:n:int:extra}'",
        f"{path}:14:18: pipelines.sshd.steps[1].pattern_definitions.MYPAT: unknown grok "
        "pattern 'IPV99' (in grok pattern 'MYPAT')",
        f"{path}:15:19: pipelines.sshd.steps[1].pattern_definitions.LOOP_A: grok pattern "
        "cycle: LOOP_A -> LOOP_B -> LOOP_A",
        f"{path}:16:19: pipelines.sshd.steps[1].pattern_definitions.LOOP_B: grok pattern "
        "cycle: LOOP_B -> LOOP_A -> LOOP_B",
        f"{path}:17:19: pipelines.sshd.steps[1].pattern_definitions.BROKEN: invalid regex in "
        "grok pattern 'BROKEN': missing )",
        f"{path}:18:21: pipelines.sshd.steps[1].pattern_definitions.bad-name: pattern name "
        "'bad-name' may hold only letters, digits and _",
    ]


def test_unknown_type_and_pattern_files(config_errors: Callable[[str], list[str]],
                                        tmp_path: Path) -> None:
    (tmp_path / "pats").mkdir()
    (tmp_path / "pats" / "a").write_text("GOOD \\d+\nNO_REGEX\n")
    path = tmp_path / "30-pipelines.yaml"
    assert config_errors("""
    pipelines:
      p:
        dataset: x
        steps:
          - type: grok
            pattern_dirs: [pats, missing]
            patterns: ["%{INT:n:bool}"]
          - type: grok
            patterns: []
    """) == [
        f"{path}:6:24: pipelines.p.steps[0].pattern_dirs[0]: {tmp_path}/pats/a:2: expected "
        "`NAME regex`, got 'NO_REGEX'",
        f"{path}:6:30: pipelines.p.steps[0].pattern_dirs[1]: grok pattern directory "
        f"'{tmp_path}/missing' does not exist",
        f"{path}:7:20: pipelines.p.steps[0].patterns[0]: unknown type 'bool' in %{{INT:n:bool}}: "
        "expected int or float",
        f"{path}:9:19: pipelines.p.steps[1].patterns: List should have at least 1 item after "
        "validation, not 0",
    ]


def test_bad_regex_in_the_pattern_itself(config_errors: Callable[[str], list[str]],
                                         tmp_path: Path) -> None:
    path = tmp_path / "30-pipelines.yaml"
    assert config_errors("""
    pipelines:
      p:
        dataset: x
        steps:
          - {type: grok, patterns: ["%{IP:a} [unclosed"]}
          - {type: grok, engine: re, patterns: ["%{RUUID:id}"]}
    """) == [
        f"{path}:5:33: pipelines.p.steps[0].patterns[0]: invalid regex: unterminated "
        "character set",
        f"{path}:6:45: pipelines.p.steps[1].patterns[0]: invalid regex in grok pattern 'RUUID': "
        "not a valid Python re expression: bad escape \\h",
    ]


STEPS = [
    grok(patterns=[SSHD_ACCEPTED, "%{SYSLOGBASE} %{GREEDYDATA:message}"]),
    grok(patterns=["%{COMBINEDAPACHELOG}", "%{NUMBER:n:int}", "%{BASE16FLOAT:f:float}"],
         anchor="none", break_on_match=False),
    grok(patterns=["%{RAILS3HEAD}", "%{QS:q}"], anchor="full"),
]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary(), st.integers(), st.floats()))
def test_no_input_raises_anything_but_step_failure(value: Any) -> None:
    for step in STEPS:
        with contextlib.suppress(StepFailure):
            step.apply({"message": value})


def test_expanded_expression_keeps_escapes_and_lookbehinds() -> None:
    compiled = compile_expression(r"\%{IP} (?<!x)(?<=y)%{INT:n} \(?<z>", bundled_patterns())
    assert compiled.expanded.startswith(r"\%{IP} (?<!x)(?<=y)(?P<_g0>")
    assert compiled.expanded.endswith(r"\(?<z>")
    assert re.compile(compiled.expanded).groupindex == {"_g0": 1}
