"""`vigil coverage`: per tenant, what the data switches on: datasets and field coverage, every
rule with its state and reason (active rules listed, inactive ones counted by reason; all of them
with `--rules` or `--json`), every dashboard with its state and reason, senders whose clock is
off, and the integration categories (rules/integrations.yaml and conf.d's `integrations:`)
served (from datasets some rule reads) or missing with the rules each would activate. Reads
what the daemon saves in the data dir (`state/coverage.json`, refreshed every minute, and
`state/detection.json`) and the configured rules."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from collector.cli import EX_CONFIG, load_or_report

if TYPE_CHECKING:
    from pathlib import Path

    from collector.config import VigilConfig
    from collector.detection.stage import DetectionStage


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("coverage", parents=[common],
                                   help="which rules the tenants' data activates")
    parser.add_argument("--tenant", help="only this tenant")
    parser.add_argument("--json", action="store_true", help="one JSON document")
    parser.add_argument("--rules", action="store_true",
                        help="list every rule with its state and reason")
    parser.set_defaults(func=run)


def restored_stage(config: VigilConfig, conf_dir: Path, data_dir: Path | None
                   ) -> DetectionStage:
    """A detection stage on the configured rules with the daemon's saved coverage and state."""
    from collector.detection.stage import DetectionStage

    stage = DetectionStage(config, conf_dir.resolve(), config.data_dir(data_dir), None,
                           lambda: datetime.now(UTC))
    stage.restore()
    return stage


def tenant_reports(stage: DetectionStage, config: VigilConfig, tenants: list[str]
                   ) -> list[dict[str, Any]]:
    from rules.coverage import coverage_report
    from rules.integrations import configured
    from soc.dashboards.activation import dashboard_status
    from soc.dashboards.library import all_dashboards

    reports = []
    dashboards = all_dashboards(config)
    activation = config.settings.detection.activation
    categories = configured(config.section("integrations"))
    for tenant in tenants:
        enabled, disabled = stage.switches.get(tenant, (frozenset(), frozenset()))
        totals = stage.coverage.totals(tenant)
        report = coverage_report(tenant, stage.requirements, totals, activation, enabled,
                                 disabled, skewed=stage.engine.correlation.skewed_senders(tenant),
                                 categories=categories)
        # Dashboards switch on from the same coverage as rules (user-saved ones are per tenant
        # in the alert store and always shown).
        statuses = [(d, dashboard_status(d.id, d.config, totals, activation))
                    for d in dashboards.values()]
        report["dashboards"] = [
            {"id": d.id, "title": d.config.title, "origin": d.origin,
             "state": "active" if s.active else "inactive", "reason": s.reason,
             "datasets": s.datasets} for d, s in statuses]
        reports.append(report)
    return reports


def run(args: argparse.Namespace) -> int:
    import orjson

    config = load_or_report(args)
    if config is None:
        return EX_CONFIG
    stage = restored_stage(config, args.config_dir, args.data_dir)
    tenants = [args.tenant] if args.tenant else sorted(set(config.tenants) |
                                                       set(stage.coverage.tenants()))
    reports = tenant_reports(stage, config, tenants)
    if args.json:
        sys.stdout.buffer.write(orjson.dumps({"rules_loaded": len(stage.ruleset.rules),
                                              "rules_reported": len(stage.requirements),
                                              "tenants": reports},
                                             option=orjson.OPT_INDENT_2) + b"\n")
        return 0
    if not stage.coverage.tenants():
        print(f"no coverage recorded yet under {stage.coverage_path} (the daemon saves it "
              "every minute while events arrive)", file=sys.stderr)
    for report in reports:
        print_report(report, every_rule=args.rules)
    return 0


def print_report(report: dict[str, Any], *, every_rule: bool = False) -> None:
    print(f"tenant {report['tenant']}")
    if not report["datasets"]:
        print("  no events in the coverage window")
    for dataset, stats in report["datasets"].items():
        populated = sum(1 for ratio in stats["fields"].values() if ratio > 0)
        print(f"  dataset {dataset}: {stats['events']} events, {populated} fields populated")
    print(f"  active rules: {report['active_rules']}")
    for tactic, count in report["active_by_tactic"].items():
        print(f"    {tactic}: {count}")
    for rule_id, title, dataset in report["active"]:
        print(f"    active: {title} ({rule_id})" + (f" on {dataset}" if dataset else ""))
    print(f"  inactive rules: {report['inactive_rules']} "
          f"({', '.join(f'{k}: {v}' for k, v in report['inactive_by_reason'].items())})")
    for item in report["inactive_missing_fields"][:10]:
        missing = "; ".join(f"{d}: {', '.join(f)}" for d, f in item["missing_fields"].items())
        print(f"    {item['title']} (missing fields {missing})")
    if every_rule:
        for rule in report["rules"]:
            alone = "" if rule["alerts"] else ", through its correlations"
            print(f"    rule {rule['state']}: {rule['title']} ({rule['id']}{alone}): "
                  f"{rule['reason']}")
    if report["clock_skew"]:
        print("  sender clocks off: " + ", ".join(
            f"{s['sender']} ({s['seconds']:.0f} s ahead of {s['basis']})"
            for s in report["clock_skew"]))
    dashboards = report.get("dashboards", [])
    if dashboards:
        active = [d for d in dashboards if d["state"] == "active"]
        print(f"  dashboards: {len(active)} active, {len(dashboards) - len(active)} inactive")
        for dashboard in dashboards:
            print(f"    dashboard {dashboard['state']}: {dashboard['title']} ({dashboard['id']}): "
                  f"{dashboard['reason']}")
    print("  integration categories:")
    for state in report["categories"].values():
        category = state["name"]
        unread = ", ".join(state["unread_datasets"])
        if state["present"]:
            print(f"    {category}: present ({', '.join(state['datasets'])})")
        elif unread:
            print(f"    {category}: data without a rule reading it ({unread})")
        else:
            gain = state["rules_it_would_activate"]
            print(f"    {category}: missing" + (f" (would activate {gain} rules)" if gain else ""))
            names = state.get("rules", [])
            if names:
                more = f", and {len(names) - 5} more" if len(names) > 5 else ""
                print(f"      would activate: {'; '.join(names[:5])}{more}")
