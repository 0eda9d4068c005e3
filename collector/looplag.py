"""The event loop's lag: how late a callback scheduled every 100 ms actually runs.

The loop only moves bytes; anything that holds it (CPU work, a blocking call, a C extension
holding the GIL on another thread) delays every source by as much, and shows up here as
`vigil_event_loop_lag_seconds` (a histogram) and `vigil_event_loop_lag_max_seconds` (the
largest lag of the current and the previous 10 s window).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.telemetry import Telemetry

INTERVAL_SECONDS = 0.1
WINDOW_SECONDS = 10.0


class LoopLagMeter:
    """Measures the running loop's lag with a task that sleeps `interval` and records how much
    later than asked it woke: `observe(lag)` and `report_max(largest lag of this window and
    the one before)` at every wake-up."""

    def __init__(self, observe: Callable[[float], None],
                 report_max: Callable[[float], None] | None = None, *,
                 interval: float = INTERVAL_SECONDS, window: float = WINDOW_SECONDS) -> None:
        self.observe = observe
        self.report_max = report_max
        self.interval = interval
        self.window = window
        self.max_lag = 0.0  # the largest lag since start (tests, benchmarks)
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def for_telemetry(cls, telemetry: Telemetry) -> LoopLagMeter:
        """A meter reporting to the daemon's `Telemetry`."""
        return cls(telemetry.event_loop_lag.observe, telemetry.event_loop_lag_max.set)

    def start(self) -> None:
        """Start measuring on the running loop (again after `stop`)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name="loop-lag")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        previous = current = 0.0
        window_end = loop.time() + self.window
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            now = loop.time()
            lag = max(0.0, now - due)
            self.observe(lag)
            self.max_lag = max(self.max_lag, lag)
            if now >= window_end:
                previous, current, window_end = current, 0.0, now + self.window
            current = max(current, lag)
            if self.report_max is not None:
                self.report_max(max(previous, current))

    async def __aenter__(self) -> LoopLagMeter:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        task = self._task
        self.stop()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
