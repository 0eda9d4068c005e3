"""Pipeline test cases (`tests:` in conf.d) and the runner behind `vigil test`.

A case names a source, gives an input line (or a JSON object, sent as one line) and says what
must come out: the dataset, the tenant, field values, fields that must be absent, or that the
event must go to the dead letter. Cases sit next to the pipelines they test, like Vector's unit
tests; the daemon ignores them.

    tests:
      sshd_failed_password:
        source: syslog_tcp
        input: "<38>Dec 10 06:55:46 host sshd[24200]: Failed password for root from ..."
        received_at: "2026-12-10T07:00:00Z"
        expect:
          dataset: linux.auth
          fields: {user.name: root, source.ip: 203.0.113.9, event.outcome: failure}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from pydantic import Field, model_validator

from core.config import StrictModel
from core.events import DATASET, TENANT, Event


class Expectation(StrictModel):
    """What one output event must look like."""

    dataset: str | None = Field(None, description="the event's dataset")
    tenant: str | None = Field(None, description="the event's tenant")
    fields: dict[str, Any] = Field(default_factory=dict,
                                   description="field -> expected value (compared as JSON; quote "
                                               "timestamps: \"2026-12-10T06:55:46+00:00\")")
    absent: list[str] = Field(default_factory=list, description="fields that must be missing")


class DeadLetterExpectation(StrictModel):
    step: str | None = Field(None, description="the step id the event failed at")
    error_contains: str | None = Field(None, description="text the reason must contain")


class PipelineTestConfig(StrictModel):
    """One test case (`tests:` section)."""

    source: str = Field(description="source id the input arrives on")
    input: str | None = Field(None, description="the raw line as the source receives it")
    input_json: Any = Field(None, description="a JSON value sent as one line instead")
    tenant: str | None = Field(None, description="force the tenant (like an HTTP token's)")
    peer: str | None = Field(None, description="sender address, for CIDR routing")
    received_at: datetime | None = Field(
        None, description="receive time (anchors RFC 3164 years); default: now")
    expect: Expectation | list[Expectation] | None = Field(
        None, description="the output event, or the output events in order")
    expect_dead_letter: DeadLetterExpectation | None = Field(
        None, description="the input must end in the dead letter")

    @model_validator(mode="after")
    def _one_input_one_outcome(self) -> PipelineTestConfig:
        if (self.input is None) == (self.input_json is None):
            raise ValueError("a test needs exactly one of input, input_json")
        if (self.expect is None) == (self.expect_dead_letter is None):
            raise ValueError("a test needs exactly one of expect, expect_dead_letter")
        return self

    def line(self) -> bytes:
        if self.input is not None:
            return self.input.encode()
        return orjson.dumps(self.input_json)

    def expectations(self) -> list[Expectation]:
        if self.expect is None:
            return []
        return self.expect if isinstance(self.expect, list) else [self.expect]


def comparable(value: Any) -> Any:
    """A value as JSON sees it, so a YAML string and an event's datetime or int compare."""
    return orjson.loads(orjson.dumps(value, default=str))


@dataclass
class CaseResult:
    name: str
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def check_event(expected: Expectation, event: Event) -> list[str]:
    """Readable differences between one expectation and one event."""
    problems = []
    if expected.dataset is not None and event.get(DATASET) != expected.dataset:
        problems.append(f"dataset: expected {expected.dataset!r}, got {event.get(DATASET)!r}")
    if expected.tenant is not None and event.get(TENANT) != expected.tenant:
        problems.append(f"tenant: expected {expected.tenant!r}, got {event.get(TENANT)!r}")
    for name, want in expected.fields.items():
        if name not in event:
            problems.append(f"{name}: expected {comparable(want)!r}, field is missing")
            continue
        got = comparable(event[name])
        if got != comparable(want):
            problems.append(f"{name}: expected {comparable(want)!r}, got {got!r}")
    for name in expected.absent:
        if name in event:
            problems.append(f"{name}: expected absent, got {comparable(event[name])!r}")
    return problems


def check_case(name: str, case: PipelineTestConfig, events: list[Event],
               dead: list[Event]) -> CaseResult:
    """Compare what one input produced with what the case expects."""
    result = CaseResult(name)
    if case.expect_dead_letter is not None:
        if not dead:
            result.failures.append(f"expected a dead letter, got {len(events)} event(s)")
            return result
        record = dead[0]
        want = case.expect_dead_letter
        if want.step is not None and record.get("step") != want.step:
            result.failures.append(f"dead letter step: expected {want.step!r}, "
                                   f"got {record.get('step')!r}")
        if want.error_contains is not None and want.error_contains not in str(record.get("error")):
            result.failures.append(f"dead letter error: expected to contain "
                                   f"{want.error_contains!r}, got {record.get('error')!r}")
        return result
    for record in dead:
        result.failures.append(f"unexpected dead letter at {record.get('pipeline')}/"
                               f"{record.get('step')}: {record.get('error')}")
    expectations = case.expectations()
    if len(events) != len(expectations):
        result.failures.append(f"expected {len(expectations)} event(s), got {len(events)}")
    for index, (expected, event) in enumerate(zip(expectations, events, strict=False)):
        prefix = f"event {index}: " if len(expectations) > 1 else ""
        result.failures.extend(prefix + p for p in check_event(expected, event))
    return result
