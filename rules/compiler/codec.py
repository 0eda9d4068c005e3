"""A condition's IR as plain data (lists, strings, numbers, booleans) and back: what the rule
cache stores, so a cached rule is rebuilt from data without pySigma or YAML.

Only what `ir` nodes hold is written; anything else in a stored document is refused with
`ValueError` (the cache counts the entry as invalid and compiles the rule again).
"""

from __future__ import annotations

from typing import Any

from rules.compiler.ir import And, Const, Keyword, Node, Not, Or, StrTest, ValueTest
from rules.compiler.predicates import VALUE_PREDICATES

STR_OPS = frozenset({"eq", "prefix", "suffix", "contains", "contains_all", "wild", "any"})
# Arguments each value predicate takes after the keys: checked here, as predicates are built
# at their first call, long after a stored entry was accepted.
VALUE_ARITY = {"null": 0, "exists": 1, "bool": 1, "number": 1, "compare": 2, "regex": 2,
               "cidr": 1, "fieldref": 3, "timestamp_part": 2}


def node_to_data(node: Node) -> list[Any]:
    """The node as a JSON-ready list: [tag, cost, ...fields]."""
    if isinstance(node, StrTest):
        return ["s", node.cost, list(node.keys), node.op, list(node.patterns), node.cased,
                list(node.literals)]
    if isinstance(node, ValueTest):
        return ["v", node.cost, list(node.keys), node.kind, [_arg(a) for a in node.args],
                node.required, list(node.anchor_values), list(node.sub_literals)]
    if isinstance(node, Keyword):
        return ["k", node.cost, list(node.keys), [node_to_data(n) for n in node.inner]]
    if isinstance(node, And):
        return ["a", node.cost, [node_to_data(n) for n in node.children]]
    if isinstance(node, Or):
        return ["o", node.cost, [node_to_data(n) for n in node.children]]
    if isinstance(node, Not):
        return ["n", node.cost, node_to_data(node.child)]
    if isinstance(node, Const):
        return ["c", node.cost, node.value]
    raise TypeError(f"cannot store IR node {type(node).__name__}")


def node_from_data(data: Any) -> Node:
    """The node a `node_to_data` list describes; ValueError when it is not one."""
    if not isinstance(data, list) or len(data) < 3 or not isinstance(data[1], (int, float)):
        raise ValueError("not an IR node")
    tag, cost = data[0], float(data[1])
    if tag == "s" and len(data) == 7 and data[3] in STR_OPS:
        return StrTest(cost=cost, keys=_strings(data[2]), op=data[3], patterns=_strings(data[4]),
                       cased=bool(data[5]), literals=_strings(data[6]))
    if (tag == "v" and len(data) == 8 and data[3] in VALUE_PREDICATES
            and isinstance(data[4], list) and len(data[4]) == VALUE_ARITY.get(data[3])):
        return ValueTest(cost=cost, keys=_strings(data[2]), kind=data[3],
                         args=tuple(_unarg(a) for a in _list(data[4])), required=bool(data[5]),
                         anchor_values=_strings(data[6]), sub_literals=_strings(data[7]))
    if tag == "k" and len(data) == 4:
        return Keyword(cost=cost, keys=_strings(data[2]),
                       inner=[node_from_data(n) for n in _list(data[3])])
    if tag in ("a", "o") and len(data) == 3:
        children = [node_from_data(n) for n in _list(data[2])]
        return And(cost=cost, children=children) if tag == "a" else Or(cost=cost,
                                                                       children=children)
    if tag == "n" and len(data) == 3:
        return Not(cost=cost, child=node_from_data(data[2]))
    if tag == "c" and len(data) == 3 and isinstance(data[2], bool):
        return Const(cost=cost, value=data[2])
    raise ValueError(f"not an IR node: {str(tag)[:20]!r}")


def _arg(value: Any) -> Any:
    # Tuples (field keys) become lists in JSON; the builders take any sequence of keys.
    return list(value) if isinstance(value, tuple) else value


def _unarg(value: Any) -> Any:
    if isinstance(value, list):
        return _strings(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise ValueError("not an IR argument")


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError("not a list")
    return value


def _strings(value: Any) -> tuple[str, ...]:
    if value.__class__ is not list:
        raise ValueError("not a list of strings")
    "".join(value)  # TypeError unless every item is a string (a check at C speed: this is hot)
    return tuple(value)
