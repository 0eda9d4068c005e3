"""What every pipeline step is: a config model picked by `type:`, and `apply_batch(events)`.

The runner hands a step a batch (the events its `if:` selects) and gets a `StepResult` back:
what became of each event (kept, possibly as a new dict; dropped) and which failed, with the
reason. `apply_batch` defaults to a loop over `apply(event)`, which transforms one event in
place and returns it, returns None to drop it, or raises (`StepFailure` for an expected failure
such as "no grok pattern matched"; anything else is a bug in the step, caught all the same), so
simple steps stay simple; a step that can do better per batch (one lookup per distinct value)
overrides `apply_batch`. The pipeline runner, not the step, decides what a failure means
(`on_failure`) and counts it, so steps stay small and never touch metrics or dead letters.
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


def failure_reason(exc: Exception) -> str:
    """The dead-letter reason for an exception a step raised on an event."""
    return str(exc) if isinstance(exc, StepFailure) else f"{type(exc).__name__}: {exc}"


@dataclass(slots=True)
class StepResult:
    """What a step did to a batch: `outputs[i]` is what became of input `i` (the event, or a
    new dict standing for it; None when it was dropped or failed), `failures` maps the index
    of every input that failed to the reason. A failed input is left as the step left it (the
    runner marks it and goes on under `on_failure: continue`)."""

    outputs: list[Event | None]
    failures: dict[int, str] = field(default_factory=dict)

    @property
    def kept(self) -> list[Event]:
        """The events that go on, in input order."""
        return [event for event in self.outputs if event is not None]

    @property
    def failed(self) -> list[tuple[int, str]]:
        """(input index, reason) of every event that failed, in input order."""
        return sorted(self.failures.items())

    @property
    def dropped(self) -> int:
        """How many events the step dropped (not counting failures)."""
        return sum(1 for event in self.outputs if event is None) - len(self.failures)


def apply_each(step: Step, events: list[Event]) -> StepResult:
    """`step.apply` on each event alone: the default `apply_batch`, and what the runner falls
    back to when a step's own `apply_batch` raises (one bad event must not fail the rest)."""
    outputs: list[Event | None] = []
    failures: dict[int, str] = {}
    apply = step.apply
    for index, event in enumerate(events):
        try:
            outputs.append(apply(event))
        except Exception as exc:  # a step bug fails this event only, like a StepFailure
            outputs.append(None)
            failures[index] = failure_reason(exc)
    return StepResult(outputs, failures)


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

    def apply_batch(self, events: list[Event]) -> StepResult:
        """Every event of a batch; override to work on the batch as a whole. May change the
        events in place; must not raise for one event (put it in `failures` instead)."""
        return apply_each(self, events)

    def stats(self) -> dict[str, int]:
        """Cumulative counts of what the step did beyond in/out/failed (an enricher's matches,
        misses, file reloads), reported to Prometheus by the runner once per batch."""
        return {}

    def maintain(self) -> None:  # noqa: B027 - optional hook, most steps need none
        """Housekeeping from the daemon's tick (e.g. reload a lookup file that changed)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release files and caches."""
