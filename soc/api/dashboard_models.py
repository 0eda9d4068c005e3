"""Request and response models of /api/v1/dashboards and /api/v1/posture."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from soc.alerts.sla import SlaFigures
from soc.api.models import Request, Response, Slug, UtcTime
from soc.dashboards.model import PanelConfig, PanelKind


class TenantQuery(Request):
    tenant: Slug = Field(description="the tenant whose dashboards (within your scope)")


class DashboardRunQuery(Request):
    tenant: Slug
    since: Annotated[str, Field(max_length=32)] = Field(
        "24h", description="the range back from now (`24h`, `7d`); ignored with `start`")
    start: UtcTime | None = Field(None, description="range start (ISO time)")
    end: UtcTime | None = Field(None, description="range end (ISO time; default now)")


class DashboardIn(Request):
    tenant: Slug
    title: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=2000)] = ""
    category: Annotated[str, Field(min_length=1, max_length=64)] = "custom"
    requires: dict[str, list[str]] = Field(
        default_factory=dict, description="dataset -> fields, as in the library: the datasets "
        "meeting it feed the `events` view; empty: always active, panels name datasets")
    panels: Annotated[list[PanelConfig], Field(min_length=1, max_length=30)]


class PanelSummary(Response):
    id: str
    title: str
    kind: PanelKind


class DashboardSummary(Response):
    id: str
    tenant: str
    title: str
    description: str
    category: str
    origin: str = Field(description="library, conf.d or user")
    owner: str | None = None
    active: bool
    reason: str = Field(description="why it is active, or what it is waiting for")
    datasets: list[str] = Field(description="datasets feeding its `events` view")
    missing_fields: dict[str, list[str]] = Field(default_factory=dict)
    panels: list[PanelSummary]


class DashboardList(Response):
    tenant: str
    active: int
    inactive: int
    items: list[DashboardSummary]


class PanelOut(Response):
    id: str
    title: str
    kind: PanelKind
    description: str = ""
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool = False
    elapsed_ms: float | None = None
    empty_datasets: list[str] = Field(default_factory=list,
                                      description="datasets with no data in the range")
    error: str | None = None


class DashboardOut(Response):
    dashboard: DashboardSummary
    start: str
    end: str
    results: list[PanelOut] = Field(description="panel results (empty while inactive)")


class Deleted(Response):
    id: str
    deleted: bool


class PostureOut(Response):
    tenant: str
    generated_at: str
    open_by_severity: dict[str, int]
    open_total: int
    trend: dict[str, Any] = Field(description="7d, 30d, 90d: total and daily counts")
    sla_30d: list[SlaFigures] = Field(description="MTTA, MTTR and share within SLA per "
                                      "severity over 30 days")
    sla_targets: dict[str, dict[str, int]] = Field(
        description="the tenant's SLA per severity: ack_seconds, resolve_seconds")
    top_rules: list[dict[str, Any]]
    attack_matrix: list[dict[str, Any]]
    top_attackers: list[dict[str, Any]]
    data_sources: list[dict[str, Any]]
