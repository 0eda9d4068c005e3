"""How a rule reads an event: the per-dataset field resolver (keyword fields, fallback fields,
weak logsource fields) and the field accessors the value matchers build their closures on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Event = dict[str, Any]
Predicate = Callable[[Event, dict[str, str]], Any]

DEFAULT_WEAK_SHARE = 0.9  # share of events a weak (logsource) field value is assumed to pass


@dataclass(frozen=True)
class FieldResolver:
    """How a mapped field name is read from an event of one dataset."""

    keyword_fields: tuple[str, ...] = ("message",)
    fallback: tuple[tuple[str, str], ...] = ()
    weak_fields: dict[str, float] = field(default_factory=dict)  # field -> share of events

    def keys(self, name: str) -> tuple[str, ...]:
        """The event keys read for a mapped field name (fallbacks are resolved by `view`)."""
        return (name,)

    def view(self, event: Event) -> Event:
        """The event as rules read it: a fallback field stands in for an absent primary one.

        `winlog.user_data.X` is visible as `winlog.event_data.X` when that is absent. Done once
        per event rather than in every predicate, and only copies events that need it.
        """
        if not self.fallback:
            return event
        extra: dict[str, Any] | None = None
        for key, value in event.items():
            for prefix, other in self.fallback:
                if key.startswith(other):
                    primary = prefix + key[len(other):]
                    if primary not in event:
                        extra = extra if extra is not None else {}
                        extra[primary] = value
        if extra is None:
            return event
        return {**event, **extra}


MISSING = object()  # what `getter` returns for an absent field (None is a value)


def text_of(value: Any) -> str:
    """The text a string pattern is matched against for a non-string value."""
    if value.__class__ is bool:
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def field_predicate(keys: tuple[str, ...], test: Callable[[str], Any], cased: bool) -> Predicate:
    """Apply a string test to the first present key; non-strings are tested by their text."""

    def slow(value: Any) -> bool:
        if isinstance(value, list):
            return any(slow(item) for item in value if item is not None)
        text = text_of(value)
        return bool(test(text if cased else text.lower()))

    if len(keys) == 1:
        key = keys[0]
        if cased:

            def pred_cased(ev: Event, low: dict[str, str]) -> Any:
                value = ev.get(key)
                if value.__class__ is str:
                    return test(value)
                return value is not None and slow(value)

            return pred_cased

        def pred(ev: Event, low: dict[str, str]) -> Any:
            text = low.get(key)
            if text is not None:
                return test(text)
            value = ev.get(key)
            return value is not None and slow(value)

        return pred

    def pred_fallback(ev: Event, low: dict[str, str]) -> Any:
        for key in keys:
            value = ev.get(key, MISSING)
            if value is not MISSING:
                if value is None:
                    return False
                if value.__class__ is str:
                    return test(value if cased else low.get(key, value.lower()))
                return slow(value)
        return False

    return pred_fallback


def getter(keys: tuple[str, ...]) -> Callable[[Event], Any]:
    """Value of the first present key, or MISSING."""
    if len(keys) == 1:
        key = keys[0]
        return lambda ev: ev.get(key, MISSING)

    def get(ev: Event) -> Any:
        for key in keys:
            value = ev.get(key, MISSING)
            if value is not MISSING:
                return value
        return MISSING

    return get


def any_value(get: Callable[[Event], Any], check: Callable[[Any], bool]) -> Predicate:
    """A predicate: `check` holds for the field's value (or any element of a list value)."""

    def pred(ev: Event, low: dict[str, str]) -> bool:
        value = get(ev)
        if value is MISSING or value is None:
            return False
        if isinstance(value, list):
            return any(check(item) for item in value if item is not None)
        return check(value)

    return pred


def as_number(value: Any) -> float | int | None:
    """A number, or a string that reads as one (decimal, float or 0x hex); else None."""
    if value.__class__ is bool:
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text, 0) if text[:2].lower() == "0x" else float(text)
        except ValueError:
            return None
    return None
