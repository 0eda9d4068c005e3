"""Render the configuration reference (docs/configuration.md) from the config models, so the
documentation cannot drift from what `vigil validate` accepts.

`python -m collector.config.reference > docs/configuration.md` (or `make docs`).
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from collector.config.loader import SECTIONS
from collector.config.models import GlobalConfig
from core.registry import REGISTRIES, import_ref

HEADER = """# Configuration reference

Generated from the config models by `make docs`; do not edit by hand.

Vigil reads every `*.yaml` file of its conf.d directory (default `/etc/vigil/conf.d`, `-c DIR`)
in sorted order. Top-level sections are maps keyed by id and merged across files; an id may be
defined once. Every model forbids unknown keys. `vigil validate -c DIR` reports each error as
`FILE:LINE:COL: key.path: message` and exits 78 when the configuration is invalid.
"""


def type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is typing.Literal:
        return " \\| ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(type_name(a) for a in args if a is not type(None)) + \
            (" \\| null" if type(None) in args else "")
    if origin is not None:
        inner = ", ".join(type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "map"
    return getattr(annotation, "__name__", str(annotation))


def nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = nested_model(arg)
        if found is not None:
            return found
    return None


def rows(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        if field.is_required():
            default = "**required**"
        elif (field.default_factory is not None or field.default is PydanticUndefined
              or isinstance(field.default, BaseModel)):
            default = ""
        else:
            default = f"`{field.default!r}`"
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        out.append(f"| `{prefix}{key}` | {type_name(field.annotation)} | {default} | "
                   f"{description} |")
        inner = nested_model(field.annotation)
        if inner is not None and inner is not model:
            out.extend(rows(inner, f"{prefix}{key}."))
    return out


def table(model: type[BaseModel]) -> str:
    doc = (model.__doc__ or "").strip()
    lines = [doc, ""] if doc and not doc.startswith(("Usage docs", "!!!")) else []
    lines += ["| key | type | default | description |", "|---|---|---|---|", *rows(model)]
    return "\n".join(lines)


def render() -> str:
    parts = [HEADER, "## `vigil` (global settings)\n", table(GlobalConfig), ""]
    for section, ref in SECTIONS.items():
        parts.append(f"## `{section}`\n")
        if ref in REGISTRIES:
            parts.append("Each entry picks its kind with `type:`.\n")
            for type_key, target in sorted(REGISTRIES[ref].items()):
                cls = import_ref(target)
                parts += [f"### {ref} `type: {type_key}`\n", table(cls.config_model), ""]
        else:
            model = import_ref(ref)
            parts += [table(model), ""]
            for field_name, kind in getattr(model, "component_lists", {}).items():
                parts.append(f"Each entry of `{field_name}` picks its kind with `type:`.\n")
                for type_key, target in sorted(REGISTRIES[kind].items()):
                    cls = import_ref(target)
                    parts += [f"### {kind} `type: {type_key}`\n", table(cls.config_model), ""]
    return "\n".join(parts).rstrip() + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(render())
