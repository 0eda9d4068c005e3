"""Running pipelines over batches: pick the first matching pipeline per event, run its steps, and
split the result into one batch per dataset plus one batch of dead letters.

A step failure never escapes: per the step's `on_failure` the event goes to the dead letter
(with the event as it left the queue, the pipeline, the step and the reason), goes on marked, or
is dropped. Counters are kept in plain integers per step and reported once per batch.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from collector.pipeline.config import PipelineConfig
from core.conditions import Condition, Predicate, compile_condition
from core.config import ValidationContext
from core.events import (
    DATASET,
    DEAD_LETTERS,
    SOURCE,
    SOURCE_FAILURE,
    TENANT,
    TIMESTAMP,
    Batch,
    Event,
)
from core.provenance import Stamps
from core.registry import resolve
from core.step import Step, StepConfig, StepContext, StepFailure
from core.telemetry import Telemetry

log = logging.getLogger(__name__)

PIPELINE_ERROR = "vigil.pipeline_error"
PIPELINE = "vigil.pipeline"

# Keys of a dead-letter record (an event of a `dead_letter` batch).
DEAD_LETTER_EVENT = "event"
DEAD_LETTER_PIPELINE = "pipeline"
DEAD_LETTER_STEP = "step"
DEAD_LETTER_ERROR = "error"
DEAD_LETTER_FAILED_AT = "failed_at"


@dataclass
class StepCounters:
    """Per-step counts since the last report (kept as ints: the hot path never touches
    prometheus)."""

    received: int = 0
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    provenance: int = 0  # events whose provenance the step tried to change (put back)


@dataclass
class BoundStep:
    """A built step with what the runner needs around it."""

    step_id: str
    type_name: str
    step: Step
    condition: Predicate | None
    on_failure: str
    counters: StepCounters = field(default_factory=StepCounters)
    names_from_input: bool = False
    reported_stats: dict[str, int] = field(default_factory=dict)


class Pipeline:
    """One configured pipeline, built."""

    def __init__(self, pipeline_id: str, config: PipelineConfig, steps: list[BoundStep]) -> None:
        self.id = pipeline_id
        self.config = config
        self.dataset = config.dataset
        self.match: Predicate | None = (compile_condition(config.match)
                                        if config.match is not None else None)
        self.steps = steps
        self.provenance_restored = 0  # events re-stamped after the last step (since reported)

    def run(self, event: Event, dead: list[Event], now: Callable[[], datetime]) -> Event | None:
        """The event after every step, or None when a step dropped it or it failed into
        `dead`."""
        original = dict(event)
        stamps = Stamps(event)
        current: Event = event
        for bound in self.steps:
            if bound.condition is not None and not bound.condition(current):
                continue
            counters = bound.counters
            counters.received += 1
            try:
                result = bound.step.apply(current)
            except Exception as exc:  # a step bug must not stop the pipeline either
                counters.failed += 1
                reason = str(exc) if isinstance(exc, StepFailure) else \
                    f"{type(exc).__name__}: {exc}"
                if bound.on_failure == "continue":
                    current[PIPELINE_ERROR] = f"{bound.step_id}: {reason}"
                    counters.sent += 1
                    continue
                if bound.on_failure == "dead_letter":
                    dead.append(dead_letter(original, self.id, bound.step_id, reason, now()))
                else:
                    counters.dropped += 1
                return None
            if result is None:
                counters.dropped += 1
                return None
            counters.sent += 1
            current = result
            if bound.names_from_input and stamps.restore(current):
                counters.provenance += 1
        # Once more whatever the steps were (a configured name was checked at validation; a
        # step that failed and went on may have written half its fields).
        if stamps.restore(current):
            self.provenance_restored += 1
        current[DATASET] = self.dataset
        current[PIPELINE] = self.id
        return current


def dead_letter(original: Event, pipeline_id: str, step_id: str, reason: str,
                failed_at: datetime) -> Event:
    """A dead-letter record: the event as it entered the pipeline and why it left it."""
    return {
        TENANT: original.get(TENANT), SOURCE: original.get(SOURCE),
        TIMESTAMP: failed_at, DEAD_LETTER_FAILED_AT: failed_at,
        DEAD_LETTER_PIPELINE: pipeline_id, DEAD_LETTER_STEP: step_id,
        DEAD_LETTER_ERROR: reason, DEAD_LETTER_EVENT: original,
    }


def _utcnow() -> datetime:
    return datetime.now(UTC)


def routing_values(condition: Condition | None) -> tuple[str, frozenset[str]] | None:
    """(field, values) when a match requires the field to equal one of those texts: at the top
    level or as one condition of `all` (case-sensitive tests only)."""
    if condition is None:
        return None
    fields_set = condition.model_fields_set
    if "all" in fields_set:
        for part in condition.all or ():
            found = routing_values(part)
            if found is not None:
                return found
        return None
    if condition.field is None or condition.ignore_case:
        return None
    if "equals" in fields_set and isinstance(condition.equals, str):
        return condition.field, frozenset([condition.equals])
    if "in_" in fields_set:
        return condition.field, frozenset(str(v) for v in condition.in_ or ())
    return None


class PipelineSet:
    """Every configured pipeline in declaration order; the worker's batch processor.

    Most pipelines route on one field (the program name): they are indexed by its values, so an
    event is tested only against the pipelines that can take it, in declaration order."""

    def __init__(self, pipelines: list[Pipeline], telemetry: Telemetry | None = None,
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self.pipelines = pipelines
        self.telemetry = telemetry
        self.clock = clock
        self._poison_logged = float("-inf")
        keys = [routing_values(p.config.match) for p in pipelines]
        fields = Counter(k[0] for k in keys if k is not None)
        self.route_field = fields.most_common(1)[0][0] if fields else None
        keyed = [k[1] if k is not None and k[0] == self.route_field else None for k in keys]
        self.unrouted = [p for p, values in zip(pipelines, keyed, strict=True) if values is None]
        self.routes: dict[str, list[Pipeline]] = {
            value: [p for p, values in zip(pipelines, keyed, strict=True)
                    if values is None or value in values]
            for value in {v for values in keyed if values is not None for v in values}}

    def select(self, event: Event) -> Pipeline | None:
        """The first pipeline whose `match` holds (a pipeline without `match` takes all)."""
        candidates = self.pipelines
        if self.route_field is not None:
            value = event.get(self.route_field)
            candidates = self.routes.get(value if isinstance(value, str) else str(value),
                                         self.unrouted)
        for pipeline in candidates:
            if pipeline.match is None or pipeline.match(event):
                return pipeline
        return None

    def process(self, batch: Batch) -> list[Batch]:
        """One batch per output dataset, plus a `dead_letter` batch when events failed."""
        groups: dict[str, list[Event]] = {}
        dead: list[Event] = []
        per_pipeline: dict[str, list[int]] = {}
        now = self.clock
        for event in batch.events:
            failure = event.get(SOURCE_FAILURE)
            if failure is not None:
                dead.append(dead_letter(event, "-", "source", str(failure), now()))
                continue
            pipeline = None
            try:
                pipeline = self.select(event)
                if pipeline is None:
                    out: Event | None = event
                else:
                    counts = per_pipeline.setdefault(pipeline.id, [0, 0])
                    counts[0] += 1
                    out = pipeline.run(event, dead, now)
                    if out is not None:
                        counts[1] += 1
            except Exception as exc:  # a bug outside a step's contract: this event only
                component = f"pipeline {pipeline.id}" if pipeline is not None else "pipeline"
                record = dead_letter(event, pipeline.id if pipeline is not None else "-",
                                     "-", f"{component}: {type(exc).__name__}: {exc}"[:600],
                                     now())
                record[TENANT] = batch.partition
                dead.append(record)
                self._poison(batch.partition, exc)
                continue
            if out is None:
                continue
            dataset = out.get(DATASET) or "unknown"
            group = groups.get(dataset)
            if group is None:
                groups[dataset] = [out]
            else:
                group.append(out)
        batches = [Batch(batch.partition, events, batch.first_offset, batch.last_offset, dataset)
                   for dataset, events in groups.items()]
        if dead:
            batches.append(Batch(batch.partition, dead, batch.first_offset, batch.last_offset,
                                 None, kind=DEAD_LETTERS))
        self._report(batch.partition, per_pipeline, len(dead))
        return batches

    def _poison(self, tenant: str, exc: Exception) -> None:
        """Count and log (rate-limited) an event a pipeline raised on outside its steps."""
        if self.telemetry is not None:
            self.telemetry.poison("pipeline", tenant, 1)
        now = time.monotonic()
        if now - self._poison_logged >= 60.0:
            self._poison_logged = now
            log.error("a pipeline raised on an event; sent to the dead letter, the batch goes "
                      "on", exc_info=exc, extra={"tenant": tenant})

    def _report(self, tenant: str, per_pipeline: dict[str, list[int]], dead: int) -> None:
        telemetry = self.telemetry
        if telemetry is None:
            return
        for pipeline_id, (received, sent) in per_pipeline.items():
            telemetry.pipeline_events(pipeline_id, tenant, received, sent)
        for pipeline in self.pipelines:
            for bound in pipeline.steps:
                c = bound.counters
                if c.received or c.failed:
                    telemetry.pipeline_step_events(pipeline.id, bound.step_id, bound.type_name,
                                                   c.received, c.sent, c.failed, c.dropped)
                    if c.provenance:
                        telemetry.provenance_rejected(pipeline.id, bound.step_id,
                                                      bound.type_name, c.provenance)
                    bound.counters = StepCounters()
                    self._report_stats(pipeline.id, bound, telemetry)
            if pipeline.provenance_restored:
                telemetry.provenance_rejected(pipeline.id, "-", "-", pipeline.provenance_restored)
                pipeline.provenance_restored = 0
        if dead:
            telemetry.dead_letters(tenant, dead)

    @staticmethod
    def _report_stats(pipeline_id: str, bound: BoundStep, telemetry: Telemetry) -> None:
        for result, value in bound.step.stats().items():
            delta = value - bound.reported_stats.get(result, 0)
            if delta > 0:
                telemetry.step_results.labels(pipeline_id, bound.step_id, bound.type_name,
                                              result).inc(delta)
            bound.reported_stats[result] = value

    def maintain(self) -> None:
        """Tick housekeeping for every step (file reloads)."""
        for pipeline in self.pipelines:
            for bound in pipeline.steps:
                try:
                    bound.step.maintain()
                except Exception:
                    log.exception("step housekeeping failed",
                                  extra={"pipeline": pipeline.id, "step": bound.step_id})

    def close(self) -> None:
        for pipeline in self.pipelines:
            for bound in pipeline.steps:
                bound.step.close()


def build_pipeline(pipeline_id: str, config: PipelineConfig, context: StepContext) -> Pipeline:
    """Build every step of one validated pipeline."""
    steps = []
    for index, step_config in enumerate(config.steps):
        assert isinstance(step_config, StepConfig)
        cls = resolve("step", step_config.type)
        step_context = StepContext(
            context.conf_dir, data_dir=context.data_dir, pipeline_id=pipeline_id,
            dataset=config.dataset, schema=dict(config.schema_), clock=context.clock)
        condition = step_config.if_
        steps.append(BoundStep(
            step_id=step_config.id or f"{index}-{step_config.type}",
            type_name=step_config.type, step=cls(step_config, step_context),
            condition=compile_condition(condition) if condition is not None else None,
            on_failure=step_config.on_failure, names_from_input=cls.names_from_input))
    return Pipeline(pipeline_id, config, steps)


def build_pipelines(configs: Iterable[tuple[str, PipelineConfig]], context: ValidationContext,
                    *, data_dir: Any, telemetry: Telemetry | None = None,
                    clock: Callable[[], datetime] = _utcnow) -> PipelineSet:
    """A PipelineSet from validated `(id, config)` pairs in declaration order."""
    base = StepContext(context.conf_dir, data_dir=data_dir, clock=clock)
    return PipelineSet([build_pipeline(pid, cfg, base) for pid, cfg in configs], telemetry, clock)
