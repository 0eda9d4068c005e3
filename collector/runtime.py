"""The daemon: builds components from the configuration and runs them on one event loop.

Signal handlers only set flags; a tick loop does housekeeping (time-based flushes, gauges, the
systemd watchdog) and acts on the flags: SIGHUP reloads, SIGTERM drains and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collector.config import VigilConfig, load_config
from collector.config.models import ControlConfig, GlobalConfig
from collector.control import ControlServer
from collector.detection.alerts import ALERT_SCHEMA, ALERTS_DATASET
from collector.detection.requirements import RequirementsCache
from collector.detection.stage import DetectionStage
from collector.journal import Journal, open_queue
from collector.journal.follower import JournalFollower
from collector.logs import configure_logging
from collector.looplag import LoopLagMeter
from collector.pipeline.runner import PipelineSet, build_pipelines
from collector.processes import worker_count
from collector.processes.pool import WorkerPool
from collector.queue import MemoryQueue
from collector.reload import reload_config
from collector.replay import DeadLetterReplayer
from collector.retention import RetentionSweeper
from collector.routing import TenantRouter
from collector.sources.base import Source, SourceContext
from collector.sources.shares import SourceShares
from collector.systemd import SystemdNotifier
from collector.worker import Worker
from core.config import ValidationContext
from core.errors import listen_error
from core.events import Batch
from core.registry import resolve
from core.schema import DatasetSchemas
from core.sink import Sink, SinkContext
from core.telemetry import Telemetry
from rules.loader import RuleSet
from rules.state import Ownership
from sinks.dead_letter import DeadLetterConfig, dead_letter_root
from soc.alerts.service import Alerting
from soc.alerts.sink import AlertStoreConfig, AlertStoreSink
from soc.reports.service import Reports

log = logging.getLogger(__name__)

TICK_SECONDS = 0.5
# The dead-letter sink every daemon has unless the configuration declares its own.
DEFAULT_DEAD_LETTER_SINK = "_dead_letter"
# The alert store every daemon has unless the configuration declares one (<data_dir>/alerts.db).
DEFAULT_ALERT_STORE_SINK = "_alert_store"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@contextlib.contextmanager
def _listening(component: str, address: str, setting: str) -> Iterator[None]:
    """A listener that cannot bind (a port in use) is the operator's to fix: say which one."""
    try:
        yield
    except OSError as exc:
        if not address:
            raise
        raise listen_error(exc, component, address, setting) from exc


class Daemon:
    """One Vigil process: sources -> queue -> worker -> sinks, plus the control listener
    (with `vigil.workers` >= 2, worker processes run the worker and sinks: `pool`)."""

    # Which tenants' detection state and commit manifests are this process's (a worker's).
    ownership: Ownership | None = None
    # False for the cluster roles that run no pipelines (collector, control: collector.cluster).
    role_processes: bool = True
    runs_sources: bool = True  # False for the worker and control roles

    def __init__(self, conf_dir: Path, *, data_dir: Path | None = None,
                 clock: Callable[[], datetime] = _utcnow,
                 notifier: SystemdNotifier | None = None, setup_logging: bool = False,
                 config: VigilConfig | None = None) -> None:
        self.conf_dir = Path(conf_dir)
        self.data_dir_override = data_dir
        self.clock = clock
        self.notifier = notifier or SystemdNotifier()
        self.setup_logging = setup_logging
        # `config`: already loaded from `conf_dir` (`vigil run` reads the role first).
        self.config: VigilConfig = config or load_config(self.conf_dir, require_inputs=True)
        self.data_dir = self._data_dir(self.config)
        self.telemetry = Telemetry()
        settings = self.config.settings
        self.telemetry.identify(settings.role, settings.cluster.node_id or socket.gethostname())
        self.loop_lag = LoopLagMeter.for_telemetry(self.telemetry)
        self.retention = RetentionSweeper()  # main process only: workers never sweep
        self._retention_task: asyncio.Future[None] | None = None
        self.schemas = DatasetSchemas()
        limits = self.config.settings.limits
        # A journal is recovered here (torn tails cut, damage counted): start never blocks on it.
        self.queue = self._open_queue()
        self.telemetry.queue_capacity.set(self.queue.max_events)
        # A tenant's bound shared fairly among the sources that write to it.
        self.shares = SourceShares(self.queue) if isinstance(self.queue, Journal) else None
        self.sources: dict[str, Source] = {}
        self.sinks: dict[str, Sink] = {}
        # Worker processes run pipelines, detection and sinks; without them, this process does.
        workers = (worker_count(self.config.settings)
                   if isinstance(self.queue, Journal) and self.role_processes else 0)
        self.pool = WorkerPool(self, workers) if workers else None
        processing = self.pool is None and self.role_processes
        self.pipelines = self._build_pipelines(self.config if processing else None)
        self.detection = self._build_detection(self.config) if processing else None
        self._requirements = RequirementsCache()
        self.worker = Worker(self.queue, self.sinks, limits.batch_max_events, self.process,
                             telemetry=self.telemetry, clock=clock)
        self.replayer = DeadLetterReplayer(self._dead_letter_root(self.config), self.queue,
                                           self.telemetry, set(self.config.tenants))
        self.alerting = Alerting(self.config, self.data_dir, self.conf_dir.resolve(),
                                 self.telemetry, clock=clock)
        # Weekly and closed-incident reports: built and mailed from the tick (main process).
        self.reports = Reports(self.alerting, self._live_coverage)
        self.control: ControlServer | None = None
        self.started = asyncio.Event()
        self.stopping = False
        self._stop_requested = False
        self._reload_requested = False
        self._tick_failing = False
        self._wake: asyncio.Event | None = None
        self._worker_task: asyncio.Task[None] | None = None
        # Why an essential task stopped on its own; the daemon then exits non-zero (systemd's
        # Restart=on-failure restarts it).
        self.failure: str | None = None

    def _data_dir(self, config: VigilConfig) -> Path:
        return config.data_dir(self.data_dir_override)

    def _open_queue(self) -> Journal | MemoryQueue | JournalFollower:
        return open_queue(self.config.settings, self.data_dir, self.telemetry)

    def _replays(self) -> Journal | JournalFollower | None:
        """The queue when it survives restarts (the journal, or a worker's view of it)."""
        return self.queue if isinstance(self.queue, Journal | JournalFollower) else None

    def process(self, batch: Batch) -> list[Batch]:
        """The worker's processor: the pipelines, then detection."""
        out = self.pipelines.process(batch)
        return self.detection.process(out) if self.detection is not None else out

    def _build_detection(self, config: VigilConfig, ruleset: RuleSet | None = None
                         ) -> DetectionStage | None:
        if not config.settings.detection.enabled:
            return None
        return DetectionStage(config, self.conf_dir.resolve(), self.data_dir, self.telemetry,
                              self.clock, ruleset, ownership=self.ownership)

    # -- building components ------------------------------------------------------------

    def _router(self, config: VigilConfig, source_config: Any) -> TenantRouter:
        return TenantRouter.from_config(source_config, set(config.tenants))

    def _build_source(self, config: VigilConfig, source_id: str, source_config: Any) -> Source:
        cls = resolve("source", source_config.type)
        context = SourceContext(
            source_id, source_config, self.queue,
            self.telemetry.component(source_id, "source", source_config.type),
            self._router(config, source_config), self.clock, data_dir=self.data_dir,
            conf_dir=self.conf_dir)
        context.shares = self.shares
        source: Source = cls(context)
        return source

    def _build_pipelines(self, config: VigilConfig | None) -> PipelineSet:
        """The configured pipelines (none in a main process whose workers run them)."""
        pipelines = config.pipelines if config is not None else {}
        schemas: dict[str, dict[str, Any]] = {ALERTS_DATASET: dict(ALERT_SCHEMA)}
        for pipeline in pipelines.values():
            schemas.setdefault(pipeline.dataset, {}).update(pipeline.schema_)
        self.schemas.reset(schemas)
        return build_pipelines(pipelines.items(), ValidationContext(self.conf_dir.resolve()),
                               data_dir=self.data_dir, telemetry=self.telemetry,
                               clock=self.clock)

    @staticmethod
    def _sink_configs(config: VigilConfig) -> dict[str, Any]:
        """The configured sinks, plus the default dead-letter area when none is declared."""
        sinks: dict[str, Any] = dict(config.sinks)
        if not any(s.type == "dead_letter" for s in sinks.values()):
            sinks[DEFAULT_DEAD_LETTER_SINK] = DeadLetterConfig()
        if not any(s.type == "alert_store" for s in sinks.values()):
            sinks[DEFAULT_ALERT_STORE_SINK] = AlertStoreConfig()
        return sinks

    def _dead_letter_root(self, config: VigilConfig) -> Path:
        return dead_letter_root(self.data_dir, config.sinks.values())

    def _sink_replays(self) -> tuple[Callable[[str], int] | None, Callable[[str], int] | None]:
        """The queue's acknowledged position and replay end per partition, for sinks."""
        replays = self._replays()
        if replays is None:
            return None, None
        return replays.acked, replays.replay_end

    def _build_sink(self, sink_id: str, sink_config: Any) -> Sink:
        cls = resolve("sink", sink_config.type)
        acknowledged, replay_end = self._sink_replays()
        context = SinkContext(self.data_dir, self.queue.epoch, self.telemetry, self.schemas,
                              acknowledged=acknowledged,
                              recover=not self.started.is_set(),
                              replay_end=replay_end,
                              reject=self.worker.reject,
                              slot=self.ownership.slot if self.ownership else "",
                              owns=self.ownership.owns if self.ownership else None)
        sink: Sink = cls(sink_id, sink_config, context)
        if isinstance(sink, AlertStoreSink):
            self.alerting.bind(sink)
        return sink

    # -- lifecycle ----------------------------------------------------------------------

    def begin_start(self) -> GlobalConfig:
        """What every role's start does first: logging, the data directory, the tick's wake-up
        event, the loop lag meter. Returns the settings."""
        settings = self.config.settings
        if self.setup_logging:
            configure_logging(settings.logging.level, settings.logging.format)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._wake = asyncio.Event()
        self.loop_lag.start()
        return settings

    async def start(self) -> None:
        """Bind every listener and start the worker; READY=1 once done."""
        settings = self.begin_start()
        if self.detection is not None:
            self.detection.restore()
            self.worker.holders = [self.detection]
        if self.pool is not None:
            await self.pool.start()  # first: the workers start while this process does
        await self.alerting.start()
        if self.pool is None:
            for sink_id, sink_config in self._sink_configs(self.config).items():
                sink = self._build_sink(sink_id, sink_config)
                await sink.start()
                self.sinks[sink_id] = sink
            self._worker_task = asyncio.create_task(self._run_worker(), name="worker")
        self.control = self._control_server(settings.control)
        await self.control.start()
        for source_id, source_config in self.config.sources.items():
            source = self._build_source(self.config, source_id, source_config)
            with _listening(f"source {source_id}", getattr(source_config, "address", ""),
                            f"sources.{source_id}.address"):
                await source.start()
            self.sources[source_id] = source
        self.started.set()
        if self.pool is not None:
            await self.pool.wait_ready()  # /readyz says not ready until then
        self.notifier.ready()
        log.info("vigil started", extra={"conf_dir": str(self.conf_dir),
                                         "data_dir": str(self.data_dir),
                                         "sources": len(self.sources), "sinks": len(self.sinks)})

    async def _run_worker(self) -> None:
        await self.run_essential("worker", self.worker.run)

    async def run_essential(self, task: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run a task the daemon cannot do without (the queue's worker, a cluster publisher):
        when it raises or returns before a stop was asked for, the daemon fails."""
        try:
            await run()
        except Exception as exc:
            self.fail(task, exc)
            return
        if not self.stopping and not self._stop_requested:
            self.fail(task, None)

    async def drain_worker_task(self) -> bool:
        """Let the worker task finish what it took, for at most the shutdown timeout; False
        when it had to be cancelled."""
        if self._worker_task is None:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(self._worker_task),
                                   self.config.settings.limits.shutdown_timeout_seconds)
        except TimeoutError:
            self._worker_task.cancel()
            return False
        return True

    def fail(self, task: str, exc: BaseException | None) -> None:
        """An essential task stopped on its own: log the cause once, stop, exit non-zero."""
        if self.failure is None:
            self.failure = f"{task}: {type(exc).__name__}: {exc}" if exc else f"{task} returned"
            log.error("%s stopped unexpectedly; stopping the daemon (exit code 1)", task,
                      exc_info=exc, extra={"cause": self.failure})
        self.request_stop()

    async def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT, drain; returns the process exit code."""
        loop = asyncio.get_running_loop()
        # Before start: /readyz may say ready before start returns (it waits for the worker
        # processes), and a SIGHUP or SIGTERM then must not find the default action.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        try:
            await self.start()
        except Exception:
            # Undo what started (sinks commit, the journal is closed), then let the CLI report
            # the cause: one line for an operator's mistake, a traceback for a bug.
            try:
                await self.shutdown()
            except Exception:
                log.exception("stopping after a failed start failed too")
            finally:
                if self.pool is not None:
                    self.pool.kill()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            raise
        try:
            while not self._stop_requested:
                assert self._wake is not None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), TICK_SECONDS)
                self._wake.clear()
                if self._reload_requested:
                    self._reload_requested = False
                    try:
                        await self.reload()  # a failing reload keeps the running components
                    except Exception as exc:
                        self.fail("reload", exc)
                        continue
                await self.guarded_tick("housekeeping")
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        return await self.shutdown()

    async def guarded_tick(self, what: str) -> None:
        """`tick`, which never stops the process: a failure is logged once (until a tick
        succeeds again) and retried at the next tick."""
        try:
            await self.tick()
        except Exception:
            if not self._tick_failing:
                log.exception(f"{what} tick failed; retrying every tick")
            self._tick_failing = True
        else:
            self._tick_failing = False

    def request_stop(self) -> None:
        self._stop_requested = True
        if self._wake is not None:
            self._wake.set()

    def request_reload(self) -> None:
        self._reload_requested = True
        if self._wake is not None:
            self._wake.set()

    async def tick(self) -> None:
        """Housekeeping: time-based flushes and acknowledgement, gauges, watchdog."""
        await self.tick_processing()
        if self.pool is not None:
            await self.pool.tick()
        for source in self.sources.values():
            source.maintain()
            if source.context.held:
                source.context.retry_held()
        if not self.stopping:
            await self.replayer.replay_next()
            await self.alerting.tick()
            await self.reports.tick()
            self._sweep_retention()
        pending = self.queue.pending()
        self.telemetry.queue_events.set(pending)
        held_back = self.queue.over_bound() or (isinstance(self.queue, Journal)
                                                and bool(self.queue.held_back()))
        self.telemetry.backpressure.set(1 if held_back else 0)
        self.notifier.watchdog(time.monotonic())

    async def tick_processing(self) -> None:
        """Detection's timers (windows closing, health alerts), the sinks' time-based flushes
        and acknowledgements, the pipelines' upkeep: between batches."""
        async with self.worker.lock:
            if self.detection is not None:
                for batch in self.detection.tick():
                    self.worker.write_out(batch)
            await self.worker.flush()
            self.pipelines.maintain()

    async def commit_and_close(self) -> bool:
        """The end of processing, here and in a worker process: flush every sink, stop them,
        save detection's state (so its offsets may be acknowledged), acknowledge. False when a
        sink did not stop cleanly."""
        clean = True
        async with self.worker.lock:
            await self.worker.flush(force=True)
        for sink_id, sink in self.sinks.items():
            try:
                await sink.stop()
            except Exception:
                log.exception("sink failed to stop cleanly", extra={"sink": sink_id})
                clean = False
        if self.detection is not None:
            self.detection.close()
        self.worker.acknowledge()
        return clean

    def _sweep_retention(self) -> None:
        """Lake and dead-letter partitions past retention, hourly, on a thread (never two at
        once); a failure is logged and tried again at the next hour."""
        now = datetime.now(UTC)
        if (self._retention_task is not None and not self._retention_task.done()) \
                or not self.retention.due(now):
            return

        def run() -> None:
            try:
                self.retention.run(self.config, self.data_dir, now)
            except OSError:
                log.exception("retention sweep failed; trying again in an hour")

        self._retention_task = asyncio.ensure_future(asyncio.to_thread(run))

    async def shutdown(self) -> int:
        """Stop accepting, drain the queue through the sinks, flush everything."""
        self.stopping = True
        self.notifier.stopping()
        timeout = self.config.settings.limits.shutdown_timeout_seconds
        log.info("stopping: draining", extra={"pending_events": self.queue.pending()})
        # Each stream source reads what its senders already sent (up to its drain deadline).
        await asyncio.gather(*(source.stop() for source in self.sources.values()))
        self.queue.close()
        journal = self.queue if isinstance(self.queue, Journal) else None
        durable = journal is not None
        code = 0
        if self.pool is not None:
            # Each worker drains what is durable, commits, acknowledges and exits.
            await self.pool.stop(timeout)
            if any(c != 0 for c in self.pool.exit_codes):
                code = 1
        if not await self.drain_worker_task():
            if durable:
                log.warning("drain timed out; unprocessed events stay in the journal and are "
                            "processed at the next start",
                            extra={"pending_events": self.queue.pending()})
            else:
                log.error("drain timed out; events still queued are lost",
                          extra={"pending_events": self.queue.pending()})
                code = 1
        if not await self.commit_and_close():
            code = 1
        if self.queue.pending() and not durable:
            log.error("events not committed at exit",
                      extra={"pending_events": self.queue.pending()})
            code = 1
        if journal is not None:
            await journal.aclose()  # last fsync and checkpoint, lock released
        await self.alerting.stop()
        if self.control is not None:
            await self.control.stop()
        if self.failure is not None:
            code = 1
        self.loop_lag.stop()
        log.info("vigil stopped", extra={
            "exit_code": code,
            "received_events": int(self.telemetry.total("vigil_component_received_events_total",
                                                        component_kind="source")),
            "lake_rows": int(self.telemetry.total("vigil_lake_rows_written_total"))})
        return code

    # -- reload -------------------------------------------------------------------------

    async def reload(self) -> bool:
        """Validate the configuration again and swap what changed; keep the old on errors
        (`collector.reload`)."""
        return await reload_config(self)

    def _live_coverage(self) -> Any:
        """Detection's field coverage, for dashboard activation (None without detection)."""
        return self.detection.coverage if self.detection is not None else None

    def _rule_requirements(self) -> list[Any]:
        """Every rule's requirement (the integration map): the running detection's, else the
        configured rules loaded once per configuration (worker processes run detection)."""
        if self.detection is not None:
            return self.detection.requirements
        return self._requirements.get(self.config, self.conf_dir.resolve(), self.data_dir)

    def _control_server(self, settings: ControlConfig) -> ControlServer:
        """The control listener with /api/v1 and the console over the same operations (an
        aiohttp sub-app is single-use: built anew)."""
        from soc.api.app import build_api_app
        from soc.api.routes import Api
        from soc.console.pages import add_console

        api = Api(self.alerting)
        return ControlServer(settings.address, self.telemetry, self.readiness,
                             api=build_api_app(self.alerting, api, self._live_coverage,
                                               self._rule_requirements),
                             config=settings,
                             conf_dir=self.conf_dir.resolve(), data_dir=self.data_dir,
                             console=lambda app, secure: add_console(app, api, secure))

    # -- health -------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready once started, not stopping, every configured source running, and no writer
        waiting for the disk (sources are paused or answer 503 meanwhile)."""
        failing = dict(self.telemetry.storage.failing())
        if self.pool is not None:
            failing.update(self.pool.storage_failing())
        journal_error = self.queue.failing if isinstance(self.queue, Journal) else None
        if journal_error is not None:
            failing["journal"] = type(journal_error).__name__
        expected = self.config.sources if self.runs_sources else {}
        not_running = [sid for sid in expected
                       if sid not in self.sources or not self.sources[sid].running()]
        ready = self.started.is_set() and not self.stopping and not failing and not not_running
        if self.pool is not None:
            ready = ready and self.pool.ready()
        detail = {
            "not_running": not_running,
            "storage": {"failing": failing},
            "queue": (self.queue.health() if isinstance(self.queue, Journal) else
                      {"type": "memory", "pending_events": self.queue.pending(),
                       "capacity_events": self.queue.max_events,
                       "backpressure": self.queue.over_bound()}),
            "sources": {sid: {**s.health(), "running": s.running(),
                              "held_events": s.context.held_events}
                        for sid, s in self.sources.items()},
            "sinks": {sid: s.health() for sid, s in self.sinks.items()},
            "detection": self.detection.health() if self.detection is not None else None,
        }
        if self.pool is not None:  # the worker processes' sinks, detection, pids, partitions
            detail.update(self.pool.health())
        return ready, detail

