"""Reloading a running daemon's configuration: validate it again, bind new listeners while the
old ones serve, then swap bounds, pipelines, detection, sinks and alerting between batches.
`Daemon` owns every component; these functions change it in place (`Daemon.reload`).

Each role reloads what it runs (`vigil.role`, collector.cluster.roles): sources, routing and
the journal's bounds where `Daemon.runs_sources`; pipelines and detection where
`Daemon.role_processes`; the sinks the role builds (`Daemon._sink_configs`); alerting, logging
and the control listener everywhere. Settings only a restart applies are logged and kept.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from collector.config import VigilConfig, load_config
from collector.config.models import ControlConfig
from collector.detection.stage import load_ruleset
from collector.journal import Journal
from collector.logs import configure_logging
from collector.queue import MemoryQueue
from collector.sources.swap import SourceSwap
from core.errors import ConfigErrors

if TYPE_CHECKING:
    from collector.runtime import Daemon

# The daemon's messages keep the logger name they had when this lived in `collector.runtime`.
log = logging.getLogger("collector.runtime")


async def reload_config(daemon: Daemon) -> bool:
    """Validate the configuration again and swap what changed; keep the old on errors."""
    daemon.notifier.reloading()
    try:
        new = load_config(daemon.conf_dir, require_inputs=True)
    except ConfigErrors as exc:
        daemon.telemetry.config_reloads.labels(result="failure").inc()
        daemon.telemetry.config_reload_errors.inc(len(exc.errors))
        # One line, however many errors: `vigil validate` lists them.
        log.error("reload rejected; the running configuration is kept (vigil validate "
                  "lists every error)",
                  extra={"errors": len(exc.errors), "following_errors": exc.following,
                         "first": str(exc.errors[0])})
        daemon.notifier.ready()
        return False
    try:
        await apply_config(daemon, new)
    except Exception:
        daemon.telemetry.config_reloads.labels(result="failure").inc()
        log.exception("reload failed while applying; running components kept")
        daemon.notifier.ready()
        return False
    daemon.telemetry.config_reloads.labels(result="success").inc()
    daemon.notifier.ready()
    log.info("configuration reloaded")
    return True


async def apply_config(daemon: Daemon, new: VigilConfig) -> None:
    """Bind the new listeners, apply the processing, then commit the swap (undone on failure)."""
    old = daemon.config
    settings = new.settings
    # Listeners first: a port that cannot be bound fails the reload before anything changed.
    # A role without sources (a cluster worker or control process) binds none of them.
    swap = (SourceSwap(daemon.sources, old, new, daemon._build_source, daemon._router)
            if daemon.runs_sources else None)
    if swap is not None:
        await swap.bind()
    control = None
    try:
        if _listeners(settings.control) != _listeners(old.settings.control):
            control = daemon._control_server(settings.control)
            await control.start()
        await apply_processing(daemon, new)
    except BaseException:
        if swap is not None:
            await swap.unbind()
        if control is not None:
            await control.stop()
        raise
    if swap is not None:
        await swap.commit()
    if control is not None:  # bound on its new address already
        previous, daemon.control = daemon.control, control
        if previous is not None:
            await previous.stop()
    elif settings.control != old.settings.control:  # the same address: stop, then start
        if daemon.control is not None:
            await daemon.control.stop()
        daemon.control = daemon._control_server(settings.control)
        await daemon.control.start()
    daemon.config = new


async def apply_processing(daemon: Daemon, new: VigilConfig) -> None:
    """Bounds, pipelines, detection, sinks and alerting of a reload, as far as the daemon's
    role runs them."""
    old = daemon.config
    settings = keep_restart_only(old, new).settings
    if daemon.setup_logging:
        configure_logging(settings.logging.level, settings.logging.format)
    if isinstance(daemon.queue, Journal):
        daemon.queue.reconfigure(settings.queue, settings.limits.queue_max_events)
    elif isinstance(daemon.queue, MemoryQueue) and daemon.runs_sources:
        daemon.queue.set_bound(settings.queue.max_events or settings.limits.queue_max_events,
                               resume_ratio=settings.queue.resume_ratio)
    # else no bounds of its own: a worker process's view of the journal (the main process's),
    # a cluster worker's stream (the collectors' journals and JetStream's limits), or the
    # control role's placeholder queue
    daemon.telemetry.queue_capacity.set(daemon.queue.max_events)
    daemon.worker.batch_max_events = settings.limits.batch_max_events
    daemon.replayer.root = daemon._dead_letter_root(new)
    daemon.replayer.tenants = set(new.tenants)
    daemon.alerting.configure(new)
    if daemon.pool is not None:
        # The worker processes swap their pipelines, detection and sinks themselves.
        await daemon.pool.reload()
        return

    processing = daemon.role_processes
    detection_changed = processing and (
        new.settings.detection != old.settings.detection
        or new.section("rules") != old.section("rules")
        or {t: c.rules for t, c in new.tenants.items()}
        != {t: c.rules for t, c in old.tenants.items()})
    # Loading rules can take seconds (SigmaHQ): off the loop, before the swap.
    ruleset = (await asyncio.to_thread(load_ruleset, new, daemon.conf_dir.resolve(),
                                       daemon.data_dir)
               if detection_changed and new.settings.detection.enabled else None)

    # Pipelines, detection and sinks swap between batches: old sinks commit first.
    async with daemon.worker.lock:
        if processing and new.pipelines != old.pipelines:
            pipelines = daemon._build_pipelines(new)
            daemon.pipelines.close()
            daemon.pipelines = pipelines
        if detection_changed:
            detection = daemon._build_detection(new, ruleset)
            if detection is not None and daemon.detection is not None:
                detection.adopt(daemon.detection)
            elif daemon.detection is not None:
                daemon.detection.close()
            daemon.detection = detection
            daemon.worker.holders = [detection] if detection is not None else []
        # The role's own sinks: none in a collector, only the alert stores in control.
        new_sinks, old_sinks = daemon._sink_configs(new), daemon._sink_configs(old)
        for sink_id in list(daemon.sinks):
            if new_sinks.get(sink_id) != old_sinks.get(sink_id):
                sink = daemon.sinks.pop(sink_id)
                await sink.stop()
        daemon.worker.acknowledge()
        for sink_id, sink_config in new_sinks.items():
            if sink_id not in daemon.sinks:
                sink = daemon._build_sink(sink_id, sink_config)
                await sink.start()
                daemon.sinks[sink_id] = sink


# Settings only a restart applies: a reload logs a change and runs on with the running values.
# `role` and `cluster` are also kept in the reloaded configuration, which the roles read on.
_RESTART_ONLY = {"role": "the running role", "cluster": "the running cluster settings",
                 "queue.type": "the running queue", "workers": "the running processes"}
_KEPT = ("role", "cluster")


def keep_restart_only(old: VigilConfig, new: VigilConfig) -> VigilConfig:
    """Warn about each changed setting only a restart applies; `new` with `role` and
    `cluster` of the running configuration."""
    for name, keeping in _RESTART_ONLY.items():
        running, configured = _setting(old, name), _setting(new, name)
        if running == configured:
            continue
        if isinstance(running, BaseModel):  # a section: which keys (values may be secrets)
            detail: dict[str, Any] = {"changed": sorted(
                k for k in type(running).model_fields
                if getattr(running, k) != getattr(configured, k))}
        else:
            detail = {"running": running, "configured": configured}
        log.warning(f"vigil.{name} changes only at restart; keeping {keeping}",
                    extra={"setting": f"vigil.{name}", **detail})
    new.settings = new.settings.model_copy(
        update={name: getattr(old.settings, name) for name in _KEPT})
    return new


def _setting(config: VigilConfig, dotted: str) -> Any:
    value: Any = config.settings
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _listeners(control: ControlConfig) -> tuple[str, str | None]:
    """The addresses the control listener binds (a change is bound before the old one stops)."""
    return control.address, control.operator_address
