"""Delivers the notification outbox: each pending row through its channel, with retries and
exponential backoff, then `sent`, or `dead` plus a line in `<data_dir>/notify-dlq/`.

Rows are written in the same transaction as the change that caused them (alert created,
escalated, SLA breached), so a notification is never lost to a crash: a row still pending at
restart is sent then (at least once; webhooks carry `X-Vigil-Delivery` for deduplication).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from core.registry import resolve
from core.telemetry import Telemetry
from soc.alerts.store import AlertStore
from soc.notify.email import PermanentFailure

log = logging.getLogger(__name__)

DLQ_DIR = "notify-dlq"
Sleep = Callable[[float], Awaitable[None]]


class Channel(Protocol):
    channel_id: str
    channel_type: str
    config: Any

    async def send(self, payload: dict[str, Any], delivery_id: int | None = None) -> None: ...


def build_channels(notifiers: dict[str, Any], conf_dir: Path | None,
                   data_dir: Path | None = None) -> dict[str, Channel]:
    """One channel per `notifiers:` entry."""
    return {channel_id: resolve("notifier", config.type)(channel_id, config, conf_dir,
                                                         data_dir=data_dir)
            for channel_id, config in notifiers.items()}


def backoff_delays(retries: int, first: float, longest: float) -> list[float]:
    """Waits before each retry: first, 2*first, 4*first, ... capped at `longest`."""
    return [min(first * 2 ** n, longest) for n in range(retries)]


class NotificationDispatcher:
    """Sends pending outbox rows in the background; `pump()` is called from the daemon tick."""

    def __init__(self, store: AlertStore, channels: dict[str, Channel], telemetry: Telemetry,
                 data_dir: Path, *, sleep: Sleep = asyncio.sleep,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 concurrency: int = 8) -> None:
        self.store = store
        self.channels = channels
        self.telemetry = telemetry
        self.dlq_root = data_dir / DLQ_DIR
        self.sleep = sleep
        self.clock = clock
        self._limit = asyncio.Semaphore(concurrency)
        self._tasks: dict[int, asyncio.Task[None]] = {}

    async def pump(self) -> int:
        """Start delivering the pending rows not already in flight; returns how many."""
        rows = await asyncio.to_thread(self.store.pending_notifications, 100,
                                       list(self._tasks))
        for row in rows:
            task = asyncio.create_task(self._deliver(row), name=f"notify-{row['id']}")
            self._tasks[row["id"]] = task
            task.add_done_callback(self._forget)
        return len(rows)

    def _forget(self, task: asyncio.Task[None]) -> None:
        for key, known in list(self._tasks.items()):
            if known is task:
                del self._tasks[key]

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait for deliveries in flight; True when none is left."""
        tasks = list(self._tasks.values())
        if not tasks:
            return True
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        return not pending

    async def stop(self, timeout: float = 5.0) -> None:
        """Let deliveries finish briefly; the rest stay pending and go out after restart."""
        if not await self.drain(timeout):
            for task in list(self._tasks.values()):
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _deliver(self, row: dict[str, Any]) -> None:
        async with self._limit:
            channel = self.channels.get(row["channel"])
            if channel is None:
                await self._dead(row, "unknown", 0, "channel is no longer configured")
                return
            delays = backoff_delays(channel.config.retries,
                                    channel.config.backoff.total_seconds(),
                                    channel.config.max_backoff.total_seconds())
            attempts, error = 0, ""
            for delay in [0.0, *delays]:
                if delay:
                    await self.sleep(delay)
                attempts += 1
                try:
                    await asyncio.wait_for(channel.send(row["payload"], row["id"]),
                                           channel.config.timeout_seconds + 5)
                except PermanentFailure as exc:
                    error = str(exc)
                    break
                except Exception as exc:  # every other failure is worth another try
                    error = f"{type(exc).__name__}: {exc}"
                    if attempts <= len(delays):
                        self._count(channel, "retried")
                        log.warning("notification failed; will retry", extra={
                            "channel": channel.channel_id, "outbox_id": row["id"],
                            "attempt": attempts, "error": error})
                    continue
                self._count(channel, "sent")
                await asyncio.to_thread(self.store.finish_notification, row["id"], "sent",
                                        attempts, None)
                log.info("notification sent", extra={
                    "channel": channel.channel_id, "event": row["event"],
                    "tenant": row["tenant"], "alert_id": row["alert_id"],
                    "attempts": attempts})
                return
            await self._dead(row, channel.channel_type, attempts, error, channel.channel_id)

    def _count(self, channel: Channel, result: str) -> None:
        self.telemetry.notify_messages.labels(channel.channel_id, channel.channel_type,
                                              result).inc()

    async def _dead(self, row: dict[str, Any], channel_type: str, attempts: int, error: str,
                    channel_id: str | None = None) -> None:
        channel_id = channel_id or row["channel"]
        self.telemetry.notify_messages.labels(channel_id, channel_type, "dead_lettered").inc()
        record = {"outbox_id": row["id"], "tenant": row["tenant"], "alert_id": row["alert_id"],
                  "event": row["event"], "channel": row["channel"], "attempts": attempts,
                  "error": error, "failed_at": self.clock().isoformat(),
                  "payload": row["payload"]}
        await asyncio.to_thread(self._write_dead_letter, record)
        await asyncio.to_thread(self.store.finish_notification, row["id"], "dead", attempts,
                                error)
        log.error("notification dead-lettered", extra={
            "channel": channel_id, "outbox_id": row["id"], "attempts": attempts,
            "error": error})

    def _write_dead_letter(self, record: dict[str, Any]) -> None:
        directory = self.dlq_root / f"tenant={record['tenant']}"
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.clock():%Y-%m-%d}.jsonl"
        with open(path, "ab") as handle:
            handle.write(orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE))
