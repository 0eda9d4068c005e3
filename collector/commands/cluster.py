"""`vigil cluster status`: roles, shards and their owners, lag per tenant, stream usage, read
from JetStream (`vigil.cluster` of the configuration)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from collector.cli import EX_CONFIG, load_or_report

EX_UNAVAILABLE = 69


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("cluster", help="the cluster on NATS JetStream")
    actions = parser.add_subparsers(dest="cluster_action", metavar="ACTION", required=True)
    status = actions.add_parser("status", parents=[common],
                                help="roles, shard owners, lag per tenant, stream usage")
    status.add_argument("--json", action="store_true", help="JSON instead of tables")
    status.set_defaults(func=show_status)


def show_status(args: argparse.Namespace) -> int:
    from collector.cluster.status import cluster_status
    from collector.commands.tenants import print_table

    config = load_or_report(args)
    if config is None:
        return EX_CONFIG
    try:
        status = asyncio.run(asyncio.wait_for(cluster_status(config.settings.cluster), 15))
    except ImportError:
        print("vigil cluster: nats-py is not installed (pip install 'vigil[cluster]')",
              file=sys.stderr)
        return EX_UNAVAILABLE
    except Exception as exc:
        servers = ", ".join(config.settings.cluster.servers)
        print(f"vigil cluster: cannot read JetStream at {servers}: {exc!r}", file=sys.stderr)
        return EX_UNAVAILABLE
    if args.json:
        print(json.dumps(status, indent=2, default=str))
        return 0
    print_table([("ROLE", "NODE", "HOST", "PID", "SHARDS", "HANDED OVER"), *[
        (p["role"], p["node"], str(p.get("host", "")), str(p.get("pid", "")),
         str(len(p["shards"])) if "shards" in p else "",
         str(p.get("voluntary_releases", ""))) for p in status["processes"]]])
    print()
    print_table([("SHARD", "OWNER", "PENDING", "UNACKED", "ACKED SEQ"), *[
        (s["shard"], s["owner"] or "-", str(s["pending_records"]),
         str(s["unacknowledged_records"]), str(s["acknowledged_sequence"]))
        for s in status["shards"]]])
    print()
    print_table([("TENANT", "LAG (RECORDS)"),
                 *[(t, str(n)) for t, n in status["lag_records"].items()]])
    print()
    print_table([("STREAM", "MESSAGES", "BYTES", "FIRST SEQ", "LAST SEQ"), *[
        (name, str(u["messages"]), str(u["bytes"]), str(u["first_sequence"]),
         str(u["last_sequence"])) for name, u in status["streams"].items()]])
    return 0
