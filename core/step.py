"""What every pipeline step is: a config model picked by `type:`, and `apply(event)`.

A step transforms one event in place and returns it, returns None to drop it, or raises
(`StepFailure` for an expected failure such as "no grok pattern matched"; anything else is a
bug in the step, caught all the same). The pipeline runner, not the step, decides what a failure
means (`on_failure`) and counts it, so steps stay small and never touch metrics or dead letters.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from core.conditions import Condition
from core.config import ComponentConfig, ValidationContext
from core.errors import VigilError
from core.events import Event
from core.provenance import WrittenName
from core.schema import FieldType

OnFailure = Literal["dead_letter", "continue", "drop"]


class StepFailure(VigilError):
    """An event the step cannot handle; the message is the reason kept in the dead letter."""


class StepConfig(ComponentConfig):
    """Keys every step has."""

    id: str | None = Field(None, description="name in metrics and dead letters; default "
                                             "`<index>-<type>`")
    if_: Condition | None = Field(None, alias="if",
                                  description="run the step only on events matching this")
    on_failure: OnFailure = Field(
        "dead_letter", description="dead_letter: the event leaves the pipeline for the tenant's "
        "dead-letter area; continue: the event goes on, marked with `vigil.pipeline_error`; "
        "drop: the event is discarded (counted)")

    model_config = ComponentConfig.model_config | {"populate_by_name": True}

    def written_fields(self, context: ValidationContext) -> list[WrittenName]:
        """The fields this step is configured to write, as (key path, name, is a prefix); the
        pipeline refuses provenance among them. Names that come from the input are not listed:
        the runner puts provenance back after every step whatever it wrote."""
        return []


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class StepContext(ValidationContext):
    """Runtime services a step is built with; `resolve` makes config paths absolute."""

    data_dir: Path = Path(".")
    pipeline_id: str = ""
    dataset: str = ""
    schema: dict[str, FieldType] = field(default_factory=dict)
    clock: Callable[[], datetime] = _utcnow


class Step(ABC):
    """One transformation; built once per pipeline (re)load."""

    config_model: ClassVar[type[StepConfig]]
    # The step writes keys named by its input (json, nest, kv, cef, leef, windows_event): the
    # runner puts provenance back right after it, so later steps see the daemon's values.
    # Every other step writes only names its config gives, checked at validation (and the
    # runner re-stamps once more after the last step whatever happened).
    names_from_input: ClassVar[bool] = False

    def __init__(self, config: Any, context: StepContext) -> None:
        self.config = config
        self.context = context

    @abstractmethod
    def apply(self, event: Event) -> Event | None:
        """Transform `event` (in place is fine) and return it; None drops it."""

    def stats(self) -> dict[str, int]:
        """Cumulative counts of what the step did beyond in/out/failed (an enricher's matches,
        misses, file reloads), reported to Prometheus by the runner once per batch."""
        return {}

    def maintain(self) -> None:  # noqa: B027 - optional hook, most steps need none
        """Housekeeping from the daemon's tick (e.g. reload a lookup file that changed)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release files and caches."""
