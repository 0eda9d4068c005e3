"""Journal benchmark: append + read + acknowledge throughput per fsync policy, next to MemoryQueue.

Events are the seeded workload's syslog lines parsed by Vigil's syslog parser and stamped like
`SourceContext.emit` does (about 12 fields, two UTC datetimes). Two shapes:
- stream: a producer appends batches (like a TCP read) to several tenants while a worker reads,
  and acknowledges, with backpressure honoured; timed until the last event is acknowledged;
- deliver: many concurrent producers append a few events each and wait for durability (like
  HTTP requests answered only after `wait_durable`), which shows the group commit.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from benchmarks import workload
from collector.journal import Journal, QueueConfig
from collector.journal.codec import encode_events
from collector.queue import MemoryQueue
from core.events import DATASET, RECEIVED_AT, SOURCE, TENANT, Event
from parsers.syslog.parser import parse_syslog

TENANTS = ("acme", "globex", "initech", "umbrella")
POLICIES: dict[str, Any] = {"always": "always", "interval_10ms": {"interval_ms": 10},
                            "never": "never"}


def make_events(n: int, seed: int) -> list[Event]:
    received = datetime(2024, 5, 14, 9, 12, 0, tzinfo=UTC)
    events = []
    for i, line in enumerate(workload.syslog_lines(n, seed=seed)):
        event = parse_syslog(line, received_at=received)
        event[TENANT] = TENANTS[i % len(TENANTS)]
        event[SOURCE] = "syslog_tcp"
        event[DATASET] = "syslog"
        event[RECEIVED_AT] = received
        events.append(event)
    return events


async def stream(queue: Any, events: list[Event], append_batch: int, read_batch: int
                 ) -> float:
    """Seconds from the first append until every event is acknowledged."""
    total = len(events)
    done = asyncio.Event()
    acked = 0

    async def worker() -> None:
        nonlocal acked
        while acked < total:
            batch = await queue.read(read_batch)
            assert batch is not None
            queue.ack(batch.partition, batch.last_offset)
            acked += len(batch)
        done.set()

    started = time.perf_counter()
    task = asyncio.create_task(worker())
    per_tenant: dict[str, list[Event]] = {t: [] for t in TENANTS}
    for start in range(0, total, append_batch):
        for event in events[start:start + append_batch]:
            per_tenant[event[TENANT]].append(event)
        for tenant, bucket in per_tenant.items():
            if bucket:
                queue.append(tenant, bucket)
                per_tenant[tenant] = []
        if queue.over_bound():
            resumed = asyncio.Event()
            queue.add_capacity_listener(resumed.set)
            await resumed.wait()
        else:
            await asyncio.sleep(0)  # a source yields to the loop between reads
    await done.wait()
    await task
    return time.perf_counter() - started


async def deliver(queue: Any, events: list[Event], clients: int, per_request: int) -> float:
    """Seconds for `clients` concurrent producers to get every request durable (and read)."""
    chunks = [events[i:i + per_request] for i in range(0, len(events), per_request)]
    acked = 0

    async def worker() -> None:
        nonlocal acked
        while acked < len(events):
            batch = await queue.read(5000)
            assert batch is not None
            queue.ack(batch.partition, batch.last_offset)
            acked += len(batch)

    async def client(mine: list[list[Event]]) -> None:
        for chunk in mine:
            tenant = chunk[0][TENANT]
            offset = queue.append(tenant, chunk)
            await queue.wait_durable(tenant, offset)

    started = time.perf_counter()
    reader = asyncio.create_task(worker())
    await asyncio.gather(*(client(chunks[i::clients]) for i in range(clients)))
    await reader
    return time.perf_counter() - started


def open_journal(directory: Path, policy: Any) -> Journal:
    return Journal(directory, QueueConfig(fsync=policy, max_events=200_000), max_events=200_000)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    events = make_events(args.events, args.seed)
    encoded = len(encode_events(events))
    fields = sum(len(e) for e in events) / len(events)
    message = sum(len(e.get("message", "")) for e in events) / len(events)
    results: dict[str, Any] = {}
    root = Path(tempfile.mkdtemp(prefix="bench-journal-", dir=args.dir))

    def record(name: str, seconds: float, disk: int | None) -> None:
        results[name] = {"events_per_s": round(len(events) / seconds),
                         "mb_per_s": round((disk if disk is not None else encoded) / seconds / 1e6,
                                           1),
                         "seconds": round(seconds, 3)}
        print(f"{name:<28} {len(events) / seconds:>10,.0f} events/s "
              f"{results[name]['mb_per_s']:>7} MB/s", file=sys.stderr)

    memory = MemoryQueue(200_000)
    record("stream/memory", await stream(memory, [dict(e) for e in events], args.append_batch,
                                         5000), None)
    for name, policy in POLICIES.items():
        journal = open_journal(root / f"stream-{name}", policy)
        seconds = await stream(journal, [dict(e) for e in events], args.append_batch, 5000)
        appended = int(journal.telemetry.total("vigil_journal_appended_bytes_total"))
        rounds = journal.fsync_rounds
        await journal.aclose()
        record(f"stream/{name}", seconds, appended)
        results[f"stream/{name}"]["fsync_rounds"] = rounds
    subset = events[:args.deliver_events]
    memory = MemoryQueue(200_000)
    seconds = await deliver(memory, [dict(e) for e in subset], args.clients, args.per_request)
    results["deliver/memory"] = {"events_per_s": round(len(subset) / seconds)}
    for name, policy in POLICIES.items():
        journal = open_journal(root / f"deliver-{name}", policy)
        seconds = await deliver(journal, [dict(e) for e in subset], args.clients,
                                args.per_request)
        results[f"deliver/{name}"] = {
            "events_per_s": round(len(subset) / seconds),
            "requests_per_s": round(len(subset) / args.per_request / seconds),
            "fsync_rounds": journal.fsync_rounds,
            "fsync_avg_ms": round(journal.fsync_seconds_total * 1000
                                  / max(journal.fsync_rounds, 1), 3)}
        await journal.aclose()
        print(f"deliver/{name:<20} {results[f'deliver/{name}']}", file=sys.stderr)
    shutil.rmtree(root, ignore_errors=True)
    return {"benchmark": "journal", "events": len(events), "seed": args.seed,
            "avg_fields": round(fields, 1), "avg_message_bytes": round(message),
            "encoded_bytes_per_event": round(encoded / len(events)),
            "append_batch": args.append_batch, "deliver": {
                "events": len(subset), "clients": args.clients,
                "events_per_request": args.per_request},
            "directory": str(args.dir or tempfile.gettempdir()), "results": results}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=workload.DEFAULT_SEED)
    parser.add_argument("--append-batch", type=int, default=100,
                        help="events per producer turn, split across tenants")
    parser.add_argument("--deliver-events", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--per-request", type=int, default=10)
    parser.add_argument("--dir", default=None, help="where the journals go (default: a tmp dir)")
    args = parser.parse_args(argv)
    import uvloop

    result = uvloop.run(run(args))
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
