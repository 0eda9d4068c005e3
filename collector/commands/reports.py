"""`vigil reports weekly|incident`: a report built from the alert store and the lake (no
daemon needed), written as PDF, HTML or JSON to a file or standard output."""

from __future__ import annotations

import argparse
import sys

from collector.cli import EX_CONFIG


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("reports", help="weekly and closed-incident reports")
    actions = parser.add_subparsers(dest="reports_action", metavar="ACTION", required=True)
    weekly = actions.add_parser("weekly", parents=[common],
                                help="a tenant's weekly posture report")
    weekly.add_argument("--tenant", required=True)
    weekly.add_argument("--week", help="the week's Monday (any day of it) or an ISO week "
                        "like 2026-W49 (default: last week)")
    incident = actions.add_parser("incident", parents=[common],
                                  help="the report of an alert closed as true positive")
    incident.add_argument("alert_id", help="the alert's id (or a unique prefix of it)")
    for action in (weekly, incident):
        action.add_argument("--format", choices=("pdf", "html", "json"), default="pdf")
        action.add_argument("-o", "--output", help="file to write (default: the report's "
                            "name in the current directory; - for standard output)")
        action.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    import orjson

    from collector.cli import load_or_report
    from collector.commands.tenants import store_path
    from core.errors import ExitCode, unknown_name, usage_error
    from core.telemetry import Telemetry
    from soc.alerts.model import SYSTEM, NotFound
    from soc.alerts.service import Alerting
    from soc.reports.service import Reports, render
    from soc.reports.weekly import Week

    config = load_or_report(args)
    if config is None:
        return EX_CONFIG
    path = store_path(config, args.data_dir)
    if not path.exists():
        print(f"{path}: no alert store yet (the daemon creates it)", file=sys.stderr)
        return ExitCode.NOINPUT
    alerting = Alerting(config, config.data_dir(args.data_dir), args.config_dir, Telemetry())
    reports = Reports(alerting)
    now = datetime.now(UTC)
    if args.reports_action == "weekly":
        if args.tenant not in config.tenants:
            raise unknown_name("tenant", args.tenant, config.tenants)
        try:
            week = Week.parse(args.week) if args.week else Week.of((now - timedelta(7)).date())
        except (ValueError, OverflowError):
            raise usage_error("--week: a date (2026-11-30) or an ISO week (2026-W49)") from None
        report = reports.weekly(args.tenant, week, now)
    else:
        try:
            alert_id = alerting.store.full_id(args.alert_id, SYSTEM)
            report = reports.incident(alert_id, SYSTEM, now)
        except (NotFound, ValueError) as exc:
            print(f"vigil: {exc}", file=sys.stderr)
            return ExitCode.NOINPUT
    rendered = render(report)
    data = {"pdf": rendered.pdf, "html": rendered.html.encode(),
            "json": orjson.dumps(report, option=orjson.OPT_INDENT_2)}[args.format]
    if args.output == "-":
        if args.format == "pdf":
            sys.stdout.buffer.write(data)
        else:
            sys.stdout.write(data.decode())
        return 0
    target = Path(args.output or rendered.name(args.format))
    target.write_bytes(data)
    print(f"{target}: {rendered.title}")
    return 0
