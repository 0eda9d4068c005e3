"""Rebalancing toward a worker that joins: which shards a worker hands over, decided from the
live workers' heartbeats (`worker.<node>` in the leases bucket lists the shards each owns).

A worker gives up shards while it holds more than its share's ceiling and another live worker
holds fewer than its floor (down to the ceiling), or one shard while it holds at least two more
than the least loaded live worker (7 shards over 3 workers: 3 + 3 + 1 becomes 2 + 2 + 3). A
worker takes free shards only up to the ceiling and a move needs a gap of two, so no shard is
passed back and forth.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson

from collector.cluster.stream import lease_key

if TYPE_CHECKING:
    from collector.cluster.consumer import Shard, StreamQueue

log = logging.getLogger(__name__)

WORKER_PREFIX = "worker."
HANDOVER_MIN_SECONDS = 10.0  # a handover not drained by then is called off (the shards stay)


def share(total: int, workers: int) -> tuple[int, int]:
    """(floor, ceiling) of a worker's share of `total` shards among `workers`."""
    workers = max(1, workers)
    return total // workers, math.ceil(total / workers)


def surplus(mine: Iterable[tuple[str, int]], others: Iterable[int], total: int
            ) -> list[tuple[str, int]]:
    """The shards of `mine` to hand over, given the shard counts of the other live workers:
    the last in name order (the quarantine, `_quarantine`, sorts first and goes last)."""
    owned = sorted(mine)
    counts = list(others)
    if not counts:
        return []
    floor, ceiling = share(total, len(counts) + 1)
    if len(owned) > ceiling and min(counts) < floor:
        return owned[ceiling:][::-1]
    if len(owned) >= min(counts) + 2:
        return owned[-1:]
    return []


async def other_workers(leases: Any, keys: Iterable[str], node: str) -> list[int]:
    """How many shards each other live worker owns, from its heartbeat (one that expired
    meanwhile is not counted)."""
    counts = []
    for key in keys:
        if not key.startswith(WORKER_PREFIX) or key == WORKER_PREFIX + node:
            continue
        try:
            entry = await leases.get(key)
            beat = orjson.loads(entry.value or b"{}")
        except Exception:
            log.debug("worker heartbeat unreadable", extra={"key": key}, exc_info=True)
            continue
        counts.append(len(beat.get("shards") or ()))
    return counts


async def hand_over(queue: StreamQueue, shards: list[Shard]) -> None:
    """Give `shards` up gracefully: stop fetching them, let what was fetched go through the
    sinks and be acknowledged, checkpoint, drop their tenants' detection state, delete the
    leases (compare-and-set on their revision) so the worker under its share takes them at
    its next lease round. Called off, the shards fetching again, if that does not drain in
    time (a sink failing: a new owner's replay would race this worker's late commit)."""
    log.info("handing shards over", extra={"worker": queue.node,
                                           "shards": [_name(s) for s in shards]})
    for shard in shards:
        shard.releasing = True
    deadline = time.monotonic() + max(HANDOVER_MIN_SECONDS, 3 * queue.config.lease_seconds)
    while True:
        if queue.closed:
            return  # stopping: the shutdown path commits and deletes every lease
        try:
            if queue.on_handover is not None:
                await queue.on_handover([])
            await queue.flush_acks()
        except Exception:
            log.warning("handover commit failed; retried", exc_info=True)
        pending = [s for s in shards if not s.lost and (
            s.acked < s.delivered or (s.task is not None and not s.task.done()))]
        if not pending:
            break
        if time.monotonic() > deadline:
            log.warning("handover called off: its shards did not drain in time",
                        extra={"worker": queue.node, "shards": [_name(s) for s in pending]})
            _call_off(queue, shards)
            return
        await asyncio.sleep(0.2)
    handed = [s for s in shards if not s.lost]
    staying = {s.tenant for s in queue.owned.values() if s not in handed}
    try:
        if queue.on_handover is not None:  # the last save, then their tenants' state goes
            await queue.on_handover(sorted({s.tenant for s in handed} - staying))
    except Exception:
        log.warning("handover commit failed; called off", exc_info=True)
        _call_off(queue, shards)
        return
    assert queue.streams is not None
    try:
        await queue.flush_acks()  # their checkpoints, while still theirs, before the leases go
        await queue.streams.nc.flush(timeout=5)  # and the acknowledgements at the server
        flushed = True
    except Exception:
        log.warning("handover checkpoint failed; the leases lapse instead", exc_info=True)
        flushed = False
    for shard in handed:  # not owned: nothing of theirs is acknowledged or checkpointed now
        shard.lost = True
        queue.owned.pop(shard.key, None)
    if not flushed:
        return  # the next owner starts from the checkpoint and acknowledgements before
    for shard in handed:
        try:
            await queue.streams.leases.delete(lease_key(*shard.key), last=shard.revision)
        except Exception:
            log.warning("deleting a handed-over lease failed; it lapses instead",
                        extra={"shard": _name(shard)}, exc_info=True)
        queue.voluntary_releases += 1
        log.info("shard handed over", extra={"tenant": shard.tenant, "shard": shard.index,
                                             "worker": queue.node})
    await queue.heartbeat()


def _call_off(queue: StreamQueue, shards: list[Shard]) -> None:
    for shard in shards:
        if not shard.lost and shard.releasing:
            queue.resume(shard)


def _name(shard: Shard) -> str:
    return f"{shard.tenant}.{shard.index}"
