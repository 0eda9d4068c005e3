"""The batch contract of steps: `apply_batch` returns what it kept and what failed (with the
reason), defaulting to a loop over `apply`; the runner works a batch at a time, keeps the batch's
order, and dead-letters the event as it left the queue without copying every event."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collector.pipeline.config import PipelineConfig
from collector.pipeline.runner import (
    DEAD_LETTER_ERROR,
    DEAD_LETTER_EVENT,
    DEAD_LETTER_STEP,
    PIPELINE_ERROR,
    BoundStep,
    Pipeline,
    PipelineSet,
)
from core.conditions import Condition, compile_condition
from core.events import DEAD_LETTERS, OFFSET, SOURCE, TENANT, Batch, Event
from core.step import Step, StepConfig, StepContext, StepFailure, StepResult

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class FailOnBad(Step):
    """Marks events; fails the ones whose message is "bad" (after changing them: the dead
    letter must still get them as they were)."""

    config_model = StepConfig

    def apply(self, event: Event) -> Event:
        event["seen"] = True
        if event["message"] == "bad":
            event["message"] = "changed before failing"
            raise StepFailure("bad message")
        return event


class WholeBatch(Step):
    """Overrides `apply_batch`: one call per batch, a new dict per event, drops "drop"."""

    config_model = StepConfig

    def __init__(self, config: Any, context: StepContext) -> None:
        super().__init__(config, context)
        self.calls: list[int] = []

    def apply(self, event: Event) -> Event:
        raise AssertionError("the runner must call apply_batch")

    def apply_batch(self, events: list[Event]) -> StepResult:
        self.calls.append(len(events))
        outputs: list[Event | None] = [
            None if e["message"] == "drop" else {**e, "batch_size": len(events)} for e in events]
        return StepResult(outputs)


class BrokenBatch(Step):
    """`apply_batch` raises as a whole: the runner falls back to `apply` per event."""

    config_model = StepConfig

    def apply(self, event: Event) -> Event:
        if event["message"] == "bad":
            raise ValueError("boom")
        event["alone"] = True
        return event

    def apply_batch(self, events: list[Event]) -> StepResult:
        raise RuntimeError("batch form broken")


def bound(step: Step, step_id: str, *, on_failure: str = "dead_letter",
          condition: dict[str, Any] | None = None) -> BoundStep:
    predicate = (compile_condition(Condition.model_validate(condition))
                 if condition is not None else None)
    return BoundStep(step_id, step_id, step, predicate, on_failure)


def pipeline_set(*steps: BoundStep) -> PipelineSet:
    config = PipelineConfig.model_validate({"dataset": "test.events"})
    return PipelineSet([Pipeline("p", config, list(steps))], clock=lambda: NOW)


def make_step(cls: type[Step]) -> Step:
    return cls(StepConfig.model_validate({"type": "x"}), StepContext(Path(".")))


def batch(*messages: str, originals: bool = False) -> Batch:
    events = [{"message": m, TENANT: "acme", SOURCE: "s", OFFSET: 10 + i}
              for i, m in enumerate(messages)]
    result = Batch("acme", events, 10, 10 + len(events) - 1)
    if originals:
        stored = [dict(e) for e in events]
        result.originals = stored.__getitem__
    return result


def test_default_apply_batch_keeps_two_and_fails_one_with_its_reason() -> None:
    step = make_step(FailOnBad)
    events = [{"message": "a"}, {"message": "bad"}, {"message": "c"}]
    result = step.apply_batch(events)
    assert [e["message"] for e in result.kept] == ["a", "c"]
    assert result.failed == [(1, "bad message")]
    assert result.dropped == 0
    assert result.outputs[1] is None


def test_runner_dead_letters_the_one_failure_as_it_left_the_queue() -> None:
    pipelines = pipeline_set(bound(make_step(FailOnBad), "mark"))
    out = pipelines.process(batch("a", "bad", "c"))
    kept = [b for b in out if b.kind != DEAD_LETTERS]
    dead = [b for b in out if b.kind == DEAD_LETTERS]
    assert [e["message"] for e in kept[0].events] == ["a", "c"]
    assert all(e["seen"] for e in kept[0].events)
    (record,) = dead[0].events
    assert record[DEAD_LETTER_STEP] == "mark"
    assert record[DEAD_LETTER_ERROR] == "bad message"
    # The input, not what the step had made of it.
    assert record[DEAD_LETTER_EVENT] == {"message": "bad", TENANT: "acme", SOURCE: "s",
                                         OFFSET: 11}


def test_originals_come_from_the_batch_only_for_failures() -> None:
    asked: list[int] = []
    source = batch("a", "bad", "c", originals=True)
    given = source.originals
    assert given is not None

    def original(index: int) -> Event:
        asked.append(index)
        return given(index)

    source.originals = original
    out = pipeline_set(bound(make_step(FailOnBad), "mark")).process(source)
    assert asked == [1]
    dead = next(b for b in out if b.kind == DEAD_LETTERS)
    assert dead.events[0][DEAD_LETTER_EVENT]["message"] == "bad"


def test_a_batch_step_is_called_once_per_batch_and_may_replace_and_drop() -> None:
    step = make_step(WholeBatch)
    assert isinstance(step, WholeBatch)
    pipelines = pipeline_set(bound(step, "whole"))
    out = pipelines.process(batch("a", "drop", "c", "d"))
    assert step.calls == [4]
    (kept,) = out
    assert [(e["message"], e["batch_size"]) for e in kept.events] == [("a", 4), ("c", 4),
                                                                      ("d", 4)]
    counters = pipelines.pipelines[0].steps[0].counters
    # Reported (and reset) only with telemetry; without, they add up.
    assert (counters.received, counters.sent, counters.dropped) == (4, 3, 1)


def test_a_condition_hands_the_step_only_its_events_and_the_order_is_kept() -> None:
    step = make_step(WholeBatch)
    assert isinstance(step, WholeBatch)
    pipelines = pipeline_set(bound(step, "whole",
                                   condition={"field": "message", "in": ["b", "d"]}))
    (kept,) = pipelines.process(batch("a", "b", "c", "d"))
    assert step.calls == [2]
    assert [e["message"] for e in kept.events] == ["a", "b", "c", "d"]
    assert [e.get("batch_size") for e in kept.events] == [None, 2, None, 2]


def test_a_batch_step_that_raises_falls_back_to_each_event_alone() -> None:
    pipelines = pipeline_set(bound(make_step(BrokenBatch), "broken"))
    out = pipelines.process(batch("a", "bad", "c"))
    kept = next(b for b in out if b.kind != DEAD_LETTERS)
    dead = next(b for b in out if b.kind == DEAD_LETTERS)
    assert [e["message"] for e in kept.events] == ["a", "c"]
    assert all(e["alone"] for e in kept.events)
    assert [r[DEAD_LETTER_ERROR] for r in dead.events] == ["ValueError: boom"]


def test_on_failure_continue_keeps_the_event_marked_in_place() -> None:
    pipelines = pipeline_set(bound(make_step(FailOnBad), "mark", on_failure="continue"))
    (kept,) = pipelines.process(batch("a", "bad", "c"))
    assert [e["message"] for e in kept.events] == ["a", "changed before failing", "c"]
    assert kept.events[1][PIPELINE_ERROR] == "mark: bad message"


def test_on_failure_drop_discards_only_the_failure() -> None:
    pipelines = pipeline_set(bound(make_step(FailOnBad), "mark", on_failure="drop"))
    (kept,) = pipelines.process(batch("a", "bad", "c"))
    assert [e["message"] for e in kept.events] == ["a", "c"]
    counters = pipelines.pipelines[0].steps[0].counters
    assert (counters.failed, counters.dropped) == (1, 1)


def test_a_condition_that_raises_sends_only_its_event_to_the_dead_letter() -> None:
    def condition(event: Event) -> bool:
        if event["message"] == "bad":
            raise KeyError("nope")
        return True

    step_bound = bound(make_step(FailOnBad), "mark")
    step_bound.condition = condition
    out = pipeline_set(step_bound).process(batch("a", "bad", "c"))
    kept = next(b for b in out if b.kind != DEAD_LETTERS)
    dead = next(b for b in out if b.kind == DEAD_LETTERS)
    assert [e["message"] for e in kept.events] == ["a", "c"]
    assert dead.events[0][DEAD_LETTER_ERROR].startswith("pipeline p: KeyError")
    assert dead.events[0][TENANT] == "acme"


def test_batch_selection_picks_what_per_event_selection_picks(tmp_path: Path) -> None:
    """The shipped pipelines' `match` filters over the benchmark mix and hostile shapes."""
    from benchmarks import workload
    from collector.config import load_config
    from collector.pipeline.runner import build_pipelines
    from core.config import ValidationContext
    from parsers.syslog import parse_syslog

    conf = Path(__file__).resolve().parents[3] / "conf.d"
    config = load_config(conf)
    pipelines = build_pipelines(config.pipelines.items(), ValidationContext(conf),
                                data_dir=tmp_path)
    events: list[Event] = [parse_syslog(workload.render_syslog(item), received_at=NOW)
                           for item in workload.events(600, seed=7)]
    events += [{"message": 5}, {"log.syslog.appname": 3, "message": None}, {},
               {"vigil.dataset": "json", "eventVersion": "1", "eventSource": "x",
                "eventName": "y"}, {"category": "AuditLogs"}]
    assert pipelines.select_batch(events) == [pipelines.select(e) for e in events]
    pipelines.close()
