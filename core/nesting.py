"""How deep decoded JSON may nest: the bound every JSON ingest path (HTTP bodies, HEC, raw TCP
JSON) and JSON-decoding step enforces, so no deeply nested value reaches a recursive consumer
(flattening, the lake's schema inference, Python's json) to fail there on every retry.

An event beyond the bound is kept whole as text, marked with the reason, and sent to the dead
letter (`vigil.source_failure`); the reason names the limit and starts with `TOO_DEEP`, which
is how sources count it.
"""

from __future__ import annotations

from typing import Any

import orjson

from core.events import MESSAGE, PARSE_ERROR, SOURCE_FAILURE, TIMESTAMP, Event
from core.events import json_text as events_json_text

DEFAULT_MAX_DEPTH = 64
# orjson refuses more than 1024 levels itself; Python's json raises RecursionError near 1000.
MAX_MAX_DEPTH = 512
TOO_DEEP = "JSON nested deeper than"


def too_deep_reason(limit: int) -> str:
    return f"{TOO_DEEP} {limit} levels (max_depth)"


def nesting_over(value: Any, limit: int) -> bool:
    """True when `value` nests more than `limit` objects/arrays deep (a scalar is depth 0, `{}`
    depth 1). Iterative: the depth is what it measures, so no recursion."""
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list) and child:
                stack.append((child, depth + 1))
            elif isinstance(child, dict | list) and depth + 1 > limit:
                return True
    return False


def may_nest_over(text: bytes, limit: int) -> bool:
    """False when `text` has too few opening brackets to nest past `limit` (a C-speed count
    that spares almost every event the walk of `nesting_over`)."""
    return text.count(b"{") + text.count(b"[") > limit


def json_text(value: Any) -> str:
    """`value` as JSON text for keeping it, however deep (orjson stops at 255 levels and at
    64-bit integers; `core.events.json_text` has no limit)."""
    try:
        return orjson.dumps(value, default=str).decode()
    except (orjson.JSONEncodeError, TypeError):
        return events_json_text(value)


def too_deep_event(text: str, received_at: Any, limit: int) -> Event:
    """Input nested past `limit`, kept whole as text, marked, bound for the dead letter."""
    reason = too_deep_reason(limit)
    return {TIMESTAMP: received_at, MESSAGE: text, PARSE_ERROR: reason, SOURCE_FAILURE: reason}


def is_too_deep(event: Event) -> bool:
    return str(event.get(PARSE_ERROR, "")).startswith(TOO_DEEP)
