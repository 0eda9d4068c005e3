"""Conditions: the small expression form of `if:` on steps, `match:` on pipelines and `drop`.

A condition is a YAML mapping, never Python: a field test (`field` plus exactly one of `equals`,
`in`, `exists`, `regex`, `cidr`, `startswith`, `endswith`, `contains`) or a combination (`all`,
`any`, `not`). It is validated like any config model and compiled once into a predicate over
one event (`compile_condition`) and into a filter over a batch (`compile_filter`: the positions
of a batch where it holds, each field test one pass over the positions still in question):

    if: {field: log.syslog.appname, in: [sshd, sudo]}
    if: {all: [{field: source.ip, cidr: [10.0.0.0/8]}, {not: {field: user.name, exists: true}}]}
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from pydantic import Field, field_validator, model_validator

from core.config import StrictModel
from core.events import Event
from core.literals import has_literal, required_literals

Predicate = Callable[[Event], bool]
# (events, positions to test, in order) -> the positions where the condition holds, in order.
Filter = Callable[[list[Event], list[int]], list[int]]

_TESTS = ("equals", "in_", "exists", "regex", "cidr", "startswith", "endswith", "contains")


class Condition(StrictModel):
    """A field test, or `all` / `any` / `not` of other conditions."""

    field: str | None = Field(None, description="dotted event field the test reads")
    equals: Any = Field(None, description="the field equals this value")
    in_: list[Any] | None = Field(None, alias="in", description="the field is one of these")
    exists: bool | None = Field(None, description="the field is present (true) or absent (false)")
    regex: str | None = Field(None, description="the field (as text) matches this regex (search)")
    cidr: list[str] | None = Field(None, description="the field is an IP inside one of these")
    startswith: str | None = None
    endswith: str | None = None
    contains: str | None = None
    ignore_case: bool = Field(False, description="text tests ignore case")
    all: list[Condition] | None = Field(None, description="every condition holds")
    any: list[Condition] | None = Field(None, description="at least one condition holds")
    not_: Condition | None = Field(None, alias="not", description="the condition does not hold")

    model_config = StrictModel.model_config | {"populate_by_name": True}

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regex: {exc}") from None
        return value

    @field_validator("cidr")
    @classmethod
    def _networks(cls, value: list[str] | None) -> list[str] | None:
        for network in value or ():
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"invalid network {network!r}") from None
        return value

    @model_validator(mode="after")
    def _one_form(self) -> Condition:
        tests = [name.rstrip("_") for name in _TESTS if name in self.model_fields_set]
        combinators = [n.rstrip("_") for n in ("all", "any", "not_") if n in self.model_fields_set]
        if combinators:
            if len(combinators) > 1 or tests or self.field is not None:
                raise ValueError("a condition is either one of all/any/not or one field test")
            return self
        if self.field is None:
            raise ValueError("a condition needs `field` (with a test) or one of all/any/not")
        if len(tests) != 1:
            raise ValueError("a field test needs exactly one of " +
                             ", ".join(name.rstrip("_") for name in _TESTS))
        return self


def compile_condition(condition: Condition) -> Predicate:
    """A predicate over one event; missing fields make every test but `exists: false` false."""
    fields_set = condition.model_fields_set
    if "all" in fields_set:
        parts = [compile_condition(c) for c in condition.all or ()]
        return lambda event: all(p(event) for p in parts)
    if "any" in fields_set:
        parts = [compile_condition(c) for c in condition.any or ()]
        return lambda event: any(p(event) for p in parts)
    if "not_" in fields_set:
        assert condition.not_ is not None
        inner = compile_condition(condition.not_)
        return lambda event: not inner(event)
    name = condition.field
    assert name is not None
    fold = condition.ignore_case

    def text(value: Any) -> str:
        result = value if isinstance(value, str) else str(value)
        return result.lower() if fold else result

    if "exists" in fields_set:
        wanted = bool(condition.exists)
        return lambda event: (event.get(name) is not None) is wanted
    if "equals" in fields_set:
        target = condition.equals
        if isinstance(target, str):
            expected = text(target)
            return lambda event: (v := event.get(name)) is not None and text(v) == expected
        return lambda event: event.get(name) == target
    if "in_" in fields_set:
        members = {text(v) for v in condition.in_ or ()}
        return lambda event: (v := event.get(name)) is not None and text(v) in members
    if "regex" in fields_set:
        assert condition.regex is not None
        search = re.compile(condition.regex, re.IGNORECASE if fold else 0).search
        return lambda event: (v := event.get(name)) is not None and \
            search(v if isinstance(v, str) else str(v)) is not None
    if "cidr" in fields_set:
        networks = [ipaddress.ip_network(n, strict=False) for n in condition.cidr or ()]
        return lambda event: _in_networks(event.get(name), networks)
    for test, method in (("startswith", str.startswith), ("endswith", str.endswith),
                         ("contains", str.__contains__)):
        if test in fields_set:
            return _text_test(name, method, text(getattr(condition, test)), text)
    raise AssertionError("validated conditions have exactly one form")


def _text_test(name: str, method: Callable[[str, str], bool], needle: str,
               text: Callable[[Any], str]) -> Predicate:
    def test(event: Event) -> bool:
        value = event.get(name)
        return value is not None and method(text(value), needle)
    return test


def _in_networks(value: Any, networks: list[Any]) -> bool:
    if value is None:
        return False
    try:
        address = ipaddress.ip_address(str(value).strip())
    except ValueError:
        return False
    return any(address in network for network in networks)


def compile_filter(condition: Condition) -> Filter:
    """The batch form of `compile_condition`: same answers, one list pass per field test
    instead of nested calls per event; `all` narrows the positions test by test, `any` tests
    only the positions no earlier alternative took."""
    fields_set = condition.model_fields_set
    if "all" in fields_set:
        parts = [compile_filter(c) for c in condition.all or ()]

        def every(events: list[Event], positions: list[int]) -> list[int]:
            for part in parts:
                if not positions:
                    break
                positions = part(events, positions)
            return positions
        return every
    if "any" in fields_set:
        alternatives = [compile_filter(c) for c in condition.any or ()]

        def some(events: list[Event], positions: list[int]) -> list[int]:
            held: list[int] = []
            remaining = positions
            for alternative in alternatives:
                if not remaining:
                    break
                hits = alternative(events, remaining)
                if hits:
                    held.extend(hits)
                    taken = set(hits)
                    remaining = [i for i in remaining if i not in taken]
            return sorted(held) if len(alternatives) > 1 else held
        return some
    if "not_" in fields_set:
        assert condition.not_ is not None
        inner = compile_filter(condition.not_)

        def negate(events: list[Event], positions: list[int]) -> list[int]:
            hits = set(inner(events, positions))
            return [i for i in positions if i not in hits]
        return negate
    name = condition.field
    assert name is not None
    if not condition.ignore_case:
        fast = _plain_filter(condition, name)
        if fast is not None:
            return fast
    predicate = compile_condition(condition)
    return lambda events, positions: [i for i in positions if predicate(events[i])]


def _plain_filter(condition: Condition, name: str) -> Filter | None:
    """Case-sensitive field tests written out as one comprehension each (text values compared
    as they are, others as `str()`, as the predicate does); a regex searches only text holding
    one of the literals every match contains."""
    fields_set = condition.model_fields_set
    if "exists" in fields_set:
        if condition.exists:
            return lambda events, positions: [
                i for i in positions if events[i].get(name) is not None]
        return lambda events, positions: [i for i in positions if events[i].get(name) is None]
    if "equals" in fields_set and isinstance(condition.equals, str):
        expected = condition.equals
        return lambda events, positions: [
            i for i in positions if (v := events[i].get(name)) is not None
            and (v if isinstance(v, str) else str(v)) == expected]
    if "in_" in fields_set:
        members = {v if isinstance(v, str) else str(v) for v in condition.in_ or ()}
        return lambda events, positions: [
            i for i in positions if (v := events[i].get(name)) is not None
            and (v if isinstance(v, str) else str(v)) in members]
    if "regex" in fields_set:
        assert condition.regex is not None
        search = re.compile(condition.regex).search
        literals = required_literals(condition.regex)
        if literals is None:
            return lambda events, positions: [
                i for i in positions if (v := events[i].get(name)) is not None
                and search(v if isinstance(v, str) else str(v)) is not None]
        if len(literals) == 1:
            (literal,) = literals
            return lambda events, positions: [
                i for i in positions if (v := events[i].get(name)) is not None
                and literal in (t := v if isinstance(v, str) else str(v))
                and search(t) is not None]
        return lambda events, positions: [
            i for i in positions if (v := events[i].get(name)) is not None
            and has_literal(literals, t := v if isinstance(v, str) else str(v))
            and search(t) is not None]
    if "contains" in fields_set and condition.contains is not None:
        needle = condition.contains
        return lambda events, positions: [
            i for i in positions if (v := events[i].get(name)) is not None
            and needle in (v if isinstance(v, str) else str(v))]
    if "startswith" in fields_set and condition.startswith is not None:
        prefix = condition.startswith
        return lambda events, positions: [
            i for i in positions if (v := events[i].get(name)) is not None
            and (v if isinstance(v, str) else str(v)).startswith(prefix)]
    return None
