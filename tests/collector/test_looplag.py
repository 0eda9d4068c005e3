"""The event loop lag meter: a loop held by CPU work shows up as lag, in the histogram and the
gauge of the window's largest lag."""

from __future__ import annotations

import asyncio
import time

from collector.looplag import LoopLagMeter
from core.telemetry import Telemetry


async def test_a_held_loop_is_measured_as_lag() -> None:
    seen: list[float] = []
    largest: list[float] = []
    meter = LoopLagMeter(seen.append, largest.append, interval=0.02, window=0.1)
    async with meter:
        await asyncio.sleep(0.05)
        time.sleep(0.3)  # the loop held, as by a conversion running on it
        await asyncio.sleep(0.4)
    assert max(seen) >= 0.28 and meter.max_lag == max(seen)
    assert max(largest) == max(seen)
    # The gauge forgets a lag once two windows have passed without one like it.
    assert largest[-1] < max(seen)


async def test_the_daemon_metrics_carry_the_lag() -> None:
    telemetry = Telemetry()
    meter = LoopLagMeter.for_telemetry(telemetry)
    meter.interval = 0.02
    async with meter:
        await asyncio.sleep(0.05)
        time.sleep(0.15)
        await asyncio.sleep(0.05)
    assert telemetry.sample("vigil_event_loop_lag_seconds_count") >= 2
    assert telemetry.sample("vigil_event_loop_lag_seconds_bucket", le="0.1") < \
        telemetry.sample("vigil_event_loop_lag_seconds_count")
    assert telemetry.sample("vigil_event_loop_lag_max_seconds") >= 0.13
    assert b"vigil_event_loop_lag_seconds_bucket" in telemetry.render()


async def test_stop_ends_the_task_and_start_restarts_it() -> None:
    meter = LoopLagMeter(lambda lag: None, interval=0.01)
    meter.start()
    task = meter._task
    meter.start()  # already running: the same task
    assert meter._task is task
    meter.stop()
    await asyncio.sleep(0)
    assert task is not None and task.cancelled()
    meter.stop()  # twice is harmless
