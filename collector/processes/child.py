"""A worker process: pipelines, detection and sinks for the journal partitions the main process
assigns it, read from their segment files (`python -m collector.processes.child`, started by
`collector.processes.pool`).

It dies with the main process (PR_SET_PDEATHSIG), answers the main process's `reload` and
`stop` messages, and also acts on SIGHUP (reload) and SIGTERM (drain and exit) sent to it
directly; SIGINT (Ctrl-C reaches the whole process group) is left to the main process. A batch
worker that fails ends the process with code 1, and the main process starts it again.
Metrics and health go to the main process every tick.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any, NoReturn

from collector.config import load_config
from collector.journal import journal_path
from collector.journal.follower import JournalFollower, KnownDamage
from collector.journal.segment import Damage
from collector.logs import configure_logging
from collector.processes import leave
from collector.processes.channel import Channel, ChannelClosed, Message
from collector.reload import apply_processing
from collector.runtime import TICK_SECONDS, Daemon
from collector.systemd import SystemdNotifier
from rules.state import Ownership
from soc.alerts.sink import STORE_WRITER

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when the main process dies (a SIGKILLed main leaves no worker
    writing beside its successor's)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)  # the parent died before the request took effect


class WorkerDaemon(Daemon):
    """The daemon's processing half in a worker process; the queue is a `JournalFollower`."""

    def __init__(self, conf_dir: Path, data_dir: Path, slot: int, epoch: str) -> None:
        self.slot = slot
        self.epoch = epoch
        self.channel: Channel | None = None
        self.ownership = Ownership(f"w{slot}", owns=lambda t: self.follower.owns(t),
                                   owned=lambda: self.follower.partitions())
        # systemd hears only from the main process (NotifyAccess=main).
        super().__init__(conf_dir, data_dir=data_dir, notifier=SystemdNotifier(environ={}),
                         setup_logging=True)

    def _open_queue(self) -> Any:
        directory = journal_path(self.config.settings, self.data_dir)
        self.follower = JournalFollower(directory, self.epoch, self._ack,
                                        on_damage=self._damage)
        return self.follower

    def _ack(self, partition: str, offset: int) -> None:
        self._send({"t": "ack", "acks": {partition: offset}})

    def _damage(self, partition: str, damage: Damage) -> None:
        self.telemetry.journal_damaged_records.labels(partition).inc(damage.records)
        self.telemetry.journal_damaged_bytes.labels(partition).inc(damage.length)
        self.telemetry.journal_damaged_events.labels(partition).inc(damage.events)
        log.error("journal damage skipped: %s", damage.describe(), extra={
            "partition": partition, "file": str(damage.path), "worker": f"w{self.slot}"})

    def _send(self, message: Message) -> None:
        if self.channel is not None:
            with contextlib.suppress(ChannelClosed, ConnectionError, RuntimeError):
                self.channel.send(message)

    async def serve(self, sock: socket.socket) -> int:
        """Start, follow the main process's messages until `stop`, drain; the exit code."""
        loop = asyncio.get_running_loop()
        self.channel = await Channel.open(sock)
        # The partitions first: the sinks' start-up recovery and detection's restore are
        # for the partitions this process owns.
        while True:
            first = await self.channel.receive()
            await self._handle(first)
            if first.get("t") == "assign":
                break
        await self.start_processing()
        self._send({"t": "ready"})
        receiver = asyncio.create_task(self._receive(), name="channel")
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        assert self._wake is not None
        while not self._stop_requested:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK_SECONDS)
            self._wake.clear()
            if self._reload_requested:
                self._reload_requested = False
                await self.reload_here()
            await self.guarded_tick("worker")
        code = await self.shutdown()
        receiver.cancel()
        return code

    async def _receive(self) -> None:
        assert self.channel is not None
        while True:
            try:
                message = await self.channel.receive()
            except ChannelClosed:
                # The main process is gone: stop like a crash, the journal replays the rest.
                log.warning("main process gone; worker exiting")
                os._exit(1)
            await self._handle(message)

    async def _handle(self, message: Message) -> None:
        kind = message.get("t")
        if kind == "assign":
            for name, place in message["partitions"].items():
                self.follower.assign(name, int(place["acked"]), int(place["replay_end"]),
                                     KnownDamage.from_wire(place.get("damage")))
        elif kind == "durable":
            self.follower.announce({p: int(e) for p, e in message["ends"].items()},
                                   set(message.get("over") or ()))
        elif kind == "reload":
            self._send({"t": "reloaded", "ok": await self.reload_here()})
        elif kind == "stop":
            self.request_stop()

    async def start_processing(self) -> None:
        """Detection state, the alert store and sinks, then the batch worker."""
        settings = self.config.settings
        configure_logging(settings.logging.level, settings.logging.format)
        self._wake = asyncio.Event()
        if self.detection is not None:
            self.detection.restore()
            self.worker.holders = [self.detection]
        for sink_id, sink_config in self._sink_configs(self.config).items():
            sink = self._build_sink(sink_id, sink_config)
            await sink.start()
            self.sinks[sink_id] = sink
        self._worker_task = asyncio.create_task(self._run_worker(), name="worker")
        self.started.set()

    async def reload_here(self) -> bool:
        """Load the configuration again and swap pipelines, detection and sinks."""
        try:
            new = load_config(self.conf_dir, require_inputs=True)
            await apply_processing(self, new)
        except Exception:
            log.exception("worker reload failed; running components kept",
                          extra={"worker": f"w{self.slot}"})
            return False
        self.config = new
        log.info("worker configuration reloaded", extra={"worker": f"w{self.slot}"})
        return True

    async def tick(self) -> None:
        await self._retry_store_migration()
        await self.tick_processing()
        self._send_status()

    async def _retry_store_migration(self) -> None:
        """The alert store's migration failed at start (a full disk): the main process's
        alerting retries its own; this process's store is retried here, so its writer's
        failure episode ends once the disk works (the sink flushes only with alerts)."""
        if self.alerting.db.migrated or STORE_WRITER not in self.telemetry.storage.failing():
            return
        try:
            await asyncio.to_thread(self.alerting.db.migrate)
        except (sqlite3.Error, OSError) as exc:
            self.telemetry.storage.failed(STORE_WRITER, exc)
            return
        self.telemetry.storage.succeeded(STORE_WRITER)

    def _send_status(self) -> None:
        self._send({"t": "status", "metrics": self.telemetry.snapshot(), "health": {
            "storage_failing": dict(self.telemetry.storage.failing()),
            "sinks": {sid: s.health() for sid, s in self.sinks.items()},
            "detection": self.detection.health() if self.detection is not None else None}})

    async def shutdown(self) -> int:
        """Read what was announced, commit it, save detection state, acknowledge."""
        self.stopping = True
        self.follower.close()
        code = 0
        if not await self.drain_worker_task():
            log.warning("worker drain timed out; the rest is processed at the next start")
        if not await self.commit_and_close():
            code = 1
        self._send_status()
        self._send({"t": "done"})
        if self.channel is not None:
            with contextlib.suppress(ChannelClosed):
                await asyncio.wait_for(self.channel.drain(), 5)
        self.follower.release()
        return 1 if self.failure is not None else code


def main() -> NoReturn:
    parser = argparse.ArgumentParser(description="a Vigil worker process (started by vigil run)")
    parser.add_argument("--conf-dir", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--slot", type=int, required=True)
    parser.add_argument("--epoch", required=True)
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True)
    args = parser.parse_args()
    die_with_parent(args.parent)
    # Ctrl-C in a terminal reaches the whole process group: the main process coordinates.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging()
    started = time.monotonic()
    sock = socket.socket(fileno=args.fd)
    import uvloop

    daemon = WorkerDaemon(args.conf_dir, args.data_dir, args.slot, args.epoch)
    log.info("worker process starting", extra={"worker": f"w{args.slot}", "pid": os.getpid(),
                                               "seconds": round(time.monotonic() - started, 3)})
    leave(uvloop.run(daemon.serve(sock)))


if __name__ == "__main__":
    main()
