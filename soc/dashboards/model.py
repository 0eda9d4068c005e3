"""What a dashboard is: the `dashboards:` entry model (conf.d and the shipped library share it),
its requirements in the terms of rule activation, and panels of DuckDB SQL."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from core.config import DATASET_RE, ConfigIssue, StrictModel, ValidationContext

PanelKind = Literal["timeseries", "top_n", "stat", "map", "table"]
ANY_DATASET = "*"  # a requirement any of the tenant's datasets may meet

PanelSql = Annotated[str, Field(min_length=1, max_length=20_000)]


class PanelConfig(StrictModel):
    """One panel: a DuckDB SELECT over the tenant's lake."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")] = Field(
        description="unique within the dashboard")
    title: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        description="shown above the panel")
    kind: PanelKind = Field(description="timeseries (first column the time bucket, others "
                            "series), top_n (rows, largest first), stat (one value), map "
                            "(a column `country` with ISO codes and a value), table")
    sql: PanelSql = Field(description="one SELECT; name datasets as tables (`linux.auth`, "
                          "`\"aws.cloudtrail\"`), the dashboard's `events` view, `alert_store` "
                          "or `lake_partitions`; `bucket(ts)` buckets time for the range")
    description: str = ""
    limit: int = Field(20, ge=1, le=10_000, description="rows kept of the result")


class DashboardConfig(StrictModel):
    """A dashboard: title, category, requirements, panels."""

    title: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        description="shown as the dashboard's name")
    description: str = ""
    category: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="what it is about (the integration map's categories: perimeter security, "
        "authentication and access control, cloud services ..., or compliance, operations)")
    requires: dict[str, list[str]] = Field(
        default_factory=dict, description="dataset -> fields it must populate (`*`: any "
        "dataset); the dashboard is active when one listed dataset has events and its fields "
        "populated, as a rule activates; empty: always active")
    waiting_for: str = Field("", description="what the missing data is called in the "
                             "inactive reason (`a firewall dataset`)")
    panels: list[PanelConfig] = Field(min_length=1)

    @field_validator("requires")
    @classmethod
    def _datasets(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name in value:
            if name != ANY_DATASET and not DATASET_RE.fullmatch(name):
                raise ValueError(f"dataset {name!r} must match {DATASET_RE.pattern} or be *")
        return value

    def semantic_errors(self, context: ValidationContext) -> list[ConfigIssue]:
        from soc.dashboards.sql import PanelSqlError, check_panel_sql

        issues: list[ConfigIssue] = []
        seen: set[str] = set()
        for index, panel in enumerate(self.panels):
            if panel.id in seen:
                issues.append((("panels", index, "id"), f"duplicate panel id {panel.id!r}"))
            seen.add(panel.id)
            try:
                check_panel_sql(panel.sql)
            except PanelSqlError as exc:
                issues.append((("panels", index, "sql"), str(exc)))
        return issues
