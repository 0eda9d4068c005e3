"""Compile a processed Sigma rule's condition tree into a closure over the flat event.

`compile_condition` turns pySigma's parsed condition (AND/OR/NOT over field = value leaves) into a
small IR, merges sibling string tests on one field (`Image|endswith: [list]` becomes one
`str.endswith(tuple)`), orders AND children cheapest first and builds closures of signature
`predicate(event, lowered) -> bool`, where `lowered` maps each string field of the event to its
`.lower()` (computed once per event by the engine, shared by every rule). Alongside it computes
the literals every match requires (for the engine's index) and the fields the rule needs.

Matching semantics (documented because Sigma leaves some of them to the backend):
- strings and wildcards (`*`, `?`) compare case-insensitively unless `|cased`; numbers and
  booleans compare by value, and a string pattern matches a number by its decimal text, so
  `EventID: 4625` matches both 4625 and "4625"; a list-valued field matches when any element does.
- `re` is an unanchored search (`re.search`) with the `i`/`m`/`s` flags, on the original value.
- `null` matches a field that is absent, None or ""; `exists: true` a field present and not None;
  a lone `*` a field present and not None.
- keyword (field-less) values are searched as substrings of the dataset's keyword fields
  (`message` unless the mapping says otherwise).
- `fieldref` compares two fields' values case-insensitively (with contains/startswith/endswith).
- `|expand` placeholders left unresolved by the pipeline act as `*`.
"""

from __future__ import annotations

import ipaddress
import math
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import ahocorasick
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
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

from collector.errors import VigilError

Event = dict[str, Any]
Predicate = Callable[[Event, dict[str, str]], Any]

# Anchor: (kind, event field, lowered literal). kind "eq": the field's value equals the literal;
# "sub": the lowered value contains it. A node's anchors are alternatives: a match implies one.
Anchor = tuple[str, str, str]

MIN_SUBSTRING = 3  # shorter literals would hit almost every event and make the index useless
DEFAULT_WEAK_SHARE = 0.9  # share of events a weak (logsource) field value is assumed to pass


class CompileError(VigilError):
    """A rule uses something the evaluator cannot express (e.g. a backend query expression)."""


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


# ----------------------------------------------------------------------------------------- IR


@dataclass
class Node:
    cost: float = 1.0

    def anchors(self, weak: dict[str, float]) -> list[Anchor] | None:
        return None

    def fields(self) -> frozenset[str]:
        return frozenset()

    def build(self) -> Predicate:
        raise NotImplementedError


@dataclass
class Const(Node):
    value: bool = True

    def build(self) -> Predicate:
        result = self.value
        return lambda ev, low: result


@dataclass
class StrTest(Node):
    """String test on one field: op in eq/prefix/suffix/contains/contains_all/wild/any."""

    keys: tuple[str, ...] = ()
    op: str = "eq"
    patterns: tuple[str, ...] = ()
    cased: bool = False
    literals: tuple[str, ...] = ()  # per pattern, the longest text every match contains

    def anchors(self, weak: dict[str, float]) -> list[Anchor] | None:
        if self.op == "eq":
            return [("eq", key, p.lower()) for key in self.keys for p in self.patterns]
        if self.op == "any":
            return None
        literals = self.literals or self.patterns
        if self.op == "contains_all":
            literals = (max(literals, key=len),)
        if any(len(lit) < MIN_SUBSTRING for lit in literals):
            return None
        return [("sub", key, lit.lower()) for key in self.keys for lit in literals]

    def fields(self) -> frozenset[str]:
        return frozenset(self.keys[:1])

    def build(self) -> Predicate:
        test = self._test()
        return _field_predicate(self.keys, test, self.cased)

    def _test(self) -> Callable[[str], Any]:
        pats = self.patterns if self.cased else tuple(p.lower() for p in self.patterns)
        op = self.op
        if op == "eq":
            return pats[0].__eq__ if len(pats) == 1 else frozenset(pats).__contains__
        if op == "prefix":
            return operator.methodcaller("startswith", pats)
        if op == "suffix":
            return operator.methodcaller("endswith", pats)
        if op == "contains":
            if len(pats) == 1:
                return operator.methodcaller("__contains__", pats[0])
            return _any_substring(pats)
        if op == "contains_all":
            return lambda s: all(p in s for p in pats)
        if op == "any":
            return lambda s: True
        flags = re.DOTALL | (0 if self.cased else re.IGNORECASE)
        return re.compile("|".join(f"(?:{p})" for p in pats), flags).fullmatch


@dataclass
class ValueTest(Node):
    """Non-string test on one field (number, bool, null, exists, compare, regex, cidr, ...)."""

    keys: tuple[str, ...] = ()
    make: Callable[[], Predicate] | None = None
    required: bool = True
    anchor_values: tuple[str, ...] = ()

    sub_literals: tuple[str, ...] = ()  # alternatives, one of which every match contains

    def anchors(self, weak: dict[str, float]) -> list[Anchor] | None:
        if self.sub_literals:
            return [("sub", key, lit.lower()) for key in self.keys for lit in self.sub_literals]
        if not self.anchor_values:
            return None
        return [("eq", key, v) for key in self.keys for v in self.anchor_values]

    def fields(self) -> frozenset[str]:
        return frozenset(self.keys[:1]) if self.required else frozenset()

    def build(self) -> Predicate:
        assert self.make is not None
        return self.make()


@dataclass
class Keyword(Node):
    """A field-less value searched in the dataset's keyword fields."""

    keys: tuple[str, ...] = ()
    inner: list[Node] = field(default_factory=list)

    def anchors(self, weak: dict[str, float]) -> list[Anchor] | None:
        return _union_anchors(self.inner, weak)

    def fields(self) -> frozenset[str]:
        if not self.inner:
            return frozenset()
        return frozenset.intersection(*(n.fields() for n in self.inner))

    def build(self) -> Predicate:
        return _or([n.build() for n in self.inner])


@dataclass
class And(Node):
    children: list[Node] = field(default_factory=list)

    def anchors(self, weak: dict[str, float]) -> list[Anchor] | None:
        best: list[Anchor] | None = None
        best_cost = math.inf
        for child in self.children:
            found = child.anchors(weak)
            if found is not None and (cost := anchor_cost(found, weak)) < best_cost:
                best, best_cost = found, cost
        return best

    def fields(self) -> frozenset[str]:
        return frozenset().union(*(c.fields() for c in self.children))

    def build(self) -> Predicate:
        preds = [c.build() for c in sorted(self.children, key=lambda c: c.cost)]
        if len(preds) == 1:
            return preds[0]
        if len(preds) == 2:
            a, b = preds
            return lambda ev, low: a(ev, low) and b(ev, low)
        if len(preds) == 3:
            a, b, c = preds
            return lambda ev, low: a(ev, low) and b(ev, low) and c(ev, low)

        def all_of(ev: Event, low: dict[str, str]) -> bool:
            # A plain loop: all() over a generator costs a frame per rule, and this is hot.
            for pred in preds:  # noqa: SIM110
                if not pred(ev, low):
                    return False
            return True

        return all_of


@dataclass
class Or(Node):
    children: list[Node] = field(default_factory=list)

    def anchors(self, weak: dict[str, float]) -> list[Anchor] | None:
        return _union_anchors(self.children, weak)

    def fields(self) -> frozenset[str]:
        if not self.children:
            return frozenset()
        return frozenset.intersection(*(c.fields() for c in self.children))

    def build(self) -> Predicate:
        return _or([c.build() for c in sorted(self.children, key=lambda c: c.cost)])


@dataclass
class Not(Node):
    child: Node = field(default_factory=Const)

    def build(self) -> Predicate:
        inner = self.child.build()
        return lambda ev, low: not inner(ev, low)


def _any_substring(patterns: tuple[str, ...]) -> Callable[[str], Any]:
    """Whether a text contains any of several substrings.

    Measured on command lines: a plain loop wins below ~16 patterns, an Aho-Corasick automaton
    above; a regex alternation of literals is several times slower than either.
    """
    unique = tuple(sorted(set(patterns), key=len))
    if len(unique) < 16:

        def loop(text: str) -> bool:
            for pattern in unique:  # noqa: SIM110 - faster than any() over a generator
                if pattern in text:
                    return True
            return False

        return loop
    automaton = ahocorasick.Automaton()
    for pattern in unique:
        automaton.add_word(pattern, pattern)
    automaton.make_automaton()
    scan = automaton.iter
    return lambda text: next(scan(text), None) is not None


def anchor_cost(anchors: Sequence[Anchor], weak: dict[str, float]) -> float:
    """Estimated share of events an anchor set lets through (lower is more selective).

    A rough model, good enough to rank alternatives: an exact value passes about 1% of events,
    a substring the more the shorter it is, a weak (logsource) field its declared share.
    """
    total = 0.0
    for kind, key, literal in anchors:
        if key in weak:
            total += weak[key]
        elif kind == "eq":
            total += 0.01
        else:
            size = len(literal)
            total += 0.003 if size >= 10 else 0.01 if size >= 6 else 0.05 if size >= 4 else 0.15
    return total


def _union_anchors(nodes: Iterable[Node], weak: dict[str, float]) -> list[Anchor] | None:
    out: list[Anchor] = []
    for node in nodes:
        found = node.anchors(weak)
        if found is None:
            return None
        out.extend(found)
    return out


def _or(preds: list[Predicate]) -> Predicate:
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return lambda ev, low: a(ev, low) or b(ev, low)

    def any_of(ev: Event, low: dict[str, str]) -> bool:
        for pred in preds:  # noqa: SIM110 - faster than any() over a generator
            if pred(ev, low):
                return True
        return False

    return any_of


# ------------------------------------------------------------------------------ field access

_MISSING = object()


def _text_of(value: Any) -> str:
    if value.__class__ is bool:
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _field_predicate(keys: tuple[str, ...], test: Callable[[str], Any], cased: bool) -> Predicate:
    """Apply a string test to the first present key; non-strings are tested by their text."""

    def slow(value: Any) -> bool:
        if isinstance(value, list):
            return any(slow(item) for item in value if item is not None)
        text = _text_of(value)
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
            value = ev.get(key, _MISSING)
            if value is not _MISSING:
                if value is None:
                    return False
                if value.__class__ is str:
                    return test(value if cased else low.get(key, value.lower()))
                return slow(value)
        return False

    return pred_fallback


def _getter(keys: tuple[str, ...]) -> Callable[[Event], Any]:
    """Value of the first present key, or _MISSING."""
    if len(keys) == 1:
        key = keys[0]
        return lambda ev: ev.get(key, _MISSING)

    def get(ev: Event) -> Any:
        for key in keys:
            value = ev.get(key, _MISSING)
            if value is not _MISSING:
                return value
        return _MISSING

    return get


def _any_value(get: Callable[[Event], Any], check: Callable[[Any], bool]) -> Predicate:
    def pred(ev: Event, low: dict[str, str]) -> bool:
        value = get(ev)
        if value is _MISSING or value is None:
            return False
        if isinstance(value, list):
            return any(check(item) for item in value if item is not None)
        return check(value)

    return pred


def _as_number(value: Any) -> float | int | None:
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


# -------------------------------------------------------------------------------- compiling


@dataclass
class CompiledCondition:
    """A compiled condition: predicate, the literals every match needs, the fields it reads."""

    predicate: Predicate
    anchors: list[Anchor] | None
    fields: frozenset[str]
    cost: float
    # A second anchor set from another AND branch: a candidate must hit both (None: one suffices)
    anchors2: list[Anchor] | None = None


SECOND_ANCHOR_MAX_COST = 0.3  # a second literal is worth checking only when it is selective


def compile_condition(tree: Any, resolver: FieldResolver) -> CompiledCondition:
    """Compile one parsed (postprocessed) pySigma condition tree."""
    node = _simplify(_to_ir(tree, resolver))
    weak = resolver.weak_fields
    anchors = node.anchors(weak)
    anchors2 = None
    if isinstance(node, And):
        options = sorted(
            ((anchor_cost(found, weak), sorted(set(found))) for child in node.children
             if (found := child.anchors(weak)) is not None),
            key=lambda option: option[0])
        if len(options) >= 2 and options[1][0] <= SECOND_ANCHOR_MAX_COST:
            anchors, anchors2 = options[0][1], options[1][1]
    if anchors is not None:
        anchors = sorted(set(anchors))
    return CompiledCondition(node.build(), anchors, node.fields(), node.cost, anchors2)


def _to_ir(tree: Any, resolver: FieldResolver) -> Node:
    if tree is None:
        return Const(value=False)
    if isinstance(tree, ConditionAND):
        children = [_to_ir(arg, resolver) for arg in tree.args]
        return And(cost=sum(c.cost for c in children), children=children)
    if isinstance(tree, ConditionOR):
        children = [_to_ir(arg, resolver) for arg in tree.args]
        return Or(cost=sum(c.cost for c in children), children=children)
    if isinstance(tree, ConditionNOT):
        child = _to_ir(tree.args[0], resolver)
        return Not(cost=child.cost + 0.1, child=child)
    if isinstance(tree, ConditionFieldEqualsValueExpression):
        leaf = _leaf(resolver.keys(tree.field), tree.value, resolver)
        if tree.field in resolver.weak_fields:
            leaf.cost += 3.0  # logsource tests are nearly always true for candidates: test last
        return leaf
    if isinstance(tree, ConditionValueExpression):
        return _keyword(tree.value, resolver)
    raise CompileError(f"unsupported condition element {type(tree).__name__}")


def _simplify(node: Node) -> Node:
    """Flatten nested AND/OR and merge sibling string tests on the same field."""
    if isinstance(node, Not):
        node.child = _simplify(node.child)
        return node
    if isinstance(node, (And, Or)):
        kind = type(node)
        flat: list[Node] = []
        for child in (_simplify(c) for c in node.children):
            if type(child) is kind:
                flat.extend(child.children)  # type: ignore[attr-defined]
            else:
                flat.append(child)
        merged = _merge_strings(flat, conjunction=kind is And)
        if len(merged) == 1:
            return merged[0]
        node.children = merged
        node.cost = sum(c.cost for c in merged) if kind is Or else min(c.cost for c in merged)
        return node
    return node


_MERGEABLE_OR = {"eq", "prefix", "suffix", "contains", "wild"}


def _merge_strings(children: list[Node], conjunction: bool) -> list[Node]:
    groups: dict[tuple[Any, ...], StrTest] = {}
    out: list[Node] = []
    for child in children:
        if isinstance(child, StrTest):
            if conjunction and child.op == "contains" and len(child.patterns) == 1:
                key: tuple[Any, ...] = (child.keys, "contains_all", child.cased)
                new_op = "contains_all"
            elif not conjunction and child.op in _MERGEABLE_OR:
                key = (child.keys, child.op, child.cased)
                new_op = child.op
            else:
                out.append(child)
                continue
            if key in groups:
                group = groups[key]
                group.patterns = group.patterns + child.patterns
                group.literals = group.literals + child.literals
                continue
            group = StrTest(cost=child.cost, keys=child.keys, op=new_op, patterns=child.patterns,
                            cased=child.cased, literals=child.literals)
            groups[key] = group
            out.append(group)
        else:
            out.append(child)
    return out


def _leaf(keys: tuple[str, ...], value: Any, resolver: FieldResolver) -> Node:
    if isinstance(value, SigmaExpansion):
        children = [_leaf(keys, v, resolver) for v in value.values]
        return Or(cost=sum(c.cost for c in children), children=children)
    if isinstance(value, SigmaString):  # includes SigmaCasedString
        return _string_test(keys, value, isinstance(value, SigmaCasedString))
    if isinstance(value, SigmaNull):
        get = _getter(keys)
        return ValueTest(cost=0.5, keys=keys, required=False,
                         make=lambda: lambda ev, low: get(ev) in (_MISSING, None, ""))
    if isinstance(value, SigmaExists):
        get = _getter(keys)
        wanted = bool(value.exists)
        return ValueTest(cost=0.5, keys=keys, required=wanted,
                         make=lambda: lambda ev, low: (get(ev) not in (_MISSING, None)) == wanted)
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
        get = _getter(keys)

        def in_network(item: Any) -> bool:
            try:
                return ipaddress.ip_address(str(item).strip()) in network
            except ValueError:
                return False

        return ValueTest(cost=4.0, keys=keys, make=lambda: _any_value(get, in_network))
    if isinstance(value, SigmaFieldReference):
        return _fieldref_test(keys, value, resolver)
    raise CompileError(f"unsupported value type {type(value).__name__}")


def _string_parts(value: SigmaString) -> list[Any]:
    parts: list[Any] = []
    for part in value.s:
        if isinstance(part, Placeholder):
            parts.append(SpecialChars.WILDCARD_MULTI)
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


def _keyword(value: Any, resolver: FieldResolver) -> Node:
    if isinstance(value, SigmaExpansion):
        children = [_keyword(v, resolver) for v in value.values]
        return Or(cost=sum(c.cost for c in children), children=children)
    inner: list[Node] = []
    for keys in [(key,) for key in resolver.keyword_fields]:
        if isinstance(value, SigmaString):
            parts = _string_parts(value)
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
    get = _getter(keys)
    text = "true" if wanted else "false"

    def check(item: Any) -> bool:
        if item.__class__ is bool:
            return item is wanted
        return isinstance(item, str) and item.strip().lower() == text

    return ValueTest(cost=1.0, keys=keys, make=lambda: _any_value(get, check),
                     anchor_values=(text,))


def _number_test(keys: tuple[str, ...], number: int | float) -> Node:
    get = _getter(keys)
    text = str(number)

    def check(item: Any) -> bool:
        cls = item.__class__
        if cls is int or cls is float:
            return bool(item == number)
        if cls is str:
            return item == text or _as_number(item) == number
        return False

    anchors = (text,) if isinstance(number, int) else ()
    return ValueTest(cost=1.0, keys=keys, make=lambda: _any_value(get, check),
                     anchor_values=anchors)


_COMPARE = {
    CompareOperators.LT: operator.lt,
    CompareOperators.LTE: operator.le,
    CompareOperators.GT: operator.gt,
    CompareOperators.GTE: operator.ge,
}


def _compare_test(keys: tuple[str, ...], value: SigmaCompareExpression) -> Node:
    get = _getter(keys)
    bound = value.number.number
    neq = getattr(CompareOperators, "NEQ", None)
    if value.op is neq:
        compare: Callable[[Any, Any], bool] = operator.ne
    else:
        compare = _COMPARE[value.op]

    def check(item: Any) -> bool:
        number = _as_number(item)
        return number is not None and compare(number, bound)

    return ValueTest(cost=1.5, keys=keys, make=lambda: _any_value(get, check))


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
    get = _getter(keys)

    def check(item: Any) -> bool:
        return search(item if item.__class__ is str else _text_of(item)) is not None

    return ValueTest(cost=8.0, keys=keys, make=lambda: _any_value(get, check),
                     sub_literals=regex_literals(pattern.pattern))


def regex_literals(pattern: str) -> tuple[str, ...]:
    """Literal texts one of which every match of `pattern` contains (empty: none usable).

    Walks the parsed regex: a run of literal characters in the top-level sequence is required;
    an alternation (top level or a group in the sequence) requires one literal per branch.
    """
    import re._parser as sre_parse  # the stdlib regex parser; no public API exposes it

    try:
        parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        return ()
    best = _sequence_literals(list(parsed))
    if not best or any(len(lit) < MIN_SUBSTRING for lit in best):
        return ()
    return best


def _sequence_literals(items: list[Any]) -> tuple[str, ...]:
    import re._constants as sre  # opcode names of the parser above

    options: list[tuple[str, ...]] = []
    run: list[str] = []
    for op, arg in items:
        if op is sre.LITERAL:
            run.append(chr(arg))
            continue
        if run:
            options.append(("".join(run),))
            run = []
        if op is sre.SUBPATTERN:
            inner = _sequence_literals(list(arg[-1]))
            if inner:
                options.append(inner)
        elif op is sre.BRANCH:
            branches = [_sequence_literals(list(branch)) for branch in arg[1]]
            if all(branches):
                options.append(tuple(lit for branch in branches for lit in branch))
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT) and arg[0] >= 1:
            inner = _sequence_literals(list(arg[2]))
            if inner:
                options.append(inner)
    if run:
        options.append(("".join(run),))
    options = [o for o in options if all(len(lit) >= MIN_SUBSTRING for lit in o)]
    if not options:
        return ()
    return min(options, key=lambda o: anchor_cost([("sub", "", lit) for lit in o], {}))


def _fieldref_test(keys: tuple[str, ...], value: SigmaFieldReference,
                   resolver: FieldResolver) -> Node:
    get = _getter(keys)
    get_other = _getter(resolver.keys(value.field))
    starts, ends = value.starts_with, value.ends_with

    def pred(ev: Event, low: dict[str, str]) -> bool:
        mine, other = get(ev), get_other(ev)
        if mine in (_MISSING, None) or other in (_MISSING, None):
            return False
        a, b = _text_of(mine).lower(), _text_of(other).lower()
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
    get = _getter(keys)
    extract = _PARTS[value.timestamp_part]
    wanted = int(value.number)

    def check(item: Any) -> bool:
        if isinstance(item, str):
            try:
                item = datetime.fromisoformat(item.replace("Z", "+00:00"))
            except ValueError:
                return False
        return isinstance(item, datetime) and extract(item) == wanted

    return ValueTest(cost=2.0, keys=keys, make=lambda: _any_value(get, check))
