"""The `lookup` step: add fields from a CSV or YAML table keyed by an event field.

E.g. `user.name` -> department and VIP flag, `host.name` -> asset criticality. The table is read
once into a dict from key to the fields to set, and read again when the file changes (checked on
the daemon's tick); a changed table that no longer loads keeps the previous one.

CSV tables have a header row; cells are stripped and an empty cell sets nothing. YAML tables are
either a list of rows (mappings) or a mapping from key to row, the key then being the
`key_column` value. When a key appears twice the later row wins (counted in `duplicate_keys`).
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator

from core.config import ConfigIssue, ValidationContext
from core.events import Event
from core.provenance import WrittenName
from core.reloading import (
    EnrichmentFileError,
    ReloadingFile,
    file_stats,
    missing_file_message,
)
from core.step import Step, StepConfig, StepContext

log = logging.getLogger(__name__)

TableFormat = Literal["auto", "csv", "yaml"]
SUFFIX_FORMATS = {".csv": "csv", ".yaml": "yaml", ".yml": "yaml"}


class LookupConfig(StepConfig):
    type: Literal["lookup"] = "lookup"
    table: Path = Field(description="CSV or YAML file, relative to conf.d; keep tables in a "
                        "subdirectory (conf.d/enrich/): conf.d/*.yaml are read as configuration")
    format: TableFormat = Field("auto", description="auto: by extension (.csv, .yaml/.yml)")
    delimiter: str = Field(",", min_length=1, max_length=1, description="CSV delimiter")
    key_field: str = Field(description="event field whose value is looked up, e.g. user.name")
    key_column: str = Field(description="table column holding the keys")
    fields: dict[str, str] = Field(description="table column -> event field it is copied to")
    ignore_case: bool = Field(False, description="keys match case-insensitively")
    defaults: dict[str, Any] = Field(
        default_factory=dict, description="column -> value set when the event's key is not in "
        "the table (nothing is set for events without the key field)")
    overwrite: bool = Field(True, description="replace values the event already has")

    @field_validator("fields")
    @classmethod
    def _some_fields(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("map at least one column to an event field")
        return value

    def written_fields(self, context: ValidationContext) -> list[WrittenName]:
        return [(("fields", column), name, False) for column, name in self.fields.items()]

    def semantic_errors(self, context: ValidationContext) -> list[ConfigIssue]:
        path = context.resolve(self.table)
        try:
            table = read_table(path, self.format, self.key_column, self.delimiter)
        except EnrichmentFileError as exc:
            return [(("table",), str(exc))]
        issues: list[ConfigIssue] = []
        known = table.columns
        if self.key_column not in known:
            issues.append((("key_column",), f"column {self.key_column!r} is not in {path}"
                           f"{_close(self.key_column, known)}; columns: {', '.join(known)}"))
        for column in self.fields:
            if column not in known:
                issues.append((("fields", column), f"column {column!r} is not in {path}"
                               f"{_close(column, known)}"))
        for column in self.defaults:
            if column not in self.fields:
                issues.append((("defaults", column), f"{column!r} is not a column of `fields`"))
        return issues


def _close(name: str, choices: list[str]) -> str:
    found = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" (did you mean {found[0]!r}?)" if found else ""


@dataclass
class Table:
    """A table as read: its columns (in first-seen order) and rows with their line numbers."""

    columns: list[str]
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


def read_table(path: Path, fmt: TableFormat, key_column: str, delimiter: str = ",") -> Table:
    """Read a CSV or YAML table; EnrichmentFileError says what is wrong with the file."""
    problem = missing_file_message("lookup table", path)
    if problem:
        raise EnrichmentFileError(problem)
    if fmt == "auto":
        guessed = SUFFIX_FORMATS.get(path.suffix.lower())
        if guessed is None:
            raise EnrichmentFileError(f"cannot tell the format of {path} from its extension; "
                                      "set `format: csv` or `format: yaml`")
        fmt = "csv" if guessed == "csv" else "yaml"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise EnrichmentFileError(f"cannot read lookup table {path}: {exc}") from None
    if fmt == "csv":
        return _csv_table(path, text, delimiter)
    return _yaml_table(path, text, key_column)


def _csv_table(path: Path, text: str, delimiter: str) -> Table:
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    try:
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise EnrichmentFileError(f"lookup table {path} has no header row")
        columns = [h.strip() for h in header]
        duplicated = sorted({c for c in columns if columns.count(c) > 1})
        if duplicated or "" in columns:
            what = f"repeats column(s) {', '.join(duplicated)}" if duplicated else \
                "has an unnamed column"
            raise EnrichmentFileError(f"lookup table {path} {what}")
        table = Table(columns)
        for cells in reader:
            if not cells or not any(c.strip() for c in cells):
                continue
            # Extra cells beyond the header are ignored; missing cells set nothing.
            row = {c: v.strip() for c, v in zip(columns, cells, strict=False) if v.strip()}
            table.rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise EnrichmentFileError(f"lookup table {path} line {reader.line_num}: {exc}") from None
    return table


def _yaml_table(path: Path, text: str, key_column: str) -> Table:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise EnrichmentFileError(f"lookup table {path}{where}: invalid YAML") from None
    rows: Iterable[tuple[int, Any]]
    if data is None:
        rows = []
    elif isinstance(data, list):
        rows = enumerate(data, 1)
    elif isinstance(data, dict):
        rows = ((i, {**v, key_column: k} if isinstance(v, dict) else v)
                for i, (k, v) in enumerate(data.items(), 1))
    else:
        raise EnrichmentFileError(f"lookup table {path} must be a list of rows or a mapping "
                                  "from key to row")
    columns: dict[str, None] = {}
    table = Table([])
    for index, row in rows:
        if not isinstance(row, dict):
            raise EnrichmentFileError(f"lookup table {path} row {index} is not a mapping")
        clean = {str(k): v for k, v in row.items() if v is not None}
        columns.update(dict.fromkeys(clean))
        table.rows.append((index, clean))
    table.columns = list(columns)
    return table


def lookup_key(value: Any, ignore_case: bool) -> str | None:
    """The string a value is matched as (numbers by their text), None when it cannot be one."""
    if isinstance(value, str):
        text = value.strip()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        text = str(value)
    else:
        return None
    return text.casefold() if ignore_case else text


@dataclass
class LookupIndex:
    """Key -> the (event field, value) pairs a match sets."""

    entries: dict[str, tuple[tuple[str, Any], ...]]
    duplicate_keys: int = 0
    rows_without_key: int = 0


def build_index(path: Path, config: LookupConfig) -> LookupIndex:
    """Read the table and index it by key; raises EnrichmentFileError on an unusable table."""
    table = read_table(path, config.format, config.key_column, config.delimiter)
    missing = [c for c in (config.key_column, *config.fields) if c not in table.columns]
    if missing:
        raise EnrichmentFileError(f"lookup table {path} lacks column(s) {', '.join(missing)}")
    index = LookupIndex({})
    targets = list(config.fields.items())
    for _, row in table.rows:
        key = lookup_key(row.get(config.key_column), config.ignore_case)
        if not key:
            index.rows_without_key += 1
            continue
        if key in index.entries:
            index.duplicate_keys += 1
        index.entries[key] = tuple((target, row[column]) for column, target in targets
                                   if column in row)
    if index.duplicate_keys or index.rows_without_key:
        log.warning("lookup table has repeated keys or rows without a key",
                    extra={"path": str(path), "duplicate_keys": index.duplicate_keys,
                           "rows_without_key": index.rows_without_key})
    return index


@dataclass
class LookupCounts:
    matched: int = 0
    defaulted: int = 0
    missed: int = 0


class LookupStep(Step):
    """`type: lookup`."""

    config_model = LookupConfig

    def __init__(self, config: LookupConfig, context: StepContext) -> None:
        super().__init__(config, context)
        self.table = ReloadingFile(context.resolve(config.table),
                                   functools.partial(build_index, config=config),
                                   what="lookup table")
        self.key_field = config.key_field
        self.ignore_case = config.ignore_case
        self.overwrite = config.overwrite
        self.defaults = tuple((config.fields[c], v) for c, v in config.defaults.items())
        self.counts = LookupCounts()

    def apply(self, event: Event) -> Event:
        key = lookup_key(event.get(self.key_field), self.ignore_case)
        if not key:
            return event
        pairs = self.table.value.entries.get(key)
        if pairs is not None:
            self.counts.matched += 1
        elif self.defaults:
            self.counts.defaulted += 1
            pairs = self.defaults
        else:
            self.counts.missed += 1
            return event
        if self.overwrite:
            event.update(pairs)
        else:
            for name, value in pairs:
                event.setdefault(name, value)
        return event

    def stats(self) -> dict[str, int]:
        return file_stats([self.table], dataclasses.asdict(self.counts))

    def maintain(self) -> None:
        """Re-read the table when its file changed."""
        self.table.refresh()
