"""Field normalizers: rename, copy, set, remove, convert, lowercase, map_values.

Each is one small step over the flat event; together they bring a vendor's names and values to
the common (ECS-style) model. `convert` reuses the lake's type converters, so a field converted
here is exactly what its Parquet column will hold.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from core.config import ValidationContext
from core.events import Event
from core.provenance import WrittenName
from core.schema import CONVERTERS, FieldType
from core.step import Step, StepConfig, StepFailure


class RenameConfig(StepConfig):
    type: Literal["rename"] = "rename"
    fields: dict[str, str] = Field(description="old name -> new name")
    overwrite: bool = Field(True, description="replace a value already under the new name")

    def written_fields(self, context: ValidationContext) -> list[WrittenName]:
        return [(("fields", old), name, False) for old, name in self.fields.items()
                for name in (old, name)]  # the old name is removed: a change too


class RenameStep(Step):
    """`type: rename`: move values to new names (absent fields are skipped)."""

    config_model = RenameConfig

    def __init__(self, config: RenameConfig, context: Any) -> None:
        super().__init__(config, context)
        self.pairs = list(config.fields.items())
        self.overwrite = config.overwrite

    def apply(self, event: Event) -> Event:
        for old, new in self.pairs:
            if old in event and (self.overwrite or new not in event):
                event[new] = event.pop(old)
        return event


class CopyConfig(StepConfig):
    type: Literal["copy"] = "copy"
    fields: dict[str, str] = Field(description="source name -> target name")
    overwrite: bool = True

    def written_fields(self, context: ValidationContext) -> list[WrittenName]:
        return [(("fields", source), target, False) for source, target in self.fields.items()]


class CopyStep(Step):
    """`type: copy`: copy values to further names."""

    config_model = CopyConfig

    def __init__(self, config: CopyConfig, context: Any) -> None:
        super().__init__(config, context)
        self.pairs = list(config.fields.items())
        self.overwrite = config.overwrite

    def apply(self, event: Event) -> Event:
        for source, target in self.pairs:
            value = event.get(source)
            if value is not None and (self.overwrite or target not in event):
                event[target] = value
        return event


class SetConfig(StepConfig):
    type: Literal["set"] = "set"
    fields: dict[str, Any] = Field(description="name -> constant value")
    overwrite: bool = True

    def written_fields(self, context: ValidationContext) -> list[WrittenName]:
        return [(("fields", name), name, False) for name in self.fields]


class SetStep(Step):
    """`type: set`: constant values (e.g. `event.category: authentication`)."""

    config_model = SetConfig

    def __init__(self, config: SetConfig, context: Any) -> None:
        super().__init__(config, context)
        self.pairs = list(config.fields.items())
        self.overwrite = config.overwrite

    def apply(self, event: Event) -> Event:
        for name, value in self.pairs:
            if self.overwrite or name not in event:
                event[name] = value
        return event


class RemoveConfig(StepConfig):
    type: Literal["remove"] = "remove"
    fields: list[str] = Field(default_factory=list, description="names to remove")
    prefixes: list[str] = Field(default_factory=list,
                                description="remove every field starting with one of these")

    def written_fields(self, context: ValidationContext) -> list[WrittenName]:
        return [*((("fields", i), name, False) for i, name in enumerate(self.fields)),
                *((("prefixes", i), prefix, True) for i, prefix in enumerate(self.prefixes))]


class RemoveStep(Step):
    """`type: remove`: drop fields by name or prefix."""

    config_model = RemoveConfig

    def __init__(self, config: RemoveConfig, context: Any) -> None:
        super().__init__(config, context)
        self.names = list(config.fields)
        self.prefixes = tuple(config.prefixes)

    def apply(self, event: Event) -> Event:
        for name in self.names:
            event.pop(name, None)
        if self.prefixes:
            for name in [k for k in event if k.startswith(self.prefixes)]:
                del event[name]
        return event


class ConvertConfig(StepConfig):
    type: Literal["convert"] = "convert"
    fields: dict[str, FieldType] | None = Field(
        None, description="name -> type; absent: every field the pipeline's schema types")
    strict: bool = Field(False, description="a value that does not convert fails the step "
                                            "(otherwise it is removed and the event goes on)")

    def written_fields(self, context: ValidationContext) -> list[WrittenName]:
        return [(("fields", name), name, False) for name in self.fields or ()]


class ConvertStep(Step):
    """`type: convert`: values to the schema types (string, int, float, bool, ip, timestamp,
    list), with the same converters the lake uses."""

    config_model = ConvertConfig

    def __init__(self, config: ConvertConfig, context: Any) -> None:
        super().__init__(config, context)
        types = config.fields if config.fields is not None else context.schema
        self.converters = [(name, CONVERTERS[t]) for name, t in types.items()]
        self.strict = config.strict

    def apply(self, event: Event) -> Event:
        for name, convert in self.converters:
            value = event.get(name)
            if value is None:
                continue
            converted = convert(value)
            if converted is None:
                if self.strict:
                    raise StepFailure(f"cannot convert {name}={value!r}")
                del event[name]
            else:
                event[name] = converted
        return event


class LowercaseConfig(StepConfig):
    type: Literal["lowercase"] = "lowercase"
    fields: list[str]

    def written_fields(self, context: ValidationContext) -> list[WrittenName]:
        return [(("fields", i), name, False) for i, name in enumerate(self.fields)]


class LowercaseStep(Step):
    """`type: lowercase`: text values to lower case (user names, domains, actions)."""

    config_model = LowercaseConfig

    def apply(self, event: Event) -> Event:
        for name in self.config.fields:
            value = event.get(name)
            if isinstance(value, str):
                event[name] = value.lower()
        return event


class MapValuesConfig(StepConfig):
    type: Literal["map_values"] = "map_values"
    field: str = Field(description="field whose value is looked up")
    target: str | None = Field(None, description="where the mapped value goes; default: field")
    values: dict[str, Any] = Field(description="value -> replacement")
    default: Any = Field(None, description="used when the value is not in `values` (absent: "
                                           "the value is left as it is)")
    ignore_case: bool = False

    def written_fields(self, context: ValidationContext) -> list[WrittenName]:
        if self.target is not None:
            return [(("target",), self.target, False)]
        return [(("field",), self.field, False)]

    @model_validator(mode="after")
    def _keys_are_text(self) -> MapValuesConfig:
        if self.ignore_case and len({k.lower() for k in self.values}) != len(self.values):
            raise ValueError("values differ only in case while ignore_case is set")
        return self


class MapValuesStep(Step):
    """`type: map_values`: vendor values to common ones (e.g. `deny` -> `failure`)."""

    config_model = MapValuesConfig

    def __init__(self, config: MapValuesConfig, context: Any) -> None:
        super().__init__(config, context)
        self.fold = config.ignore_case
        self.values = {(k.lower() if self.fold else k): v for k, v in config.values.items()}
        self.has_default = "default" in config.model_fields_set
        self.target = config.target or config.field

    def apply(self, event: Event) -> Event:
        value = event.get(self.config.field)
        if value is None:
            return event
        key = str(value)
        if self.fold:
            key = key.lower()
        if key in self.values:
            event[self.target] = self.values[key]
        elif self.has_default:
            event[self.target] = self.config.default
        elif self.target != self.config.field:
            event[self.target] = value
        return event
