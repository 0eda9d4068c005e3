"""The main process's side of the worker processes: start them, hand each the durable ends of
its partitions, take their acknowledgements into the journal, restart one that dies.

A partition (tenant) has one owner: at start the known partitions are dealt round robin in
name order, a partition that appears later goes to the worker with the fewest. The journal
counts a partition's records as read once handed off (`Journal.hand_off`), so its bounds and
checkpoints work as with the in-process worker: a position is acknowledged only when the owner
says every sink committed it. A worker that dies is started again in its slot and reads its
partitions from the acknowledged positions (at-least-once; the sinks skip what is committed).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from collector.journal import Journal, JournalError
from collector.processes.channel import Channel, ChannelClosed, Message
from collector.routing import QUARANTINE
from core.errors import OperatorError

if TYPE_CHECKING:
    from collector.runtime import Daemon

log = logging.getLogger(__name__)

LOCK_FILE = "workers.lock"
LOCK_WAIT_SECONDS = 30.0
RESTART_BACKOFF_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
STABLE_SECONDS = 60.0  # a worker that ran this long starts its backoff again from the first
RELOAD_TIMEOUT_SECONDS = 120.0


@dataclass
class WorkerSlot:
    """One worker process slot and the process running in it now."""

    index: int
    partitions: set[str] = field(default_factory=set)
    process: subprocess.Popen[bytes] | None = None
    channel: Channel | None = None
    reader: asyncio.Task[None] | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    health: dict[str, Any] = field(default_factory=dict)
    restarts: int = 0
    failures: int = 0  # deaths in a row, for the backoff
    started_at: float = 0.0
    restart_at: float | None = None
    replies: asyncio.Queue[Message] = field(default_factory=asyncio.Queue)

    @property
    def name(self) -> str:
        return f"w{self.index}"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class WorkerPool:
    """Runs `count` worker processes for the daemon's journal."""

    def __init__(self, daemon: Daemon, count: int) -> None:
        assert isinstance(daemon.queue, Journal)
        self.daemon = daemon
        self.journal: Journal = daemon.queue
        self.slots = [WorkerSlot(k) for k in range(count)]
        self.owner: dict[str, int] = {}
        self.stopping = False
        self.exit_codes: list[int] = []
        self._lock_fd: int | None = None
        self._dispatch: asyncio.Task[None] | None = None

    # -- ownership ----------------------------------------------------------------------

    def _deal(self) -> None:
        names = sorted({*self.journal.partitions(), *self.daemon.config.tenants, QUARANTINE})
        for index, name in enumerate(names):
            self.owner[name] = index % len(self.slots)
            self.slots[index % len(self.slots)].partitions.add(name)

    def owner_of(self, partition: str) -> WorkerSlot:
        index = self.owner.get(partition)
        if index is None:
            slot = min(self.slots, key=lambda s: (len(s.partitions), s.index))
            index = self.owner[partition] = slot.index
            slot.partitions.add(partition)
            self._send(slot, {"t": "assign", "partitions": {partition: self._placement(partition)}})
        return self.slots[index]

    def _placement(self, partition: str) -> dict[str, Any]:
        """Where the owner starts: after the acknowledged position; offsets below the end
        handed off so far may have been committed already (a replay)."""
        return {"acked": self.journal.acked(partition),
                "replay_end": max(self.journal.replay_end(partition),
                                  self.journal.handed_end(partition)),
                "damage": self.journal.known_damage(partition).to_wire()}

    # -- processes ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start every worker process (they load rules and open sinks meanwhile)."""
        self._lock_fd = await asyncio.to_thread(self._take_lock)
        self._deal()
        for slot in self.slots:
            await self._spawn(slot)
        self._dispatch = asyncio.create_task(self._hand_off(), name="worker-dispatch")

    async def wait_ready(self) -> None:
        """Until every worker has its sinks and detection state ready."""
        for slot in self.slots:
            await self._wait_ready(slot)
        log.info("worker processes ready", extra={
            "workers": len(self.slots), "pids": [s.process.pid for s in self.slots
                                                 if s.process is not None]})

    def _take_lock(self) -> int:
        """Held by this process and inherited by its workers: a new main process waits here
        until every worker of a killed predecessor has exited (they die with it)."""
        path = self.daemon.data_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise OperatorError(
                        f"worker processes {path}", "still held by the workers of another "
                        "vigil process", hint="stop that process (fuser -v " + str(path) + ")",
                        exit_code=75) from None
                time.sleep(0.05)

    async def _spawn(self, slot: WorkerSlot) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        assert self._lock_fd is not None
        daemon = self.daemon
        command = [sys.executable, "-m", "collector.processes.child",
                   "--conf-dir", str(daemon.conf_dir.resolve()),
                   "--data-dir", str(daemon.data_dir.resolve()),
                   "--slot", str(slot.index), "--epoch", self.journal.epoch,
                   "--fd", str(child.fileno()), "--parent", str(os.getpid())]
        try:
            # Same interpreter, same working directory (relative paths in conf.d resolve
            # alike); stderr is shared, so every process logs to the service's journal.
            slot.process = subprocess.Popen(command, pass_fds=(child.fileno(), self._lock_fd),
                                            stdin=subprocess.DEVNULL)
        finally:
            child.close()
        slot.started_at = time.monotonic()
        slot.restart_at = None
        slot.ready = asyncio.Event()
        slot.replies = asyncio.Queue()
        slot.channel = await Channel.open(parent)
        slot.reader = asyncio.create_task(self._read(slot), name=f"worker-{slot.name}")
        self._send(slot, {"t": "assign", "partitions": {p: self._placement(p)
                                                         for p in sorted(slot.partitions)}})
        ends = {p: self.journal.handed_end(p) for p in slot.partitions}
        self._send(slot, {"t": "durable", "ends": ends, "over": self._over()})

    async def _wait_ready(self, slot: WorkerSlot) -> None:
        while not slot.ready.is_set():
            if not slot.alive():
                code = slot.process.returncode if slot.process is not None else None
                raise RuntimeError(f"worker process {slot.name} exited at start (code {code})")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(slot.ready.wait(), 0.2)

    def _send(self, slot: WorkerSlot, message: Message) -> bool:
        if slot.channel is None:
            return False
        try:
            slot.channel.send(message)
        except (ChannelClosed, ConnectionError, RuntimeError):
            return False
        return True

    async def _read(self, slot: WorkerSlot) -> None:
        channel = slot.channel
        assert channel is not None
        telemetry = self.daemon.telemetry
        while True:
            try:
                message = await channel.receive()
            except ChannelClosed:
                return
            kind = message.get("t")
            if kind == "ack":
                for partition, offset in message["acks"].items():
                    if self.owner.get(partition) == slot.index:
                        self.journal.ack(partition, int(offset))
            elif kind == "status":
                telemetry.remote.update(slot.name, message["metrics"])
                slot.health = message.get("health") or {}
            elif kind == "ready":
                slot.ready.set()
                slot.failures = 0 if time.monotonic() - slot.started_at > STABLE_SECONDS \
                    else slot.failures
            else:
                slot.replies.put_nowait(message)

    def _over(self) -> list[str]:
        return self.journal.held_back()

    async def _hand_off(self) -> None:
        """Announce new durable ends to their owners, as the journal's fsync rounds make them."""
        while True:
            await self.journal.wait_readable()
            if not self._announce():
                if self.journal.closed:
                    return
                await asyncio.sleep(0)  # the journal closed meanwhile: look again

    def _announce(self) -> bool:
        ends = self.journal.hand_off()
        by_slot: dict[int, dict[str, int]] = {}
        for partition, end in ends.items():
            by_slot.setdefault(self.owner_of(partition).index, {})[partition] = end
        over = self._over() if by_slot else []
        for index, slot_ends in by_slot.items():
            # A dead worker's replacement is told the ends handed off when it starts.
            self._send(self.slots[index], {"t": "durable", "ends": slot_ends, "over": over})
        return bool(ends)

    # -- housekeeping -------------------------------------------------------------------

    async def tick(self) -> None:
        """Restart a worker that died (with backoff), while not stopping."""
        if self.stopping:
            return
        now = time.monotonic()
        for slot in self.slots:
            if slot.process is None or slot.alive():
                continue
            if slot.restart_at is None:
                # Its last acknowledgements may still be in the socket: take them before its
                # replacement starts from the acknowledged positions (the replacement trims
                # what was committed past them and replays it).
                if slot.reader is not None:
                    with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                        await asyncio.wait_for(asyncio.shield(slot.reader), 10)
                self._died(slot, now)
            elif now >= slot.restart_at:
                slot.restarts += 1
                log.warning("restarting worker process; it replays its partitions from the "
                            "acknowledged positions", extra={
                                "worker": slot.name, "partitions": sorted(slot.partitions),
                                "restarts": slot.restarts})
                await self._spawn(slot)

    def _died(self, slot: WorkerSlot, now: float) -> None:
        assert slot.process is not None
        code = slot.process.returncode
        self.daemon.telemetry.remote.retire(slot.name)
        if slot.channel is not None:
            slot.channel.close()
            slot.channel = None
        if now - slot.started_at > STABLE_SECONDS:
            slot.failures = 0
        delay = RESTART_BACKOFF_SECONDS[min(slot.failures, len(RESTART_BACKOFF_SECONDS) - 1)]
        slot.failures += 1
        slot.restart_at = now + delay
        log.error("worker process died; restarting it", extra={
            "worker": slot.name, "pid": slot.process.pid, "exit_code": code,
            "restart_in_seconds": delay, "partitions": sorted(slot.partitions)})

    async def reload(self) -> None:
        """Every worker reloads the configuration (pipelines, detection, sinks) between
        batches; raises when one cannot."""
        waiting = [slot for slot in self.slots if slot.alive()
                   and self._send(slot, {"t": "reload"})]
        failed = []
        for slot in waiting:
            try:
                reply = await asyncio.wait_for(self._reply(slot, "reloaded"),
                                               RELOAD_TIMEOUT_SECONDS)
            except (TimeoutError, ChannelClosed):
                failed.append(slot.name)
                continue
            if not reply.get("ok"):
                failed.append(slot.name)
        if failed:
            raise RuntimeError(f"worker processes {', '.join(failed)} did not reload")

    async def _reply(self, slot: WorkerSlot, kind: str) -> Message:
        while True:
            if not slot.alive() and slot.replies.empty():
                raise ChannelClosed(f"worker {slot.name} exited")
            try:
                message = await asyncio.wait_for(slot.replies.get(), 0.5)
            except TimeoutError:
                continue
            if message.get("t") == kind:
                return message

    async def stop(self, timeout: float) -> bool:
        """After the journal closed: hand off what is durable, let every worker drain it,
        commit and acknowledge, and exit. False when one had to be killed at the deadline
        (what it had not acknowledged is processed at the next start)."""
        self.stopping = True
        with contextlib.suppress(JournalError):
            await asyncio.wait_for(self.journal.sync(), timeout)
        self._announce()
        if self._dispatch is not None:
            self._dispatch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatch
        for slot in self.slots:
            self._send(slot, {"t": "stop"})
        deadline = time.monotonic() + timeout
        clean = True
        for slot in self.slots:
            process = slot.process
            if process is None:
                continue
            while process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if process.poll() is None:
                log.warning("worker process did not drain in time; killed (its partitions "
                            "are processed at the next start)", extra={"worker": slot.name})
                process.kill()
                await asyncio.to_thread(process.wait)
                clean = False
            self.exit_codes.append(process.returncode)
            if slot.reader is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(slot.reader, 5)
            self.daemon.telemetry.remote.retire(slot.name)
            if slot.channel is not None:
                slot.channel.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        return clean

    def kill(self) -> None:
        """A failed start: end the workers at once."""
        for slot in self.slots:
            if slot.alive():
                assert slot.process is not None
                slot.process.kill()
                slot.process.wait()

    # -- health -------------------------------------------------------------------------

    def ready(self) -> bool:
        return all(slot.alive() and slot.ready.is_set() for slot in self.slots)

    def storage_failing(self) -> dict[str, str]:
        failing: dict[str, str] = {}
        for slot in self.slots:
            failing.update(slot.health.get("storage_failing") or {})
        return failing

    def health(self) -> dict[str, Any]:
        """Per worker: pid, partitions, restarts; and the sinks' and detection's figures
        summed over the workers."""
        sinks: dict[str, dict[str, Any]] = {}
        detection: dict[str, Any] = {}
        for slot in self.slots:
            for sink_id, figures in (slot.health.get("sinks") or {}).items():
                _add(sinks.setdefault(sink_id, {}), figures)
            _add(detection, slot.health.get("detection") or {})
        return {
            "workers": [{"worker": s.name, "pid": s.process.pid if s.process else None,
                         "alive": s.alive(), "ready": s.ready.is_set(),
                         "restarts": s.restarts, "partitions": sorted(s.partitions)}
                        for s in self.slots],
            "sinks": sinks, "detection": detection or None}


def _add(into: dict[str, Any], figures: dict[str, Any]) -> None:
    """Numbers summed, anything else kept as the first worker said."""
    for key, value in figures.items():
        if isinstance(value, int | float) and not isinstance(value, bool) \
                and isinstance(into.get(key, 0), int | float):
            into[key] = into.get(key, 0) + value
        else:
            into.setdefault(key, value)
