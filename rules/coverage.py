"""Field coverage per tenant and dataset, automatic rule activation, and the coverage report.

Coverage counts, in daily buckets over a sliding window, the events of each (tenant, dataset)
and how many of them populate each field. A rule is active for a tenant when one of the
tenant's datasets serves its logsource and every field the rule needs there (union over AND,
intersection over OR) is populated often enough; a tenant's explicit enable/disable lists win.
The same figures explain, per tenant, what is active, what is missing and which integration
categories (rules/integrations.py) would switch on how many more rules.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import Field

from core.config import Duration, StrictModel
from core.durable import write_atomic
from core.events import Event
from rules.integrations import CategoryMap, shipped
from rules.loader import RuleRequirement

STATE_VERSION = 1
COVERAGE_SAMPLE = 256  # events of a batch whose fields are counted

class ActivationConfig(StrictModel):
    """When a rule switches on for a tenant by itself."""

    mode: Literal["auto", "all"] = Field(
        "auto", description="auto: a rule is active for a tenant once one of the tenant's "
        "datasets serves its logsource and every field it needs is populated; all: every rule "
        "of a dataset the tenant sends is active")
    min_events: int = Field(1, ge=1, description="events of a dataset in the window before its "
                                                 "rules can activate")
    min_field_ratio: float = Field(
        0.0, ge=0, le=1, description="share of a dataset's events a needed field must be "
        "populated in (0: at least once)")
    window: Duration = Field(timedelta(days=7), description="how far back field coverage "
                                                            "counts (kept in daily buckets)")


def dataset_categories(dataset: str, categories: CategoryMap | None = None) -> tuple[str, ...]:
    """The integration categories a dataset belongs to (rules/integrations.yaml; none for an
    unknown family)."""
    return (categories or shipped()).categories_of(dataset)


@dataclass
class DatasetCoverage:
    """Totals of one (tenant, dataset) over the window."""

    events: int = 0
    fields: Counter[str] = field(default_factory=Counter)

    def populated(self, name: str) -> int:
        return self.fields.get(name, 0)


class FieldCoverage:
    """Daily buckets of event and field counts per (tenant, dataset)."""

    def __init__(self, window: timedelta) -> None:
        self.window_days = max(1, int(window.total_seconds() // 86400))
        # (tenant, dataset) -> day number -> [events, Counter]
        self.days: dict[tuple[str, str], dict[int, tuple[list[int], Counter[str]]]] = {}
        self.seen_fields: dict[tuple[str, str], set[str]] = {}

    def observe(self, tenant: str, dataset: str, events: list[Event], now: datetime) -> bool:
        """Count a batch; True when the (tenant, dataset) or one of its fields is new, which is
        when activation can change."""
        key = (tenant, dataset)
        day = _day(now)
        buckets = self.days.setdefault(key, {})
        bucket = buckets.get(day)
        if bucket is None:
            bucket = buckets[day] = ([0], Counter())
            self._trim(buckets, day)
        counts = bucket[1]
        # A sample of a large batch is enough for coverage ratios (counting every field of
        # every event was a tenth of the daemon's time); each sampled event stands for `step`.
        step = max(1, len(events) // COVERAGE_SAMPLE)
        tally = counts if step == 1 else Counter()
        for event in events[::step]:
            values = event.values()
            if None in values or "" in values:  # the rare event with empty fields
                tally.update([name for name, value in event.items()
                              if value is not None and value != ""])
            else:
                tally.update(event.keys())  # counted in C: this ran for every event
        if tally is not counts:
            for name, count in tally.items():
                counts[name] += count * step
        bucket[0][0] += len(events)
        seen = self.seen_fields.get(key)
        if seen is None:
            self.seen_fields[key] = set(counts)
            return True
        if len(seen) != len(seen | counts.keys()):
            seen.update(counts)
            return True
        return False

    def _trim(self, buckets: dict[int, Any], today: int) -> None:
        for old in [d for d in buckets if d <= today - self.window_days]:
            del buckets[old]

    def totals(self, tenant: str) -> dict[str, DatasetCoverage]:
        """Per dataset of one tenant, the window's totals."""
        out: dict[str, DatasetCoverage] = {}
        for (owner, dataset), buckets in self.days.items():
            if owner != tenant:
                continue
            total = DatasetCoverage()
            for (events, counts) in buckets.values():
                total.events += events[0]
                total.fields.update(counts)
            out[dataset] = total
        return out

    def tenants(self) -> list[str]:
        return sorted({tenant for tenant, _ in self.days})

    # -- persistence -------------------------------------------------------------------------

    def dump(self, tenants: set[str] | None = None) -> dict[str, Any]:
        """The coverage (of `tenants` only, when given) as `load` reads it."""
        return {"version": STATE_VERSION, "window_days": self.window_days, "coverage": [
            {"tenant": t, "dataset": d,
             "days": {str(day): [ev[0], dict(counts)] for day, (ev, counts) in b.items()}}
            for (t, d), b in self.days.items() if tenants is None or t in tenants]}

    def save(self, path: Path) -> None:
        write_atomic(path, orjson.dumps(self.dump()))

    def restore(self, path: Path, now: datetime) -> int:
        """Load saved coverage (a missing or unreadable file restores nothing)."""
        try:
            data = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return 0
        return self.load(data, now)

    def load(self, data: dict[str, Any], now: datetime) -> int:
        """Load coverage as `save` wrote it (merged from worker processes' files)."""
        if data.get("version") != STATE_VERSION:
            return 0
        today = _day(now)
        for entry in data.get("coverage", []):
            key = (str(entry["tenant"]), str(entry["dataset"]))
            buckets = self.days.setdefault(key, {})
            for day, (events, counts) in entry.get("days", {}).items():
                if int(day) > today - self.window_days:
                    buckets[int(day)] = ([int(events)], Counter(counts))
            self.seen_fields[key] = {f for _, c in buckets.values() for f in c}
        return len(self.days)


def _day(now: datetime) -> int:
    return (now.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)).days



# -- activation ----------------------------------------------------------------------------------

ACTIVE_REASON = "data supports it"
NO_DATASET = "no dataset serves its logsource"


@dataclass
class RuleStatus:
    """Why a rule is or is not active for a tenant."""

    rule_id: str
    active: bool
    dataset: str | None = None  # the dataset that activates it
    reason: str = ""
    missing_fields: dict[str, list[str]] = field(default_factory=dict)  # dataset -> fields


def rule_status(requirement: RuleRequirement, coverage: dict[str, DatasetCoverage],
                config: ActivationConfig, enabled: frozenset[str], disabled: frozenset[str]
                ) -> RuleStatus:
    """Activation of one rule for one tenant."""
    rule_id = requirement.info.id
    if rule_id in disabled:
        return RuleStatus(rule_id, False, reason="disabled for the tenant")
    if requirement.placeholders:
        # Unresolved, a placeholder would match anything: the rule stays off (not even
        # compiled) until its values are configured, whatever else is said of it.
        return RuleStatus(rule_id, False, reason="unresolved placeholder: "
                          + ", ".join(sorted(requirement.placeholders)))
    if rule_id in enabled:
        return RuleStatus(rule_id, True, reason="enabled for the tenant")
    if not requirement.fields:
        return RuleStatus(rule_id, False, reason=NO_DATASET)
    status = RuleStatus(rule_id, False)
    present = False
    for dataset, needed in requirement.fields.items():
        stats = coverage.get(dataset)
        if stats is None or stats.events < config.min_events:
            continue
        present = True
        floor = max(1, int(config.min_field_ratio * stats.events + 0.999999))
        missing = sorted(f for f in needed if stats.populated(f) < floor)
        if not missing or config.mode == "all":
            return RuleStatus(rule_id, True, dataset, ACTIVE_REASON)
        status.missing_fields[dataset] = missing
    if present:
        status.reason = "field not populated: " + "; ".join(
            f"{d}: {', '.join(f)}" for d, f in sorted(status.missing_fields.items()))
    else:
        status.reason = "missing dataset: " + ", ".join(sorted(requirement.fields))
    return status


@dataclass
class Activation:
    """Every rule's status for one tenant; the one source of the "active rules" number."""

    statuses: list[tuple[RuleRequirement, RuleStatus]]

    @property
    def active_ids(self) -> set[str]:
        """Every active rule id, base rules of correlations included (what the engine runs)."""
        return {r.info.id for r, s in self.statuses if s.active}

    @property
    def alerting(self) -> list[tuple[RuleRequirement, RuleStatus]]:
        """Rules that raise alerts: single rules alerting on their own, and correlations."""
        return [(r, s) for r, s in self.statuses if r.alerts]

    @property
    def active_count(self) -> int:
        """"Active rules" wherever Vigil prints or exports it: active rules that can alert."""
        return sum(1 for _, s in self.alerting if s.active)


def activation(requirements: Iterable[RuleRequirement], coverage: dict[str, DatasetCoverage],
               config: ActivationConfig, enabled: frozenset[str] = frozenset(),
               disabled: frozenset[str] = frozenset()) -> Activation:
    """Every rule's activation for one tenant."""
    return Activation([(r, rule_status(r, coverage, config, enabled, disabled))
                       for r in requirements])


def active_rules(requirements: Iterable[RuleRequirement], coverage: dict[str, DatasetCoverage],
                 config: ActivationConfig, enabled: frozenset[str], disabled: frozenset[str]
                 ) -> set[str]:
    return activation(requirements, coverage, config, enabled, disabled).active_ids


def correlation_requirements(correlations: Iterable[Any],
                             requirements: list[RuleRequirement]) -> list[RuleRequirement]:
    """A correlation needs what all its base rules need: the datasets serving every one of them
    and, per dataset, the union of their fields (active exactly when its base rules are)."""
    by_id = {r.info.id: r for r in requirements}
    out = []
    for correlation in correlations:
        bases = [by_id[b.info.id] for b in correlation.base_rules if b.info.id in by_id]
        datasets = set.intersection(*(set(b.fields) for b in bases)) if bases else set()
        out.append(RuleRequirement(correlation.info, {
            d: frozenset().union(*(b.fields[d] for b in bases)) for d in sorted(datasets)},
            placeholders=frozenset().union(*(b.placeholders for b in bases))))
    return out


def coverage_report(tenant: str, requirements: list[RuleRequirement],
                    coverage: dict[str, DatasetCoverage], config: ActivationConfig,
                    enabled: frozenset[str] = frozenset(), disabled: frozenset[str] = frozenset(),
                    *, limit: int = 50, skewed: Iterable[Any] = (),
                    categories: CategoryMap | None = None) -> dict[str, Any]:
    """Everything `vigil coverage` says about one tenant, JSON-ready. `requirements` holds every
    rule (single-event rules, unserved ones and correlations, see `correlation_requirements`);
    `skewed` the tenant's senders whose clock is off (`CorrelationEngine.skewed_senders`);
    `categories` the integration categories (the shipped ones by default)."""
    result = activation(requirements, coverage, config, enabled, disabled)
    alerting = result.alerting
    active = [(r, s) for r, s in alerting if s.active]
    inactive = [(r, s) for r, s in alerting if not s.active]
    by_tactic: Counter[str] = Counter()
    for r, _ in active:
        for tactic in r.info.tactics or ("(no tactic)",):
            by_tactic[tactic] += 1
    states = category_states(requirements, coverage, inactive, categories)
    near = [(r, s) for r, s in inactive if s.missing_fields]
    return {
        "tenant": tenant,
        "datasets": {d: {"events": stats.events,
                         "fields": {f: round(min(1.0, n / stats.events), 4) for f, n in
                                    sorted(stats.fields.items()) if stats.events}}
                     for d, stats in sorted(coverage.items())},
        "active_rules": result.active_count,
        "active_by_tactic": dict(sorted(by_tactic.items())),
        "active": sorted((r.info.id, r.info.title, s.dataset) for r, s in active),
        "inactive_rules": len(inactive),
        "inactive_missing_fields": [
            {"rule_id": r.info.id, "title": r.info.title, "missing_fields": s.missing_fields}
            for r, s in sorted(near, key=lambda item: item[0].info.id)[:limit]],
        "inactive_by_reason": dict(Counter(s.reason.split(":")[0] for _, s in inactive)),
        "rules": [{"id": r.info.id, "title": r.info.title, "kind": r.info.kind,
                   "alerts": r.alerts, "state": "active" if s.active else "inactive",
                   "reason": s.reason, "dataset": s.dataset,
                   "missing_fields": s.missing_fields}
                  for r, s in sorted(result.statuses,
                                     key=lambda i: (not i[1].active, i[0].info.title))],
        "clock_skew": [{"sender": s.sender, "seconds": s.seconds, "basis": s.basis}
                       for s in skewed][:limit],
        "categories": states,
    }


def category_states(requirements: list[RuleRequirement], coverage: dict[str, DatasetCoverage],
                    inactive: list[tuple[RuleRequirement, RuleStatus]],
                    categories: CategoryMap | None = None) -> dict[str, dict[str, Any]]:
    """Per integration category: present (a dataset of it with events that some rule reads, or
    one of its fields populated), its datasets, those no rule reads, and the inactive rules it
    would switch on while missing (their dataset is missing, or a field it brings)."""
    categories = categories or shipped()
    read = {d for r in requirements for d in r.fields}
    with_events = sorted(d for d, stats in coverage.items() if stats.events)
    served: dict[str, list[str]] = {c: [] for c in categories.ids}
    unread: dict[str, list[str]] = {c: [] for c in categories.ids}
    for dataset in with_events:
        for category in categories.categories_of(dataset):
            (served if dataset in read else unread)[category].append(dataset)
    for category_id, entry in categories.categories.items():
        for name in entry.fields:
            if any(stats.populated(name) for stats in coverage.values()):
                served[category_id].append(name)
    would_enable: dict[str, list[RuleRequirement]] = {c: [] for c in categories.ids}
    for r, status in inactive:
        if status.reason.startswith("missing dataset"):
            gained = {c for d in r.fields for c in categories.categories_of(d)}
        else:
            gained = set(categories.categories_of_fields(
                f for fields in status.missing_fields.values() for f in fields))
        for category in gained:
            if not served[category]:
                would_enable[category].append(r)
    return {c: {"name": categories.categories[c].name, "present": bool(served[c]),
                "datasets": served[c], "unread_datasets": unread[c],
                "rules_it_would_activate": len(would_enable[c]),
                "rules": sorted({r.info.title for r in would_enable[c]})}
            for c in categories.ids}
