"""Predicates of the non-string value tests, built from plain data (a kind and its arguments),
so a compiled condition can be stored as data (the rule cache) and rebuilt without pySigma.

The matching semantics are documented in `values`; `VALUE_PREDICATES` maps each kind to the
function that builds its predicate from the field keys and the arguments.
"""

from __future__ import annotations

import ipaddress
import operator
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from rules.compiler.fields import MISSING, Event, Predicate, any_value, as_number, getter, text_of


def null_predicate(keys: tuple[str, ...]) -> Predicate:
    get = getter(keys)
    return lambda ev, low: get(ev) in (MISSING, None, "")


def exists_predicate(keys: tuple[str, ...], wanted: bool) -> Predicate:
    get = getter(keys)
    return lambda ev, low: (get(ev) not in (MISSING, None)) == wanted


def bool_predicate(keys: tuple[str, ...], wanted: bool) -> Predicate:
    text = "true" if wanted else "false"

    def check(item: Any) -> bool:
        if item.__class__ is bool:
            return item is wanted
        return isinstance(item, str) and item.strip().lower() == text

    return any_value(getter(keys), check)


def number_predicate(keys: tuple[str, ...], number: int | float) -> Predicate:
    text = str(number)

    def check(item: Any) -> bool:
        cls = item.__class__
        if cls is int or cls is float:
            return bool(item == number)
        if cls is str:
            return item == text or as_number(item) == number
        return False

    return any_value(getter(keys), check)


COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "LT": operator.lt, "LTE": operator.le, "GT": operator.gt, "GTE": operator.ge,
    "NEQ": operator.ne,
}


def compare_predicate(keys: tuple[str, ...], op: str, bound: int | float) -> Predicate:
    compare = COMPARE[op]

    def check(item: Any) -> bool:
        number = as_number(item)
        return number is not None and compare(number, bound)

    return any_value(getter(keys), check)


def regex_predicate(keys: tuple[str, ...], pattern: str, flags: int) -> Predicate:
    search = re.compile(pattern, flags).search

    def check(item: Any) -> bool:
        return search(item if item.__class__ is str else text_of(item)) is not None

    return any_value(getter(keys), check)


def cidr_predicate(keys: tuple[str, ...], network_text: str) -> Predicate:
    network = ipaddress.ip_network(network_text)

    def in_network(item: Any) -> bool:
        try:
            return ipaddress.ip_address(str(item).strip()) in network
        except ValueError:
            return False

    return any_value(getter(keys), in_network)


def fieldref_predicate(keys: tuple[str, ...], other_keys: tuple[str, ...], starts: bool,
                       ends: bool) -> Predicate:
    get, get_other = getter(keys), getter(tuple(other_keys))

    def pred(ev: Event, low: dict[str, str]) -> bool:
        mine, other = get(ev), get_other(ev)
        if mine in (MISSING, None) or other in (MISSING, None):
            return False
        a, b = text_of(mine).lower(), text_of(other).lower()
        if starts and ends:
            return b in a
        if starts:
            return a.startswith(b)
        if ends:
            return a.endswith(b)
        return a == b

    return pred


TIMESTAMP_PARTS: dict[str, Callable[[datetime], int]] = {
    "MINUTE": lambda t: t.minute, "HOUR": lambda t: t.hour, "DAY": lambda t: t.day,
    "WEEK": lambda t: t.isocalendar()[1], "MONTH": lambda t: t.month, "YEAR": lambda t: t.year,
}


def timestamp_part_predicate(keys: tuple[str, ...], part: str, wanted: int) -> Predicate:
    extract = TIMESTAMP_PARTS[part]

    def check(item: Any) -> bool:
        if isinstance(item, str):
            try:
                item = datetime.fromisoformat(item.replace("Z", "+00:00"))
            except ValueError:
                return False
        return isinstance(item, datetime) and extract(item) == wanted

    return any_value(getter(keys), check)


VALUE_PREDICATES: dict[str, Callable[..., Predicate]] = {
    "null": null_predicate, "exists": exists_predicate, "bool": bool_predicate,
    "number": number_predicate, "compare": compare_predicate, "regex": regex_predicate,
    "cidr": cidr_predicate, "fieldref": fieldref_predicate,
    "timestamp_part": timestamp_part_predicate,
}
