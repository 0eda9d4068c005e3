"""Pipelines: validation with positions, first-match routing, failures to the dead letter."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.config import load_config
from collector.pipeline.runner import PIPELINE_ERROR, build_pipelines
from core.config import ValidationContext
from core.errors import ConfigErrors
from core.events import DATASET, DEAD_LETTERS, Batch
from core.telemetry import Telemetry

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def conf(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "30-pipelines.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def build(tmp_path: Path, text: str, telemetry: Telemetry | None = None):
    conf(tmp_path, text)
    config = load_config(tmp_path)
    return build_pipelines(config.pipelines.items(), ValidationContext(tmp_path),
                           data_dir=tmp_path, telemetry=telemetry, clock=lambda: NOW)


def errors(tmp_path: Path, text: str) -> list[str]:
    conf(tmp_path, text)
    with pytest.raises(ConfigErrors) as info:
        load_config(tmp_path)
    return [str(e) for e in info.value.errors]


def test_step_errors_are_located(tmp_path: Path) -> None:
    found = errors(tmp_path, """
    pipelines:
      web:
        dataset: web.access
        steps:
          - type: json
          - type: jsn
          - type: rename
            feilds: {a: b}
          - type: drop
        schema:
          http.response.status_code: integr
    """)
    path = tmp_path / "30-pipelines.yaml"
    assert found[0].startswith(f"{path}:6:15: pipelines.web.steps[1].type: unknown step type "
                               "'jsn' (did you mean 'json'?); valid types: ")
    assert found[1:] == [
        f"{path}:7:9: pipelines.web.steps[2].fields: required key is missing",
        f"{path}:8:9: pipelines.web.steps[2].feilds: unknown key 'feilds' "
        "(did you mean 'fields'?)",
        f"{path}:9:9: pipelines.web.steps[3]: drop needs an `if:` condition (a pipeline that "
        "keeps nothing is almost certainly a mistake)",
        f"{path}:11:34: pipelines.web.schema.http.response.status_code: Input should be "
        "'string', 'int', 'float', 'bool', 'ip', 'timestamp' or 'list'",
    ]


def test_conflicting_schemas_for_one_dataset(tmp_path: Path) -> None:
    found = errors(tmp_path, """
    pipelines:
      a:
        dataset: web.access
        schema: {source.port: int}
      b:
        dataset: web.access
        schema: {source.port: string}
    """)
    assert found == [f"{tmp_path / '30-pipelines.yaml'}:7:27: pipelines.b.schema.source.port: "
                     "dataset 'web.access' already types 'source.port' as 'int' (pipeline 'a')"]


PIPELINES = """
pipelines:
  json_app:
    dataset: app.json
    match: {field: log.syslog.appname, equals: app}
    steps:
      - type: json
      - type: convert
      - type: map_values
        field: outcome
        target: event.outcome
        values: {ok: success, denied: failure}
      - {type: drop, if: {field: level, equals: debug}}
    schema: {count: int}
  tolerant:
    dataset: app.tolerant
    match: {field: log.syslog.appname, equals: tolerant}
    steps:
      - {type: json, on_failure: continue}
      - {type: set, fields: {event.kind: event}}
  catch_all:
    dataset: other
"""


def batch(*events: dict) -> Batch:
    return Batch("demo", [{"vigil.tenant": "demo", "vigil.source": "s", **e} for e in events],
                 10, 10 + len(events) - 1)


def test_first_match_steps_and_dead_letter(tmp_path: Path) -> None:
    telemetry = Telemetry()
    pipelines = build(tmp_path, PIPELINES, telemetry)
    out = pipelines.process(batch(
        {"log.syslog.appname": "app", "message": '{"count": "3", "outcome": "ok", "x": {"y": 1}}'},
        {"log.syslog.appname": "app", "message": "not json"},
        {"log.syslog.appname": "app", "message": '{"level": "debug"}'},
        {"log.syslog.appname": "tolerant", "message": "not json either"},
        {"log.syslog.appname": "cron", "message": "anything"},
    ))
    by = {b.dataset if b.kind != DEAD_LETTERS else "dlq": b for b in out}
    assert set(by) == {"app.json", "app.tolerant", "other", "dlq"}
    (parsed,) = by["app.json"].events
    assert parsed["count"] == 3 and parsed["x.y"] == 1 and parsed["event.outcome"] == "success"
    assert parsed[DATASET] == "app.json" and parsed["vigil.pipeline"] == "json_app"
    (tolerant,) = by["app.tolerant"].events
    assert tolerant[PIPELINE_ERROR].startswith("0-json: message is not JSON")
    assert tolerant["event.kind"] == "event"
    (dead,) = by["dlq"].events
    assert dead["pipeline"] == "json_app" and dead["step"] == "0-json"
    assert dead["error"].startswith("message is not JSON")
    assert dead["event"] == {"vigil.tenant": "demo", "vigil.source": "s",
                             "log.syslog.appname": "app", "message": "not json"}
    assert dead["vigil.tenant"] == "demo" and dead["@timestamp"] == NOW
    assert (by["dlq"].first_offset, by["dlq"].last_offset) == (10, 14)
    sample = telemetry.sample
    assert sample("vigil_pipeline_step_events_total", pipeline="json_app", step="0-json",
                  step_type="json", result="received") == 3
    assert sample("vigil_pipeline_step_events_total", pipeline="json_app", step="0-json",
                  step_type="json", result="failed") == 1
    assert sample("vigil_pipeline_step_events_total", pipeline="json_app", step="3-drop",
                  step_type="drop", result="dropped") == 1
    assert sample("vigil_dead_letter_events_total", tenant="demo") == 1
    assert sample("vigil_component_received_events_total", component_id="json_app",
                  component_kind="pipeline", component_type="pipeline", tenant="demo") == 3
    assert sample("vigil_component_sent_events_total", component_id="json_app",
                  component_kind="pipeline", component_type="pipeline", tenant="demo") == 1


def test_a_step_bug_goes_to_the_dead_letter_with_its_type(tmp_path: Path) -> None:
    pipelines = build(tmp_path, """
    pipelines:
      p:
        dataset: d
        steps: [{type: lowercase, fields: [a]}, {type: map_values, field: a, values: {x: 1}}]
    """)
    step = pipelines.pipelines[0].steps[0].step

    def boom(event: dict) -> dict:
        raise KeyError("surprise")

    step.apply = boom  # type: ignore[method-assign]
    (dead,) = pipelines.process(batch({"a": "X"}))
    assert dead.kind == DEAD_LETTERS and dead.events[0]["error"] == "KeyError: 'surprise'"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children,
                                                                      max_size=3),
    max_leaves=8)
weird_events = st.dictionaries(
    st.sampled_from(["message", "count", "outcome", "level", "log.syslog.appname", "x"]),
    json_values | st.sampled_from(["app", '{"count": "x"}', '{"outcome": 1}', "[1]", "{"]),
    max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.lists(weird_events, min_size=1, max_size=20))
def test_weird_events_never_escape_a_step(tmp_path_factory, events: list[dict]) -> None:
    """Whatever the events hold, processing returns, and each event is either passed on,
    counted as dropped, or in the dead letter with a reason."""
    pipelines = build(tmp_path_factory.mktemp("p"), PIPELINES)
    for e in events:
        e.setdefault("log.syslog.appname", "app")
    out = pipelines.process(batch(*events))
    passed = sum(len(b.events) for b in out if b.kind != DEAD_LETTERS)
    dead = [e for b in out if b.kind == DEAD_LETTERS for e in b.events]
    dropped = sum(s.counters.dropped for p in pipelines.pipelines for s in p.steps)
    assert passed + len(dead) + dropped == len(events)
    assert all(d["error"] and d["step"] for d in dead)


def test_a_source_failure_goes_straight_to_the_dead_letter(tmp_path: Path) -> None:
    pipelines = build(tmp_path, PIPELINES)
    failed = {"aws.s3.bucket": "logs", "aws.s3.key": "a.gz", "log.syslog.appname": "app",
              "vigil.source_failure": "not gzip: bad magic"}
    (dead,) = pipelines.process(batch(failed))
    assert dead.kind == DEAD_LETTERS
    (record,) = dead.events
    assert (record["pipeline"], record["step"], record["error"]) == \
        ("-", "source", "not gzip: bad magic")
    assert record["event"]["aws.s3.key"] == "a.gz"


def test_step_stats_reach_prometheus(tmp_path: Path) -> None:
    """What an enricher did (matched, missed, ...) is counted per step, once per batch."""
    (tmp_path / "enrich").mkdir()
    (tmp_path / "enrich" / "users.csv").write_text("username,department\nann,Finance\n")
    telemetry = Telemetry()
    pipelines = build(tmp_path, """
    pipelines:
      p:
        dataset: d
        steps:
          - type: lookup
            table: enrich/users.csv
            key_field: user.name
            key_column: username
            fields: {department: user.department}
    """, telemetry)
    pipelines.process(batch({"user.name": "ann"}, {"user.name": "bob"}, {"user.name": "ann"}))
    pipelines.process(batch({"user.name": "cy"}))

    def result(name: str) -> float:
        return telemetry.sample("vigil_pipeline_step_results_total", pipeline="p",
                                step="0-lookup", step_type="lookup", result=name)

    assert (result("matched"), result("missed"), result("reloads")) == (2, 2, 0)


def test_indexed_routing_picks_what_a_linear_scan_picks(tmp_path: Path) -> None:
    """The shipped conf.d's pipelines, indexed by program name, choose exactly the pipeline a
    plain first-match scan chooses, for the benchmark workload and odd events."""
    from support.daemon import REPO

    from benchmarks.workload import json_lines, syslog_lines
    from collector.offline import OfflineRun
    from parsers.syslog import parse_syslog

    config = load_config(REPO / "conf.d")
    offline = OfflineRun(config, REPO / "conf.d")
    pipelines = offline.pipelines
    assert pipelines.route_field == "log.syslog.appname"

    def linear(event: dict) -> object:
        return next((p for p in pipelines.pipelines if p.match is None or p.match(event)), None)

    import orjson
    events = [parse_syslog(line, received_at=NOW) for line in syslog_lines(3000, seed=3)]
    events += [dict(orjson.loads(line), **{"vigil.dataset": "json"})
               for line in json_lines(500, seed=4)]
    events += [{"log.syslog.appname": name, "message": "x"} for name in
               ("sshd", "SSHD", "sudo", "nginx", "", "none", "None")] + [{}, {"message": 1}]
    try:
        for event in events:
            assert pipelines.select(event) is linear(event), event
    finally:
        offline.close()


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["log.syslog.appname", "message", "vigil.dataset",
                                        "eventSource", "Event"]),
                       st.sampled_from(["sshd", "sudo", "nginx", "json", "su", "x", 1, None]),
                       max_size=4))
def test_indexed_routing_matches_linear_on_odd_events(event: dict) -> None:

    pipelines = _shipped()
    linear = next((p for p in pipelines.pipelines if p.match is None or p.match(event)), None)
    assert pipelines.select(event) is linear


_SHIPPED: list = []


def _shipped():
    if not _SHIPPED:
        from support.daemon import REPO

        from collector.offline import OfflineRun
        _SHIPPED.append(OfflineRun(load_config(REPO / "conf.d"), REPO / "conf.d").pipelines)
    return _SHIPPED[0]
