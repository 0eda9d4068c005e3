"""`vigil validate`: check a conf.d directory and print every error as FILE:LINE:COL: path: msg.
A valid configuration also reports its rules (loaded, failed, served by no dataset) and, from
the coverage the daemon saved, each tenant's active rules: the number `vigil coverage`, the
`rules activated` log line and `vigil_detection_active_rules` show."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collector.config import VigilConfig

# Sections whose entries are not what their name counts: a `rules:` entry is a directory of
# rules (the loaded rules are the next line's figure, the one number shown everywhere).
SECTION_LABELS = {"rules": "rule directories", "dashboards": "dashboard entries",
                  "access": "access policies"}


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("validate", parents=[common], help="check the configuration")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from collector.config import load_config
    from core.errors import ConfigErrors

    try:
        config = load_config(args.config_dir, require_inputs=True)
    except ConfigErrors as exc:
        print("\n".join(exc.report(args.config_dir)), file=sys.stderr)
        return exc.exit_code
    counts = ", ".join(f"{len(entries)} {SECTION_LABELS.get(name, name)}"
                       for name, entries in config.sections.items())
    print(f"{args.config_dir}: configuration is valid ({counts})")
    if config.settings.detection.enabled:
        print_rule_summary(config, args)
    return 0


def print_rule_summary(config: VigilConfig, args: argparse.Namespace) -> None:
    from collector.commands.coverage import restored_stage, tenant_reports

    stage = restored_stage(config, args.config_dir, args.data_dir)
    ruleset = stage.ruleset
    print(f"rules: {len(ruleset.rules)} loaded, {len(ruleset.correlations)} correlations, "
          f"{len(ruleset.errors)} failed, {len(ruleset.unserved)} served by no dataset")
    tenants = sorted(set(config.tenants) | set(stage.coverage.tenants()))
    if not stage.coverage.tenants():
        print(f"active rules: none yet (no coverage recorded under {stage.coverage_path})")
        return
    reports = tenant_reports(stage, config, tenants)
    print("active rules: " + ", ".join(f"{r['tenant']} {r['active_rules']}" for r in reports))
