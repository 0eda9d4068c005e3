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

import re
from typing import Any

from sigma.types import (
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
)

from rules.compiler.anchors import regex_literals
from rules.compiler.fields import (
    FieldResolver,
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
        return ValueTest(cost=0.5, keys=keys, required=False, kind="null")
    if isinstance(value, SigmaExists):
        wanted = bool(value.exists)
        return ValueTest(cost=0.5, keys=keys, required=wanted, kind="exists", args=(wanted,))
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
        return ValueTest(cost=4.0, keys=keys, kind="cidr", args=(str(value.network),))
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
    return ValueTest(cost=1.0, keys=keys, kind="bool", args=(wanted,),
                     anchor_values=("true" if wanted else "false",))


def _number_test(keys: tuple[str, ...], number: int | float) -> Node:
    anchors = (str(number),) if isinstance(number, int) else ()
    return ValueTest(cost=1.0, keys=keys, kind="number", args=(number,), anchor_values=anchors)


def _compare_test(keys: tuple[str, ...], value: SigmaCompareExpression) -> Node:
    return ValueTest(cost=1.5, keys=keys, kind="compare",
                     args=(value.op.name, value.number.number))


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
    return ValueTest(cost=8.0, keys=keys, kind="regex", args=(pattern.pattern, int(flags)),
                     sub_literals=regex_literals(pattern.pattern))


def _fieldref_test(keys: tuple[str, ...], value: SigmaFieldReference,
                   resolver: FieldResolver) -> Node:
    return ValueTest(cost=2.0, keys=keys, kind="fieldref",
                     args=(resolver.keys(value.field), bool(value.starts_with),
                           bool(value.ends_with)))


def _timestamp_part_test(keys: tuple[str, ...], value: SigmaTimestampPart) -> Node:
    return ValueTest(cost=2.0, keys=keys, kind="timestamp_part",
                     args=(value.timestamp_part.name, int(value.number)))
