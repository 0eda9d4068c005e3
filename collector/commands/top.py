"""`vigil top`: a live view of a running daemon, like `vector top` or `syslog-ng-ctl stats`.

It reads the daemon's own `/metrics` (the operator listener, or the control address with the
operator token) every `--interval` seconds and shows, per source, pipeline and sink, events
received and sent (totals and per second), errors and discards; per tenant, events received,
dead letters, detection matches and what waits in its journal partition; the queue's depth,
bound and backpressure, and the event loop's lag. `--once` prints one snapshot as text (or
`--json`) and exits, for scripts and tests.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from collector.cli import EX_CONFIG, load_or_report
from core.errors import ExitCode

Key = tuple[str, ...]


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "top", parents=[common], help="live events/s, errors and queue depth of the running "
        "daemon, per source, pipeline, sink and tenant")
    parser.add_argument("--url", metavar="URL", help="the daemon's metrics URL (default: from "
                        "vigil.control: the operator address, else the control address)")
    parser.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                        help="refresh period (default 2)")
    parser.add_argument("--once", action="store_true",
                        help="print one snapshot (two samples `--interval` apart) and exit")
    parser.add_argument("--json", action="store_true", help="with --once: one JSON object")
    parser.set_defaults(func=run_top)


@dataclass
class Sample:
    """One scrape: counter and gauge values by metric name and label values."""

    at: float
    values: dict[str, dict[Key, float]] = field(default_factory=lambda: defaultdict(dict))

    def get(self, name: str) -> dict[Key, float]:
        return self.values.get(name, {})


LABELS = {
    "vigil_component_received_events_total": ("component_kind", "component_id", "tenant"),
    "vigil_component_sent_events_total": ("component_kind", "component_id", "tenant"),
    "vigil_component_errors_total": ("component_kind", "component_id"),
    "vigil_component_discarded_events_total": ("component_kind", "component_id"),
    "vigil_component_open_connections": ("component_kind", "component_id"),
    "vigil_dead_letter_events_total": ("tenant",),
    "vigil_detection_matches_total": ("tenant",),
    "vigil_journal_pending_events": ("partition",),
    "vigil_lake_rows_written_total": ("dataset",),
    "vigil_queue_events": (),
    "vigil_queue_capacity_events": (),
    "vigil_queue_backpressure": (),
    "vigil_event_loop_lag_seconds_sum": (),
    "vigil_event_loop_lag_seconds_count": (),
}


def parse(text: str, at: float) -> Sample:
    """The samples `top` shows, summed over the labels it does not show."""
    from prometheus_client.parser import text_string_to_metric_families

    sample = Sample(at)
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            name, labels, value = found.name, found.labels, found.value
            wanted = LABELS.get(name)
            if wanted is None:
                continue
            key = tuple(labels.get(label, "") for label in wanted)
            per = sample.values[name]
            per[key] = per.get(key, 0.0) + float(value)
    return sample


def metrics_url(args: argparse.Namespace) -> tuple[str, dict[str, str]] | None:
    """Where the metrics are and the headers to send; None when the config is invalid."""
    if args.url:
        return args.url, {}
    config = load_or_report(args)
    if config is None:
        return None
    control = config.settings.control
    if control.operator_address is not None:
        return f"http://{control.operator_address}/metrics", {}
    scheme = "https" if control.tls is not None else "http"
    headers: dict[str, str] = {}
    if control.operator_token_file is not None:
        path = control.operator_token_file
        path = path if path.is_absolute() else args.config_dir / path
        headers["Authorization"] = f"Bearer {path.read_text(encoding='utf-8').strip()}"
    return f"{scheme}://{control.address}/metrics", headers


def scrape(url: str, headers: dict[str, str]) -> Sample:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (operator's URL)
        return parse(response.read().decode("utf-8"), time.monotonic())


def snapshot(before: Sample, after: Sample) -> dict[str, Any]:
    """Totals and rates between two scrapes, grouped as `top` shows them."""
    seconds = max(after.at - before.at, 1e-9)

    def rate(name: str, key: Key) -> float:
        return max(after.get(name).get(key, 0.0) - before.get(name).get(key, 0.0), 0.0) / seconds

    components: dict[Key, dict[str, float]] = {}
    for metric, column in (("vigil_component_received_events_total", "received"),
                           ("vigil_component_sent_events_total", "sent")):
        for key, total in after.get(metric).items():
            row = components.setdefault(key[:2], {"received": 0, "received_per_s": 0,
                                                  "sent": 0, "sent_per_s": 0})
            row[column] += total
            row[f"{column}_per_s"] += rate(metric, key)
    for metric, column in (("vigil_component_errors_total", "errors_per_s"),
                           ("vigil_component_discarded_events_total", "discarded_per_s")):
        for key in after.get(metric):
            if key in components:
                components[key][column] = components[key].get(column, 0) + rate(metric, key)
    for key, value in after.get("vigil_component_open_connections").items():
        if key in components:
            components[key]["connections"] = value
    tenants: dict[str, dict[str, float]] = defaultdict(dict)
    for (kind, _, tenant), total in after.get("vigil_component_received_events_total").items():
        if kind == "source" and tenant:
            row = tenants[tenant]
            row["received"] = row.get("received", 0) + total
            row["received_per_s"] = row.get("received_per_s", 0) + rate(
                "vigil_component_received_events_total", (kind, _, tenant))
    for metric, column in (("vigil_dead_letter_events_total", "dead_letters"),
                           ("vigil_detection_matches_total", "matches"),
                           ("vigil_journal_pending_events", "pending")):
        for (tenant,), value in after.get(metric).items():
            tenants[tenant][column] = value
    lag_count = after.get("vigil_event_loop_lag_seconds_count").get((), 0.0) - before.get(
        "vigil_event_loop_lag_seconds_count").get((), 0.0)
    lag_sum = after.get("vigil_event_loop_lag_seconds_sum").get((), 0.0) - before.get(
        "vigil_event_loop_lag_seconds_sum").get((), 0.0)
    return {
        "seconds": round(seconds, 3),
        "components": [{"kind": kind, "id": cid, **{k: round(v, 1) for k, v in row.items()}}
                       for (kind, cid), row in sorted(components.items())],
        "tenants": [{"tenant": t, **{k: round(v, 1) for k, v in row.items()}}
                    for t, row in sorted(tenants.items())],
        "lake_rows_per_s": {d: round(rate("vigil_lake_rows_written_total", (d,)), 1)
                            for (d,) in sorted(after.get("vigil_lake_rows_written_total"))},
        "queue": {"events": after.get("vigil_queue_events").get((), 0.0),
                  "capacity": after.get("vigil_queue_capacity_events").get((), 0.0),
                  "backpressure": bool(after.get("vigil_queue_backpressure").get((), 0.0))},
        "loop_lag_seconds": round(lag_sum / lag_count, 4) if lag_count > 0 else None,
    }


def render(view: dict[str, Any]) -> Any:
    """The snapshot as rich tables (one renderable)."""
    from rich.console import Group
    from rich.table import Table

    components = Table(title="components", expand=True)
    for column in ("kind", "id", "received", "in/s", "sent", "out/s", "errors/s", "discarded/s",
                   "conns"):
        components.add_column(column, justify="left" if column in ("kind", "id") else "right")
    for row in view["components"]:
        components.add_row(row["kind"], row["id"], f"{row['received']:,.0f}",
                           f"{row['received_per_s']:,.1f}", f"{row['sent']:,.0f}",
                           f"{row['sent_per_s']:,.1f}", f"{row.get('errors_per_s', 0):,.1f}",
                           f"{row.get('discarded_per_s', 0):,.1f}",
                           f"{row['connections']:.0f}" if "connections" in row else "")
    tenants = Table(title="tenants", expand=True)
    for column in ("tenant", "received", "in/s", "dead letters", "matches", "journal pending"):
        tenants.add_column(column, justify="left" if column == "tenant" else "right")
    for row in view["tenants"]:
        tenants.add_row(row["tenant"], f"{row.get('received', 0):,.0f}",
                        f"{row.get('received_per_s', 0):,.1f}",
                        f"{row.get('dead_letters', 0):,.0f}", f"{row.get('matches', 0):,.0f}",
                        f"{row.get('pending', 0):,.0f}")
    queue = view["queue"]
    lag = view["loop_lag_seconds"]
    lake = ", ".join(f"{d} {r:,.1f}/s" for d, r in view["lake_rows_per_s"].items()) or "-"
    footer = (f"queue {queue['events']:,.0f} / {queue['capacity']:,.0f} events"
              f"{'  BACKPRESSURE' if queue['backpressure'] else ''}   loop lag "
              f"{'-' if lag is None else f'{lag * 1000:.1f} ms'}   lake rows: {lake}")
    return Group(components, tenants, footer)


def run_top(args: argparse.Namespace) -> int:
    import orjson
    from rich.console import Console
    from rich.live import Live

    found = metrics_url(args)
    if found is None:
        return EX_CONFIG
    url, headers = found
    try:
        before = scrape(url, headers)
        if args.once:
            time.sleep(args.interval)
            view = snapshot(before, scrape(url, headers))
            if args.json:
                sys.stdout.write(orjson.dumps(view).decode() + "\n")
            else:
                Console(width=120).print(render(view))
            return 0
        with Live(render(snapshot(before, before)), refresh_per_second=4,
                  screen=False) as live:
            while True:
                time.sleep(args.interval)
                after = scrape(url, headers)
                live.update(render(snapshot(before, after)))
                before = after
    except KeyboardInterrupt:
        return 0
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"vigil top: cannot read {url}: {reason} (is the daemon running? give --url)",
              file=sys.stderr)
        return int(ExitCode.UNAVAILABLE)
