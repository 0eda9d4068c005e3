"""The timestamp step: ISO 8601, RFC 3164 with year inference, epochs, strptime, time zones,
and failures that keep the receive time and mark the event (or fail when asked)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.steps import build_step

from collector.pipeline.runner import DEAD_LETTER_ERROR, DEAD_LETTER_STEP, PipelineSet
from core.events import DEAD_LETTERS, RECEIVED_AT, TIMESTAMP, Batch
from core.step import StepContext, StepFailure
from parsers.timestamp import TIMESTAMP_ERROR

RECEIVED = datetime(2024, 5, 14, 9, 30, tzinfo=UTC)


ts = partial(build_step, "timestamp", StepContext(Path("."), clock=lambda: RECEIVED))


def parse(value: Any, received: datetime = RECEIVED, **config: Any) -> datetime:
    event = ts(field="t", **config).apply({"t": value, RECEIVED_AT: received})
    assert TIMESTAMP_ERROR not in event, event[TIMESTAMP_ERROR]
    result: datetime = event[TIMESTAMP]
    assert result.tzinfo is UTC
    return result


@pytest.mark.parametrize(("value", "expected"), [
    ("2024-05-14T09:12:00Z", datetime(2024, 5, 14, 9, 12, tzinfo=UTC)),
    ("2024-05-14T11:12:00.123456789+02:00", datetime(2024, 5, 14, 9, 12, 0, 123456, UTC)),
    ("2024-05-14 09:12:00,5", datetime(2024, 5, 14, 9, 12, 0, 500000, UTC)),
    ("20240514T091200-0130", datetime(2024, 5, 14, 10, 42, tzinfo=UTC)),
    (" 2024-05-14T09:12 ", datetime(2024, 5, 14, 9, 12, tzinfo=UTC)),
])
def test_iso8601(value: str, expected: datetime) -> None:
    assert parse(value, formats=["iso8601"]) == expected


def test_times_without_offset_take_the_step_zone_with_dst() -> None:
    assert parse("2024-05-14T11:12:00", formats=["iso8601"], timezone="Europe/Paris") == \
        datetime(2024, 5, 14, 9, 12, tzinfo=UTC)  # CEST, UTC+2
    assert parse("2024-01-14T11:12:00", formats=["iso8601"], timezone="Europe/Paris") == \
        datetime(2024, 1, 14, 10, 12, tzinfo=UTC)  # CET, UTC+1
    assert parse("2024-01-14T11:12:00+00:00", timezone="Europe/Paris") == \
        datetime(2024, 1, 14, 11, 12, tzinfo=UTC)  # an explicit offset wins


def test_rfc3164_year_is_inferred_from_the_receive_time() -> None:
    new_year = datetime(2024, 1, 1, 0, 0, 10, tzinfo=UTC)
    assert parse("Dec 31 23:59:50", new_year, formats=["rfc3164"]) == \
        datetime(2023, 12, 31, 23, 59, 50, tzinfo=UTC)
    assert parse("Jan  1 00:00:05", new_year, formats=["rfc3164"]) == \
        datetime(2024, 1, 1, 0, 0, 5, tzinfo=UTC)
    assert parse("May 14 11:12:00.250", formats=["rfc3164"], timezone="Europe/Berlin") == \
        datetime(2024, 5, 14, 9, 12, 0, 250000, UTC)


@pytest.mark.parametrize(("value", "fmt", "expected"), [
    (1715677920, "epoch", datetime(2024, 5, 14, 9, 12, tzinfo=UTC)),
    ("1715677920123", "epoch", datetime(2024, 5, 14, 9, 12, 0, 123000, UTC)),
    (1715677920123456, "epoch", datetime(2024, 5, 14, 9, 12, 0, 123456, UTC)),
    ("1715677920123456789", "epoch", datetime(2024, 5, 14, 9, 12, 0, 123456, UTC)),
    ("1715677920.5", "epoch", datetime(2024, 5, 14, 9, 12, 0, 500000, UTC)),
    (1715677920.25, "epoch_s", datetime(2024, 5, 14, 9, 12, 0, 250000, UTC)),
    (86400000, "epoch_ms", datetime(1970, 1, 2, tzinfo=UTC)),
    (86400000000, "epoch_us", datetime(1970, 1, 2, tzinfo=UTC)),
    ("86400000000000", "epoch_ns", datetime(1970, 1, 2, tzinfo=UTC)),
    (86400000, "epoch", datetime(1972, 9, 27, tzinfo=UTC)),  # < 1e11: seconds
])
def test_epochs(value: Any, fmt: str, expected: datetime) -> None:
    assert parse(value, formats=[fmt]) == expected


def test_strptime_formats_in_order_and_without_year() -> None:
    formats = ["%d/%b/%Y:%H:%M:%S %z", "%b %d %Y %H:%M:%S", "%b %d %H:%M:%S"]
    assert parse("14/May/2024:11:12:00 +0200", formats=formats) == \
        datetime(2024, 5, 14, 9, 12, tzinfo=UTC)  # nginx / Apache access log
    assert parse("May 14 2024 09:12:00", formats=formats) == \
        datetime(2024, 5, 14, 9, 12, tzinfo=UTC)  # Cisco ASA with `logging timestamp`
    new_year = datetime(2024, 1, 1, 0, 0, 10, tzinfo=UTC)
    assert parse("Dec 31 23:59:50", new_year, formats=formats) == \
        datetime(2023, 12, 31, 23, 59, 50, tzinfo=UTC)


def test_a_format_without_a_year_parses_29_february() -> None:
    formats = ["%b %d %H:%M:%S", "%m-%d %H:%M"]
    leap = datetime(2028, 3, 1, 8, 0, tzinfo=UTC)
    assert parse("Feb 29 23:10:00", leap, formats=formats) == \
        datetime(2028, 2, 29, 23, 10, tzinfo=UTC)
    assert parse("02-29 23:10", leap, formats=formats) == datetime(2028, 2, 29, 23, 10, tzinfo=UTC)
    # Read after new year (a backlog), the year before is the one with a 29 February.
    assert parse("Feb 29 23:10:00", datetime(2029, 1, 2, tzinfo=UTC), formats=formats) == \
        datetime(2028, 2, 29, 23, 10, tzinfo=UTC)
    # Read in the year before a leap year, only the future would fit: not placed, marked.
    event = ts(field="t", formats=formats).apply(
        {"t": "Feb 29 23:10:00", RECEIVED_AT: datetime(2027, 3, 1, tzinfo=UTC)})
    assert event[TIMESTAMP] == datetime(2027, 3, 1, tzinfo=UTC) and TIMESTAMP_ERROR in event
    # A day of the year still counts in a common year's calendar (day 100 is 10 April).
    assert parse("100 12:00:00", datetime(2026, 5, 1, tzinfo=UTC), formats=["%j %H:%M:%S"]) \
        == datetime(2026, 4, 10, 12, tzinfo=UTC)


def test_httpdate_is_the_access_log_format() -> None:
    assert parse("14/May/2024:11:12:00 +0200", formats=["httpdate"]) == \
        datetime(2024, 5, 14, 9, 12, tzinfo=UTC)
    assert parse("4/Feb/2024:00:00:00.123 -0130", formats=["httpdate"]) == \
        datetime(2024, 2, 4, 1, 30, 0, 123000, UTC)
    for bad in ("31/Feb/2024:00:00:00 +0000", "14/May/2024:11:12:00 +9900",
                "14/Mai/2024:11:12:00 +0000", "14/May/2024:11:12:00"):
        event = ts(field="t", formats=["httpdate"]).apply({"t": bad, RECEIVED_AT: RECEIVED})
        assert event[TIMESTAMP_ERROR] == f"cannot parse t={bad!r} as httpdate"


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30),
                    timezones=st.sampled_from([UTC, *(timezone(timedelta(minutes=m))
                                                      for m in (-570, -60, 120, 345))])))
def test_httpdate_agrees_with_strptime(value: datetime) -> None:
    text = value.strftime("%d/%b/%Y:%H:%M:%S %z")
    assert parse(text, formats=["httpdate"]) == parse(text, formats=["%d/%b/%Y:%H:%M:%S %z"])


def test_datetime_values_pass_and_target_and_remove_field() -> None:
    step = ts(field="t", target="event.created", remove_field=True, timezone="Asia/Tokyo")
    event = step.apply({"t": datetime(2024, 5, 14, 18, 12)})
    assert event == {"event.created": datetime(2024, 5, 14, 9, 12, tzinfo=UTC)}


def test_a_value_that_does_not_parse_keeps_the_time_and_marks_the_event() -> None:
    header_time = datetime(2024, 5, 14, 9, 29, tzinfo=UTC)
    step = ts(field="t", formats=["iso8601", "epoch_ms"])
    event = step.apply({"t": "yesterday", TIMESTAMP: header_time, RECEIVED_AT: RECEIVED})
    assert event[TIMESTAMP] == header_time
    assert event[TIMESTAMP_ERROR] == "cannot parse t='yesterday' as iso8601, epoch_ms"
    bare = step.apply({"t": "yesterday", RECEIVED_AT: RECEIVED})
    assert bare[TIMESTAMP] == RECEIVED
    no_receive_time = step.apply({"t": 12.5e300})
    assert no_receive_time[TIMESTAMP] == RECEIVED  # the step's clock
    assert no_receive_time[TIMESTAMP_ERROR] == "cannot parse t='1.25e+301' as iso8601, epoch_ms"
    missing = step.apply({RECEIVED_AT: RECEIVED})
    assert missing[TIMESTAMP_ERROR] == "field 't' is missing"
    assert ts(field="t", ignore_missing=True).apply({"x": 1}) == {"x": 1}


def test_on_error_fail_sends_the_event_to_the_dead_letter(
        build: Callable[[str], PipelineSet]) -> None:
    pipelines = build("""
    pipelines:
      web:
        dataset: web.access
        steps:
          - type: timestamp
            id: access-time
            field: timestamp
            formats: ["%d/%b/%Y:%H:%M:%S %z"]
            on_error: fail
    """)
    good = {"timestamp": "14/May/2024:11:12:00 +0200"}
    bad = {"timestamp": "14/May/2024 11:12:00"}
    out, dead = pipelines.process(Batch("t", [good, bad], 0, 1))
    assert out.events[0][TIMESTAMP] == datetime(2024, 5, 14, 9, 12, tzinfo=UTC)
    assert dead.kind == DEAD_LETTERS
    assert dead.events[0][DEAD_LETTER_STEP] == "access-time"
    assert dead.events[0][DEAD_LETTER_ERROR] == \
        "cannot parse timestamp='14/May/2024 11:12:00' as %d/%b/%Y:%H:%M:%S %z"


def test_config_errors(config_errors: Callable[[str], list[str]], tmp_path: Path) -> None:
    path = tmp_path / "30-pipelines.yaml"
    assert config_errors("""
    pipelines:
      p:
        dataset: x
        steps:
          - type: timestamp
            field: t
            formats: [iso8601, iso_8601, "%Y-%m-%d %Q", "%s", "%H:%M %", epoch_sec]
            timezone: Europe/Pariss
          - type: timestamp
            formats: []
    """) == [
        f"{path}:7:28: pipelines.p.steps[0].formats[1]: unknown format 'iso_8601' (did you "
        "mean 'iso8601'?): expected one of iso8601, rfc3164, httpdate, epoch, epoch_s, epoch_ms, "
        "epoch_us, epoch_ns or a strptime format",
        f"{path}:7:38: pipelines.p.steps[0].formats[2]: unknown strptime directive '%Q' in "
        "'%Y-%m-%d %Q'",
        f"{path}:7:53: pipelines.p.steps[0].formats[3]: '%s' is not a strptime directive: use "
        "the epoch_s format",
        f"{path}:7:59: pipelines.p.steps[0].formats[4]: unknown strptime directive 'a lone % at "
        "the end' in '%H:%M %'",
        f"{path}:7:70: pipelines.p.steps[0].formats[5]: unknown format 'epoch_sec' (did you "
        "mean 'epoch_s'?): expected one of iso8601, rfc3164, httpdate, epoch, epoch_s, "
        "epoch_ms, epoch_us, epoch_ns or a strptime format",
        f"{path}:8:19: pipelines.p.steps[0].timezone: unknown time zone 'Europe/Pariss'",
        f"{path}:9:9: pipelines.p.steps[1].field: required key is missing",
        f"{path}:10:18: pipelines.p.steps[1].formats: List should have at least 1 item after "
        "validation, not 0",
    ]


STEPS = [ts(field="t"), ts(field="t", formats=["epoch_ns", "%b %d %H:%M:%S", "%Y %j %z"],
                           timezone="America/New_York")]
RECEIVED_TIMES = st.datetimes(min_value=datetime(1, 1, 3), max_value=datetime(9999, 12, 29),
                              timezones=st.just(UTC))


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), st.integers(), st.floats(), st.datetimes(), st.binary(),
                 st.from_regex(r"[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d", fullmatch=True)),
       RECEIVED_TIMES)
def test_no_input_raises_and_every_result_is_utc(value: Any, received: datetime) -> None:
    for step in STEPS:
        try:
            event = step.apply({"t": value, RECEIVED_AT: received})
        except StepFailure:
            continue
        assert event[TIMESTAMP].utcoffset() == timedelta(0)


def test_a_batch_parses_each_distinct_text_once_and_answers_as_one_by_one() -> None:
    from core.events import RECEIVED_AT

    step = build_step("timestamp", field="t", formats=["rfc3164", "%Y-%m-%d %H:%M:%S"],
                      on_error="mark")
    calls: list[Any] = []
    parsers = step.parsers

    def counting(value: Any, tz: Any, received: datetime) -> Any:
        calls.append(value)
        return parsers[0](value, tz, received)

    step.parsers = [counting, *parsers[1:]]
    new_year = datetime(2025, 1, 1, 0, 0, 5, tzinfo=UTC)
    december = datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC)
    values = [("Dec 31 23:59:58", new_year), ("Dec 31 23:59:58", new_year),
              ("Dec 31 23:59:58", december), ("2024-05-14 09:12:00", new_year),
              ("2024-05-14 09:12:00", december), ("nonsense", new_year), (7, new_year)]
    events = [{"t": v, RECEIVED_AT: r} for v, r in values]
    alone = [step.apply(dict(e)) for e in events]
    calls.clear()
    result = step.apply_batch(events)
    assert result.outputs == alone
    # The year comes from the receive time: one parse per (text, receive time) for rfc3164.
    assert alone[0]["@timestamp"].year == 2024 and alone[2]["@timestamp"].year == 2024
    assert calls.count("Dec 31 23:59:58") == 2 and calls.count("2024-05-14 09:12:00") == 2
