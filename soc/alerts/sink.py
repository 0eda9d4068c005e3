"""`type: alert_store`: the sink that takes detection's ALERTS batches into the alert store.

Alerts are buffered with the queue offsets they came from and upserted in one transaction per
flush, on a thread; only after the commit do their offsets leave `uncommitted_floor`, so the
journal acknowledges nothing the store might not hold. Upserts are idempotent by `alert.id`, so
a batch replayed after a crash refreshes rather than duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from core.config import SinkConfig
from core.errors import is_environmental
from core.events import ALERTS, Batch, Event
from core.sink import Sink, SinkContext
from soc.alerts.db import Database
from soc.alerts.model import UpsertResult
from soc.alerts.store import AlertStore

log = logging.getLogger(__name__)

STORE_FILE = "alerts.db"
STORE_WRITER = "alert_store"  # its failure episodes (and the outbox's, written with it)


class AlertStoreConfig(SinkConfig):
    type: Literal["alert_store"] = "alert_store"
    path: Path | None = Field(None, description="SQLite database; default <data_dir>/alerts.db")
    max_seconds: float = Field(1.0, gt=0, description="commit buffered alerts at least this "
                               "often")
    max_alerts: int = Field(1000, gt=0, description="... or once this many are buffered")


def alert_store_path(data_dir: Path, sinks: Any = ()) -> Path:
    """The store's file: the `path` of a configured alert_store sink, else
    `<data_dir>/alerts.db`."""
    for sink in sinks:
        if isinstance(sink, AlertStoreConfig) and sink.path is not None:
            return sink.path
    return data_dir / STORE_FILE


@dataclass
class _Pending:
    events: list[tuple[str, Event]] = field(default_factory=list)  # (partition, alert)
    floors: dict[str, int] = field(default_factory=dict)  # partition -> first offset held
    opened: float = 0.0


class AlertStoreSink(Sink):
    """Upserts alerts; the daemon adds one at <data_dir>/alerts.db unless one is configured."""

    config_model = AlertStoreConfig
    accepts = frozenset({ALERTS})

    def __init__(self, sink_id: str, config: AlertStoreConfig, context: SinkContext,
                 store: AlertStore | None = None) -> None:
        super().__init__(sink_id, config, context)
        self.store = store or AlertStore(Database(config.path or context.data_dir / STORE_FILE))
        self.telemetry = context.telemetry
        self.metrics = context.telemetry.component(sink_id, "sink", config.type)
        self.monotonic = context.monotonic
        self.storage = context.telemetry.storage
        self.on_inserted: Callable[[UpsertResult], None] | None = None
        self._pending = _Pending()
        self._flushing: dict[str, int] = {}
        self._lock = asyncio.Lock()

    def bind(self, store: AlertStore, on_inserted: Callable[[UpsertResult], None] | None) -> None:
        """Use the daemon's store (its tenants' SLAs, its notification planner)."""
        self.store = store
        self.on_inserted = on_inserted

    async def start(self) -> None:
        # A disk that refuses (full, I/O error) is counted; every flush migrates first, so
        # the store is retried then and nothing is acknowledged before it works.
        try:
            await asyncio.to_thread(self.store.db.migrate)
        except (sqlite3.Error, OSError) as exc:
            self.storage.failed(STORE_WRITER, exc)

    def write(self, batch: Batch) -> None:
        if not batch.events:
            return
        pending = self._pending
        if not pending.events:
            pending.opened = self.monotonic()
        pending.events.extend((batch.partition, event) for event in batch.events)
        pending.floors.setdefault(batch.partition, batch.first_offset)

    def _due(self) -> bool:
        pending = self._pending
        return bool(pending.events) and (
            len(pending.events) >= self.config.max_alerts
            or self.monotonic() - pending.opened >= self.config.max_seconds)

    async def flush(self, *, force: bool = False) -> None:
        async with self._lock:
            if not self._pending.events or not (force or self._due()):
                return
            pending, self._pending = self._pending, _Pending()
            self._flushing = pending.floors
            try:
                try:
                    results = await asyncio.to_thread(self._commit, pending.events)
                except Exception as exc:
                    if is_environmental(exc) or self.context.reject is None:
                        raise
                    # Not the database: an alert it cannot take. Each alone; the ones that
                    # fail again go to the dead letter, the others are stored.
                    results, poison = await asyncio.to_thread(self._commit_each,
                                                              pending.events)
                    for partition, event, error in poison:
                        self.context.reject(partition, [event], self.sink_id, error, "event")
            except Exception as exc:
                # Keep the alerts, in front of anything that arrived meanwhile.
                newer = self._pending
                pending.events.extend(newer.events)
                for partition, floor in newer.floors.items():
                    pending.floors.setdefault(partition, floor)
                self._pending = pending
                self.metrics.error("write_failed", "flush")
                if isinstance(exc, sqlite3.Error | OSError):
                    self.storage.failed(STORE_WRITER, exc)  # logged once per episode
                else:
                    log.exception("alert store write failed; will retry",
                                  extra={"sink": self.sink_id, "alerts": len(pending.events)})
                raise
            finally:
                self._flushing = {}
            self.storage.succeeded(STORE_WRITER)
        for result in results:
            self._count(result)

    def _commit(self, events: list[tuple[str, Event]]) -> list[UpsertResult]:
        by_partition: dict[str, list[Event]] = {}
        for partition, event in events:
            by_partition.setdefault(partition, []).append(event)
        results = []
        for partition, alerts in by_partition.items():
            result = self.store.upsert(alerts, fallback_tenant=partition)
            self._log_raised(alerts, result)
            results.append(result)
        return results

    def _commit_each(self, events: list[tuple[str, Event]]
                     ) -> tuple[list[UpsertResult], list[tuple[str, Event, Exception]]]:
        """One transaction per alert; those that raise come back as poison."""
        results, poison = [], []
        for partition, event in events:
            try:
                result = self.store.upsert([event], fallback_tenant=partition)
                self._log_raised([event], result)
                results.append(result)
            except Exception as exc:
                if is_environmental(exc):
                    raise
                poison.append((partition, event, exc))
        return results, poison

    @staticmethod
    def _log_raised(alerts: list[Event], result: UpsertResult) -> None:
        """One structured line per new alert (updates of an open one are counted, not
        logged): what an operator tailing the journal triages by."""
        if not result.inserted:
            return
        new = set(result.inserted)
        for alert in alerts:
            if alert.get("alert.id") in new:
                log.info("alert raised", extra={
                    "tenant": result.tenant, "alert_id": alert.get("alert.id"),
                    "severity": alert.get("alert.severity"), "rule": alert.get("rule.name"),
                    "group": alert.get("alert.group_key"), "count": alert.get("alert.count"),
                    "dataset": alert.get("alert.dataset")})

    def _count(self, result: UpsertResult) -> None:
        tenant = result.tenant
        for kind, n in (("inserted", len(result.inserted)), ("updated", len(result.updated)),
                        ("unchanged", len(result.unchanged))):
            if n:
                self.telemetry.alerts_written.labels(tenant, kind).inc(n)
        if result.inserted:
            self.metrics.sent(len(result.inserted) + len(result.updated), tenant)
        for alert, problem in result.rejected:
            self.telemetry.alerts_rejected.labels(tenant).inc()
            self.metrics.discarded("invalid_alert")
            log.error("alert rejected by the alert store (kept in the lake's alerts dataset)",
                      extra={"sink": self.sink_id, "tenant": tenant, "problem": problem,
                             "alert_id": str(alert.get("alert.id"))[:80]})
        if result.inserted and self.on_inserted is not None:
            self.on_inserted(result)

    def uncommitted_floor(self, partition: str) -> int | None:
        floors = [f for f in (self._pending.floors.get(partition),
                              self._flushing.get(partition)) if f is not None]
        return min(floors) if floors else None

    def discard(self, partition: str) -> int:
        pending = self._pending
        kept = [(p, event) for p, event in pending.events if p != partition]
        dropped = len(pending.events) - len(kept)
        pending.events[:] = kept
        pending.floors.pop(partition, None)
        return dropped

    async def stop(self) -> None:
        await self.flush(force=True)

    def health(self) -> dict[str, Any]:
        return {"path": str(self.store.db.path), "buffered_alerts": len(self._pending.events)}
