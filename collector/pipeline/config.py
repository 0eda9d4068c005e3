"""The `pipelines:` section: which events a pipeline takes, its steps, its output dataset and the
types of the fields it produces (the lake columns follow them)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from core.conditions import Condition
from core.config import ConfigIssue, DatasetName, StrictModel, ValidationContext
from core.events import RESERVED_DATASETS
from core.provenance import written_field_issues
from core.schema import FieldType
from core.step import StepConfig


class PipelineConfig(StrictModel):
    """One pipeline. Pipelines are tried in the order they are declared (files in sorted order,
    entries in file order); the first whose `match` holds takes the event."""

    # Fields holding lists of components picked by `type:` from a registry; the loader validates
    # each element against its own model and reports errors at its own position.
    component_lists: ClassVar[dict[str, str]] = {"steps": "step"}

    dataset: DatasetName = Field(description="dataset the pipeline's events belong to")
    description: str | None = None
    match: Condition | None = Field(
        None, description="which events the pipeline takes; absent: every event that no "
        "earlier pipeline took")
    steps: list[Any] = Field(default_factory=list,
                             description="ordered steps, each picked by `type:`")
    # `schema` would shadow a pydantic method; the YAML key is still `schema`.
    schema_: dict[str, FieldType] = Field(
        default_factory=dict, alias="schema", description="types of the fields the pipeline "
        "produces: string, int, float, bool, ip, timestamp, list")

    def semantic_errors(self, context: ValidationContext) -> list[ConfigIssue]:
        issues: list[ConfigIssue] = []
        if self.dataset in RESERVED_DATASETS:
            issues.append((("dataset",), f"dataset {self.dataset!r} is written by the daemon "
                                         "itself; choose another name"))
        for index, step in enumerate(self.steps):
            if isinstance(step, StepConfig):  # None: the step itself failed validation
                issues += [(("steps", index, *loc), message) for loc, message
                           in written_field_issues(step.written_fields(context))]
        return issues
