"""`vigil coverage`: per tenant, what the data switches on: datasets and field coverage, active
rules by MITRE tactic, inactive rules and what they miss, and the source categories present or
missing with how many rules each would activate. Reads the coverage the daemon saves in the
data dir (`state/coverage.json`, refreshed every minute) and the configured rules."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from collector.cli import EX_CONFIG, load_or_report


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("coverage", parents=[common],
                                   help="which rules the tenants' data activates")
    parser.add_argument("--tenant", help="only this tenant")
    parser.add_argument("--json", action="store_true", help="one JSON document")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import orjson

    from collector.detection.coverage import FieldCoverage, coverage_report
    from collector.detection.stage import DetectionStage

    config = load_or_report(args)
    if config is None:
        return EX_CONFIG
    data_dir = config.data_dir(args.data_dir)
    stage = DetectionStage(config, args.config_dir.resolve(), data_dir, None,
                           lambda: datetime.now(UTC))
    coverage = FieldCoverage(config.settings.detection.activation.window)
    coverage.restore(stage.coverage_path, datetime.now(UTC))
    tenants = [args.tenant] if args.tenant else sorted(set(config.tenants) |
                                                       set(coverage.tenants()))
    reports = []
    for tenant in tenants:
        enabled, disabled = stage.switches.get(tenant, (frozenset(), frozenset()))
        reports.append(coverage_report(tenant, stage.alerting_requirements,
                                       coverage.totals(tenant),
                                       config.settings.detection.activation, enabled, disabled))
    if args.json:
        sys.stdout.buffer.write(orjson.dumps({"rules_loaded": len(stage.ruleset.rules),
                                              "tenants": reports},
                                             option=orjson.OPT_INDENT_2) + b"\n")
        return 0
    if not coverage.tenants():
        print(f"no coverage recorded yet under {stage.coverage_path} (the daemon saves it "
              "every minute while events arrive)", file=sys.stderr)
    for report in reports:
        print_report(report)
    return 0


def print_report(report: dict[str, Any]) -> None:
    print(f"tenant {report['tenant']}")
    if not report["datasets"]:
        print("  no events in the coverage window")
    for dataset, stats in report["datasets"].items():
        populated = sum(1 for ratio in stats["fields"].values() if ratio > 0)
        print(f"  dataset {dataset}: {stats['events']} events, {populated} fields populated")
    print(f"  active rules: {report['active_rules']}")
    for tactic, count in report["active_by_tactic"].items():
        print(f"    {tactic}: {count}")
    print(f"  inactive rules: {report['inactive_rules']} "
          f"({', '.join(f'{k}: {v}' for k, v in report['inactive_by_reason'].items())})")
    for item in report["inactive_missing_fields"][:10]:
        missing = "; ".join(f"{d}: {', '.join(f)}" for d, f in item["missing_fields"].items())
        print(f"    {item['title']} (missing fields {missing})")
    print("  source categories:")
    for category, state in report["categories"].items():
        if state["present"]:
            print(f"    {category}: present")
        else:
            gain = state["rules_it_would_activate"]
            print(f"    {category}: missing" + (f" (would activate {gain} rules)" if gain else ""))
