"""What the correlation engine reads from an event: its time (`@timestamp` in any of the forms
events carry), its weight (`event.count`), and group-by and value fields as plain values."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

COUNT_FIELD = "event.count"  # how many occurrences one event stands for
MAX_WEIGHT = 1_000_000  # bounds what one event adds to a count

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def event_time(value: Any, clock: Clock = utc_now) -> datetime:
    """An event's `@timestamp` as an aware datetime (the clock's time when absent/invalid)."""
    return datetime.fromtimestamp(epoch_seconds(value, clock), UTC)


def epoch_seconds(value: Any, clock: Clock) -> float:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
        except ValueError:
            pass
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return clock().timestamp()


def weight_of(event: dict[str, Any]) -> int:
    """How many occurrences the event stands for: a positive `event.count`, else one."""
    count = event.get(COUNT_FIELD)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        return 1
    return min(count, MAX_WEIGHT)


def first_value(event: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = event.get(key)
        if value is not None:
            return plain(value)
    return None


def plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def as_number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None
