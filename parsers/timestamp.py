"""The `timestamp` step: a field's time to `@timestamp` (UTC), trying formats in order.

Formats: `iso8601`, `rfc3164` (`Mmm dd hh:mm:ss`, the year inferred against the receive time as
the syslog parser does), epoch numbers (`epoch` picks the unit by magnitude), and strptime
formats. A value that parses as none of them does not fail the event by default: `@timestamp`
keeps what it had (the syslog header time, else the receive time) and the event is marked with
`vigil.timestamp_error`; `on_error: fail` hands it to the step's `on_failure` instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field

from core.config import ConfigIssue, ValidationContext
from core.events import RECEIVED_AT, TIMESTAMP, Event
from core.provenance import WrittenName
from core.registry import did_you_mean
from core.step import Step, StepConfig, StepFailure, StepResult, failure_reason

# The syslog parser owns RFC 3164 timestamps and their year inference; reuse it rather than
# keep a second copy that could drift.
from parsers.syslog.parser import BSD_TIMESTAMP, bsd_timestamp

TIMESTAMP_ERROR = "vigil.timestamp_error"
EPOCH_UNITS = {"epoch_s": 1_000_000, "epoch_ms": 1_000, "epoch_us": 1, "epoch_ns": None}
NAMED_FORMATS = ("iso8601", "rfc3164", "httpdate", "epoch", *EPOCH_UNITS)
STRPTIME_DIRECTIVES = frozenset("%ABGHIMSUVWXYZabcdfjmpuwxyz")
_YEAR_DIRECTIVES = re.compile(r"%[YyGcx]")
_DIRECTIVE = re.compile(r"%(.?)", re.DOTALL)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MONTH_NUMBERS = {name: number for number, name in enumerate(_MONTHS, 1)}
# Common Log Format time (nginx, Apache, HAProxy): `14/May/2024:09:12:00 +0000`. strptime takes
# ~6 us for it; this regex and the datetime constructor about 1.5 us.
_HTTPDATE = re.compile(r"(\d{1,2})/([A-Z][a-z]{2})/(\d{4}):(\d{2}):(\d{2}):(\d{2})"
                       r"(?:[.,](\d{1,9}))? ([+-])(\d{2}):?(\d{2})", re.ASCII)
_OFFSETS: dict[int, tzinfo] = {}

Parser = Callable[[Any, tzinfo, datetime], datetime | None]


class TimestampConfig(StepConfig):
    """Parse a time field into `@timestamp`: `formats: [iso8601, "%d/%b/%Y:%H:%M:%S %z"]`."""

    type: Literal["timestamp"] = "timestamp"
    field: str = Field(description="field holding the time (e.g. `cef.rt`, `timestamp`)")
    target: str = Field(TIMESTAMP, description="field the parsed time (UTC) goes to")
    formats: list[str] = Field(
        ["iso8601", "rfc3164", "epoch"], min_length=1,
        description="tried in order: iso8601 (with or without offset and fraction), rfc3164 "
        "(`Mmm dd hh:mm:ss`, year inferred from the receive time), httpdate (access logs' "
        "`14/May/2024:09:12:00 +0000`), epoch (unit by magnitude: "
        "s, ms, us or ns), epoch_s, epoch_ms, epoch_us, epoch_ns, or a strptime format "
        "(`%Y-%m-%d %H:%M:%S`; without a year directive the year is inferred as for rfc3164)")
    timezone: str = Field("UTC", description="IANA zone for times written without an offset")
    on_error: Literal["mark", "fail"] = Field(
        "mark", description="a value no format parses: mark keeps the target as it is (the "
        "receive time when absent) and sets `vigil.timestamp_error`; fail fails the step "
        "(then `on_failure` decides)")
    ignore_missing: bool = Field(False, description="an event without the field passes "
                                                    "unmarked")
    remove_field: bool = Field(False, description="remove the source field once parsed")

    def written_fields(self, context: ValidationContext) -> list[WrittenName]:
        names: list[WrittenName] = [(("target",), self.target, False)]
        if self.remove_field:
            names.append((("field",), self.field, False))
        return names

    def semantic_errors(self, context: ValidationContext) -> list[ConfigIssue]:
        issues: list[ConfigIssue] = []
        for index, fmt in enumerate(self.formats):
            problem = format_problem(fmt)
            if problem is not None:
                issues.append((("formats", index), problem))
        try:
            zone(self.timezone)
        except ValueError as exc:
            issues.append((("timezone",), str(exc)))
        return issues


def format_problem(fmt: str) -> str | None:
    """Why `fmt` is neither a named format nor a usable strptime format, or None."""
    if fmt in NAMED_FORMATS:
        return None
    if "%" not in fmt:
        return (f"unknown format {fmt!r}{did_you_mean(fmt, NAMED_FORMATS)}: expected one of "
                f"{', '.join(NAMED_FORMATS)} or a strptime format")
    for directive in _DIRECTIVE.findall(fmt):
        if directive == "s":
            return "'%s' is not a strptime directive: use the epoch_s format"
        if directive not in STRPTIME_DIRECTIVES:
            shown = f"%{directive}" if directive else "a lone % at the end"
            return f"unknown strptime directive {shown!r} in {fmt!r}"
    return None


def zone(name: str) -> tzinfo:
    """The zone called `name` (ValueError when there is none)."""
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def _to_utc(value: datetime, tz: tzinfo) -> datetime | None:
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # year 1 east of UTC, year 9999 west of it
        return None


def parse_iso8601(value: Any, tz: tzinfo, received_at: datetime) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return _to_utc(parsed, tz)


def parse_rfc3164(value: Any, tz: tzinfo, received_at: datetime) -> datetime | None:
    if not isinstance(value, str):
        return None
    text = value.strip()
    match = BSD_TIMESTAMP.match(text)
    if match is None or match.end() != len(text):
        return None
    return bsd_timestamp(match, received_at, tz)


def parse_httpdate(value: Any, tz: tzinfo, received_at: datetime) -> datetime | None:
    if not isinstance(value, str):
        return None
    text = value.strip()
    match = _HTTPDATE.fullmatch(text)
    if match is None:
        return None
    day, month, year, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    minutes = int(off_h) * 60 + int(off_m)
    if minutes > 18 * 60 or month not in _MONTH_NUMBERS:
        return None
    offset = -minutes if sign == "-" else minutes
    zone = _OFFSETS.get(offset)
    if zone is None:
        zone = _OFFSETS[offset] = timezone(timedelta(minutes=offset))
    try:
        parsed = datetime(int(year), _MONTH_NUMBERS[month], int(day), int(hour), int(minute),
                          int(second), int(fraction[:6].ljust(6, "0")) if fraction else 0, zone)
    except ValueError:
        return None
    return _to_utc(parsed, tz)


def infer_year(parsed: datetime, tz: tzinfo, received_at: datetime) -> datetime | None:
    """A year-less time placed in the year that the syslog parser's inference picks."""
    text = (f"{_MONTHS[parsed.month - 1]} {parsed.day:2d} {parsed:%H:%M:%S}."
            f"{parsed.microsecond:06d}")
    match = BSD_TIMESTAMP.match(text)
    return bsd_timestamp(match, received_at, parsed.tzinfo or tz) if match is not None else None


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def epoch_parser(unit: str) -> Parser:
    """A parser of epoch numbers in `unit` (`epoch`: s, ms, us or ns by magnitude)."""

    def parse(value: Any, tz: tzinfo, received_at: datetime) -> datetime | None:
        number = _number(value)
        if number is None or number != number:  # NaN
            return None
        name = unit
        if name == "epoch":
            size = abs(number)
            name = ("epoch_s" if size < 1e11 else "epoch_ms" if size < 1e14 else
                    "epoch_us" if size < 1e17 else "epoch_ns")
        try:
            factor = EPOCH_UNITS[name]
            if factor is None:
                micros = int(number) // 1000
            elif isinstance(number, int):
                micros = number * factor
            else:
                micros = round(number * factor)
            return _EPOCH + timedelta(microseconds=micros)
        except (OverflowError, ValueError):
            return None

    return parse


def strptime_parser(fmt: str) -> Parser:
    has_year = _YEAR_DIRECTIVES.search(fmt) is not None

    def parse(value: Any, tz: tzinfo, received_at: datetime) -> datetime | None:
        if not isinstance(value, str):
            return None
        text = value.strip()
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            if has_year:
                return None
            # strptime's default year (1900) has no 29 February: retry in a leap year (only
            # then, so a day-of-year `%j` keeps counting from 1900's calendar).
            try:
                parsed = datetime.strptime(f"{text} 2000", f"{fmt} %Y")
            except ValueError:
                return None
        if not has_year:
            return infer_year(parsed, tz, received_at)
        return _to_utc(parsed, tz)

    return parse


def parser_for(fmt: str) -> Parser:
    if fmt == "iso8601":
        return parse_iso8601
    if fmt == "rfc3164":
        return parse_rfc3164
    if fmt == "httpdate":
        return parse_httpdate
    if fmt == "epoch" or fmt in EPOCH_UNITS:
        return epoch_parser(fmt)
    return strptime_parser(fmt)


class TimestampStep(Step):
    """`type: timestamp`."""

    config_model = TimestampConfig

    def __init__(self, config: TimestampConfig, context: Any) -> None:
        super().__init__(config, context)
        self.parsers = [parser_for(fmt) for fmt in config.formats]
        self.zone = zone(config.timezone)
        self.field = config.field
        self.target = config.target
        self.mark = config.on_error == "mark"
        self.ignore_missing = config.ignore_missing
        self.remove = config.remove_field
        self.clock: Callable[[], datetime] = getattr(context, "clock", None) or _now
        self.format_list = ", ".join(config.formats)
        # Formats without a year take it from the receive time: the answer depends on both.
        self.uses_received = any(fmt == "rfc3164" or (
            fmt not in ("iso8601", "httpdate", "epoch") and fmt not in EPOCH_UNITS
            and _YEAR_DIRECTIVES.search(fmt) is None) for fmt in config.formats)

    def apply(self, event: Event) -> Event:
        return self._apply(event, None)

    def apply_batch(self, events: list[Event]) -> StepResult:
        """Each distinct text (with its receive time, for formats without a year) is parsed
        once per batch: events of one append share a receive time, and most of a batch's
        timestamps repeat within the second."""
        memo: dict[tuple[Any, ...], datetime | None] = {}
        outputs: list[Event | None] = []
        failures: dict[int, str] = {}
        for index, event in enumerate(events):
            try:
                outputs.append(self._apply(event, memo))
            except Exception as exc:  # StepFailure, or a bug: this event only
                outputs.append(None)
                failures[index] = failure_reason(exc)
        return StepResult(outputs, failures)

    def _parse(self, value: Any, event: Event,
               memo: dict[tuple[Any, ...], datetime | None] | None) -> datetime | None:
        received = event.get(RECEIVED_AT)
        if not isinstance(received, datetime):
            received = self.clock()
        key: tuple[Any, ...] | None = None
        if memo is not None and type(value) in (str, int, float):
            key = (type(value), value, received) if self.uses_received else (type(value), value)
            if key in memo:
                return memo[key]
        parsed = None
        for parse in self.parsers:
            parsed = parse(value, self.zone, received)
            if parsed is not None:
                break
        if key is not None and memo is not None:
            memo[key] = parsed
        return parsed

    def _apply(self, event: Event, memo: dict[tuple[Any, ...], datetime | None] | None
               ) -> Event:
        value = event.get(self.field)
        if value is None:
            if self.ignore_missing:
                return event
            return self._failed(event, f"field {self.field!r} is missing")
        if isinstance(value, datetime):
            parsed = _to_utc(value, self.zone)
        else:
            parsed = self._parse(value, event, memo)
        if parsed is None:
            shown = value if isinstance(value, str) else repr(value)
            return self._failed(event, f"cannot parse {self.field}={shown[:80]!r} as "
                                       f"{self.format_list}")
        event[self.target] = parsed
        if self.remove and self.field != self.target:
            del event[self.field]
        return event

    def _failed(self, event: Event, reason: str) -> Event:
        if not self.mark:
            raise StepFailure(reason)
        if self.target not in event:
            received = event.get(RECEIVED_AT)
            event[self.target] = received if isinstance(received, datetime) else self.clock()
        event[TIMESTAMP_ERROR] = reason
        return event


def _now() -> datetime:
    return datetime.now(UTC)
