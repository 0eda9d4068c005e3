"""The Security Posture figures of one tenant: open alerts by severity, the alert trend over
7 / 30 / 90 days, MTTA and MTTR per severity against the SLA (`soc.alerts.sla`), top rules,
the ATT&CK tactic/technique matrix, top attacking addresses with country, and data-source
health (coverage events per dataset, last lake write, sources gone silent)."""

from __future__ import annotations

import ipaddress
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import islice
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
COUNTRY_FIELD = "source.geo.country_iso_code"


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
    """Top rules, the ATT&CK tactic/technique matrix and the top attacking addresses (from the
    alerts' group keys) of the alerts created in [since, until): counted in SQL, one row per
    rule, per tactic/technique list and per group key."""
    where, window = "tenant = ? AND created_at >= ?", [tenant, to_text(since)]
    if until is not None:
        where += " AND created_at < ?"
        window.append(to_text(until))
    with store.db.transaction(write=False) as con:
        by_rule = con.execute(
            f"SELECT rule_id, rule_name, count(*) FROM alerts WHERE {where} GROUP BY 1, 2",
            window).fetchall()
        by_attack = con.execute(
            "SELECT json_extract(details, '$.tactics'), json_extract(details, '$.techniques'), "
            f"count(*) FROM alerts WHERE {where} GROUP BY 1, 2", window).fetchall()
        by_group = con.execute(
            "SELECT group_key, count(*), max(coalesce(json_extract(events, "
            "'$[0].fields.\"source.geo.country_iso_code\"'), json_extract(events, "
            f"'$[0].\"source.geo.country_iso_code\"'))) FROM alerts WHERE {where} GROUP BY 1",
            window).fetchall()
    rules: Counter[tuple[str, str]] = Counter()
    for rule_id, rule_name, count in by_rule:
        rules[(rule_id, rule_name)] += int(count)
    matrix: dict[str, Counter[str]] = {}
    for tactics, techniques, count in by_attack:
        for tactic in _list(tactics) or ["(no tactic)"]:
            for technique in _list(techniques) or ["(none)"]:
                matrix.setdefault(tactic, Counter())[technique] += int(count)
    attackers: Counter[str] = Counter()
    countries: dict[str, str | None] = {}
    for group_key, count, country in by_group:
        group = _group(group_key)
        country = country or group.get(COUNTRY_FIELD)
        for address in _candidates(group):
            attackers[address] += int(count)
            countries[address] = countries.get(address) or country
    return {
        "top_rules": [{"rule_id": r, "rule_name": n, "alerts": c}
                      for (r, n), c in rules.most_common(top)],
        "attack_matrix": [{"tactic": t, "techniques": [{"technique": k, "alerts": c}
                                                       for k, c in found.most_common()]}
                          for t, found in sorted(matrix.items())],
        "top_attackers": [{"address": a, "country": countries.get(a), "alerts": c}
                          for a, c in islice(((a, c) for a, c in attackers.most_common()
                                              if _is_address(a)), top)],
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


def _list(text: str | None) -> list[str]:
    """A JSON list of names (the alert's tactics or techniques) read from `details`."""
    value = orjson.loads(text) if text else None
    return [str(v) for v in value] if isinstance(value, list) else []


def _group(group_key: str | None) -> dict[str, Any]:
    """The alert's group key: detection writes a JSON object of field -> value; an older
    or hand-made one may be a bare value."""
    try:
        value = orjson.loads(group_key or "{}")
    except orjson.JSONDecodeError:
        return {"group": group_key}
    return value if isinstance(value, dict) else {"group": value}


def _candidates(group: dict[str, Any]) -> list[str]:
    """The group's values that may be the attacking address: its `source.*` values (else all
    of them). Only the most frequent are parsed as addresses (parsing every alert's would
    cost more than the rest of the posture)."""
    found = [v for k, v in group.items() if k.startswith("source.") and isinstance(v, str)]
    return found or [v for v in group.values() if isinstance(v, str)]


def _is_address(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        ipaddress.ip_address(value or "")
    except ValueError:
        return False
    return True
