"""Poison events: an exception raised while processing one event (a pipeline, detection, a
sink's conversion) makes that event a dead-letter record with the reason, so the rest of its
batch goes on, the journal position advances and a replay cannot crash on it again.

Failures of the environment (disk, I/O, a database that cannot be opened) are not poison: the
sinks retry them with backoff. `describe` is the one format of a poison reason:
`<component>: <ExceptionType>: <message>`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from collector.pipeline.runner import PIPELINE, dead_letter
from core.events import OFFSET, TENANT, Event
from core.telemetry import Telemetry

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 500
# One log line per (component, exception type) within this many seconds; the rest are counted.
LOG_INTERVAL_SECONDS = 60.0

def describe(component: str, exc: BaseException) -> str:
    """The reason recorded with a poison event."""
    try:
        message = str(exc)
    except Exception:  # an exception whose str() fails is poison of its own
        message = "(message unavailable)"
    if len(message) > MAX_REASON_CHARS:
        message = message[:MAX_REASON_CHARS] + "..."
    return f"{component}: {type(exc).__name__}: {message}"


def poison_record(event: Event, tenant: str, component: str, exc: BaseException,
                  failed_at: datetime) -> Event:
    """A dead-letter record for `event`, filed under the batch's (trusted) tenant."""
    pipeline = event.get(PIPELINE)
    record = dead_letter(event, pipeline if isinstance(pipeline, str) else "-", component,
                         describe(component, exc), failed_at)
    record[TENANT] = tenant
    return record


def offset_span(events: list[Event], fallback: tuple[int, int]) -> tuple[int, int]:
    """The queue offsets the events carry (first, last), or `fallback` when none does."""
    offsets = [o for e in events if isinstance(o := e.get(OFFSET), int)]
    return (min(offsets), max(offsets)) if offsets else fallback


class PoisonReport:
    """Counts poison events and logs them rate-limited: a traceback the first time a
    (component, exception type) is seen, then one line per interval with what was suppressed."""

    def __init__(self, telemetry: Telemetry | None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.telemetry = telemetry
        self.monotonic = monotonic
        self._logged: dict[tuple[str, str], float] = {}
        self._suppressed: dict[tuple[str, str], int] = {}

    def __call__(self, component: str, tenant: str, n: int, exc: BaseException,
                 scope: str = "event") -> None:
        if self.telemetry is not None:
            self.telemetry.poison(component, tenant, n, scope)
        key = (component, type(exc).__name__)
        now = self.monotonic()
        last = self._logged.get(key)
        if last is not None and now - last < LOG_INTERVAL_SECONDS:
            self._suppressed[key] = self._suppressed.get(key, 0) + n
            return
        self._logged[key] = now
        log.error("processing raised on %s; sent to the dead letter, the rest goes on",
                  "a batch that kept failing" if scope == "batch" else "an event",
                  exc_info=exc if last is None else None,
                  extra={"component": component, "tenant": tenant, "events": n,
                         "reason": describe(component, exc),
                         "suppressed_since_last": self._suppressed.pop(key, 0)})
