"""The `kv` step: `key=value` pairs into fields, as FortiGate, Sophos, Juniper and many others
write them (`srcip=10.0.0.1 msg="User admin logged in" action=accept`).

The scanner is one regex built from the step's separators and quotes and run with `findall`,
so the per-pair work stays in C; a hand-written character loop was 4x slower on FortiGate lines.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from core.config import ValidationContext
from core.events import Event
from core.provenance import WrittenName, under
from core.step import Step, StepConfig, StepFailure
from parsers.grok.step import text_of


class KvConfig(StepConfig):
    """Split `key=value` pairs: `date=2024-05-14 srcip=10.1.1.1 msg="a quoted value"`. A pair
    starts after a separator (or at the start); tokens without the value separator are skipped.
    """

    type: Literal["kv"] = "kv"
    field: str = Field("message", description="field holding the pairs")
    field_split: str = Field(" \t", min_length=1, description="characters that separate pairs "
                                                              "(a run of them counts as one)")
    value_split: str = Field("=", min_length=1, description="text between a key and its value")
    quotes: list[str] = Field(['"', "'"], description="quote characters: a value that starts "
                                                      "with one runs to the matching close quote")
    unescape: bool = Field(True, description="inside quotes a backslash escapes the quote "
                                             "character or a backslash")
    value_until_next_key: bool = Field(
        False, description="an unquoted value runs on over separators until the next "
        "`key=`: `msg=User logged in src=10.0.0.1` keeps `User logged in`")
    trim_key: str = Field("", description="characters stripped from both ends of keys")
    trim_value: str = Field("", description="characters stripped from both ends of values")
    transform_key: Literal["none", "lower", "upper"] = Field("none", description="key case")
    include_keys: list[str] = Field(default_factory=list,
                                    description="keep only these keys (as written, after trim)")
    exclude_keys: list[str] = Field(default_factory=list, description="skip these keys")
    prefix: str = Field("", description="prepended to every key (`fgt_` -> `fgt_srcip`)")
    target: str | None = Field(None, description="put the fields under `target.`; default: "
                                                 "top level")
    duplicate_keys: Literal["first", "last", "list"] = Field(
        "first", description="a key seen twice: keep the first value, the last, or all of them "
        "as a list")
    keep_empty_values: bool = Field(False, description="keep keys whose value is empty "
                                                       "(`user=` or `user=\"\"`)")


    def written_fields(self, context: ValidationContext) -> list[WrittenName]:
        prefix = under(self.target, self.prefix)
        return [(("target",) if self.target else ("prefix",), prefix, True),
                *((("include_keys", i), prefix + key, False)
                  for i, key in enumerate(self.include_keys))]
    @field_validator("quotes")
    @classmethod
    def _single_characters(cls, quotes: list[str]) -> list[str]:
        for quote in quotes:
            if len(quote) != 1:
                raise ValueError(f"a quote is one character, got {quote!r}")
        return quotes

    @model_validator(mode="after")
    def _separators_differ(self) -> KvConfig:
        shared = sorted(set(self.field_split) & (set(self.value_split) | set(self.quotes)))
        if shared:
            raise ValueError(f"field_split shares {''.join(shared)!r} with value_split or "
                             "quotes")
        if set(self.quotes) & set(self.value_split):
            raise ValueError("value_split and quotes share characters")
        return self


def _class(chars: str) -> str:
    return "".join(re.escape(c) for c in chars)


# Value groups in every pair regex: quoted by the first or second quote character, bare. Unused
# slots are groups that never match, so the hot loop reads fixed positions.
_FIXED_SLOTS = 3


def build_pair_regex(config: KvConfig) -> re.Pattern[str]:
    """The regex whose `findall` yields (key, quoted value, ..., bare value) per pair; at most
    one of the value groups is non-empty. A key starts only after a separator (or at the start):
    without that lookbehind a long token with no value separator is rescanned from each of its
    characters, which is quadratic."""
    fs = _class(config.field_split)
    vs = re.escape(config.value_split)
    key = f"[^{fs}{vs}]+" if len(config.value_split) == 1 else f"(?:(?!{vs})[^{fs}])+"
    values = []
    for quote in config.quotes:
        q = re.escape(quote)
        body = f"[^{q}\\\\]*(?:\\\\.[^{q}\\\\]*)*" if config.unescape else f"[^{q}]*"
        values.append(f"{q}({body}){q}(?![^{fs}])")
    values += ["(?!)()"] * (_FIXED_SLOTS - 1 - len(config.quotes))
    if config.value_until_next_key:
        # A run of separators continues the value unless a `key<value_split>` follows it.
        bare = f"([^{fs}]*(?:[{fs}]+(?!{key}{vs})[^{fs}]+)*)"
    else:
        bare = f"([^{fs}]*)"
    values.append(bare)
    return re.compile(f"(?<![^{fs}])({key}){vs}(?:{'|'.join(values)})", re.DOTALL)


class KvStep(Step):
    """`type: kv`."""

    config_model = KvConfig
    names_from_input = True

    def __init__(self, config: KvConfig, context: Any) -> None:
        super().__init__(config, context)
        self.findall = build_pair_regex(config).findall
        self.field = config.field
        self.name_prefix = (f"{config.target}." if config.target else "") + config.prefix
        self.include = frozenset(config.include_keys) or None
        self.exclude = frozenset(config.exclude_keys)
        self.trim_key = config.trim_key or None
        self.trim_value = config.trim_value or None
        self.transform = {"lower": str.lower, "upper": str.upper}.get(config.transform_key)
        self.duplicates = config.duplicate_keys
        self.keep_empty = config.keep_empty_values
        self.unescape = (re.compile(r"\\([\\" + _class("".join(config.quotes)) + "])")
                         if config.unescape and config.quotes else None)
        self.wide = len(config.quotes) >= _FIXED_SLOTS
        # The common case (FortiGate): first value of each key, nothing renamed or filtered.
        self.plain = (self.include is None and not self.exclude and self.trim_key is None and
                      self.trim_value is None and self.transform is None and
                      self.duplicates == "first" and not self.keep_empty)
        self.failure = f"no key{config.value_split}value pairs found"

    def apply(self, event: Event) -> Event:
        pairs = self.findall(text_of(event, self.field))
        if not pairs:
            raise StepFailure(self.failure)
        found: dict[str, Any] = {}
        plain, wide, unescape = self.plain, self.wide, self.unescape
        for groups in pairs:
            key = groups[0]
            value = "".join(groups[1:]) if wide else groups[1] or groups[2] or groups[3]
            if unescape is not None and not groups[-1] and "\\" in value:
                value = unescape.sub(r"\1", value)
            if plain:
                if value and key not in found:
                    found[key] = value
            else:
                self._add(found, key, value)
        if self.name_prefix:
            prefix = self.name_prefix
            found = {prefix + key: value for key, value in found.items()}
        event.update(found)
        return event

    def _add(self, found: dict[str, Any], key: str, value: str) -> None:
        if self.trim_key is not None:
            key = key.strip(self.trim_key)
        if self.include is not None and key not in self.include or key in self.exclude:
            return
        if self.trim_value is not None:
            value = value.strip(self.trim_value)
        if not value and not self.keep_empty:
            return
        if self.transform is not None:
            key = self.transform(key)
        if key not in found or self.duplicates == "last":
            found[key] = value
        elif self.duplicates == "list":
            previous = found[key]
            if isinstance(previous, list):
                previous.append(value)
            else:
                found[key] = [previous, value]
