"""`vigil test` and `vigil process`: the configured source's decoding, routing and pipelines,
run without sockets, with readable failures and exit codes."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from collector.cli import EX_CONFIG, main

CONF = """
tenants:
  demo: {name: Demo}
  acme: {name: ACME}
sources:
  syslog_tcp:
    type: syslog_tcp
    address: 127.0.0.1:0
    routes:
      - {tenant: acme, source_cidrs: [10.9.0.0/16]}
      - {tenant: demo, source_cidrs: [127.0.0.0/8]}
pipelines:
  app:
    dataset: app.kv
    match: {field: log.syslog.appname, equals: app}
    steps:
      - {type: json}
      - {type: map_values, field: outcome, target: event.outcome, values: {ok: success}}
    schema: {count: int}
tests:
  app_ok:
    source: syslog_tcp
    peer: 10.9.1.1
    received_at: "2026-12-10T07:00:00Z"
    input: '<13>Dec 10 06:55:46 h app: {"outcome": "ok", "count": 3}'
    expect:
      dataset: app.kv
      tenant: acme
      fields: {event.outcome: success, count: 3, "@timestamp": "2026-12-10T06:55:46+00:00"}
      absent: [vigil.pipeline_error]
  app_broken:
    source: syslog_tcp
    peer: 127.0.0.1
    input: '<13>Dec 10 06:55:46 h app: {broken'
    expect_dead_letter: {step: 0-json, error_contains: not JSON}
"""


def write(tmp_path: Path, extra: str = "") -> Path:
    conf = tmp_path / "conf.d"
    conf.mkdir()
    (conf / "10-all.yaml").write_text(textwrap.dedent(CONF).lstrip() + extra)
    return conf


def test_passing_cases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", "-c", str(write(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "test app_ok ... passed" in out and "test app_broken ... passed" in out
    assert out.rstrip().endswith("2 passed, 0 failed")


def test_failures_are_a_readable_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = write(tmp_path, textwrap.dedent("""
      wrong:
        source: syslog_tcp
        peer: 10.9.1.1
        input: '<13>Dec 10 06:55:46 h app: {"outcome": "ok"}'
        expect:
          dataset: app.json
          tenant: demo
          fields: {event.outcome: failure, user.name: ann}
          absent: [outcome]
    """).replace("\n", "\n  "))
    assert main(["test", "-c", str(conf), "wrong"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == [
        "test wrong ... FAILED",
        "    dataset: expected 'app.json', got 'app.kv'",
        "    tenant: expected 'demo', got 'acme'",
        "    event.outcome: expected 'failure', got 'success'",
        "    user.name: expected 'ann', field is missing",
        "    outcome: expected absent, got 'ok'",
        "0 passed, 1 failed",
    ]


def test_a_case_naming_an_unknown_source_is_a_config_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = write(tmp_path, "  bad:\n    source: syslog_tpc\n    input: x\n    expect: {}\n")
    assert main(["test", "-c", str(conf)]) == EX_CONFIG
    err = capsys.readouterr().err
    assert "tests.bad.source: unknown source 'syslog_tpc' (did you mean 'syslog_tcp'?)" in err


def test_process_prints_events_and_dead_letters(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = write(tmp_path)
    lines = tmp_path / "in.log"
    lines.write_text('<13>Dec 10 06:55:46 h app: {"outcome": "ok"}\n'
                     "<13>Dec 10 06:55:47 h app: {oops\n\n"
                     "<13>Dec 10 06:55:48 h cron[1]: other\n")
    assert main(["process", "-c", str(conf), "--source", "syslog_tcp", "--tenant", "acme",
                 str(lines)]) == 0
    captured = capsys.readouterr()
    events = [json.loads(line) for line in captured.out.splitlines()]
    assert [(e["vigil.dataset"], e["vigil.tenant"]) for e in events] == \
        [("app.kv", "acme"), ("syslog", "acme")]
    assert events[0]["event.outcome"] == "success"
    assert "dead letter: app/0-json: message is not JSON" in captured.err
    assert captured.err.rstrip().endswith(
        "3 line(s): 2 event(s) (app.kv 1, syslog 1), 1 dead letter(s)")


def test_process_unknown_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = write(tmp_path)
    (tmp_path / "x.log").write_text("x\n")
    assert main(["process", "-c", str(conf), "--source", "nope", str(tmp_path / "x.log")]) == 64
    assert "unknown source 'nope'; configured sources: syslog_tcp" in capsys.readouterr().err
