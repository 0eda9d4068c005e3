"""Whether a dashboard is active for a tenant: the same field coverage and the same
`coverage.rule_status` as rule activation, with the reason said as what the dashboard waits for
("waiting for `destination.port` in fortinet.firewall")."""

from __future__ import annotations

from dataclasses import dataclass, field

from collector.config.models import ActivationConfig
from rules.coverage import DatasetCoverage, rule_status
from rules.loader import RuleRequirement
from rules.match import RuleInfo
from soc.dashboards.model import ANY_DATASET, DashboardConfig

NO_REQUIREMENT = "always available (reads the alert store or the lake's own listing)"


@dataclass
class DashboardStatus:
    dashboard_id: str
    active: bool
    reason: str
    datasets: list[str] = field(default_factory=list)  # datasets meeting the requirement
    missing_fields: dict[str, list[str]] = field(default_factory=dict)


def requirement(dashboard_id: str, dashboard: DashboardConfig,
                coverage: dict[str, DatasetCoverage]) -> RuleRequirement:
    """The dashboard's requirement as a rule's: dataset -> fields, `*` standing for every
    dataset the tenant has."""
    fields: dict[str, frozenset[str]] = {}
    for dataset, needed in dashboard.requires.items():
        targets = sorted(coverage) if dataset == ANY_DATASET else [dataset]
        for target in targets:
            fields[target] = fields.get(target, frozenset()) | frozenset(needed)
    info = RuleInfo(id=f"dashboard:{dashboard_id}", title=dashboard.title, level="",
                    severity="", kind="dashboard")
    return RuleRequirement(info, fields)


def dashboard_status(dashboard_id: str, dashboard: DashboardConfig,
                     coverage: dict[str, DatasetCoverage], config: ActivationConfig
                     ) -> DashboardStatus:
    """Activation of one dashboard for one tenant's coverage."""
    if not dashboard.requires:
        return DashboardStatus(dashboard_id, True, NO_REQUIREMENT)
    needed = requirement(dashboard_id, dashboard, coverage)
    status = rule_status(needed, coverage, config, frozenset(), frozenset())
    if status.active:
        # Every dataset that meets it on its own feeds the dashboard's `events` view.
        meeting = [d for d, f in sorted(needed.fields.items())
                   if rule_status(RuleRequirement(needed.info, {d: f}), coverage, config,
                                  frozenset(), frozenset()).active]
        return DashboardStatus(dashboard_id, True, f"data supports it ({', '.join(meeting)})",
                               meeting)
    if ANY_DATASET in dashboard.requires:
        names = ", ".join(f"`{n}`" for n in dashboard.requires[ANY_DATASET])
        return DashboardStatus(dashboard_id, False, f"waiting for {names} in any dataset",
                               missing_fields=status.missing_fields)
    if status.missing_fields:
        waits = "; ".join(f"{', '.join(f'`{n}`' for n in names)} in {dataset}"
                          for dataset, names in sorted(status.missing_fields.items()))
        return DashboardStatus(dashboard_id, False, f"waiting for {waits}",
                               missing_fields=status.missing_fields)
    what = dashboard.waiting_for or "one of the datasets"
    listed = ", ".join(sorted(dashboard.requires))
    return DashboardStatus(dashboard_id, False, f"waiting for {what} ({listed})")
