"""One pipeline over a batch: its steps in order, each on the events its `if:` selects, with
what each failure means (`on_failure`), provenance put back, and dead-letter records built from
the events as they left the queue. Counters are plain integers, reported by the runner.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from collector.pipeline.config import PipelineConfig
from core.conditions import Filter, Predicate, compile_condition, compile_filter
from core.events import DATASET, SOURCE, TENANT, TIMESTAMP, Event
from core.provenance import Stamps
from core.step import Step, StepResult, apply_each

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
            # No None among the outputs (checked above).
            if chosen is None:
                live = outputs  # type: ignore[assignment]
            else:
                for k, out in zip(chosen, outputs, strict=True):
                    live[k] = out  # type: ignore[assignment]
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


def dead_letter(original: Event, pipeline_id: str, step_id: str, reason: str,
                failed_at: datetime) -> Event:
    """A dead-letter record: the event as it entered the pipeline and why it left it."""
    return {
        TENANT: original.get(TENANT), SOURCE: original.get(SOURCE),
        TIMESTAMP: failed_at, DEAD_LETTER_FAILED_AT: failed_at,
        DEAD_LETTER_PIPELINE: pipeline_id, DEAD_LETTER_STEP: step_id,
        DEAD_LETTER_ERROR: reason, DEAD_LETTER_EVENT: original,
    }
