"""`vigil sla report`: MTTA, MTTR and the share handled within SLA, per tenant and severity,
read straight from the alert store (no daemon needed)."""

from __future__ import annotations

import argparse
import json
import sys

from collector.cli import EX_CONFIG


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("sla", help="SLA reports from the alert store")
    actions = parser.add_subparsers(dest="sla_action", metavar="ACTION", required=True)
    report = actions.add_parser("report", parents=[common],
                                help="MTTA / MTTR / %% within SLA per tenant and severity")
    report.add_argument("--tenant", help="only this tenant")
    report.add_argument("--since", default="30d",
                        help="alerts created within this duration (default 30d) or since an "
                             "ISO time")
    report.add_argument("--json", action="store_true", help="JSON instead of a table")
    report.set_defaults(func=run_report)


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 60:.1f}m" if seconds < 36000 else f"{seconds / 3600:.1f}h"


def run_report(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from collector.cli import load_or_report
    from collector.commands.tenants import print_table, store_path
    from core.errors import ExitCode, unknown_name, usage_error
    from soc.alerts.db import Database
    from soc.alerts.sla import sla_report
    from soc.alerts.store import AlertStore
    from soc.api.framework import ApiError
    from soc.api.routes import parse_since

    config = load_or_report(args)
    if config is None:
        return EX_CONFIG
    if args.tenant is not None and args.tenant not in config.tenants:
        raise unknown_name("tenant", args.tenant, config.tenants)
    now = datetime.now(UTC)
    try:
        since = parse_since(args.since, now)
    except ApiError as exc:
        raise usage_error(f"--since: {exc.message}") from None
    path = store_path(config, args.data_dir)
    if not path.exists():
        print(f"{path}: no alert store yet (the daemon creates it)", file=sys.stderr)
        return ExitCode.NOINPUT
    store = AlertStore(Database(path))
    tenants = frozenset({args.tenant}) if args.tenant else None
    rows = sla_report(store, now, tenants=tenants, since=since)
    if args.json:
        print(json.dumps({"since": since.isoformat(), "generated_at": now.isoformat(),
                          "rows": [r.as_dict() for r in rows]}, indent=2))
        return 0
    header = ("TENANT", "SEVERITY", "ALERTS", "OPEN", "MTTA", "MTTR", "ACK LATE",
              "RESOLVE LATE", "WITHIN SLA", "TARGET")
    table: list[tuple[str, ...]] = [header]
    for r in rows:
        pct = "-" if r.within_sla_pct is None else f"{r.within_sla_pct:.1f}%"
        target = "-" if r.target_pct is None else (
            f">={r.target_pct:.0f}% " + ("ok" if r.meets_target else
                                         "MISSED" if r.meets_target is False else "n/a"))
        table.append((r.tenant, r.severity, str(r.alerts), str(r.open), _minutes(r.mtta_seconds),
                      _minutes(r.mttr_seconds), str(r.ack_breached), str(r.resolve_breached),
                      pct, target))
    print(f"alerts created since {since:%Y-%m-%d %H:%M} UTC")
    print_table(table)
    if len(table) == 1:
        print("(no alerts)")
    return 0
