"""The `json` step: decode a JSON text field with orjson into flat dotted fields or a subtree.

`{"user": {"name": "a"}}` becomes `user.name = "a"` (under `target.` when a target is set);
lists are kept as lists. With `flatten: false` the decoded object is kept whole under `target`.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import Field, model_validator

from core.config import ValidationContext
from core.events import Event
from core.nesting import DEFAULT_MAX_DEPTH, nesting_over, too_deep_reason
from core.provenance import WrittenName, under
from core.step import Step, StepConfig, StepFailure


def flatten_object(value: dict[str, Any], prefix: str = "", out: dict[str, Any] | None = None,
                   max_depth: int = 32) -> dict[str, Any]:
    """Nested mappings -> one level of dotted keys (`a.b.c`); other values kept as they are.
    Beyond `max_depth` the rest of a subtree is kept as a value."""
    result: dict[str, Any] = {} if out is None else out
    stack = [(value, prefix, 0)]
    while stack:
        current, base, depth = stack.pop()
        for key, item in current.items():
            name = f"{base}{key}"
            if isinstance(item, dict) and item and depth < max_depth:
                stack.append((item, name + ".", depth + 1))
            else:
                result[name] = item
    return result


class JsonConfig(StepConfig):
    type: Literal["json"] = "json"
    field: str = Field("message", description="field holding the JSON text")
    target: str | None = Field(None, description="prefix (or, without flatten, the field) the "
                                                 "decoded values go under; default: top level")
    flatten: bool = Field(True, description="nested objects become dotted keys")
    remove_field: bool = Field(False, description="remove the source field after decoding")
    overwrite: bool = Field(True, description="decoded values replace existing fields")

    def written_fields(self, context: ValidationContext) -> list[WrittenName]:
        names: list[WrittenName] = [(("field",), self.field, False)] if self.remove_field else []
        if self.target is None:
            return names  # keys from the input: the runner keeps provenance against them
        if not self.flatten:
            return [*names, (("target",), self.target, False)]
        return [*names, (("target",), under(self.target), True)]

    @model_validator(mode="after")
    def _subtree_needs_target(self) -> JsonConfig:
        if not self.flatten and not self.target:
            raise ValueError("flatten: false keeps the object whole and needs a target")
        return self


class JsonStep(Step):
    """`type: json`."""

    config_model = JsonConfig
    names_from_input = True

    def __init__(self, config: JsonConfig, context: Any) -> None:
        super().__init__(config, context)
        self.prefix = f"{config.target}." if config.target else ""

    def apply(self, event: Event) -> Event:
        config = self.config
        raw = event.get(config.field)
        if raw is None:
            raise StepFailure(f"field {config.field!r} is missing")
        if isinstance(raw, dict):
            decoded: Any = raw
        else:
            try:
                decoded = orjson.loads(raw if isinstance(raw, (str, bytes)) else str(raw))
            except orjson.JSONDecodeError as exc:
                raise StepFailure(f"{config.field} is not JSON: {exc}") from None
        if nesting_over(decoded, DEFAULT_MAX_DEPTH):  # a poison value for every consumer
            raise StepFailure(f"{config.field}: {too_deep_reason(DEFAULT_MAX_DEPTH)}")
        if config.remove_field:
            event.pop(config.field, None)
        if not config.flatten:
            event[config.target] = decoded
            return event
        if not isinstance(decoded, dict):
            raise StepFailure(f"{config.field} holds JSON {type(decoded).__name__}, not an object")
        fields = flatten_object(decoded, self.prefix)
        if config.overwrite:
            event.update(fields)
        else:
            for name, value in fields.items():
                event.setdefault(name, value)
        return event
