"""Durability benchmarks: the queue kinds side by side, and a flooding tenant next to a quiet one.

1. The same TCP syslog workload into the lake with the in-memory queue and with the journal
   under each fsync policy (always, every 50 ms, never): events/s, CPU per event, peak RSS.
2. Fairness: tenant `flood` sends as fast as it can on one listener while tenant `quiet` sends a
   steady trickle (about a tenth of the flood's rate) on another; the quiet tenant's latency
   from send to its row being committed in the lake (the Parquet file's mtime minus the send
   time written in the line) is compared with the quiet tenant alone.

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import orjson

from benchmarks import workload
from benchmarks.harness import run_vigil, send_tcp, split_streams
from tests.support.daemon import VigilProcess, basic_config, lake_count, wait_for, write_conf

QUEUES: dict[str, dict[str, Any]] = {
    "memory": {"type": "memory"},
    "journal_fsync_always": {"type": "journal", "fsync": "always"},
    "journal_fsync_50ms": {"type": "journal", "fsync": {"interval_ms": 50}},
    "journal_fsync_never": {"type": "journal", "fsync": "never"},
}


def queue_config(queue: dict[str, Any]) -> dict[str, Any]:
    config = basic_config(tenant="bench")
    config["vigil"]["queue"] = queue
    config["sinks"]["lake"]["flush"] = {"max_rows": 100_000, "max_seconds": 1.0}
    return config


def bench_queues(events: int, workdir: Path) -> dict[str, Any]:
    lines = workload.syslog_lines(events)
    streams = split_streams(lines, 4, lambda chunk: b"".join(line + b"\n" for line in chunk))
    out = {}
    for name, queue in QUEUES.items():
        run = run_vigil(queue_config(queue), workdir / name, events,
                        lambda address: send_tcp(address, streams), timeout=60 + events / 1000)
        if run.lake_rows != events:
            raise SystemExit(f"{name}: {run.lake_rows} rows in the lake, expected {events}")
        out[name] = {"events_per_second": round(run.measurement.events_per_second, 1),
                     "cpu_seconds_per_event": round(run.measurement.cpu_seconds_per_event, 9),
                     "peak_rss_mb": round(run.measurement.peak_rss_mb, 1)}
        print(name, out[name], file=sys.stderr)
    return out


def fairness_config() -> dict[str, Any]:
    config = basic_config(tenant="flood", flush_seconds=0.5)
    config["tenants"]["quiet"] = {"name": "Quiet"}
    config["sources"]["quiet_tcp"] = {"type": "syslog_tcp", "address": "127.0.0.1:0",
                                      "tenant": "quiet"}
    config["vigil"]["queue"] = {"type": "journal", "fsync": {"interval_ms": 50},
                                "max_events": 100_000}
    config["vigil"]["limits"] = {"batch_max_events": 2000}
    return config


class Sender(threading.Thread):
    """Sends lines carrying their send time; `rate` None sends as fast as the socket takes."""

    def __init__(self, address: tuple[str, int], name: str, rate: float | None,
                 seconds: float) -> None:
        super().__init__(daemon=True)
        self.address, self.name, self.rate, self.seconds = address, name, rate, seconds
        self.sent = 0

    def run(self) -> None:
        with socket.create_connection(self.address) as sock:
            start = time.monotonic()
            while (now := time.monotonic()) - start < self.seconds:
                if self.rate is not None and self.sent >= (now - start) * self.rate:
                    time.sleep(0.002)
                    continue
                chunk = b"".join(f"<13>Nov 23 10:00:00 h load: {self.name} {self.sent + i} "
                                 f"{time.time():.6f} {'x' * 120}\n".encode() for i in range(50))
                sock.sendall(chunk)
                self.sent += 50


def quiet_latencies(data: Path) -> list[float]:
    """Per quiet row: its file's commit time minus the send time in its message (seconds)."""
    out = []
    for path in (data / "lake").glob("syslog/tenant=quiet/**/*.parquet"):
        committed = path.stat().st_mtime
        rows = duckdb.sql(f"SELECT message FROM read_parquet('{path}')").fetchall()
        out.extend(committed - float(message.split()[2]) for (message,) in rows)
    return out


def bench_fairness(workdir: Path, seconds: float, quiet_rate: float) -> dict[str, Any]:
    results = {}
    for case, flood in (("quiet_alone", False), ("quiet_beside_flood", True)):
        conf, data = workdir / case / "conf.d", workdir / case / "data"
        write_conf(conf, fairness_config())
        daemon = VigilProcess(conf, data).start()
        try:
            quiet = Sender(daemon.source_address("quiet_tcp"), "quiet", quiet_rate, seconds)
            senders = [quiet]
            if flood:
                senders.append(Sender(daemon.source_address("syslog_tcp"), "flood", None,
                                      seconds))
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join(seconds + 30)
            total = sum(s.sent for s in senders)
            wait_for(lambda data=data, total=total: lake_count(data) >= total, timeout=300,
                     interval=0.2, message="every event in the lake")
            assert daemon.stop() == 0
        finally:
            daemon.kill()
        latencies = sorted(quiet_latencies(data))
        if len(latencies) != quiet.sent:
            raise SystemExit(f"{case}: {len(latencies)} quiet rows, {quiet.sent} sent")
        results[case] = {
            "quiet_events": quiet.sent,
            "flood_events": senders[1].sent if flood else 0,
            "flood_to_quiet_ratio": round(senders[1].sent / quiet.sent, 1) if flood else 0,
            "quiet_latency_p50_s": round(statistics.median(latencies), 3),
            "quiet_latency_p99_s": round(latencies[int(len(latencies) * 0.99) - 1], 3),
            "quiet_latency_max_s": round(latencies[-1], 3),
        }
        print(case, results[case], file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS",
                                                                          200_000)))
    parser.add_argument("--seconds", type=float, default=10.0, help="fairness run length")
    parser.add_argument("--quiet-rate", type=float, default=2_000.0)
    parser.add_argument("--skip-queues", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vigil-bench-durability-") as tmp:
        workdir = Path(tmp)
        report: dict[str, Any] = {"benchmark": "durability", "events": args.events,
                                  "cpus": os.cpu_count()}
        if not args.skip_queues:
            report["queues"] = bench_queues(args.events, workdir)
        report["fairness"] = bench_fairness(workdir, args.seconds, args.quiet_rate)
    print(orjson.dumps(report).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
