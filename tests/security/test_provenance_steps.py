"""Issue 13, trusted stamps, per step kind: a step configured to write provenance is refused at
validation with its position; a step that derives provenance keys from the input (json, kv,
cef, leef, nest, windows_event, csv) has them put back, counted, and the stamps survive."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from collector.config import load_config
from collector.pipeline.config import PipelineConfig
from collector.pipeline.runner import BoundStep, Pipeline, PipelineSet, build_pipelines
from core.config import ValidationContext
from core.errors import ConfigErrors
from core.events import DATASET, OFFSET, RECEIVED_AT, SOURCE, TENANT, Batch, Event
from core.step import Step, StepConfig, StepContext
from core.telemetry import Telemetry

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RECEIVED = datetime(2026, 11, 23, 11, 59, tzinfo=UTC)
PROVENANCE_LIST = "vigil.tenant, vigil.source, vigil.dataset, vigil.received_at, vigil.offset"


def conf(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "30-pipelines.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def errors(tmp_path: Path, text: str) -> list[str]:
    conf(tmp_path, text)
    with pytest.raises(ConfigErrors) as info:
        load_config(tmp_path)
    return [str(e) for e in info.value.errors]


def field_error(path: Path, where: str, name: str) -> str:
    """The message for a provenance field; `where` is `LINE:COL: key.path`."""
    return (f"{path}:{where}: '{name}' is provenance that only the daemon sets "
            f"({PROVENANCE_LIST}); write another field")


def prefix_error(path: Path, where: str, prefix: str) -> str:
    return (f"{path}:{where}: keys under '{prefix}' could be provenance that only the daemon "
            f"sets ({PROVENANCE_LIST}); use another prefix")


def test_set_rename_copy_of_provenance_are_refused(tmp_path: Path) -> None:
    found = errors(tmp_path, """
    pipelines:
      p:
        dataset: web.access
        steps:
          - {type: set, fields: {vigil.tenant: acme, event.kind: event}}
          - {type: rename, fields: {user: vigil.source}}
          - {type: copy, fields: {ts: vigil.received_at}}
          - {type: map_values, field: a, target: vigil.dataset, values: {x: y}}
          - {type: lowercase, fields: [vigil.tenant]}
          - {type: remove, fields: [vigil.offset]}
          - {type: rename, fields: {vigil.tenant: tenant_copy}}
    """)
    path = tmp_path / "30-pipelines.yaml"
    assert found == [field_error(path, where, name) for where, name in [
        ("5:44: pipelines.p.steps[0].fields.vigil.tenant", "vigil.tenant"),
        ("6:39: pipelines.p.steps[1].fields.user", "vigil.source"),
        ("7:35: pipelines.p.steps[2].fields.ts", "vigil.received_at"),
        ("8:46: pipelines.p.steps[3].target", "vigil.dataset"),
        ("9:36: pipelines.p.steps[4].fields[0]", "vigil.tenant"),
        ("10:33: pipelines.p.steps[5].fields[0]", "vigil.offset"),
        ("11:47: pipelines.p.steps[6].fields.vigil.tenant", "vigil.tenant"),
    ]]


@pytest.mark.parametrize(("step", "key", "message"), [
    ("{type: json, target: vigil}", "target", "prefix:vigil."),
    ("{type: nest, target: vigil}", "target", "prefix:vigil."),
    ("{type: nest, rename: {meta: vigil}}", "rename.meta", "prefix:vigil."),
    ("{type: kv, target: vigil}", "target", "prefix:vigil."),
    ("{type: kv, prefix: vigil.}", "prefix", "prefix:vigil."),
    ("{type: kv, include_keys: [tenant], prefix: vigil.}", "prefix", "prefix:vigil."),
    ("{type: csv, columns: [a, vigil.tenant]}", "columns[1]", "field:vigil.tenant"),
    ("{type: timestamp, field: t, target: vigil.received_at}", "target",
     "field:vigil.received_at"),
    ("{type: grok, patterns: ['%{WORD:vigil.tenant}']}", "patterns[0]", "field:vigil.tenant"),
    ("{type: regex, patterns: ['(?<vigil.source>\\w+)']}", "patterns[0]", "field:vigil.source"),
    ("{type: grok, target: vigil, patterns: ['%{WORD:tenant}']}", "target", "prefix:vigil."),
    ("{type: json, target: vigil.tenant, flatten: false}", "target", "field:vigil.tenant"),
])
def test_steps_whose_configured_names_reach_provenance_are_refused(
        tmp_path: Path, step: str, key: str, message: str) -> None:
    found = errors(tmp_path, f"""
    pipelines:
      p:
        dataset: web.access
        steps:
          - {step}
    """)
    kind, _, name = message.partition(":")
    expected = (f"'{name}' is provenance that only the daemon sets" if kind == "field" else
                f"keys under '{name}' could be provenance that only the daemon sets")
    assert any(f"pipelines.p.steps[0].{key}: {expected}" in error for error in found), found


def test_a_lookup_writing_provenance_is_refused(tmp_path: Path) -> None:
    (tmp_path / "users.csv").write_text("user,tenant\nalice,acme\n")
    found = errors(tmp_path, """
    pipelines:
      p:
        dataset: web.access
        steps:
          - {type: lookup, table: users.csv, key_field: user.name, key_column: user,
             fields: {tenant: vigil.tenant}}
    """)
    assert len(found) == 1 and "pipelines.p.steps[0].fields.tenant: 'vigil.tenant' is " \
        "provenance that only the daemon sets" in found[0]


def test_the_alerts_dataset_is_the_daemons(tmp_path: Path) -> None:
    found = errors(tmp_path, """
    pipelines:
      p:
        dataset: alerts
    """)
    path = tmp_path / "30-pipelines.yaml"
    assert found == [f"{path}:3:14: pipelines.p.dataset: dataset 'alerts' is written by the "
                     "daemon itself; choose another name"]


def test_the_shipped_pipelines_still_validate() -> None:
    load_config(Path(__file__).resolve().parents[2] / "conf.d")


# -- data-driven keys: put back and counted ----------------------------------------------

HOSTILE = {"vigil": {"tenant": "acme", "source": "evil", "dataset": "alerts",
                     "received_at": "2001-01-01T00:00:00Z", "offset": 7},
           "vigil.tenant": "x/../../PWNED", "msg": "hi"}

DATA_DRIVEN = {
    "json": ("{type: json}", {"message": orjson.dumps(HOSTILE).decode()}),
    "json_target": ("{type: json, field: m, target: app}", {"m": orjson.dumps(HOSTILE).decode()}),
    "nest": ("{type: nest}", {"vigil": HOSTILE["vigil"], "msg": "hi"}),
    "nest_field": ("{type: nest, field: props}", {"props": orjson.dumps(HOSTILE).decode()}),
    "kv": ("{type: kv}", {"message": "vigil.tenant=acme vigil.source=evil vigil.offset=7 a=1"}),
    "cef": ("{type: cef, ecs: false}",
            {"message": "CEF:0|V|P|1|100|n|5|vigil.tenant=acme vigil.source=evil"}),
    "leef": ("{type: leef}",
             {"message": "LEEF:2.0|V|P|1|100|^|vigil.tenant=acme^vigil.source=evil"}),
    "csv": ("{type: csv, columns: [a, b]}", {"message": "vigil.tenant,acme"}),
    "windows_event": ("{type: windows_event}",
                      {"Event": {"System": {"EventID": 4624, "Channel": "Security"},
                                 "EventData": {"vigil.tenant": "acme"}},
                       "vigil": {"tenant": "acme"}}),
}


def stamped(fields: dict[str, Any]) -> Event:
    return {TENANT: "demo", SOURCE: "http", DATASET: "json", RECEIVED_AT: RECEIVED,
            OFFSET: 41, "@timestamp": RECEIVED, **fields}


@pytest.mark.parametrize("kind", sorted(DATA_DRIVEN))
def test_provenance_from_the_input_is_dropped_and_counted(tmp_path: Path, kind: str) -> None:
    step, fields = DATA_DRIVEN[kind]
    conf(tmp_path, f"""
    pipelines:
      p:
        dataset: web.access
        steps:
          - {step}
          - {{type: set, fields: {{event.kind: event}}}}
    """)
    config = load_config(tmp_path)
    telemetry = Telemetry()
    pipelines = build_pipelines(config.pipelines.items(), ValidationContext(tmp_path),
                                data_dir=tmp_path, telemetry=telemetry, clock=lambda: NOW)
    out = pipelines.process(Batch("demo", [stamped(fields)], 41, 41))
    events = [e for b in out if b.kind == "events" for e in b.events]
    assert [b.kind for b in out] == ["events"], out
    (event,) = events
    assert (event[TENANT], event[SOURCE], event[DATASET], event[RECEIVED_AT], event[OFFSET]) \
        == ("demo", "http", "web.access", RECEIVED, 41)
    assert event["event.kind"] == "event"  # the step after it saw the stamps too
    step_id = "0-windows_event" if kind == "windows_event" else "0-" + kind.split("_")[0]
    rejected = telemetry.total("vigil_pipeline_provenance_rejected_events_total",
                               pipeline="p", step=step_id)
    # cef, leef, csv and a json target keep input keys under a prefix or a column name, and
    # windows_event never flattens `vigil.*`: nothing of theirs reached provenance.
    assert rejected == (1 if kind in ("json", "nest", "nest_field", "kv") else 0)


def test_remove_by_a_prefix_covering_provenance_is_refused(tmp_path: Path) -> None:
    found = errors(tmp_path, """
    pipelines:
      p:
        dataset: web.access
        steps:
          - {type: remove, prefixes: [vigil.parse, vigil]}
    """)
    path = tmp_path / "30-pipelines.yaml"
    assert found == [prefix_error(path, "5:48: pipelines.p.steps[0].prefixes[1]", "vigil")]


def test_a_source_may_not_be_configured_into_the_alerts_dataset(tmp_path: Path) -> None:
    found = errors(tmp_path, """
    tenants: {demo: {name: Demo}}
    sources:
      tcp_json: {type: tcp_lines, address: '127.0.0.1:0', tenant: demo, dataset: alerts}
    """)
    assert len(found) == 1 and found[0].endswith(
        "sources.tcp_json.dataset: dataset 'alerts' is written by the daemon itself; choose "
        "another name")


class _Forging(Step):
    """A step with a bug: it writes provenance though its config names nothing."""

    config_model = StepConfig

    def apply(self, event: Event) -> Event:
        event[TENANT] = "acme"
        del event[SOURCE]
        return event


def test_a_step_not_naming_keys_from_input_is_still_restamped_at_the_end() -> None:
    telemetry = Telemetry()
    config = PipelineConfig.model_validate({"dataset": "web.access"})
    step = BoundStep("0-forging", "forging", _Forging(StepConfig(type="forging"),
                                                      StepContext(Path("."))), None, "dead_letter")
    pipelines = PipelineSet([Pipeline("p", config, [step])], telemetry, clock=lambda: NOW)
    (out,) = pipelines.process(Batch("demo", [stamped({})], 41, 41))
    (event,) = out.events
    assert (event[TENANT], event[SOURCE]) == ("demo", "http")
    assert telemetry.total("vigil_pipeline_provenance_rejected_events_total", pipeline="p",
                           step="-") == 1
