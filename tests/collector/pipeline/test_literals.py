"""Literal prefilters: what every match of a regex contains, and never a literal a match can
lack (hypothesis generates matches of each pattern, the shipped ones included)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.config import load_config
from core.literals import has_literal, required_literals

CONF = Path(__file__).resolve().parents[3] / "conf.d"


@pytest.mark.parametrize(("pattern", "expected"), [
    (r"Failed password for (?P<u>\S+) from", {"Failed password for "}),
    (r"^(?:ASA|FTD)-", {"ASA", "FTD"}),
    (r"PAM \d+ more ", {" more "}),
    (r"x{0,3}yz", {"yz"}),
    (r"HIP-?MATCH,", {"MATCH,"}),
    (r"(?i)failed", None),
    (r"(?i:failed) for", {" for"}),
    (r"a|b", None),
    (r"(?:abc)?def|ghi", {"def", "ghi"}),
    (r"(?:abc)?", None),
    (r"\d+", None),
    (r"\p{L}+", None),  # only the `regex` module reads it
])
def test_required_literals(pattern: str, expected: set[str] | None) -> None:
    found = required_literals(pattern)
    assert (set(found) if found is not None else None) == expected


def shipped_regexes() -> list[str]:
    """Every `regex:` condition of the shipped conf.d."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("regex"), str) and "field" in value:
                found.append(value["regex"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    config = load_config(CONF)
    for pipeline in config.pipelines.values():
        walk(pipeline.model_dump(by_alias=True))
    return sorted(set(found))


SHIPPED = shipped_regexes()
EXAMPLES = [r"Failed password for (?P<u>\S+) from", r"^(?:ASA|FTD)-", r"PAM \d+ more ",
            r"(?:abc)?def|ghi", r"(ab)+cd", r"x{0,3}yz", r"[xy]zz(?:q|r)ww"]


def test_shipped_conditions_have_prefilters() -> None:
    assert len(SHIPPED) > 20
    with_literals = [p for p in SHIPPED if required_literals(p) is not None]
    assert len(with_literals) >= len(SHIPPED) // 2


@pytest.mark.parametrize("pattern", EXAMPLES + SHIPPED)
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_match_holds_a_literal(pattern: str, data: st.DataObject) -> None:
    literals = required_literals(pattern)
    if literals is None:
        return
    text = data.draw(st.from_regex(re.compile(pattern)))
    if re.search(pattern, text) is not None:
        assert has_literal(literals, text), (pattern, text, literals)
