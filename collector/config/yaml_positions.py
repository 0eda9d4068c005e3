"""YAML loading that remembers where every key and value came from.

pyyaml's composed node tree carries marks; we build plain Python objects from it and keep a map
from key path to (line, column) so validation errors can name `FILE:LINE:COL`.
"""

from __future__ import annotations

from typing import Any

import yaml

from core.errors import ConfigError, Location

Path = tuple[str | int, ...]


class PositionedDocument:
    """A parsed YAML document plus the positions of its keys and values."""

    def __init__(self, file: str, data: Any, keys: dict[Path, Location],
                 values: dict[Path, Location]) -> None:
        self.file = file
        self.data = data
        self.keys = keys
        self.values = values

    def locate(self, path: Path, *, prefer_key: bool = False) -> Location:
        """The most precise known location for `path`, walking up to a parent if needed."""
        while True:
            first, second = (self.keys, self.values) if prefer_key else (self.values, self.keys)
            if path in first:
                return first[path]
            if path in second:
                return second[path]
            if not path:
                return Location(self.file)
            path = path[:-1]


def _location(file: str, node: yaml.Node) -> Location:
    return Location(file, node.start_mark.line + 1, node.start_mark.column + 1)


# Syntax errors whose cause is where the parser's context began, not where it gave up (the
# scanner reads past a key without ':' to the next line; an unclosed quote or bracket fails at
# the end of the file): report them there, with what the context was.
_CAUSE_AT_CONTEXT = {
    "while scanning a simple key": "after {key!r}",
    "while scanning a quoted scalar": "in the quoted string that starts here",
    "while parsing a flow sequence": "in the [...] that starts here",
    "while parsing a flow mapping": "in the {{...}} that starts here",
}


def syntax_error(file: str, text: str, exc: yaml.MarkedYAMLError) -> ConfigError:
    """A YAML syntax error at the line an editor must change."""
    key_line = _key_without_colon(text, exc)
    if key_line is not None:
        line, column, key = key_line
        return ConfigError(f"YAML syntax error: could not find expected ':' after {key!r}",
                           location=Location(file, line, column))
    cause = _CAUSE_AT_CONTEXT.get(exc.context or "")
    mark = exc.context_mark if cause and exc.context_mark else exc.problem_mark
    loc = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
    message = f"YAML syntax error: {exc.problem}"
    if cause and mark is not None and mark is exc.context_mark:
        lines = text.splitlines()
        source = lines[mark.line] if mark.line < len(lines) else ""
        message += " " + cause.format(key=source[mark.column:].split("#")[0].strip())
    return ConfigError(message, location=loc)


def _key_without_colon(text: str, exc: yaml.MarkedYAMLError) -> tuple[int, int, str] | None:
    """`  syslog_tcp` followed by an indented `    type: x` reads as one plain scalar
    `syslog_tcp type` that meets a ':' ("mapping values are not allowed here" on the second
    line); the line to fix is the first: (line, column, key) of it."""
    mark = exc.problem_mark
    if exc.problem != "mapping values are not allowed here" or mark is None:
        return None
    lines = text.splitlines()
    indent = len(lines[mark.line]) - len(lines[mark.line].lstrip())
    for number in range(mark.line - 1, -1, -1):
        content = lines[number].split(" #")[0].rstrip()
        stripped = content.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        column = len(content) - len(stripped)
        if column < indent and ":" not in stripped and not stripped.startswith(("-", "[", "{")):
            return number + 1, column + 1, stripped
        return None
    return None


def load_positioned(file: str, text: str) -> PositionedDocument:
    """Parse one YAML document; raises ConfigError (with location) on syntax errors."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise syntax_error(file, text, exc) from None
    keys: dict[Path, Location] = {}
    values: dict[Path, Location] = {}
    constructor = yaml.SafeLoader("")

    def build(node: yaml.Node, path: Path) -> Any:
        values[path] = _location(file, node)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = constructor.construct_object(key_node, deep=True)
                if isinstance(key, (dict, list)):
                    raise ConfigError("mapping keys must be scalars",
                                      location=_location(file, key_node))
                key = str(key) if not isinstance(key, str) else key
                if key in out:
                    raise ConfigError(f"duplicate key {key!r}", location=_location(file, key_node),
                                      path=render_path(path + (key,)))
                keys[path + (key,)] = _location(file, key_node)
                out[key] = build(value_node, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [build(item, path + (i,)) for i, item in enumerate(node.value)]
        return constructor.construct_object(node, deep=True)

    data = build(root, ()) if root is not None else None
    return PositionedDocument(file, data, keys, values)


def render_path(path: Path) -> str:
    """Render ('pipelines', 'sshd', 'steps', 2, 'pattern') as `pipelines.sshd.steps[2].pattern`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out
