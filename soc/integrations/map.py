"""One tenant's integration map: per integration category (rules/integrations.py) its state
from the tenant's data (present since, events per day, last seen, datasets), and what a
missing one would switch on: rules (the activation of `rules.coverage`, the same figures as
`vigil coverage`) and dashboards (the library's requirements, as `soc.dashboards.activation`
decides them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from rules.coverage import ActivationConfig, DatasetCoverage, activation, category_states
from rules.integrations import FRAMEWORKS, CategoryMap
from rules.loader import RuleRequirement
from soc.dashboards.activation import DashboardStatus
from soc.dashboards.lake import TenantLake
from soc.dashboards.model import ANY_DATASET, DashboardConfig

PRESENT = "present"      # a dataset of it has events some rule reads (or its field is filled)
UNREAD = "unread"        # events arrive, but no loaded rule reads them
SILENT = "silent"        # in the lake, nothing in the coverage window
MISSING = "missing"


@dataclass(frozen=True)
class LakePresence:
    """What the lake's partition directories say of one of the tenant's datasets."""

    first_date: date
    last_seen: datetime  # the newest file of the newest hour partition


def lake_presence(lake: TenantLake) -> dict[str, LakePresence]:
    """Per dataset of the tenant: its first date partition and its last write. Reads directory
    listings only (the newest hour's files are stat'ed), never a Parquet file."""
    out: dict[str, LakePresence] = {}
    for dataset in lake.datasets():
        days = sorted(d for d in lake.tenant_dir(dataset).glob("date=*") if d.is_dir())
        if not days:
            continue
        try:
            first = date.fromisoformat(days[0].name.removeprefix("date="))
        except ValueError:
            continue
        newest: float | None = None
        for day in reversed(days):
            for hour in sorted((h for h in day.glob("hour=*") if h.is_dir()), reverse=True):
                stamps = [f.stat().st_mtime for f in hour.glob("*.parquet")]
                if stamps:
                    newest = max(stamps)
                    break
            if newest is not None:
                break
        if newest is not None:
            out[dataset] = LakePresence(first, datetime.fromtimestamp(newest, UTC))
    return out


def dashboard_categories(config: DashboardConfig, status: DashboardStatus,
                         categories: CategoryMap) -> set[str]:
    """The categories a dashboard shows (active: those of the datasets feeding it) or waits
    for (inactive: those of the datasets it requires), those bringing a field it requires of
    any dataset, and the one it names as its category."""
    found: set[str] = set()
    for dataset, fields in config.requires.items():
        if dataset == ANY_DATASET:
            found.update(categories.categories_of_fields(fields))
        elif not status.active or dataset in status.datasets:
            found.update(categories.categories_of(dataset))
    found.update(c for c, entry in categories.categories.items()
                 if config.category in (c, entry.name))
    return found


def integration_map(tenant: str, categories: CategoryMap, requirements: list[RuleRequirement],
                    coverage: dict[str, DatasetCoverage], config: ActivationConfig,
                    dashboards: list[tuple[str, DashboardConfig, DashboardStatus]],
                    presence: dict[str, LakePresence], now: datetime, *,
                    enabled: frozenset[str] = frozenset(),
                    disabled: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The map of one tenant, JSON-ready (the shape of /api/v1/integrations)."""
    inactive = [(r, s) for r, s in activation(requirements, coverage, config, enabled,
                                              disabled).alerting if not s.active]
    states = category_states(requirements, coverage, inactive, categories)
    window_days = max(1, int(config.window.total_seconds() // 86400))
    today = now.astimezone(UTC).date()
    by_category: dict[str, list[tuple[str, str, DashboardConfig, DashboardStatus]]] = {}
    for dashboard_id, dashboard, status in dashboards:
        for category in dashboard_categories(dashboard, status, categories):
            by_category.setdefault(category, []).append(
                (dashboard_id, dashboard.title, dashboard, status))
    out = []
    for category_id, entry in categories.categories.items():
        state = states[category_id]
        names = sorted({*state["datasets"], *state["unread_datasets"],
                        *(d for d in presence if category_id in categories.categories_of(d))})
        datasets = [_dataset(d, coverage.get(d), presence.get(d), window_days, today,
                             read=d in state["datasets"])
                    for d in names if d not in entry.fields]
        if state["present"]:
            kind = PRESENT
        elif state["unread_datasets"]:
            kind = UNREAD
        elif datasets:
            kind = SILENT
        else:
            kind = MISSING
        related = by_category.get(category_id, [])
        waiting = [{"id": i, "title": t} for i, t, _, s in related if not s.active]
        out.append({
            "id": category_id, "name": entry.name, "priority": entry.priority,
            "value": entry.value, "examples": list(entry.examples),
            "frameworks": {f: list(entry.frameworks[f]) for f in FRAMEWORKS
                           if f in entry.frameworks},
            "state": kind, "datasets": datasets,
            "fields": [f for f in entry.fields if f in state["datasets"]],
            "present_since": min((d["present_since"] for d in datasets
                                  if d["present_since"]), default=None),
            "last_seen": max((d["last_seen"] for d in datasets if d["last_seen"]),
                             default=None),
            "events_per_day": round(sum(d["events_per_day"] for d in datasets), 1),
            "active_dashboards": [{"id": i, "title": t} for i, t, _, s in related
                                  if s.active],
            "would_switch_on": {
                "rules": state["rules_it_would_activate"] if kind != PRESENT else 0,
                "rule_names": state["rules"] if kind != PRESENT else [],
                "dashboards": len(waiting) if kind != PRESENT else 0,
                "dashboard_names": waiting if kind != PRESENT else []},
        })
    present = sum(1 for c in out if c["state"] == PRESENT)
    return {"tenant": tenant, "generated_at": now.isoformat(), "window_days": window_days,
            "present": present, "missing": len(out) - present, "categories": out}


def _dataset(name: str, stats: DatasetCoverage | None, seen: LakePresence | None,
             window_days: int, today: date, *, read: bool) -> dict[str, Any]:
    events = stats.events if stats is not None else 0
    # Events per day over the days the dataset could have sent within the coverage window.
    span = window_days
    if seen is not None:
        span = max(1, min(window_days, (today - seen.first_date).days + 1))
    return {"dataset": name, "events_window": events,
            "events_per_day": round(events / span, 1),
            "present_since": seen.first_date.isoformat() if seen else None,
            "last_seen": seen.last_seen.isoformat() if seen else None,
            "read_by_rules": read}
