"""The value matchers: each Sigma value type and modifier of a field = value leaf as an IR node.

Matching semantics (documented because Sigma leaves some of them to the backend):
- strings and wildcards (`*`, `?`) compare case-insensitively unless `|cased`; numbers and
  booleans compare by value, and a string pattern matches a number by its decimal text, so
  `EventID: 4625` matches both 4625 and "4625"; a list-valued field matches when any element does.
- `re` is an unanchored search (`re.search`) with the `i`/`m`/`s` flags, on the original value.
- `null` matches a field that is absent, None or ""; `exists: true` a field present and not None;
  a lone `*` a field present and not None.
- keyword (field-less) values are searched as substrings of the dataset's keyword fields
  (`message` unless the mapping says otherwise). Sigma's keyword rules are written against
  whole lines, `message` holds the text after the syslog header: a keyword's leading and
  trailing spaces (`' denied AXFR from '`) are not required, so the keyword also matches at
  the start or end of the message, where the raw line had the header's separator or its end.
- `fieldref` compares two fields' values case-insensitively (with contains/startswith/endswith).
- `|expand` placeholders are resolved before compiling (rules/placeholders.py); one left
  unresolved is a compile error, never a wildcard.
"""

from __future__ import annotations

import ipaddress
import operator
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
    TimestampPart,
)

from rules.compiler.anchors import regex_literals
from rules.compiler.fields import (
    MISSING,
    Event,
    FieldResolver,
    any_value,
    as_number,
    getter,
    text_of,
)
from rules.compiler.ir import CompileError, Keyword, Node, Or, StrTest, ValueTest


def value_node(keys: tuple[str, ...], value: Any, resolver: FieldResolver) -> Node:
    """The node testing one field (read from `keys`) against one Sigma value."""
    if isinstance(value, SigmaExpansion):
        children = [value_node(keys, v, resolver) for v in value.values]
        return Or(cost=sum(c.cost for c in children), children=children)
    if isinstance(value, SigmaString):  # includes SigmaCasedString
        return _string_test(keys, value, isinstance(value, SigmaCasedString))
    if isinstance(value, SigmaNull):
        get = getter(keys)
        return ValueTest(cost=0.5, keys=keys, required=False,
                         make=lambda: lambda ev, low: get(ev) in (MISSING, None, ""))
    if isinstance(value, SigmaExists):
        get = getter(keys)
        wanted = bool(value.exists)
        return ValueTest(cost=0.5, keys=keys, required=wanted,
                         make=lambda: lambda ev, low: (get(ev) not in (MISSING, None)) == wanted)
    if isinstance(value, SigmaBool):
        return _bool_test(keys, bool(value.boolean))
    if isinstance(value, SigmaTimestampPart):
        return _timestamp_part_test(keys, value)
    if isinstance(value, SigmaNumber):
        return _number_test(keys, value.number)
    if isinstance(value, SigmaCompareExpression):
        return _compare_test(keys, value)
    if isinstance(value, SigmaRegularExpression):
        return _regex_test(keys, value)
    if isinstance(value, SigmaCIDRExpression):
        network = value.network
        get = getter(keys)

        def in_network(item: Any) -> bool:
            try:
                return ipaddress.ip_address(str(item).strip()) in network
            except ValueError:
                return False

        return ValueTest(cost=4.0, keys=keys, make=lambda: any_value(get, in_network))
    if isinstance(value, SigmaFieldReference):
        return _fieldref_test(keys, value, resolver)
    raise CompileError(f"unsupported value type {type(value).__name__}")


def _string_parts(value: SigmaString) -> list[Any]:
    parts: list[Any] = []
    for part in value.s:
        if isinstance(part, Placeholder):
            raise CompileError(f"placeholder %{part.name}% has no value")
        elif isinstance(part, str) and parts and isinstance(parts[-1], str):
            parts[-1] += part
        else:
            parts.append(part)
    return parts


def _string_test(keys: tuple[str, ...], value: SigmaString, cased: bool) -> Node:
    parts = _string_parts(value)
    star = SpecialChars.WILDCARD_MULTI
    texts = [p for p in parts if isinstance(p, str)]
    single = any(p is SpecialChars.WILDCARD_SINGLE for p in parts)
    if not parts:
        return StrTest(cost=1.0, keys=keys, op="eq", patterns=("",), cased=cased)
    if not single:
        if len(parts) == 1 and texts:
            return StrTest(cost=1.0, keys=keys, op="eq", patterns=(texts[0],), cased=cased,
                           literals=(texts[0],))
        if all(p is star for p in parts):
            return StrTest(cost=0.5, keys=keys, op="any", patterns=("*",), cased=cased)
        if len(parts) == 2 and parts[1] is star and texts:
            return StrTest(cost=1.2, keys=keys, op="prefix", patterns=(texts[0],), cased=cased,
                           literals=(texts[0],))
        if len(parts) == 2 and parts[0] is star and texts:
            return StrTest(cost=1.2, keys=keys, op="suffix", patterns=(texts[0],), cased=cased,
                           literals=(texts[0],))
        if len(parts) == 3 and parts[0] is star and parts[2] is star and texts:
            return StrTest(cost=1.5, keys=keys, op="contains", patterns=(texts[0],), cased=cased,
                           literals=(texts[0],))
    return StrTest(cost=5.0, keys=keys, op="wild", patterns=(_wildcard_regex(parts),), cased=cased,
                   literals=(max(texts, key=len, default=""),))


def _wildcard_regex(parts: list[Any]) -> str:
    out = []
    for part in parts:
        if part is SpecialChars.WILDCARD_MULTI:
            out.append(".*")
        elif part is SpecialChars.WILDCARD_SINGLE:
            out.append(".")
        else:
            out.append(re.escape(part))
    return "".join(out)


def _trim_edges(parts: list[Any]) -> list[Any]:
    """A keyword's text without the spaces at its two ends (see the module notes)."""
    out = list(parts)
    if out and isinstance(out[0], str):
        out[0] = out[0].lstrip(" ")
    if out and isinstance(out[-1], str):
        out[-1] = out[-1].rstrip(" ")
    return [part for part in out if part != ""] or parts


def keyword_node(value: Any, resolver: FieldResolver) -> Node:
    """The node searching a field-less value in the dataset's keyword fields."""
    if isinstance(value, SigmaExpansion):
        children = [keyword_node(v, resolver) for v in value.values]
        return Or(cost=sum(c.cost for c in children), children=children)
    inner: list[Node] = []
    for keys in [(key,) for key in resolver.keyword_fields]:
        if isinstance(value, SigmaString):
            parts = _trim_edges(_string_parts(value))
            star = SpecialChars.WILDCARD_MULTI
            if not parts or parts[0] is not star:
                parts = [star, *parts]
            if parts[-1] is not star:
                parts = [*parts, star]
            wrapped = SigmaCasedString() if isinstance(value, SigmaCasedString) else SigmaString()
            wrapped.s = parts
            inner.append(_string_test(keys, wrapped, isinstance(value, SigmaCasedString)))
        elif isinstance(value, SigmaRegularExpression):
            inner.append(_regex_test(keys, value))
        elif isinstance(value, (SigmaNumber, SigmaBool)):
            text = str(value.number) if isinstance(value, SigmaNumber) else str(value).lower()
            inner.append(StrTest(cost=1.5, keys=keys, op="contains", patterns=(text,),
                                 literals=(text,)))
        else:
            raise CompileError(f"unsupported keyword value type {type(value).__name__}")
    return Keyword(cost=sum(n.cost for n in inner), keys=tuple(resolver.keyword_fields),
                   inner=inner)


def _bool_test(keys: tuple[str, ...], wanted: bool) -> Node:
    get = getter(keys)
    text = "true" if wanted else "false"

    def check(item: Any) -> bool:
        if item.__class__ is bool:
            return item is wanted
        return isinstance(item, str) and item.strip().lower() == text

    return ValueTest(cost=1.0, keys=keys, make=lambda: any_value(get, check),
                     anchor_values=(text,))


def _number_test(keys: tuple[str, ...], number: int | float) -> Node:
    get = getter(keys)
    text = str(number)

    def check(item: Any) -> bool:
        cls = item.__class__
        if cls is int or cls is float:
            return bool(item == number)
        if cls is str:
            return item == text or as_number(item) == number
        return False

    anchors = (text,) if isinstance(number, int) else ()
    return ValueTest(cost=1.0, keys=keys, make=lambda: any_value(get, check),
                     anchor_values=anchors)


_COMPARE = {
    CompareOperators.LT: operator.lt,
    CompareOperators.LTE: operator.le,
    CompareOperators.GT: operator.gt,
    CompareOperators.GTE: operator.ge,
}


def _compare_test(keys: tuple[str, ...], value: SigmaCompareExpression) -> Node:
    get = getter(keys)
    bound = value.number.number
    neq = getattr(CompareOperators, "NEQ", None)
    if value.op is neq:
        compare: Callable[[Any, Any], bool] = operator.ne
    else:
        compare = _COMPARE[value.op]

    def check(item: Any) -> bool:
        number = as_number(item)
        return number is not None and compare(number, bound)

    return ValueTest(cost=1.5, keys=keys, make=lambda: any_value(get, check))


_REGEX_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: re.IGNORECASE,
    SigmaRegularExpressionFlag.MULTILINE: re.MULTILINE,
    SigmaRegularExpressionFlag.DOTALL: re.DOTALL,
}


def _regex_test(keys: tuple[str, ...], value: SigmaRegularExpression) -> Node:
    flags = 0
    for flag in value.flags:
        flags |= _REGEX_FLAGS[flag]
    try:
        pattern = re.compile(str(value.regexp), flags)
    except re.error as exc:
        raise CompileError(f"invalid regular expression {str(value.regexp)!r}: {exc}") from exc
    search = pattern.search
    get = getter(keys)

    def check(item: Any) -> bool:
        return search(item if item.__class__ is str else text_of(item)) is not None

    return ValueTest(cost=8.0, keys=keys, make=lambda: any_value(get, check),
                     sub_literals=regex_literals(pattern.pattern))


def _fieldref_test(keys: tuple[str, ...], value: SigmaFieldReference,
                   resolver: FieldResolver) -> Node:
    get = getter(keys)
    get_other = getter(resolver.keys(value.field))
    starts, ends = value.starts_with, value.ends_with

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

    return ValueTest(cost=2.0, keys=keys, make=lambda: pred)


_PARTS = {
    TimestampPart.MINUTE: lambda t: t.minute,
    TimestampPart.HOUR: lambda t: t.hour,
    TimestampPart.DAY: lambda t: t.day,
    TimestampPart.WEEK: lambda t: t.isocalendar()[1],
    TimestampPart.MONTH: lambda t: t.month,
    TimestampPart.YEAR: lambda t: t.year,
}


def _timestamp_part_test(keys: tuple[str, ...], value: SigmaTimestampPart) -> Node:
    get = getter(keys)
    extract = _PARTS[value.timestamp_part]
    wanted = int(value.number)

    def check(item: Any) -> bool:
        if isinstance(item, str):
            try:
                item = datetime.fromisoformat(item.replace("Z", "+00:00"))
            except ValueError:
                return False
        return isinstance(item, datetime) and extract(item) == wanted

    return ValueTest(cost=2.0, keys=keys, make=lambda: any_value(get, check))
