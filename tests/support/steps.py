"""Build one pipeline step the way the runner does: its class and config model picked by
`type:` from the registry, the config validated, a StepContext rooted at the current
directory unless one is given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.registry import resolve
from core.step import StepContext


def build_step(step_type: str, context: StepContext | None = None, **config: Any) -> Any:
    """The step of `type: step_type` with the given settings (`cef = partial(build_step, "cef")`
    gives a test module its own shorthand)."""
    cls = resolve("step", step_type)
    return cls(cls.config_model.model_validate({"type": step_type, **config}),
               context if context is not None else StepContext(Path(".")))
