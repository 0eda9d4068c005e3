"""Literal anchors of a compiled condition: the literals every match requires, which the
engine indexes (exact values in dicts, substrings in Aho-Corasick automata), how selective an
anchor set is, and the literals a regular expression requires.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

# Anchor: (kind, event field, lowered literal). kind "eq": the field's value equals the literal;
# "sub": the lowered value contains it. A node's anchors are alternatives: a match implies one.
Anchor = tuple[str, str, str]

MIN_SUBSTRING = 3  # shorter literals would hit almost every event and make the index useless


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
