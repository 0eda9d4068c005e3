"""YAML loading that remembers where every key and value came from.

pyyaml's composed node tree carries marks; we build plain Python objects from it and keep a map
from key path to (line, column) so validation errors can name `FILE:LINE:COL`.
"""

from __future__ import annotations

from typing import Any

import yaml

from collector.errors import ConfigError, Location

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


def load_positioned(file: str, text: str) -> PositionedDocument:
    """Parse one YAML document; raises ConfigError (with location) on syntax errors."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        loc = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
        raise ConfigError(f"YAML syntax error: {exc.problem}", location=loc) from None
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
