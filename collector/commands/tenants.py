"""`vigil tenants list|show`: the tenant registry from the configuration (no daemon needed).

Also holds the configuration loading that the alert, user and SLA commands share.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collector.cli import EX_CONFIG, load_or_report
from core.errors import unknown_name

if TYPE_CHECKING:
    from collector.config import VigilConfig


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("tenants", help="list tenants, their contracts and SLAs")
    actions = parser.add_subparsers(dest="tenants_action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", parents=[common], help="one line per tenant")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.set_defaults(func=list_tenants)
    show = actions.add_parser("show", parents=[common], help="one tenant in full")
    show.add_argument("tenant")
    show.add_argument("--json", action="store_true", help="JSON instead of text")
    show.set_defaults(func=show_tenant)


def print_table(rows: list[tuple[str, ...]]) -> None:
    """Left-aligned columns, two spaces apart; the first row is the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def store_path(config: VigilConfig, data_dir: Path | None) -> Path:
    from soc.alerts.sink import alert_store_path

    return alert_store_path(config.data_dir(data_dir), config.sinks.values())


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def describe(tenant_id: str, config: VigilConfig) -> dict[str, Any]:
    from core.config import SEVERITIES

    tenant = config.tenants[tenant_id]
    sla = {s: {"ack": _duration(tenant.sla.for_severity(s).ack.total_seconds()),
               "resolve": _duration(tenant.sla.for_severity(s).resolve.total_seconds())}
           for s in reversed(SEVERITIES)}
    return {"id": tenant_id, "name": tenant.name, "contract_id": tenant.contract_id,
            "tier": tenant.tier,
            "contact": tenant.contact.model_dump() if tenant.contact else None,
            "escalation_contacts": [c.model_dump() for c in tenant.escalation_contacts],
            "sla": sla,
            "notifications": tenant.notifications.model_dump()}


def list_tenants(args: argparse.Namespace) -> int:
    config = load_or_report(args)
    if config is None:
        return EX_CONFIG
    rows = [describe(t, config) for t in sorted(config.tenants)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table: list[tuple[str, ...]] = [("TENANT", "NAME", "TIER", "CONTRACT",
                                     "CRITICAL ACK/RESOLVE", "HIGH ACK/RESOLVE")]
    for row in rows:
        crit, high = row["sla"]["critical"], row["sla"]["high"]
        table.append((row["id"], row["name"], row["tier"], row["contract_id"] or "-",
                      f"{crit['ack']}/{crit['resolve']}", f"{high['ack']}/{high['resolve']}"))
    print_table(table)
    return 0


def show_tenant(args: argparse.Namespace) -> int:
    config = load_or_report(args)
    if config is None:
        return EX_CONFIG
    if args.tenant not in config.tenants:
        raise unknown_name("tenant", args.tenant, config.tenants)
    info = describe(args.tenant, config)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['id']}: {info['name']}  (tier {info['tier']}, contract "
          f"{info['contract_id'] or '-'})")
    contact = info["contact"]
    if contact:
        print(f"  contact: {contact['name']} <{contact['email'] or '-'}> {contact['phone'] or ''}")
    for c in info["escalation_contacts"]:
        print(f"  escalation: {c['name']} <{c['email'] or '-'}> {c['phone'] or ''}")
    print("  SLA (ack / resolve):")
    for severity, sla in info["sla"].items():
        print(f"    {severity:<14} {sla['ack']:>6} / {sla['resolve']}")
    recipients = info["notifications"]["email"]
    for severity in info["sla"]:
        if recipients.get(severity):
            print(f"  mail {severity}: {', '.join(recipients[severity])}")
    if info["notifications"]["webhooks"]:
        print(f"  webhooks: {', '.join(info['notifications']['webhooks'])}")
    return 0
