"""The `regex` step: Python `re` expressions whose named groups become dotted event fields.

`(?P<source.ip>...)` is not a valid Python group name, so groups are renamed internally as grok
captures are (`(?<source.port:int>\\d+)` casts like grok's `:int`). Only the C `re` engine is
used; an expression it rejects is a validation error.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from core.config import ConfigIssue, ValidationContext
from core.errors import ConfigError
from core.provenance import under
from parsers.grok.expression import CompiledExpression, GrokError, compile_expression
from parsers.grok.step import CaptureConfig, CaptureStep

NO_MATCH = "no regex matched"
# `%{IP:source.ip}`: a grok reference, which `re` reads as literal text.
GROK_REFERENCE = re.compile(r"%\{\w+(?::[\w.@-]+(?::\w+)?)?\}")


class RegexConfig(CaptureConfig):
    """Extract fields with Python regular expressions: each named group writes the field it
    names, `(?P<source.ip>[^ ]+)` or `(?<source.port:int>\\d+)` (`:int` / `:float` convert)."""

    type: Literal["regex"] = "regex"

    def compiled_for_check(self, context: ValidationContext) -> list[CompiledExpression | None]:
        found: list[CompiledExpression | None] = []
        for pattern in self.patterns:
            try:
                found.append(compile_regex_pattern(pattern, under(self.target)))
            except GrokError:
                found.append(None)
        return found

    def semantic_errors(self, context: ValidationContext) -> list[ConfigIssue]:
        issues: list[ConfigIssue] = []
        for index, pattern in enumerate(self.patterns):
            grok = GROK_REFERENCE.search(pattern)
            if grok is not None:
                issues.append((("patterns", index), f"{grok.group()} is grok syntax, which a "
                                                    "regex step matches literally: use "
                                                    "`type: grok`"))
                continue
            try:
                compile_regex_pattern(pattern, "")
            except GrokError as exc:
                issues.append((("patterns", index), str(exc)))
        return issues


def compile_regex_pattern(pattern: str, prefix: str) -> CompiledExpression:
    """One expression with its named groups as capture targets, compiled with `re`."""
    return compile_expression(pattern, {}, engine="re", prefix=prefix, grok=False)


class RegexStep(CaptureStep):
    """`type: regex`."""

    config_model = RegexConfig
    failure = NO_MATCH

    def __init__(self, config: RegexConfig, context: Any) -> None:
        prefix = f"{config.target}." if config.target else ""
        try:
            compiled = [compile_regex_pattern(p, prefix) for p in config.patterns]
        except GrokError as exc:
            raise ConfigError(str(exc)) from None
        super().__init__(config, context, compiled)
