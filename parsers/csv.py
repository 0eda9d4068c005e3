"""The `csv` step: one delimited row into named columns (Palo Alto, Check Point, Squid ...).

Parsing is the standard library's C `csv` reader; columns named `_` are skipped, so a vendor
format's FUTURE_USE columns need no names. A row with more or fewer values than columns is a
failure by default, since a shifted row would put values under the wrong names.
"""

from __future__ import annotations

import csv
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from core.config import ConfigIssue, ValidationContext
from core.events import Event
from core.provenance import WrittenName, under
from core.step import Step, StepConfig, StepFailure
from parsers.grok.expression import field_name
from parsers.grok.step import text_of

SKIP = "_"


class CsvConfig(StepConfig):
    """Split one CSV row into named fields: `columns: [_, receive_time, serial, type, ...]`."""

    type: Literal["csv"] = "csv"
    field: str = Field("message", description="field holding the row")
    columns: list[str] = Field(description="field name per column, in order; `_` skips a "
                                           "column")
    delimiter: str = Field(",", description="one character between values (`\\t` for tabs)")
    quote_char: str = Field('"', description="one character that quotes a value holding the "
                                             "delimiter; a doubled one inside is a literal")
    escape_char: str | None = Field(None, description="one character that escapes the "
                                                      "delimiter or quote outside quoting")
    skip_initial_space: bool = Field(False, description="ignore spaces right after a "
                                                        "delimiter")
    trim: bool = Field(False, description="strip whitespace around every value")
    target: str | None = Field(None, description="put the fields under `target.`; default: "
                                                 "top level")
    keep_empty_values: bool = Field(False, description="keep columns whose value is empty")
    missing_columns: Literal["fail", "ignore"] = Field(
        "fail", description="a row with fewer values than columns: fail the step, or fill "
        "what is there")
    extra_columns: Literal["fail", "ignore"] = Field(
        "fail", description="a row with more values than columns: fail the step, or drop the "
        "extra values (vendors append columns in new releases)")

    @field_validator("delimiter", "quote_char", "escape_char")
    @classmethod
    def _one_character(cls, value: str | None) -> str | None:
        if value is not None and len(value) != 1:
            raise ValueError(f"must be exactly one character, got {value!r}")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> CsvConfig:
        specials = [c for c in (self.delimiter, self.quote_char, self.escape_char) if c]
        if len(set(specials)) != len(specials):
            raise ValueError("delimiter, quote_char and escape_char must differ")
        return self

    def written_fields(self, context: ValidationContext) -> list[WrittenName]:
        return [(("columns", i), under(self.target, field_name(name) or name), False)
                for i, name in enumerate(self.columns) if name != SKIP]

    def semantic_errors(self, context: ValidationContext) -> list[ConfigIssue]:
        if not self.columns:
            return [(("columns",), "needs at least one column name")]
        issues: list[ConfigIssue] = []
        first: dict[str, int] = {}
        for index, name in enumerate(self.columns):
            if name == SKIP:
                continue
            if not name.strip():
                issues.append((("columns", index), "column name is empty (use `_` to skip a "
                                                   "column)"))
            elif field_name(name) != name:
                issues.append((("columns", index), f"column name {name!r} is not a field "
                                                   "name (letters, digits, _ @ . -)"))
            elif name in first:
                issues.append((("columns", index), f"duplicate column {name!r} (first at "
                                                   f"columns[{first[name]}])"))
            else:
                first[name] = index
        if not first and not issues:
            issues.append((("columns",), "every column is skipped (`_`)"))
        return issues


class CsvStep(Step):
    """`type: csv`."""

    config_model = CsvConfig

    def __init__(self, config: CsvConfig, context: Any) -> None:
        super().__init__(config, context)
        prefix = f"{config.target}." if config.target else ""
        self.names: list[str | None] = [None if c == SKIP else prefix + c
                                        for c in config.columns]
        self.width = len(config.columns)
        self.field = config.field
        self.dialect: type[csv.Dialect] = type("StepDialect", (csv.excel,), {
            "delimiter": config.delimiter, "quotechar": config.quote_char,
            "escapechar": config.escape_char, "skipinitialspace": config.skip_initial_space})
        self.trim = config.trim
        self.keep_empty = config.keep_empty_values
        self.fail_missing = config.missing_columns == "fail"
        self.fail_extra = config.extra_columns == "fail"

    def apply(self, event: Event) -> Event:
        text = text_of(event, self.field)
        try:
            rows = list(csv.reader((text,), self.dialect))
        except csv.Error as exc:
            raise StepFailure(f"{self.field} is not one CSV row: {exc}") from None
        values = rows[0] if rows else []
        count = len(values)
        if count != self.width:
            if count < self.width and self.fail_missing:
                raise StepFailure(f"{count} values for {self.width} columns")
            if count > self.width and self.fail_extra:
                raise StepFailure(f"{count} values for {self.width} columns")
        for name, value in zip(self.names, values, strict=False):
            if name is None:
                continue
            if self.trim:
                value = value.strip()
            if value or self.keep_empty:
                event[name] = value
        return event
