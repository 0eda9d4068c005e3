"""The intermediate form a condition compiles to: nodes (string tests, value tests, keywords,
AND/OR/NOT) that know their cost, their anchors and the fields they need, and build the
closures the engine calls.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import ahocorasick

from core.errors import VigilError
from rules.compiler.anchors import MIN_SUBSTRING, Anchor, anchor_cost
from rules.compiler.fields import Event, Predicate, field_predicate
from rules.compiler.predicates import VALUE_PREDICATES


class CompileError(VigilError):
    """A rule uses something the evaluator cannot express (e.g. a backend query expression)."""


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
        return field_predicate(self.keys, test, self.cased)

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
    """Non-string test on one field (number, bool, null, exists, compare, regex, cidr, ...):
    `kind` names its predicate builder in `predicates.VALUE_PREDICATES`, `args` its plain-data
    arguments (so the node can be stored and rebuilt)."""

    keys: tuple[str, ...] = ()
    kind: str = "exists"
    args: tuple[Any, ...] = ()
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
        return VALUE_PREDICATES[self.kind](self.keys, *self.args)


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
