"""What the daemon runs for alerts, beside the alert store sink: the store and user directory on
one database, notification routing and delivery, and the SLA monitor, all following reloads.

The daemon builds one `Alerting`, binds the alert store sink to it, calls `tick()` from its
housekeeping loop and hands it to the control listener for /api/v1.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collector.config.loader import VigilConfig
from collector.config.tenants import SeveritySla, SlaConfig, TenantConfig
from core.telemetry import Telemetry
from soc.alerts.db import Database, from_text
from soc.alerts.model import Change
from soc.alerts.outbox import Outgoing
from soc.alerts.sink import STORE_WRITER, AlertStoreSink, alert_store_path
from soc.alerts.sla import SlaMonitor
from soc.alerts.store import AlertStore
from soc.auth.config import access_policy, public_url
from soc.auth.directory import UserDirectory
from soc.auth.enrollment import enrollment_notifier
from soc.notify.dispatcher import NotificationDispatcher, Sleep, build_channels
from soc.notify.email import EmailChannel
from soc.notify.router import NotificationRouter

log = logging.getLogger(__name__)

SLA_CHECK_SECONDS = 5.0
NOTIFY_WRITER = "notifications"  # the outbox's delivery records
SLA_WRITER = "sla_monitor"  # breaches marked in the store


class Alerting:
    """The alert store, users, notifications and SLA monitor of one daemon."""

    def __init__(self, config: VigilConfig, data_dir: Path, conf_dir: Path | None,
                 telemetry: Telemetry, *, clock: Callable[[], datetime] | None = None,
                 sleep: Sleep = asyncio.sleep,
                 monotonic: Callable[[], float] = time.monotonic,
                 sla_check_seconds: float = SLA_CHECK_SECONDS) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.telemetry = telemetry
        self.conf_dir = conf_dir
        self.data_dir = data_dir
        self.monotonic = monotonic
        self.sla_check_seconds = sla_check_seconds
        self.db = Database(alert_store_path(data_dir, config.sinks.values()))
        self.store = AlertStore(self.db, clock=self.clock, sla_policy=self.sla_for,
                                planner=self._plan)
        self.directory = UserDirectory(self.db, access_policy(config), clock=self.clock,
                                       known_tenants=lambda: set(self.tenants))
        self.monitor = SlaMonitor(self.store, telemetry, self.clock)
        self.dispatcher = NotificationDispatcher(self.store, {}, telemetry, data_dir,
                                                 sleep=sleep, clock=self.clock)
        self._last_check = float("-inf")
        self._migrated = True  # False while start's migration waits for the disk
        self._erring: set[str] = set()  # steps failing for another reason than the disk
        self.storage = telemetry.storage
        self.configure(config)

    def configure(self, config: VigilConfig) -> None:
        """Take a (re)loaded configuration: tenants, SLAs, routing, channels, policy."""
        self.config = config
        self.tenants: dict[str, TenantConfig] = dict(config.tenants)
        self.public_url = public_url(config)
        self.policy = access_policy(config)
        self.directory.policy = self.policy
        notifiers: dict[str, Any] = config.section("notifiers")
        self.router = NotificationRouter(self.tenants, notifiers, self.public_url)
        self.dispatcher.channels = build_channels(notifiers, self.conf_dir, self.data_dir)

    def sla_for(self, tenant: str, severity: str) -> SeveritySla:
        found = self.tenants.get(tenant)
        return (found.sla if found else SlaConfig()).for_severity(severity)

    def _plan(self, event: str, alert: dict[str, Any], extra: dict[str, Any]
              ) -> list[Outgoing]:
        return self.router.plan(event, alert, extra)

    def enrollment_channel(self) -> EmailChannel | None:
        """The email channel that mails TOTP enrollments (None when there is none)."""
        wanted = enrollment_notifier(self.config)
        channel = self.dispatcher.channels.get(wanted) if wanted else None
        return channel if isinstance(channel, EmailChannel) else None

    def bind(self, sink: AlertStoreSink) -> None:
        """Make an alert store sink write through this store (tenant SLAs, notifications)."""
        # New alerts queued their notifications in the upsert's transaction; the next tick
        # (at most TICK_SECONDS away) sends them.
        sink.bind(self.store, None)

    async def start(self) -> None:
        """Migrate the store. A disk that refuses (full, I/O error) does not stop the start:
        it is counted, and every use of the store (the sink's flush, the tick) migrates first,
        so the store comes up once the disk works again."""
        self._migrated = await self._storage_step(STORE_WRITER, "alert store migration failed",
                                                  asyncio.to_thread(self.db.migrate))

    async def tick(self) -> None:
        """Deliver pending notifications; every few seconds, check SLAs. A failing disk is
        counted and logged once per episode, and retried at the next tick."""
        now = self.monotonic()
        if not self._migrated:
            self._migrated = await self._storage_step(STORE_WRITER, "alert store migration "
                                                      "failed", asyncio.to_thread(self.db.migrate))
            if not self._migrated:
                return
            self.storage.succeeded(STORE_WRITER)
        if now - self._last_check >= self.sla_check_seconds:
            self._last_check = now
            if await self._storage_step(SLA_WRITER, "SLA check failed; will retry",
                                        asyncio.to_thread(self.monitor.check)):
                self.storage.succeeded(SLA_WRITER)
        if await self._storage_step(NOTIFY_WRITER, "notification pump failed; will retry",
                                    self.dispatcher.pump()):
            self.storage.succeeded(NOTIFY_WRITER)

    async def _storage_step(self, writer: str, message: str, step: Awaitable[Any]) -> bool:
        try:
            await step
        except (sqlite3.Error, OSError) as exc:
            self.storage.failed(writer, exc)
            return False
        except Exception:
            if writer not in self._erring:  # not the disk's: logged once, with its traceback
                log.exception(message)
                self._erring.add(writer)
            return False
        self._erring.discard(writer)
        return True

    async def stop(self) -> None:
        await self.dispatcher.stop()

    # -- triage with metrics ---------------------------------------------------------------

    async def change(self, operation: Callable[..., Change], *args: Any) -> Change:
        """Run a store change on a thread and count it (action, time to ack / resolve)."""
        change: Change = await asyncio.to_thread(operation, *args)
        self.observe(change)
        return change

    def observe(self, change: Change) -> None:
        before, after = change.before, change.after
        tenant, severity = after["tenant"], after["severity"]
        self.telemetry.alert_actions.labels(tenant, change.action).inc()
        created = from_text(after["created_at"])
        assert created is not None
        for key, histogram in (("acknowledged_at", self.telemetry.alert_time_to_ack),
                               ("resolved_at", self.telemetry.alert_time_to_resolve)):
            done = from_text(after[key])
            if done is not None and before[key] is None:
                histogram.labels(tenant, severity).observe((done - created).total_seconds())
