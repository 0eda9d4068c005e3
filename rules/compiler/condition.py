"""The condition tree to IR: pySigma's AND/OR/NOT over field = value leaves become IR nodes,
nested AND/OR are flattened, sibling string tests on one field merged, and `compile_condition`
picks the anchors and builds the predicate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)

from rules.compiler.anchors import Anchor, anchor_cost
from rules.compiler.fields import FieldResolver, Predicate
from rules.compiler.ir import And, CompileError, Const, Node, Not, Or, StrTest
from rules.compiler.values import keyword_node, value_node


@dataclass
class CompiledCondition:
    """A compiled condition: predicate, the literals every match needs, the fields it reads.

    `predicate` LAZY (a condition rebuilt from the rule cache) builds the closures from `ir`
    at the first call and then replaces itself: most rules are candidates for few events,
    and building every closure of SigmaHQ up front was most of a warm start. Callers that
    keep a predicate read `predicate` again rather than holding the first one.
    """

    predicate: Predicate
    anchors: list[Anchor] | None
    fields: frozenset[str]
    cost: float
    # A second anchor set from another AND branch: a candidate must hit both (None: one suffices)
    anchors2: list[Anchor] | None = None
    ir: Node | None = field(default=None, repr=False)  # what the rule cache stores

    def __post_init__(self) -> None:
        self._built: Predicate | None = None
        if self.predicate is LAZY:
            assert self.ir is not None
            self.predicate = self._first_call
        else:
            self._built = self.predicate

    def _first_call(self, event: Any, lowered: Any) -> Any:
        built = self._built
        if built is None:
            assert self.ir is not None
            built = self._built = self.predicate = self.ir.build()
        return built(event, lowered)


def LAZY(event: Any, lowered: Any) -> Any:  # noqa: N802 - a marker, never called
    """Marks a `CompiledCondition` whose predicate is built at its first call."""
    raise AssertionError("the LAZY marker is replaced in __post_init__")


SECOND_ANCHOR_MAX_COST = 0.3  # a second literal is worth checking only when it is selective


def compile_condition(tree: Any, resolver: FieldResolver) -> CompiledCondition:
    """Compile one parsed (postprocessed) pySigma condition tree."""
    return compile_ir(condition_ir(tree, resolver), resolver)


def condition_ir(tree: Any, resolver: FieldResolver) -> Node:
    """The simplified IR of one parsed (postprocessed) pySigma condition tree."""
    return _simplify(_to_ir(tree, resolver))


def compile_ir(node: Node, resolver: FieldResolver, *, lazy: bool = False) -> CompiledCondition:
    """A condition from its simplified IR: anchors, needed fields and the predicate (built at
    its first call when `lazy`)."""
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
    return CompiledCondition(LAZY if lazy else node.build(), anchors, node.fields(), node.cost,
                             anchors2, node)


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
        leaf = value_node(resolver.keys(tree.field), tree.value, resolver)
        if tree.field in resolver.weak_fields:
            leaf.cost += 3.0  # logsource tests are nearly always true for candidates: test last
        return leaf
    if isinstance(tree, ConditionValueExpression):
        return keyword_node(tree.value, resolver)
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
