"""The daemon in each cluster role (`vigil.role`): `collector` (sources, routing, the journal,
its records published to JetStream), `worker` (tenant shards from JetStream through pipelines,
detection and sinks) and `control` (API, console, the alert store fed from the alerts stream).
`all` is `collector.runtime.Daemon` itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from collector.cluster.alerts import (
    ALERT_PUBLISH_SINK,
    AlertPublishConfig,
    AlertPublishSink,
    consume_alerts,
)
from collector.cluster.consumer import StreamQueue
from collector.cluster.publisher import JournalPublisher
from collector.cluster.stream import Heartbeat, Streams, connect, node_id
from collector.config import VigilConfig
from collector.detection.stage import STATE_VERSION, DetectionStage
from collector.journal import Journal
from collector.queue import MemoryQueue
from collector.runtime import Daemon
from core.sink import SinkContext
from rules.loader import RuleSet
from rules.state import Ownership, merge_detection

log = logging.getLogger(__name__)


def _only(tenant: str) -> Callable[[str], bool]:
    return lambda t: t == tenant


def _node(config: VigilConfig, role: str) -> str:
    return node_id(config.settings.cluster, role, config.settings.control.address)


class CollectorDaemon(Daemon):
    """Sources and the journal as on one host; the journal's reader publishes instead of
    processing (`JournalPublisher`)."""

    role_processes = False

    def __init__(self, conf_dir: Path, **kwargs: Any) -> None:
        super().__init__(conf_dir, **kwargs)
        assert isinstance(self.queue, Journal)
        self.node = _node(self.config, "collector")
        self.publisher = JournalPublisher(self.queue, self.config.settings.cluster, self.node,
                                          lambda: self.stopping, self.telemetry)
        if self.config.settings.cluster.sender_ack == "jetstream":
            self.queue.forwarded = self.publisher.wait_forwarded
        self.heartbeat = Heartbeat(self.config.settings.cluster, "collector", self.node)

    async def tick(self) -> None:
        await super().tick()
        if not self.stopping:
            self.heartbeat.tick({"published_records": self.publisher.published,
                                 "journal_pending_events": self.queue.pending(),
                                 "failing": self.publisher.failing})

    @staticmethod
    def _sink_configs(config: VigilConfig) -> dict[str, Any]:
        return {}  # the workers' sinks

    async def _run_worker(self) -> None:
        await self.run_essential("publisher", self.publisher.run)

    async def shutdown(self) -> int:
        code = await super().shutdown()
        await self.publisher.close()
        await self.heartbeat.close()
        return code

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        ready, detail = super().readiness()
        detail["cluster"] = {"role": "collector", "node": self.node, **self.publisher.health()}
        return ready, detail


class ClusterWorkerDaemon(Daemon):
    """Pipelines, detection and sinks over the shards this worker leases (`StreamQueue`)."""

    runs_sources = False

    def _open_queue(self) -> Any:
        cluster = self.config.settings.cluster
        self.node = _node(self.config, "worker")
        self.stream_queue = StreamQueue(cluster, self.node, tenants=lambda: self.config.tenants,
                                        on_acquire=self._acquired, on_release=self._commit_all,
                                        on_handover=self._hand_over)
        self.ownership = Ownership("", owns=self.stream_queue.owns,
                                   owned=self.stream_queue.owned_tenants)
        return self.stream_queue

    @staticmethod
    def _sink_configs(config: VigilConfig) -> dict[str, Any]:
        # Alerts go to the control role over the alerts stream, not to a local store.
        return {k: v for k, v in Daemon._sink_configs(config).items()
                if v.type != "alert_store"}

    def _build_detection(self, config: VigilConfig, ruleset: RuleSet | None = None
                         ) -> DetectionStage | None:
        # Also a reload's new stage: every save is checkpointed to JetStream.
        detection = super()._build_detection(config, ruleset)
        if detection is not None:
            detection.on_saved = self._checkpoint
        return detection

    def _sink_replays(self) -> tuple[Callable[[str], int] | None, Callable[[str], int] | None]:
        # No start-up trim (the commit manifest is per host; the tenant was someone else's):
        # replayed events are checked against the committed file names instead.
        return None, self.stream_queue.replay_end

    async def start(self) -> None:
        settings = self.begin_start()
        if self.detection is not None:
            self.worker.holders = [self.detection]
        self.worker.fence = self._fence
        for sink_id, sink_config in self._sink_configs(self.config).items():
            sink = self._build_sink(sink_id, sink_config)
            await sink.start()
            self.sinks[sink_id] = sink
        alerts = AlertPublishSink(
            ALERT_PUBLISH_SINK, AlertPublishConfig(),
            SinkContext(self.data_dir, self.queue.epoch, self.telemetry, self.schemas),
            settings.cluster, lambda: self.stream_queue.streams)
        self.sinks[ALERT_PUBLISH_SINK] = alerts
        await self.stream_queue.start()
        self._worker_task = asyncio.create_task(self._run_worker(), name="worker")
        self.control = self._control_server(settings.control)
        await self.control.start()
        self.started.set()
        self.notifier.ready()
        log.info("vigil worker started", extra={"node": self.node, "sinks": len(self.sinks)})

    async def _acquired(self, tenant: str) -> None:
        """A shard taken over: its tenant's detection state from the last checkpoint, never
        on top of what this worker held before the shard left it."""
        from nats.js.errors import KeyNotFoundError

        streams = self.stream_queue.streams
        if self.detection is None or streams is None:
            return
        try:
            entry = await streams.state.get(f"detection.{tenant}")
        except KeyNotFoundError:
            entry = None
        async with self.worker.lock:
            if not self.stream_queue.owns(tenant):  # its other shards' state is live
                self.detection.forget([tenant])
            if entry is not None:
                saved = orjson.loads(entry.value or b"{}")
                self.detection.load_state(saved)
                # The field coverage its rules were activated from: active at once, not only
                # after this worker has seen enough of the tenant's events again.
                if isinstance(saved.get("coverage"), dict):
                    self.detection.coverage.load(saved["coverage"], self.detection.clock())
                    self.detection.activate(tenant)

    def _fence(self) -> None:
        """Before every commit (`Worker.flush`, under the worker's lock): tenants whose shard
        lease lapsed or was taken over lose what the sinks hold of them and their detection
        state; the next owner processes those records from the stream and the checkpoint."""
        for tenant in self.stream_queue.fence():
            dropped = self.worker.discard(tenant)
            if self.detection is not None:
                self.detection.forget([tenant])
            log.warning("lost a shard lease: its uncommitted events are dropped here and "
                        "processed by the next owner", extra={"tenant": tenant,
                                                              "events": dropped})

    async def _commit_all(self) -> None:
        """Commit every sink's buffers now and forget cached committed ranges (a replay of a
        shard follows); the detection state of tenants no longer owned goes (their next
        owner continues from the checkpoint: kept here, it would fire their alerts twice)."""
        async with self.worker.lock:
            await self.worker.flush(force=True)
            if self.detection is not None:
                self.detection.forget([t for t in self.detection.state_tenants()
                                       if not self.stream_queue.owns(t)])
        for sink in self.sinks.values():
            forget = getattr(sink, "forget_committed", None)
            if forget is not None:
                forget()

    async def _hand_over(self, leaving: list[str]) -> None:
        """Shards being handed over: commit every sink, save detection's state (staging the
        checkpoints), acknowledge; then the state of the `leaving` tenants goes (saved just
        before, under the same lock, so no tick changes it in between)."""
        async with self.worker.lock:
            await self.worker.flush(force=True)
            if self.detection is not None:
                self.detection.save()
            self.worker.acknowledge()
            if self.detection is not None and leaving:
                self.detection.forget(leaving)

    def _checkpoint(self, data: dict[str, Any]) -> None:
        """Detection saved: each owned tenant's part goes to JetStream before the
        acknowledgements this save releases."""
        held = self.detection.state_tenants() if self.detection is not None else set()
        for tenant in self.stream_queue.owned_tenants():
            if tenant not in held:  # nothing seen, or handed over: its checkpoint stays
                continue
            doc = merge_detection([data], Ownership(owns=_only(tenant)), STATE_VERSION)
            if doc is not None:
                assert self.detection is not None
                doc["coverage"] = self.detection.coverage.dump({tenant})
                self.stream_queue.stage_checkpoint(tenant, orjson.dumps(doc, default=str))

    async def tick(self) -> None:
        await self.tick_processing()
        self.telemetry.queue_events.set(self.queue.pending())
        self.notifier.watchdog(time.monotonic())

    async def shutdown(self) -> int:
        self.stopping = True
        self.notifier.stopping()
        self.stream_queue.close()
        await self.stream_queue.wait_handover(10.0)
        code = 0
        await self.drain_worker_task()
        if not await self.commit_and_close():
            code = 1
        await self.stream_queue.aclose()
        if self.control is not None:
            await self.control.stop()
        self.loop_lag.stop()
        log.info("vigil worker stopped", extra={"exit_code": code, "node": self.node})
        return 1 if self.failure is not None else code

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        ready, detail = super().readiness()
        detail["cluster"] = {"role": "worker", **self.stream_queue.health()}
        return ready, detail


class ControlDaemon(Daemon):
    """The API, console and alert store; alerts arrive from the workers on the alerts
    stream. No sources, no pipelines."""

    role_processes = False
    runs_sources = False

    def _open_queue(self) -> Any:
        return MemoryQueue(1)  # nothing is queued here

    @staticmethod
    def _sink_configs(config: VigilConfig) -> dict[str, Any]:
        # The alert stores only (a reload swaps them; the workers write the lake).
        return {k: v for k, v in Daemon._sink_configs(config).items()
                if v.type == "alert_store"}

    async def start(self) -> None:
        settings = self.begin_start()
        self.node = _node(self.config, "control")
        self.heartbeat = Heartbeat(settings.cluster, "control", self.node)
        await self.alerting.start()
        for sink_id, sink_config in self._sink_configs(self.config).items():
            sink = self._build_sink(sink_id, sink_config)
            await sink.start()
            self.sinks[sink_id] = sink
        self.streams: Streams | None = None
        self._worker_task = asyncio.create_task(self._consume(), name="alerts")
        self.control = self._control_server(settings.control)
        await self.control.start()
        self.started.set()
        self.notifier.ready()
        log.info("vigil control started", extra={"node": self.node})

    async def _consume(self) -> None:
        cluster = self.config.settings.cluster
        while not self.stopping:
            try:
                if self.streams is None:
                    self.streams = await connect(cluster, f"vigil-control-{self.node}")
                # The store as it is now (a reload may swap it), under the lock reloads
                # swap sinks with.
                await consume_alerts(self.streams, cluster, f"control_{self.node}",
                                     lambda: next(iter(self.sinks.values())),
                                     lambda: self.stopping, self.worker.lock)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("alert consumer failed; retrying", exc_info=True)
                await asyncio.sleep(1.0)

    async def tick(self) -> None:
        if not self.stopping:
            await self.alerting.tick()
            self.heartbeat.tick()
        self.notifier.watchdog(time.monotonic())

    async def shutdown(self) -> int:
        self.stopping = True
        self.notifier.stopping()
        if self._worker_task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._worker_task), 3.0)
            self._worker_task.cancel()
        code = 0 if await self.commit_and_close() else 1
        if self.streams is not None:
            with contextlib.suppress(Exception):
                await self.streams.nc.drain()
        await self.heartbeat.close()
        await self.alerting.stop()
        if self.control is not None:
            await self.control.stop()
        self.loop_lag.stop()
        return 1 if self.failure is not None else code


ROLES: dict[str, type[Daemon]] = {"all": Daemon, "collector": CollectorDaemon,
                                  "worker": ClusterWorkerDaemon, "control": ControlDaemon}


def build_daemon(conf_dir: Path, config: VigilConfig, *, data_dir: Path | None = None,
                 **kwargs: Any) -> Daemon:
    """The daemon for the configuration's `vigil.role` (`config` loaded from `conf_dir`)."""
    return ROLES[config.settings.role](conf_dir, data_dir=data_dir, config=config, **kwargs)
