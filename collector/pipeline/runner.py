"""Running pipelines over batches: route each event of a batch to the first pipeline whose
`match` holds, run each pipeline over its part (`pipeline.py`), and split the result into one
batch per dataset plus one batch of dead letters.

A step failure never escapes: per the step's `on_failure` the event goes to the dead letter
(with the event as it left the queue, the pipeline, the step and the reason), goes on marked, or
is dropped. Counters are kept in plain integers per step and reported once per batch.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from collector.pipeline.config import PipelineConfig
from collector.pipeline.pipeline import (
    DEAD_LETTER_ERROR,
    DEAD_LETTER_EVENT,
    DEAD_LETTER_FAILED_AT,
    DEAD_LETTER_PIPELINE,
    DEAD_LETTER_STEP,
    PIPELINE,
    PIPELINE_ERROR,
    BoundStep,
    Pipeline,
    StepCounters,
    dead_letter,
)
from core.conditions import Condition, compile_condition, compile_filter
from core.config import ValidationContext
from core.events import (
    DATASET,
    DEAD_LETTERS,
    SOURCE_FAILURE,
    TENANT,
    Batch,
    Event,
)
from core.registry import resolve
from core.step import StepConfig, StepContext
from core.telemetry import Telemetry

# The names callers import from here (the dead-letter record's keys live with the pipeline).
__all__ = ["DEAD_LETTER_ERROR", "DEAD_LETTER_EVENT", "DEAD_LETTER_FAILED_AT",
           "DEAD_LETTER_PIPELINE", "DEAD_LETTER_STEP", "PIPELINE", "PIPELINE_ERROR", "BoundStep",
           "Pipeline", "PipelineSet", "StepCounters", "build_pipeline", "build_pipelines",
           "dead_letter", "routing_values"]

log = logging.getLogger(__name__)

def _utcnow() -> datetime:
    return datetime.now(UTC)


def _snapshots(events: list[Event]) -> Callable[[int], Event]:
    """Originals for a batch that cannot give them back (the memory queue, `vigil test`): a
    copy of every event taken before any step runs."""
    return [dict(event) for event in events].__getitem__


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

    def select_batch(self, events: list[Event]) -> list[Pipeline | None]:
        """`select` for every event of a batch: events are grouped by their routing value,
        then each candidate pipeline's `match` filters the events of a group no earlier
        pipeline took. Raises when a condition raises (the caller goes event by event)."""
        chosen: list[Pipeline | None] = [None] * len(events)
        groups: dict[str, list[int]]
        route_field = self.route_field
        if route_field is None:
            groups = {"": list(range(len(events)))}
        else:
            groups = {}
            for position, event in enumerate(events):
                value = event.get(route_field)
                key = value if isinstance(value, str) else str(value)
                group = groups.get(key)
                if group is None:
                    groups[key] = [position]
                else:
                    group.append(position)
        for key, remaining in groups.items():
            candidates = (self.routes.get(key, self.unrouted) if route_field is not None
                          else self.pipelines)
            for pipeline in candidates:
                if not remaining:
                    break
                match = pipeline.match_filter
                hits = remaining if match is None else match(events, remaining)
                if not hits:
                    continue
                for position in hits:
                    chosen[position] = pipeline
                if len(hits) == len(remaining):
                    break
                taken = set(hits)
                remaining = [i for i in remaining if i not in taken]
        return chosen

    def process(self, batch: Batch) -> list[Batch]:
        """One batch per output dataset, plus a `dead_letter` batch when events failed.

        Events are routed to their pipeline first, then each pipeline runs its steps over its
        part of the batch; outputs keep the batch's order. A dead-letter record holds the event
        as it left the queue: `batch.originals` gives it back (the journal decodes the record
        again, only for events that fail); without it every event is copied before any step."""
        events = batch.events
        now = self.clock
        dead: list[Event] = []
        partition = batch.partition
        original = batch.originals or _snapshots(events)

        def poison(position: int, event: Event, exc: Exception, pipeline_id: str = "-") -> None:
            component = f"pipeline {pipeline_id}" if pipeline_id != "-" else "pipeline"
            record = dead_letter(event, pipeline_id, "-",
                                 f"{component}: {type(exc).__name__}: {exc}"[:600], now())
            record[TENANT] = partition
            dead.append(record)
            self._poison(partition, exc)

        # Position in the batch -> the event as it leaves the pipelines (None: it did not).
        results: list[Event | None] = [None] * len(events)
        routed: dict[str, tuple[Pipeline, list[Event], list[int]]] = {}
        try:
            selected: list[Pipeline | None] | None = self.select_batch(events)
        except Exception:  # found again below, event by event
            selected = None
        for position, event in enumerate(events):
            failure = event.get(SOURCE_FAILURE)
            if failure is not None:
                dead.append(dead_letter(event, "-", "source", str(failure), now()))
                continue
            if selected is not None:
                pipeline = selected[position]
            else:
                try:
                    pipeline = self.select(event)
                except Exception as exc:  # a bug outside a step's contract: this event only
                    poison(position, event, exc)
                    continue
            if pipeline is None:
                results[position] = event
                continue
            entry = routed.get(pipeline.id)
            if entry is None:
                routed[pipeline.id] = (pipeline, [event], [position])
            else:
                entry[1].append(event)
                entry[2].append(position)
        per_pipeline: dict[str, list[int]] = {}
        for pipeline_id, (pipeline, taken, positions) in routed.items():
            received = len(taken)
            outs, out_positions = self._run(pipeline, taken, positions, original, dead, poison)
            per_pipeline[pipeline_id] = [received, len(outs)]
            for position, out in zip(out_positions, outs, strict=True):
                results[position] = out
        groups: dict[str, list[Event]] = {}
        for result in results:
            if result is None:
                continue
            dataset = result.get(DATASET) or "unknown"
            group = groups.get(dataset)
            if group is None:
                groups[dataset] = [result]
            else:
                group.append(result)
        batches = [Batch(partition, group, batch.first_offset, batch.last_offset, dataset)
                   for dataset, group in groups.items()]
        if dead:
            batches.append(Batch(partition, dead, batch.first_offset, batch.last_offset,
                                 None, kind=DEAD_LETTERS))
        self._report(partition, per_pipeline, len(dead))
        return batches

    def _run(self, pipeline: Pipeline, events: list[Event], positions: list[int],
             original: Callable[[int], Event],
                dead: list[Event],
             poison: Callable[..., None]) -> tuple[list[Event], list[int]]:
        """`pipeline` over its events; if the runner itself raises (a bug outside any step's
        contract), each event alone, and the ones it raises on again leave as poison."""
        def mark(position: int, event: Event, exc: Exception) -> None:
            poison(position, event, exc, pipeline.id)

        already_dead = len(dead)
        try:
            return pipeline.run_batch(list(events), positions, original, dead, mark, self.clock)
        except Exception:  # isolated below; what the failed run dead-lettered is redone there
            del dead[already_dead:]
        outs: list[Event] = []
        out_positions: list[int] = []
        for event, position in zip(events, positions, strict=True):
            try:
                out, at = pipeline.run_batch([event], [position], original, dead, mark,
                                             self.clock)
            except Exception as exc:
                mark(position, event, exc)
                continue
            outs.extend(out)
            out_positions.extend(at)
        return outs, out_positions

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
            filter=compile_filter(condition) if condition is not None else None,
            on_failure=step_config.on_failure, names_from_input=cls.names_from_input))
    return Pipeline(pipeline_id, config, steps)


def build_pipelines(configs: Iterable[tuple[str, PipelineConfig]], context: ValidationContext,
                    *, data_dir: Any, telemetry: Telemetry | None = None,
                    clock: Callable[[], datetime] = _utcnow) -> PipelineSet:
    """A PipelineSet from validated `(id, config)` pairs in declaration order."""
    base = StepContext(context.conf_dir, data_dir=data_dir, clock=clock)
    return PipelineSet([build_pipeline(pid, cfg, base) for pid, cfg in configs], telemetry, clock)
