"""The Security Posture figures of one tenant: open alerts by severity, the alert trend over
7 / 30 / 90 days, MTTA and MTTR per severity against the SLA (`soc.alerts.sla`), top rules,
the ATT&CK tactic/technique matrix, top attacking addresses with country, and data-source
health (coverage events per dataset, last lake write, sources gone silent)."""

from __future__ import annotations

import ipaddress
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from core.config import SEVERITIES
from rules.coverage import DatasetCoverage
from soc.alerts.db import to_text
from soc.alerts.sla import sla_report
from soc.alerts.store import AlertStore
from soc.dashboards.lake import TenantLake

TREND_WINDOWS = (7, 30, 90)
SILENT_AFTER = timedelta(hours=24)


def posture(store: AlertStore, tenant: str, now: datetime,
            coverage: dict[str, DatasetCoverage], lake: TenantLake, *,
            targets: dict[str, dict[str, int]] | None = None, top: int = 10
            ) -> dict[str, Any]:
    """Everything the posture page shows for `tenant`, JSON-ready; `targets` are the tenant's
    SLA per severity (ack_seconds, resolve_seconds), shown beside the measured times."""
    since = now - timedelta(days=max(TREND_WINDOWS))
    with store.db.transaction(write=False) as con:
        open_rows = con.execute(
            "SELECT severity, count(*) FROM alerts WHERE tenant = ? AND status <> 'resolved' "
            "GROUP BY severity", [tenant]).fetchall()
        daily = con.execute(
            "SELECT substr(created_at, 1, 10) AS day, severity, count(*) FROM alerts "
            "WHERE tenant = ? AND created_at >= ? GROUP BY 1, 2 ORDER BY 1",
            [tenant, to_text(since)]).fetchall()
    open_by = {s: 0 for s in SEVERITIES}
    for severity, count in open_rows:
        open_by[severity] = int(count)
    per_day: dict[str, dict[str, int]] = {}
    for day, severity, count in daily:
        per_day.setdefault(day, {s: 0 for s in SEVERITIES})[severity] = int(count)
    series: list[dict[str, Any]] = []
    for n in range(max(TREND_WINDOWS) - 1, -1, -1):
        day = (now - timedelta(days=n)).astimezone(UTC).date().isoformat()
        counts = per_day.get(day, {s: 0 for s in SEVERITIES})
        series.append({"date": day, "total": sum(counts.values()), **counts})
    trend = {f"{w}d": {"total": sum(p["total"] for p in series[-w:]), "daily": series[-w:]}
             for w in TREND_WINDOWS}
    sla = [row.as_dict() for row in sla_report(store, now, tenants=frozenset({tenant}),
                                               since=now - timedelta(days=30))]
    return {
        "tenant": tenant, "generated_at": now.isoformat(),
        "open_by_severity": open_by, "open_total": sum(open_by.values()),
        "trend": trend,
        "sla_30d": sla,
        "sla_targets": targets or {},
        **alert_breakdown(store, tenant, since, None, top=top),
        "data_sources": data_source_health(coverage, lake, now),
    }


def alert_breakdown(store: AlertStore, tenant: str, since: datetime, until: datetime | None,
                    *, top: int = 10) -> dict[str, Any]:
    """Top rules, the ATT&CK tactic/technique matrix and the top attacking addresses (the
    group keys that are addresses) of the alerts created in [since, until)."""
    where, args = "tenant = ? AND created_at >= ?", [tenant, to_text(since)]
    if until is not None:
        where += " AND created_at < ?"
        args.append(to_text(until))
    with store.db.transaction(write=False) as con:
        recent = con.execute(
            "SELECT rule_id, rule_name, group_key, details, "
            "json_extract(events, '$[0].\"source.geo.country_iso_code\"') AS country "
            f"FROM alerts WHERE {where}", args).fetchall()
    rules: Counter[tuple[str, str]] = Counter()
    matrix: dict[str, Counter[str]] = {}
    attackers: Counter[str] = Counter()
    countries: dict[str, str | None] = {}
    for rule_id, rule_name, group_key, details, country in recent:
        rules[(rule_id, rule_name)] += 1
        info = orjson.loads(details or "{}")
        techniques = info.get("techniques") or ["(none)"]
        for tactic in info.get("tactics") or ["(no tactic)"]:
            for technique in techniques:
                matrix.setdefault(tactic, Counter())[technique] += 1
        address = attacking_address(group_key)
        if address is not None:
            attackers[address] += 1
            countries[address] = countries.get(address) or country
    return {
        "top_rules": [{"rule_id": r, "rule_name": n, "alerts": c}
                      for (r, n), c in rules.most_common(top)],
        "attack_matrix": [{"tactic": t, "techniques": [{"technique": k, "alerts": c}
                                                       for k, c in found.most_common()]}
                          for t, found in sorted(matrix.items())],
        "top_attackers": [{"address": a, "country": countries.get(a), "alerts": c}
                          for a, c in attackers.most_common(top)],
    }


def data_source_health(coverage: dict[str, DatasetCoverage], lake: TenantLake,
                       now: datetime) -> list[dict[str, Any]]:
    """Per dataset: events in the coverage window, last lake write, silent for a day or more."""
    partitions = lake.partitions().to_pylist()
    last: dict[str, datetime] = {}
    for p in partitions:
        seen = p["last_modified"]
        if p["dataset"] not in last or seen > last[p["dataset"]]:
            last[p["dataset"]] = seen
    out = []
    for dataset in sorted(set(coverage) | set(last)):
        seen_at = last.get(dataset)
        out.append({"dataset": dataset,
                    "events": coverage[dataset].events if dataset in coverage else 0,
                    "last_seen": seen_at.isoformat() if seen_at else None,
                    "silent": seen_at is None or now - seen_at > SILENT_AFTER})
    return out


ADDRESS_KEYS = ("source.ip", "source.address", "client.ip")


def attacking_address(group_key: str | None) -> str | None:
    """The address an alert is grouped by: the group key itself, or its `source.ip` (the
    stored form of a group key is a JSON object of the rule's group-by fields)."""
    candidates: list[Any] = [group_key]
    if group_key and group_key.startswith("{"):
        try:
            found = orjson.loads(group_key)
        except orjson.JSONDecodeError:
            found = {}
        if isinstance(found, dict):
            candidates = [found.get(key) for key in ADDRESS_KEYS]
    for value in candidates:
        try:
            return str(ipaddress.ip_address(str(value or "")))
        except ValueError:
            continue
    return None
