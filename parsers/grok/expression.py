"""Grok expressions compiled to regexes that write dotted event fields.

`%{NAME}`, `%{NAME:field}` and `%{NAME:field:int|float}` references are expanded from the
definitions, and every capture (including inline `(?<field>...)` groups) gets a safe group name
with a table from group to field, because regex group names cannot hold the dots of ECS names.
The expansion is compiled with Python's `re` when it compiles there without a warning (the C
engine was measured ~3x faster than the `regex` module pygrok uses), else with `regex`.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import regex

from parsers.grok.library import PATTERN_NAME_RE, Definition

Engine = Literal["re", "regex"]
EngineChoice = Literal["auto", "re", "regex"]
Anchor = Literal["start", "full", "none"]


class GrokError(ValueError):
    """A grok expression that cannot be expanded or compiled; the message names the cause."""


def cast_int(value: str) -> int:
    """Grok's `:int`: integers, and decimals truncated like Logstash does ("1.9" -> 1)."""
    try:
        return int(value)
    except ValueError:
        number = float(value)
        if not math.isfinite(number):
            raise
        return int(number)


CASTS: dict[str, Callable[[str], Any]] = {"int": cast_int, "float": float}

# A capture target: a dotted name (`source.ip`, `@timestamp`) or Logstash's `[source][ip]`.
_FIELD_RE = re.compile(r"[\w@][\w@-]*(?:\.[\w@-]+)*|(?:\[[^\[\]]+\])+")
_BRACKETS = re.compile(r"\[([^\[\]]+)\]")
_TOKEN = re.compile(r"""
    \\k<(?P<kref>[^<>]*)>                  # \k<name> back-reference (regex only: rewritten)
  | \\.                                    # any other escaped character, copied as it is
  | %\{(?P<ref>[^{}]*)\}                   # %{NAME}, %{NAME:field}, %{NAME:field:type}
  | \(\?P?<(?P<named>(?![=!])[^<>]*)>      # (?<field>...) or (?P<field>...)
  | \(\?P=(?P<pref>[^()]*)\)               # (?P=name) back-reference
""", re.VERBOSE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class Capture:
    """One capture: its index in `match.groups()`, the field it writes and its cast."""

    index: int
    field: str
    cast: Callable[[str], Any] | None
    cast_name: str | None


@dataclass(frozen=True, slots=True)
class CompiledExpression:
    """A grok (or named-group regex) expression ready to match."""

    source: str
    expanded: str
    engine: Engine
    pattern: Any  # re.Pattern[str] | regex.Pattern[str]
    captures: tuple[Capture, ...]

    def matcher(self, anchor: Anchor) -> Callable[[str], Any]:
        """The bound match function for `anchor`: `start` is `match`, `full` `fullmatch`,
        `none` `search`."""
        if anchor == "start":
            return self.pattern.match  # type: ignore[no-any-return]
        if anchor == "full":
            return self.pattern.fullmatch  # type: ignore[no-any-return]
        return self.pattern.search  # type: ignore[no-any-return]


def field_name(target: str) -> str | None:
    """The dotted field of a capture target (`[source][ip]` -> `source.ip`), None if invalid."""
    if not _FIELD_RE.fullmatch(target):
        return None
    if target.startswith("["):
        return ".".join(_BRACKETS.findall(target))
    return target


class _Expander:
    """Expands one expression; collects its captures in order."""

    def __init__(self, definitions: Mapping[str, Definition], *, allow_refs: bool) -> None:
        self.definitions = definitions
        self.allow_refs = allow_refs
        self.groups: list[tuple[str, str, str | None]] = []  # (group name, field, cast name)
        self.by_field: dict[str, str] = {}
        # Expansions of definitions that capture nothing are the same wherever they occur.
        self.plain: dict[str, str] = {}

    def expand(self, text: str, stack: tuple[str, ...] = ()) -> str:
        out: list[str] = []
        last = 0
        for token in _TOKEN.finditer(text):
            out.append(text[last:token.start()])
            out.append(self._replace(token, stack))
            last = token.end()
        out.append(text[last:])
        return "".join(out)

    def _replace(self, token: re.Match[str], stack: tuple[str, ...]) -> str:
        kind = token.lastgroup
        if kind is None:
            return token.group()
        value = token.group(kind)
        if kind == "ref":
            if not self.allow_refs:
                return token.group()
            return self._reference(value, stack)
        if kind == "named":
            target, _, cast = value.partition(":")
            return "(?P<" + self._group(target, cast or None, f"(?<{value}>", stack) + ">"
        group = self.by_field.get(value)  # a back-reference to a renamed capture
        return f"(?P={group})" if group is not None else token.group()

    def _reference(self, body: str, stack: tuple[str, ...]) -> str:
        parts = body.split(":")
        name = parts[0]
        where = _where(stack)
        if len(parts) > 3 or not PATTERN_NAME_RE.fullmatch(name):
            raise GrokError(f"malformed grok reference '%{{{body}}}'{where}")
        definition = self.definitions.get(name)
        if definition is None:
            raise GrokError(f"unknown grok pattern {name!r}{where}")
        if name in stack:
            cycle = " -> ".join((*stack[stack.index(name):], name))
            raise GrokError(f"grok pattern cycle: {cycle}")
        if len(parts) == 1:
            cached = self.plain.get(name)
            if cached is not None:
                return cached
            before = len(self.groups)
            inner = "(?:" + self.expand(definition.regex, (*stack, name)) + ")"
            if len(self.groups) == before:
                self.plain[name] = inner
            return inner
        target = parts[1]
        cast = parts[2] if len(parts) == 3 else None
        inner = self.expand(definition.regex, (*stack, name))
        return "(?P<" + self._group(target, cast, f"%{{{body}}}", stack) + ">" + inner + ")"

    def _group(self, target: str, cast: str | None, text: str, stack: tuple[str, ...]) -> str:
        field = field_name(target)
        if field is None:
            raise GrokError(f"invalid field name {target!r} in {text}{_where(stack)}")
        if cast is not None and cast not in CASTS:
            raise GrokError(f"unknown type {cast!r} in {text}{_where(stack)}: "
                            "expected int or float")
        group = f"_g{len(self.groups)}"
        self.groups.append((group, field, cast))
        self.by_field[target] = group
        self.by_field[field] = group
        return group


def _where(stack: tuple[str, ...]) -> str:
    return f" (in grok pattern {stack[-1]!r})" if stack else ""


def compile_regex(expanded: str, engine: EngineChoice = "auto") -> tuple[Any, Engine]:
    """Compile with Python's `re` unless it rejects the expression or warns about it (nested
    sets, POSIX classes: where `re` would read it differently from `regex`); else with `regex`.
    Raises GrokError when neither engine accepts it."""
    if engine != "regex":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                return re.compile(expanded), "re"
        except (re.error, Warning, RecursionError, OverflowError) as exc:
            if engine == "re":
                raise GrokError(f"not a valid Python re expression: {_reason(exc)}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return regex.compile(expanded), "regex"
    except (regex.error, RecursionError, OverflowError, ValueError) as exc:
        raise GrokError(f"invalid regex: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    # Positions would point into the expanded text, which the user never wrote.
    return str(getattr(exc, "msg", None) or exc)


def compile_expression(text: str, definitions: Mapping[str, Definition], *,
                       engine: EngineChoice = "auto", prefix: str = "",
                       grok: bool = True) -> CompiledExpression:
    """Expand (when `grok`) and compile one expression; captures write `prefix + field`.
    With `grok=False` only named groups are rewritten (the `regex` step)."""
    expander = _Expander(definitions, allow_refs=grok)
    expanded = expander.expand(text)
    try:
        pattern, chosen = compile_regex(expanded, engine)
    except GrokError as exc:
        if grok:
            culprit = _broken_definition(text, definitions, engine)
            if culprit is not None:
                raise culprit from None
        raise exc from None
    captures = tuple(
        Capture(pattern.groupindex[group] - 1, prefix + field,
                CASTS[cast] if cast else None, cast)
        for group, field, cast in expander.groups)
    return CompiledExpression(text, expanded, chosen, pattern, captures)


def _broken_definition(text: str, definitions: Mapping[str, Definition],
                       engine: EngineChoice) -> GrokError | None:
    """The first referenced definition that does not compile on its own, so the error names
    the pattern to fix rather than a position in a long expansion."""
    seen: set[str] = set()
    pending = [m.group("ref").split(":")[0] for m in _TOKEN.finditer(text) if m.group("ref")]
    while pending:
        name = pending.pop(0)
        if name in seen or name not in definitions:
            continue
        seen.add(name)
        body = definitions[name].regex
        try:
            compile_regex(_Expander(definitions, allow_refs=True).expand(body, (name,)), engine)
        except GrokError as exc:
            inner = [m.group("ref").split(":")[0] for m in _TOKEN.finditer(body)
                     if m.group("ref")]
            deeper = _broken_definition(body, definitions, engine) if inner else None
            if deeper is not None:
                return deeper
            detail = str(exc).removeprefix("invalid regex: ")
            return GrokError(f"invalid regex in grok pattern {name!r}: {detail}")
    return None
