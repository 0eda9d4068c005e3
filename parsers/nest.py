"""The `nest` step: a JSON record's keys moved under a vendor prefix and flattened into dotted
fields (`eventName` -> `aws.cloudtrail.eventName`, `{"actor": {"id": 1}}` -> `okta.actor.id`).

JSON sources keep a sender's keys as they are; vendor pipelines then own the namespace their
dataset's field names live in. The step works on the event's own top-level keys (the record a
JSON source decoded) or on one field holding an object or JSON text (e.g. Azure's `properties`).
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import Field

from core.config import ValidationContext
from core.events import MESSAGE, TIMESTAMP, Event
from core.nesting import DEFAULT_MAX_DEPTH, nesting_over, too_deep_reason
from core.provenance import WrittenName, under
from core.step import Step, StepConfig, StepFailure
from parsers.json import flatten_object

RESERVED_PREFIX = "vigil."


def object_field(event: Event, name: str) -> dict[str, Any] | None:
    """The object field `name` holds, decoded when it is JSON text; None when it is missing.
    Anything else is a StepFailure naming what the field holds."""
    raw = event.get(name)
    if raw is None:
        return None
    if isinstance(raw, (str, bytes)):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise StepFailure(f"{name} is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise StepFailure(f"{name} holds {type(raw).__name__}, not an object")
    if nesting_over(raw, DEFAULT_MAX_DEPTH):
        raise StepFailure(f"{name}: {too_deep_reason(DEFAULT_MAX_DEPTH)}")
    return raw


class NestConfig(StepConfig):
    """Move a record's keys under `target.`, flattening nested objects into dotted keys:
    `{type: nest, target: aws.cloudtrail}` turns a CloudTrail record's `userIdentity.type` into
    `aws.cloudtrail.userIdentity.type`. Keys starting with `vigil.` never move."""

    type: Literal["nest"] = "nest"
    field: str | None = Field(
        None, description="field holding the object (or JSON object text) to nest; absent: the "
        "event's own top-level keys")
    target: str = Field("", description="prefix of the nested fields; empty: flatten in place")
    exclude: list[str] = Field(
        default_factory=lambda: [TIMESTAMP, MESSAGE],
        description="top-level keys left where they are (whole-event mode)")
    exclude_prefixes: list[str] = Field(
        default_factory=list, description="top-level keys starting with one of these are left "
        "where they are (whole-event mode), e.g. what an earlier nest step wrote")
    rename: dict[str, str] = Field(
        default_factory=dict, description="top-level key -> name used under the target "
        "(applied instead of `capitalize` for that key)")
    capitalize: bool = Field(False, description="upper-case the first letter of each top-level "
                                                "key (`resultType` -> `ResultType`)")
    keep_json: list[str] = Field(
        default_factory=list, description="top-level keys whose object or list value is also "
        "kept whole, as JSON text, under `target.key` (for rules that search the whole value)")
    ignore_missing: bool = Field(False, description="an event without `field` passes unchanged")
    overwrite: bool = Field(True, description="nested values replace fields already present")
    remove_field: bool = Field(True, description="remove `field` (or the moved top-level keys) "
                                                 "once nested")
    max_depth: int = Field(32, ge=1, description="deeper subtrees are kept as one value")

    def written_fields(self, context: ValidationContext) -> list[WrittenName]:
        names: list[WrittenName] = []
        if self.target:
            names.append((("target",), under(self.target), True))
        # A renamed key is written as it is named and flattened under its name.
        for key, name in self.rename.items():
            names += [(("rename", key), under(self.target, name), False),
                      (("rename", key), under(self.target, name) + ".", True)]
        if self.field is not None and self.remove_field:
            names.append((("field",), self.field, False))
        return names


class NestStep(Step):
    """`type: nest`."""

    config_model = NestConfig
    names_from_input = True

    def __init__(self, config: NestConfig, context: Any) -> None:
        super().__init__(config, context)
        self.prefix = f"{config.target}." if config.target else ""
        self.exclude = frozenset(config.exclude)
        self.exclude_prefixes = (RESERVED_PREFIX, *config.exclude_prefixes,
                                 *((self.prefix,) if self.prefix else ()))
        self.keep_json = frozenset(config.keep_json)
        self.rename = dict(config.rename)

    def apply(self, event: Event) -> Event:
        config = self.config
        if config.field is not None:
            found = self._record_of(event)
            if found is not None:
                self._write(found, event)
            return event
        record = {key: value for key, value in event.items()
                  if key not in self.exclude and not key.startswith(self.exclude_prefixes)}
        if config.remove_field:
            for key in record:
                del event[key]
        self._write(record, event)
        return event

    def _record_of(self, event: Event) -> dict[str, Any] | None:
        name = self.config.field
        assert name is not None
        record = object_field(event, name)
        if record is None:
            if self.config.ignore_missing:
                return None
            raise StepFailure(f"field {name!r} is missing")
        if self.config.remove_field:
            event.pop(name, None)
        return record

    def _write(self, record: dict[str, Any], event: Event) -> None:
        config = self.config
        out: dict[str, Any] = {}
        for key, value in record.items():
            name = self.rename.get(key)
            if name is None:
                name = key[:1].upper() + key[1:] if config.capitalize else key
            base = self.prefix + name
            if key in self.keep_json and isinstance(value, (dict, list)):
                out[base] = orjson.dumps(value, default=str).decode()
            if isinstance(value, dict) and value:
                flatten_object(value, base + ".", out, config.max_depth - 1)
            else:
                out[base] = value
        # JSON null (and {}) say "no value": the field stays absent, as Sigma's `field: null`
        # expects.
        out = {name: value for name, value in out.items() if value is not None and value != {}}
        if config.overwrite:
            event.update(out)
        else:
            for name, value in out.items():
                event.setdefault(name, value)
