"""Steps that decide whether an event goes on at all: `drop` and `sample`."""

from __future__ import annotations

import zlib
from typing import Any, Literal

from pydantic import Field, model_validator

from core.events import Event
from core.step import Step, StepConfig


class DropConfig(StepConfig):
    type: Literal["drop"] = "drop"

    @model_validator(mode="after")
    def _needs_condition(self) -> DropConfig:
        if self.if_ is None:
            raise ValueError("drop needs an `if:` condition (a pipeline that keeps nothing is "
                             "almost certainly a mistake)")
        return self


class DropStep(Step):
    """`type: drop`: discard the events its `if:` selects (counted as dropped)."""

    config_model = DropConfig

    def apply(self, event: Event) -> None:
        return None


class SampleConfig(StepConfig):
    type: Literal["sample"] = "sample"
    rate: int = Field(gt=0, description="keep 1 event in `rate`")
    key: str | None = Field(None, description="keep or drop all events with the same value of "
                                              "this field together")


class SampleStep(Step):
    """`type: sample`: keep one event in `rate`, deterministically. With `key`, the decision is a
    stable hash of the key's value (CRC32, the same across restarts and hosts, unlike `hash`)."""

    config_model = SampleConfig

    def __init__(self, config: SampleConfig, context: Any) -> None:
        super().__init__(config, context)
        self.rate = config.rate
        self.key = config.key
        self.seen = 0

    def apply(self, event: Event) -> Event | None:
        if self.key is not None:
            value = event.get(self.key)
            digest = zlib.crc32(str(value).encode("utf-8", "replace"))
            return event if digest % self.rate == 0 else None
        self.seen += 1
        return event if self.seen % self.rate == 1 or self.rate == 1 else None
