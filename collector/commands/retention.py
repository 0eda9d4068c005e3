"""`vigil retention [--dry-run]`: delete the lake and dead-letter date partitions older than
each tenant's retention (the running daemon does the same every hour)."""

from __future__ import annotations

import argparse

from collector.cli import EX_CONFIG, load_or_report


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("retention", parents=[common],
                                   help="delete lake and dead-letter partitions past retention")
    parser.add_argument("--dry-run", action="store_true",
                        help="list what would be deleted, delete nothing")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from collector.retention import sweep

    config = load_or_report(args)
    if config is None:
        return EX_CONFIG
    report = sweep(config, config.data_dir(args.data_dir), dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    for path in report.deleted:
        print(f"{verb} {path}")
    per = ", ".join(f"{area} {tenant}: {n}" for (area, tenant), n
                    in sorted(report.per_tenant.items()))
    print(f"{len(report.deleted)} partition(s) {verb}{f' ({per})' if per else ''}")
    return 0
