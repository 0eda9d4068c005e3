"""The regex step: Python `re` named groups into dotted fields with casts; errors located."""

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

regex_step = partial(build_step, "regex")


def test_named_groups_write_dotted_fields_with_casts() -> None:
    # sudo's message as Linux writes it to auth.log.
    step = regex_step(patterns=[
        r"\s*(?P<user.name>\S+) : TTY=(?P<process.tty>\S+) ; PWD=(?P<process.working_directory>"
        r"\S+) ; USER=(?<user.target.name>\S+) ; COMMAND=(?P<process.command_line>.+)"])
    line = ("    jdoe : TTY=pts/0 ; PWD=/home/jdoe ; USER=root ; COMMAND=/usr/bin/systemctl "
            "restart nginx")
    assert step.apply({"message": line}) == {
        "message": line, "user.name": "jdoe", "process.tty": "pts/0",
        "process.working_directory": "/home/jdoe", "user.target.name": "root",
        "process.command_line": "/usr/bin/systemctl restart nginx"}


def test_casts_target_and_order() -> None:
    step = regex_step(target="http", patterns=[
        r"(?P<response.status_code:int>\d{3}) (?P<took:float>[\d.]+)s",
        r"(?P<response.status_code>\w+)"])
    assert step.apply({"message": "404 0.5s"}) == {
        "message": "404 0.5s", "http.response.status_code": 404, "http.took": 0.5}
    assert step.apply({"message": "timeout"})["http.response.status_code"] == "timeout"
    with pytest.raises(StepFailure, match="^no regex matched$"):
        step.apply({"message": "-"})


def test_named_back_reference_follows_the_renamed_group() -> None:
    step = regex_step(patterns=[r"(?P<q>['\"])(?P<value>.*?)(?P=q)"])
    assert step.apply({"message": "'it\"s'"})["value"] == 'it"s'


def test_errors_are_located(config_errors: Callable[[str], list[str]], tmp_path: Path) -> None:
    path = tmp_path / "30-pipelines.yaml"
    assert config_errors(r"""
    pipelines:
      p:
        dataset: x
        steps:
          - type: regex
            patterns:
              - '(?P<ok>\d+)'
              - '(?P<source.ip>[0-9.+)'
              - '(?P<a:bool>x)'
              - '\h+'
    """) == [
        f"{path}:8:13: pipelines.p.steps[0].patterns[1]: not a valid Python re expression: "
        "unterminated character set",
        f"{path}:9:13: pipelines.p.steps[0].patterns[2]: unknown type 'bool' in (?<a:bool>: "
        "expected int or float",
        f"{path}:10:13: pipelines.p.steps[0].patterns[3]: not a valid Python re expression: "
        "bad escape \\h",
    ]


def test_grok_syntax_in_a_regex_step_is_refused(config_errors: Callable[[str], list[str]],
                                                tmp_path: Path) -> None:
    """`%{IP:source.ip}` is grok: `re` would take it literally and never match (a shipped
    Cisco IOS login step did, silently)."""
    path = tmp_path / "30-pipelines.yaml"
    assert config_errors(r"""
    pipelines:
      p:
        dataset: x
        steps:
          - type: regex
            patterns: ['\[Source: %{IP:source.ip}\]']
    """) == [f"{path}:6:20: pipelines.p.steps[0].patterns[0]: %{{IP:source.ip}} is grok "
             "syntax, which a regex step matches literally: use `type: grok`"]


STEP = regex_step(patterns=[r"(?P<a.b:int>-?\d+)", r"(?P<x>.)(?P=x)"], anchor="none")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary(), st.integers()))
def test_no_input_raises_anything_but_step_failure(value: Any) -> None:
    with contextlib.suppress(StepFailure):
        STEP.apply({"message": value})
