"""Retention: whole date partitions of the lake and the dead letter deleted once older than a
tenant's contract says (`tenants.<id>.retention`, else `vigil.retention`; unset keeps them).

Retention works on the Hive layout the sinks write, a day at a time (UTC dates, as the
partitions are named): `<lake>/<dataset>/tenant=<t>/date=YYYY-MM-DD/` and
`<dead letter>/tenant=<t>/date=YYYY-MM-DD/`. A partition whose date is before `today - N days`
goes; nothing else is touched (a directory not named like a partition, a tenant not in the
configuration, `_quarantine` follows `vigil.retention`). The daemon sweeps once an hour on a
thread; `vigil retention [--dry-run]` does the same by hand.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collector.config.loader import VigilConfig

log = logging.getLogger(__name__)

TENANT_DIR = re.compile(r"^tenant=([A-Za-z0-9_][A-Za-z0-9_-]*)$")
DATE_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
SWEEP_EVERY = timedelta(hours=1)


@dataclass
class SweepReport:
    """What one sweep deleted (or would delete): partition directories per (area, tenant)."""

    deleted: list[Path] = field(default_factory=list)
    per_tenant: Counter[tuple[str, str]] = field(default_factory=Counter)


def _keep_days(config: VigilConfig, tenant: str, area: str) -> int | None:
    found = config.tenants.get(tenant)
    own = getattr(found.retention, area) if found is not None else None
    chosen = own if own is not None else getattr(config.settings.retention, area)
    return None if chosen is None else max(int(chosen / timedelta(days=1)), 1)


def _expired(tenant_dir: Path, keep: int, today: date) -> list[Path]:
    cutoff = today - timedelta(days=keep)
    out = []
    for child in sorted(tenant_dir.iterdir()):
        match = DATE_DIR.match(child.name)
        if match is None or not child.is_dir() or child.is_symlink():
            continue
        try:
            day = date.fromisoformat(match.group(1))
        except ValueError:
            continue
        if day < cutoff:
            out.append(child)
    return out


def sweep(config: VigilConfig, data_dir: Path, *, now: datetime | None = None,
          dry_run: bool = False) -> SweepReport:
    """Delete (unless `dry_run`) every expired date partition of the lake and dead letter."""
    from sinks.dead_letter import dead_letter_root
    from sinks.lake.sink import lake_root

    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    report = SweepReport()
    sinks = list(config.sinks.values())
    areas = [("lake", lake_root(data_dir, sinks), True),
             ("dead_letter", dead_letter_root(data_dir, sinks), False)]
    for area, root, by_dataset in areas:
        if not root.is_dir():
            continue
        parents = [d for d in root.iterdir() if d.is_dir()] if by_dataset else [root]
        for parent in parents:
            for tenant_dir in sorted(parent.iterdir()):
                match = TENANT_DIR.match(tenant_dir.name)
                if match is None or not tenant_dir.is_dir() or tenant_dir.is_symlink():
                    continue
                tenant = match.group(1)
                keep = _keep_days(config, tenant, area)
                if keep is None:
                    continue
                for partition in _expired(tenant_dir, keep, today):
                    if not dry_run:
                        shutil.rmtree(partition)
                    report.deleted.append(partition)
                    report.per_tenant[(area, tenant)] += 1
    for (area, tenant), count in sorted(report.per_tenant.items()):
        log.info("retention: expired partitions %s", "listed" if dry_run else "deleted",
                 extra={"area": area, "tenant": tenant, "partitions": count})
    return report


class RetentionSweeper:
    """The daemon's hourly sweep (the caller runs `run` on a thread)."""

    def __init__(self, every: timedelta = SWEEP_EVERY) -> None:
        self.every = every
        self._last: datetime | None = None

    def due(self, now: datetime) -> bool:
        return self._last is None or now - self._last >= self.every

    def run(self, config: VigilConfig, data_dir: Path, now: datetime) -> SweepReport:
        self._last = now
        return sweep(config, data_dir, now=now)
