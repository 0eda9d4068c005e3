"""The durable journal between sources and pipelines (issue 7), and the queue factory.

`open_queue` picks the queue the `vigil.queue` settings ask for: `Journal` (segment files per
tenant partition under `<data_dir>/journal`) or the in-memory `MemoryQueue`.
"""

from __future__ import annotations

from pathlib import Path

from collector.config.models import GlobalConfig
from collector.journal.config import FsyncInterval, QueueConfig
from collector.journal.errors import (
    JournalClosedError,
    JournalEncodeError,
    JournalError,
    JournalFullError,
    JournalLockedError,
    JournalWriteError,
)
from collector.journal.files import FileLayer
from collector.journal.journal import Journal
from collector.queue import MemoryQueue
from core.telemetry import Telemetry

__all__ = ["FileLayer", "FsyncInterval", "Journal", "JournalClosedError", "JournalEncodeError",
           "JournalError", "JournalFullError", "JournalLockedError", "JournalWriteError",
           "QueueConfig", "journal_path", "open_queue", "queue_config"]


def queue_config(settings: GlobalConfig) -> QueueConfig:
    """The `vigil.queue` section."""
    return settings.queue


def journal_path(settings: GlobalConfig, data_dir: Path) -> Path:
    return queue_config(settings).path or Path(data_dir) / "journal"


def open_queue(settings: GlobalConfig, data_dir: Path, telemetry: Telemetry | None = None, *,
               files: FileLayer | None = None) -> Journal | MemoryQueue:
    """The configured queue; a Journal is opened (recovered) here and must be `aclose()`d."""
    config = queue_config(settings)
    default_max = settings.limits.queue_max_events
    if config.type == "memory":
        return MemoryQueue(config.max_events or default_max, resume_ratio=config.resume_ratio)
    return Journal(journal_path(settings, data_dir), config, max_events=default_max,
                   telemetry=telemetry, files=files)
