"""A pulled source in-process: its real SourceContext over a MemoryQueue (or a journal), real
telemetry and tenant routing (poll conditions with `support.daemon.wait_until`)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collector.queue import MemoryQueue
from collector.routing import TenantRouter
from collector.sources.base import Source, SourceContext
from core.events import Event
from core.registry import resolve
from core.telemetry import Telemetry

NOW = datetime(2024, 5, 14, 9, 30, tzinfo=UTC)


class SourceRig:
    """Builds the source a config names, as the daemon does."""

    def __init__(self, tmp_path: Path, settings: dict[str, Any], *, queue: Any = None,
                 tenants: frozenset[str] = frozenset({"demo", "acme"}), **kwargs: Any) -> None:
        cls = resolve("source", settings["type"])
        self.config = cls.config_model.model_validate(settings)
        self.queue = queue if queue is not None else MemoryQueue(100_000)
        self.telemetry = Telemetry()
        self.context = SourceContext(
            "cloud", self.config, self.queue,
            self.telemetry.component("cloud", "source", settings["type"]),
            TenantRouter.from_config(self.config, set(tenants)), lambda: NOW,
            data_dir=tmp_path, conf_dir=tmp_path)
        self.source: Source = cls(self.context, **kwargs)

    def events(self, tenant: str = "demo") -> list[Event]:
        return list(self.queue._queued.get(tenant, []))

    def metric(self, name: str, **labels: str) -> float:
        return self.telemetry.sample(name, component_id="cloud", component_kind="source",
                                     component_type=self.config.type, **labels)
