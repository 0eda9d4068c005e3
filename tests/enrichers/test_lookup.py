"""The lookup step: CSV and YAML tables, matching options, reloads that keep the last good table,
located validation errors, and weird events."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enrichers.lookup import LookupStep

USERS = """\
username,department,vip,manager
alice,Finance,true,carol
Bob,Engineering,false,
 carol , Executive ,true,
1042,Service accounts,false,bob
"""


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def users(tmp_path: Path) -> Path:
    return write(tmp_path / "users.csv", USERS)


def lookup(make_step, **spec) -> LookupStep:
    spec = {"type": "lookup", "table": "users.csv", "key_field": "user.name",
            "key_column": "username",
            "fields": {"department": "user.department", "vip": "user.vip",
                       "manager": "user.manager"}, **spec}
    step = make_step(spec)
    assert isinstance(step, LookupStep)
    return step


def test_csv_match_sets_the_mapped_fields(users: Path, make_step) -> None:
    step = lookup(make_step)
    assert step.apply({"user.name": "alice"}) == {
        "user.name": "alice", "user.department": "Finance", "user.vip": "true",
        "user.manager": "carol"}
    # Cells are stripped; an empty cell sets nothing.
    assert step.apply({"user.name": "carol"}) == {
        "user.name": "carol", "user.department": "Executive", "user.vip": "true"}
    assert step.apply({"user.name": "Bob"}) == {
        "user.name": "Bob", "user.department": "Engineering", "user.vip": "false"}
    # Case matters by default; numbers match by their text.
    assert step.apply({"user.name": "ALICE"}) == {"user.name": "ALICE"}
    assert step.apply({"user.name": 1042})["user.department"] == "Service accounts"
    assert step.apply({"message": "no user"}) == {"message": "no user"}
    assert (step.counts.matched, step.counts.missed) == (4, 1)


def test_ignore_case_defaults_and_overwrite(users: Path, make_step) -> None:
    step = lookup(make_step, ignore_case=True, overwrite=False,
                  fields={"department": "user.department", "vip": "user.vip"},
                  defaults={"vip": "false", "department": "unknown"})
    assert step.apply({"user.name": "ALICE", "user.department": "kept"}) == {
        "user.name": "ALICE", "user.department": "kept", "user.vip": "true"}
    assert step.apply({"user.name": "bob"})["user.department"] == "Engineering"
    assert step.apply({"user.name": "mallory"}) == {
        "user.name": "mallory", "user.vip": "false", "user.department": "unknown"}
    # No key field, no defaults: defaults are for keys the table does not know.
    assert step.apply({"user.name": ""}) == {"user.name": ""}
    assert step.apply({}) == {}
    assert (step.counts.matched, step.counts.defaulted) == (2, 1)


def test_yaml_tables_as_rows_or_as_a_mapping(tmp_path: Path, make_step) -> None:
    write(tmp_path / "assets.yaml", """\
    web-01: {criticality: high, tags: [dmz, pci]}
    db-01: {criticality: critical, owner: dba}
    3: {criticality: low}
    """)
    write(tmp_path / "assets-rows.yml", """\
    - {host: web-01, criticality: high}
    - {host: db-01, criticality: critical, owner: null}
    """)
    by_map = make_step({"type": "lookup", "table": "assets.yaml", "key_field": "host.name",
                        "key_column": "host",
                        "fields": {"criticality": "host.criticality", "tags": "host.tags",
                                   "owner": "host.owner"}})
    assert by_map.apply({"host.name": "web-01"}) == {
        "host.name": "web-01", "host.criticality": "high", "host.tags": ["dmz", "pci"]}
    assert by_map.apply({"host.name": "3"})["host.criticality"] == "low"
    by_rows = make_step({"type": "lookup", "table": "assets-rows.yml", "key_field": "host.name",
                         "key_column": "host", "fields": {"criticality": "host.criticality"}})
    assert by_rows.apply({"host.name": "db-01"}) == {"host.name": "db-01",
                                                     "host.criticality": "critical"}


def test_repeated_keys_later_row_wins(tmp_path: Path, make_step,
                                      caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path / "t.csv", "k,v\na,1\nb,2\na,3\n,4\n")
    with caplog.at_level(logging.WARNING, logger="enrichers.lookup"):
        step = make_step({"type": "lookup", "table": "t.csv", "key_field": "f",
                          "key_column": "k", "fields": {"v": "out"}})
    assert step.apply({"f": "a"})["out"] == "3"
    index = step.table.value
    assert (index.duplicate_keys, index.rows_without_key) == (1, 1)
    assert [r.duplicate_keys for r in caplog.records] == [1]  # type: ignore[attr-defined]


def test_reload_when_the_table_changes(users: Path, make_step) -> None:
    step = lookup(make_step)
    assert step.apply({"user.name": "alice"})["user.department"] == "Finance"
    step.maintain()
    assert step.table.reloads == 0
    users.write_text(USERS.replace("alice,Finance", "alice,Treasury") + "dave,Security,true,\n")
    step.maintain()
    assert step.table.reloads == 1
    assert step.apply({"user.name": "alice"})["user.department"] == "Treasury"
    assert step.apply({"user.name": "dave"})["user.department"] == "Security"


@pytest.mark.parametrize(("broken", "reason"), [
    ("user,department,vip,manager\nalice,X,true,\n", "lacks column(s) username"),
    ("username,department,vip\nalice,X,true\n", "lacks column(s) manager"),
    ("", "has no header row"),
    ("username,department,department,vip,manager\n", "repeats column(s) department"),
])
def test_invalid_table_keeps_the_previous_one(users: Path, make_step, broken: str, reason: str,
                                              caplog: pytest.LogCaptureFixture) -> None:
    step = lookup(make_step)
    users.write_text(broken)
    with caplog.at_level(logging.ERROR, logger="core.reloading"):
        step.maintain()
        step.maintain()
    assert (step.table.reloads, step.table.reload_errors) == (0, 1)
    (record,) = caplog.records
    assert reason in record.error  # type: ignore[attr-defined]
    assert step.apply({"user.name": "alice"})["user.department"] == "Finance"
    users.write_text(USERS.replace("Finance", "Audit"))  # fixed: loads again
    step.maintain()
    assert step.table.reloads == 1
    assert step.apply({"user.name": "alice"})["user.department"] == "Audit"


def test_deleted_table_keeps_the_previous_one(users: Path, make_step) -> None:
    step = lookup(make_step)
    users.unlink()
    step.maintain()
    step.maintain()
    assert step.table.reload_errors == 1
    assert step.apply({"user.name": "alice"})["user.department"] == "Finance"


def test_located_validation_errors(tmp_path: Path, users: Path, config_errors) -> None:
    # A YAML table lives below conf.d: conf.d/*.yaml are configuration files.
    (tmp_path / "tables").mkdir()
    write(tmp_path / "tables" / "bad.yaml", "- {a: 1\n")
    write(tmp_path / "table.txt", "a,b\n")
    found = config_errors("""
    pipelines:
      auth:
        dataset: linux.auth
        steps:
          - type: lookup
            table: missing.csv
            key_field: user.name
            key_column: username
            fields: {department: user.department}
          - type: lookup
            table: users.csv
            key_field: user.name
            key_column: user
            fields: {departement: user.department, vip: user.vip}
            defaults: {manager: nobody}
          - type: lookup
            table: tables/bad.yaml
            key_field: user.name
            key_column: username
            fields: {a: b}
          - type: lookup
            table: table.txt
            key_field: user.name
            key_column: a
            fields: {b: c}
          - type: lookup
            table: users.csv
            key_field: user.name
            key_column: username
            fields: {}
    """)
    path = tmp_path / "30-pipelines.yaml"
    assert found == [
        f"{path}:6:16: pipelines.auth.steps[0].table: lookup table not found: "
        f"{tmp_path / 'missing.csv'}",
        f"{path}:13:21: pipelines.auth.steps[1].key_column: column 'user' is not in "
        f"{tmp_path / 'users.csv'} (did you mean 'username'?); columns: username, department, "
        "vip, manager",
        f"{path}:14:31: pipelines.auth.steps[1].fields.departement: column 'departement' is "
        f"not in {tmp_path / 'users.csv'} (did you mean 'department'?)",
        f"{path}:15:29: pipelines.auth.steps[1].defaults.manager: 'manager' is not a column of "
        "`fields`",
        f"{path}:17:16: pipelines.auth.steps[2].table: lookup table "
        f"{tmp_path / 'tables' / 'bad.yaml'} "
        "line 2: invalid YAML",
        f"{path}:22:16: pipelines.auth.steps[3].table: cannot tell the format of "
        f"{tmp_path / 'table.txt'} from its extension; set `format: csv` or `format: yaml`",
        f"{path}:30:17: pipelines.auth.steps[4].fields: map at least one column to an event "
        "field",
    ]


keys = st.one_of(st.text(max_size=12), st.integers(), st.floats(), st.booleans(), st.none(),
                 st.lists(st.text(max_size=3), max_size=2), st.sampled_from(["alice", "1042"]))


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["user.name", "user.department", "x"]), keys))
def test_no_event_makes_it_raise(users: Path, make_step, event: dict) -> None:
    step = lookup(make_step, ignore_case=True, defaults={"vip": "false"})
    out = step.apply(event)
    assert out is event
