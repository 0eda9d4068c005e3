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

from collector.config.models import ValidationContext
from collector.events import (
    DATASET,
    DEAD_LETTERS,
    SOURCE,
    SOURCE_FAILURE,
    TENANT,
    TIMESTAMP,
    Batch,
    Event,
)
from collector.pipeline.conditions import (
    Condition,
    Filter,
    Predicate,
    compile_condition,
    compile_filter,
)
from collector.pipeline.config import PipelineConfig
from collector.pipeline.step import Step, StepConfig, StepContext, StepResult, apply_each
from collector.provenance import Stamps
from collector.registry import resolve
from collector.telemetry import Telemetry

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
    # The condition's batch form (the predicate answers the same, event by event).
    filter: Filter | None = None


# Called with (position in the batch, event, exception) for an event the runner itself raised on
# (a condition, a step returning something that is not an event): it leaves as poison.
PoisonHandler = Callable[[int, Event, Exception], None]


class Pipeline:
    """One configured pipeline, built."""

    def __init__(self, pipeline_id: str, config: PipelineConfig, steps: list[BoundStep]) -> None:
        self.id = pipeline_id
        self.config = config
        self.dataset = config.dataset
        self.match: Predicate | None = (compile_condition(config.match)
                                        if config.match is not None else None)
        self.match_filter: Filter | None = (compile_filter(config.match)
                                            if config.match is not None else None)
        self.steps = steps
        self.provenance_restored = 0  # events re-stamped after the last step (since reported)

    def run(self, event: Event, dead: list[Event], now: Callable[[], datetime]) -> Event | None:
        """One event through every step (`vigil test`): the event, or None when a step dropped
        it or it failed into `dead`."""
        original = dict(event)
        out = self.run_batch([event], [0], lambda _: original, dead, _raise, now)[0]
        return out[0] if out else None

    def run_batch(self, events: list[Event], positions: list[int],
                  original: Callable[[int], Event], dead: list[Event], poison: PoisonHandler,
                  now: Callable[[], datetime]) -> tuple[list[Event], list[int]]:
        """The events after every step, with their positions in the batch (input order kept);
        a failed event's dead-letter record (built from `original(position)`, the event as it
        left the queue) goes to `dead`. `events` is the runner's own list: it is changed."""
        # Provenance as each event entered; `live[k]` is event `idx[k]` of `events` (or what a
        # step replaced it with).
        stamps = [Stamps(event) for event in events]
        live = events
        idx = list(range(len(events)))
        for bound in self.steps:
            if not live:
                break
            if bound.condition is None:
                chosen = None
                subset = live
            else:
                chosen, live, idx = self._select(bound.condition, bound.filter, live, idx,
                                                 positions, poison)
                if not chosen:
                    continue
                subset = [live[k] for k in chosen] if len(chosen) < len(live) else live
                if subset is live:
                    chosen = None
            result = self._apply(bound.step, subset)
            outputs = result.outputs
            if len(outputs) != len(subset):
                raise TypeError(f"step {bound.step_id} returned {len(outputs)} results for "
                                f"{len(subset)} events")
            counters = bound.counters
            counters.received += len(subset)
            if result.failures or None in outputs:
                live, idx = self._settle(bound, subset, result, live, idx, chosen, stamps,
                                         positions, original, dead, now)
                continue
            counters.sent += len(subset)
            if chosen is None:
                live = outputs
            else:
                for k, out in zip(chosen, outputs, strict=True):
                    live[k] = out
            if bound.names_from_input:
                where = chosen if chosen is not None else range(len(live))
                for k in where:
                    if stamps[idx[k]].restore(live[k]):
                        counters.provenance += 1
        return self._finish(live, idx, stamps, positions, poison)

    @staticmethod
    def _select(condition: Predicate, batch_filter: Filter | None, live: list[Event],
                idx: list[int], positions: list[int], poison: PoisonHandler
                ) -> tuple[list[int], list[Event], list[int]]:
        """Indices into `live` of the events `condition` holds for, with `live` and `idx`;
        events it raises for leave as poison (and the lists returned are new ones without
        them)."""
        try:
            if batch_filter is not None:
                return batch_filter(live, list(range(len(live)))), live, idx
            return [k for k, event in enumerate(live) if condition(event)], live, idx
        except Exception:  # noqa: S110 - found again below, event by event
            pass
        chosen: list[int] = []
        kept: list[Event] = []
        kept_idx: list[int] = []
        for k, event in enumerate(live):
            try:
                holds = condition(event)
            except Exception as exc:
                poison(positions[idx[k]], event, exc)
                continue
            if holds:
                chosen.append(len(kept))
            kept.append(event)
            kept_idx.append(idx[k])
        return chosen, kept, kept_idx

    @staticmethod
    def _apply(step: Step, events: list[Event]) -> StepResult:
        try:
            return step.apply_batch(events)
        except Exception:  # the batch form failed as a whole: each event alone
            return apply_each(step, events)

    def _settle(self, bound: BoundStep, subset: list[Event], result: StepResult,
                live: list[Event], idx: list[int], chosen: list[int] | None,
                stamps: list[Stamps], positions: list[int], original: Callable[[int], Event],
                dead: list[Event],
                now: Callable[[], datetime]) -> tuple[list[Event], list[int]]:
        """A step's result with drops or failures: what each failure means (`on_failure`),
        counted; returns the events that go on."""
        counters = bound.counters
        failures = result.failures
        gone: set[int] = set()
        for j, out in enumerate(result.outputs):
            k = j if chosen is None else chosen[j]
            if out is not None:
                counters.sent += 1
                live[k] = out
                if bound.names_from_input and stamps[idx[k]].restore(out):
                    counters.provenance += 1
                continue
            reason = failures.get(j)
            if reason is None:
                counters.dropped += 1
                gone.add(k)
                continue
            counters.failed += 1
            if bound.on_failure == "continue":
                subset[j][PIPELINE_ERROR] = f"{bound.step_id}: {reason}"
                live[k] = subset[j]
                counters.sent += 1
                continue
            if bound.on_failure == "dead_letter":
                dead.append(dead_letter(original(positions[idx[k]]), self.id, bound.step_id,
                                        reason, now()))
            else:
                counters.dropped += 1
            gone.add(k)
        if not gone:
            return live, idx
        keep = [k for k in range(len(live)) if k not in gone]
        return [live[k] for k in keep], [idx[k] for k in keep]

    def _finish(self, live: list[Event], idx: list[int], stamps: list[Stamps],
                positions: list[int], poison: PoisonHandler
                ) -> tuple[list[Event], list[int]]:
        """Provenance put back once more whatever the steps were (a configured name was checked
        at validation; a step that failed and went on may have written half its fields), then
        the pipeline's dataset and id."""
        out: list[Event] = []
        out_positions: list[int] = []
        dataset, pipeline_id = self.dataset, self.id
        for k, event in enumerate(live):
            i = idx[k]
            try:
                if stamps[i].restore(event):
                    self.provenance_restored += 1
                event[DATASET] = dataset
                event[PIPELINE] = pipeline_id
            except Exception as exc:  # a step returned something that is not an event
                poison(positions[i], event, exc)
                continue
            out.append(event)
            out_positions.append(positions[i])
        return out, out_positions


def _raise(position: int, event: Event, exc: Exception) -> None:
    raise exc


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
        for out in results:
            if out is None:
                continue
            dataset = out.get(DATASET) or "unknown"
            group = groups.get(dataset)
            if group is None:
                groups[dataset] = [out]
            else:
                group.append(out)
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
