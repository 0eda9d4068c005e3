"""The `grok` step: named captures from pygrok's pattern library into dotted event fields.

Patterns are tried in order and the first that matches wins. Each is compiled once, with
Python's `re` wherever the expansion compiles there (see `parsers.grok.expression`). By default
a pattern must match at the start of the field: a pattern that fails unanchored is retried at
every offset (benchmarks/bench_pipelines.py: an access-log pattern failing on 100-byte sshd
messages costs 55 us unanchored against 4 us anchored; COMBINEDAPACHELOG on a PAM line, 61 us
against 0.8 us).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import Field

from core.config import ConfigIssue, ValidationContext
from core.errors import ConfigError
from core.events import Event
from core.literals import has_literal, required_literals
from core.provenance import WrittenName, under
from core.step import Step, StepConfig, StepFailure
from parsers.grok.expression import (
    Anchor,
    Capture,
    CompiledExpression,
    EngineChoice,
    GrokError,
    compile_expression,
)
from parsers.grok.library import (
    PATTERN_NAME_RE,
    Definition,
    PatternFileError,
    bundled_patterns,
    read_pattern_path,
)

NO_MATCH = "no grok pattern matched"


class CaptureConfig(StepConfig):
    """Keys shared by the steps that capture named groups into fields (grok, regex)."""

    field: str = Field("message", description="field the patterns are matched against")
    patterns: list[str] = Field(min_length=1, description="expressions tried in order; the "
                                                          "first that matches wins")
    break_on_match: bool = Field(
        True, description="stop at the first matching pattern; false: apply every pattern "
        "that matches (later captures overwrite earlier ones)")
    anchor: Anchor = Field(
        "start", description="start: a pattern must match at the start of the field (like a "
        "leading `^`); full: the whole field; none: anywhere (a pattern that fails is then "
        "retried at every offset: 10-100x slower on a miss)")
    target: str | None = Field(None, description="prefix for every captured field "
                                                 "(`target.field`); default: top level")
    keep_empty_captures: bool = Field(False, description="keep captures that matched the "
                                                         "empty string")

    def compiled_for_check(self, context: ValidationContext) -> list[CompiledExpression | None]:
        """Each pattern compiled (None where it does not: `semantic_errors` says why)."""
        return []

    def written_fields(self, context: ValidationContext) -> list[WrittenName]:
        names: list[WrittenName] = []
        if self.target:
            names.append((("target",), under(self.target), True))
        for index, compiled in enumerate(self.compiled_for_check(context)):
            if compiled is not None:
                names += [(("patterns", index), capture.field, False)
                          for capture in compiled.captures]
        return names


class GrokConfig(CaptureConfig):
    """Extract fields with grok patterns. `%{NAME:field}` writes a dotted field
    (`%{IP:source.ip}`, or Logstash's `[source][ip]`), `%{NAME:field:int}` / `:float` convert,
    `(?<field>regex)` captures inline. The library is pygrok's (grok-patterns, linux-syslog,
    firewalls, haproxy, java, ...), then `pattern_dirs`, then `pattern_definitions`, later ones
    replacing earlier ones by name."""

    type: Literal["grok"] = "grok"
    pattern_definitions: dict[str, str] = Field(
        default_factory=dict, description="extra patterns, NAME -> grok expression")
    pattern_dirs: list[str] = Field(
        default_factory=list, description="directories (or files) of `NAME regex` lines, "
        "relative to the conf.d directory")
    engine: EngineChoice = Field(
        "auto", description="auto: Python's `re` where the expansion compiles there, else the "
        "`regex` module (what pygrok uses); re / regex force one")

    def compiled_for_check(self, context: ValidationContext) -> list[CompiledExpression | None]:
        definitions, _ = collect_definitions(self, context)
        prefix = under(self.target)
        found: list[CompiledExpression | None] = []
        for pattern in self.patterns:
            try:
                found.append(compile_expression(pattern, definitions, engine=self.engine,
                                                prefix=prefix))
            except GrokError:
                found.append(None)
        return found

    def semantic_errors(self, context: ValidationContext) -> list[ConfigIssue]:
        definitions, issues = collect_definitions(self, context)
        for name in self.pattern_definitions:
            if name in definitions:
                try:
                    compile_expression(f"%{{{name}}}", definitions, engine=self.engine)
                except GrokError as exc:
                    issues.append((("pattern_definitions", name), str(exc)))
        for index, pattern in enumerate(self.patterns):
            try:
                compile_expression(pattern, definitions, engine=self.engine)
            except GrokError as exc:
                issues.append((("patterns", index), str(exc)))
        return issues


def collect_definitions(config: GrokConfig, context: ValidationContext
                        ) -> tuple[dict[str, Definition], list[ConfigIssue]]:
    """The library a step sees: bundled, then pattern_dirs in order, then inline definitions;
    problems with the directories or names come back as config issues."""
    definitions = dict(bundled_patterns())
    issues: list[ConfigIssue] = []
    for index, directory in enumerate(config.pattern_dirs):
        try:
            definitions.update(read_pattern_path(context.resolve(directory)))
        except PatternFileError as exc:
            issues.append((("pattern_dirs", index), str(exc)))
    for name, expression in config.pattern_definitions.items():
        if not PATTERN_NAME_RE.fullmatch(name):
            issues.append((("pattern_definitions", name),
                           f"pattern name {name!r} may hold only letters, digits and _"))
            continue
        definitions[name] = Definition(name, expression, "pattern_definitions")
    return definitions, issues


def compile_patterns(config: GrokConfig, definitions: Mapping[str, Definition]
                     ) -> list[CompiledExpression]:
    """Every pattern of `config`, compiled (raises GrokError on the first bad one)."""
    prefix = f"{config.target}." if config.target else ""
    return [compile_expression(p, definitions, engine=config.engine, prefix=prefix)
            for p in config.patterns]


def store_captures(match: Any, captures: tuple[Capture, ...], event: Event,
                   keep_empty: bool) -> None:
    """Write the captures of `match` into `event`, cast; a cast that fails is a StepFailure."""
    groups = match.groups()
    for capture in captures:
        value = groups[capture.index]
        if value is None or (not value and not keep_empty):
            continue
        if capture.cast is not None:
            try:
                value = capture.cast(value)
            except ValueError:
                raise StepFailure(f"cannot convert {capture.field}={value!r} to "
                                  f"{capture.cast_name}") from None
        event[capture.field] = value


def _literals(compiled: CompiledExpression) -> tuple[str, ...]:
    """The literals every match of `compiled` contains (none known: empty)."""
    if compiled.engine != "re":
        return ()
    found = required_literals(compiled.pattern.pattern, compiled.pattern.flags)
    return tuple(sorted(found)) if found else ()


def text_of(event: Event, name: str) -> str:
    """The field as text for matching; a missing field is a StepFailure."""
    value = event.get(name)
    if value is None:
        raise StepFailure(f"field {name!r} is missing")
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class CaptureStep(Step):
    """Runs compiled expressions in order and stores the captures of the first that matches
    (of every one that matches without `break_on_match`)."""

    failure = NO_MATCH

    def __init__(self, config: CaptureConfig, context: Any,
                 compiled: list[CompiledExpression]) -> None:
        super().__init__(config, context)
        self.compiled = compiled
        # With the literals every match contains (patterns on Python's `re`): text without
        # one is not searched.
        self.matchers: list[tuple[Callable[[str], Any], tuple[Capture, ...], tuple[str, ...]]] = [
            (c.matcher(config.anchor), c.captures, _literals(c)) for c in compiled]
        self.field = config.field
        self.first_only = config.break_on_match
        self.keep_empty = config.keep_empty_captures

    def apply(self, event: Event) -> Event:
        text = text_of(event, self.field)
        matched = False
        for match_fn, captures, needles in self.matchers:
            if needles and not (needles[0] in text if len(needles) == 1
                                else has_literal(needles, text)):
                continue
            match = match_fn(text)
            if match is None:
                continue
            store_captures(match, captures, event, self.keep_empty)
            if self.first_only:
                return event
            matched = True
        if not matched:
            raise StepFailure(self.failure)
        return event


class GrokStep(CaptureStep):
    """`type: grok`."""

    config_model = GrokConfig

    def __init__(self, config: GrokConfig, context: Any) -> None:
        definitions, issues = collect_definitions(config, context)
        if issues:
            raise ConfigError(issues[0][1])
        try:
            compiled = compile_patterns(config, definitions)
        except GrokError as exc:
            raise ConfigError(str(exc)) from None
        super().__init__(config, context, compiled)
