"""Literal prefilters for regular expressions: text a regex cannot match without containing.

`required_literals(pattern)` reads the pattern with the standard library's own parser and
returns strings of which every match contains at least one (None when it cannot tell: case
folding, a pattern only the `regex` module reads, nothing literal required). `str.__contains__`
over a batch is far cheaper than a failed search, so conditions and grok/regex steps test the
literals first and run the regex only on text that has one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

try:  # the parser `re.compile` uses; private, so anything unexpected means "no prefilter"
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - before Python 3.11
    import sre_parse as _sre_parse  # type: ignore[no-redef]

_C = _sre_parse  # opcodes are exported by the parser module (from re._constants)
_REPEATS = {_C.MAX_REPEAT, _C.MIN_REPEAT} | ({_C.POSSESSIVE_REPEAT}
                                           if hasattr(_C, "POSSESSIVE_REPEAT") else set())
_ATOMIC = getattr(_C, "ATOMIC_GROUP", None)
# Shorter literals reject too little to pay for the test.
MIN_LITERAL = 2


def required_literals(pattern: str, flags: int = 0) -> frozenset[str] | None:
    """Strings of which every match of `pattern` contains one; None when unknown."""
    if flags & re.IGNORECASE:
        return None
    try:
        parsed = _sre_parse.parse(pattern, flags)
    except Exception:  # not the standard library's syntax (a `regex` module pattern)
        return None
    if parsed.state.flags & re.IGNORECASE:
        return None
    try:
        found = _sequence(list(parsed))
    except Exception:  # an opcode this walk does not know: no prefilter
        return None
    if not found or min(len(text) for text in found) < MIN_LITERAL:
        return None
    return frozenset(found)


def _sequence(items: list[tuple[Any, Any]]) -> set[str] | None:
    """The most selective requirement of a sequence: a run of literals, or the requirement of
    one element every match passes through."""
    candidates: list[set[str]] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            candidates.append({"".join(run)})
            run.clear()

    for op, value in items:
        if op is _C.LITERAL:
            run.append(chr(value))
            continue
        flush()
        inner: set[str] | None = None
        if op is _C.SUBPATTERN:
            _group, add_flags, _del_flags, sub = value
            if not add_flags & re.IGNORECASE:
                inner = _sequence(list(sub))
        elif op is _ATOMIC:
            inner = _sequence(list(value))
        elif op in _REPEATS:
            low, _high, sub = value
            if low >= 1:
                inner = _sequence(list(sub))
        elif op is _C.BRANCH:
            inner = _branch(value[1])
        if inner:
            candidates.append(inner)
    flush()
    if not candidates:
        return None
    return max(candidates, key=lambda texts: min(len(t) for t in texts))


def _branch(alternatives: list[Any]) -> set[str] | None:
    """Every alternative must require something: the union of their requirements."""
    union: set[str] = set()
    for alternative in alternatives:
        found = _sequence(list(alternative))
        if not found:
            return None
        union |= found
    return union


def has_literal(literals: Iterable[str], text: str) -> bool:
    """Whether `text` holds one of `literals` (so the regex may match)."""
    return any(literal in text for literal in literals)
