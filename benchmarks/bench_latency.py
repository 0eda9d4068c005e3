"""Alert latency on the full path: event received -> alert in the store, at a fixed rate.

The benchmark workload goes over one TCP connection at a fixed rate (by default half the
full path's measured maximum) with a probe line interleaved every 1/`probes_per_second` s: an
sshd line carrying a unique marker that the probe rule (`full_path.LATENCY_RULE`, one alert per
distinct message) turns into an alert. The send time of each probe is the wall clock just
before its chunk is handed to the kernel; the alert's time is its `created_at` in the alert
store, read-only after sending stops. `python -m benchmarks.bench_latency --rate N`; the last
line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from benchmarks import workload
from benchmarks.bench_e2e import BenchmarkError
from benchmarks.full_path import (
    LATENCY_MARKER,
    LATENCY_RULE,
    full_config,
    syslog_tcp_source,
    write_full_conf,
)
from benchmarks.harness import tree_cpu_seconds, wait_until
from tests.support.daemon import VigilProcess, write_conf

DEFAULT_RATE = 5000
DEFAULT_SECONDS = 20.0
DEFAULT_PROBES_PER_SECOND = 10
TICK = 0.01  # the sender hands the kernel one chunk per tick
ALERT_WAIT = 60.0  # after sending stops, how long the last probes' alerts may take
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_PROBE = re.compile(re.escape(LATENCY_MARKER) + r"(\w+)")

Say = Callable[[str], None]


def probe_line(name: str, now: datetime) -> bytes:
    """An sshd line with the probe marker `name`, stamped `now` (RFC 3164)."""
    stamp = f"{_MONTHS[now.month - 1]} {now.day:2d} {now:%H:%M:%S}"
    return (f"<38>{stamp} bench-latency sshd[4242]: {LATENCY_MARKER}{name} probe "
            "from the latency benchmark").encode()


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (`share` in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def latency_summary(sent: dict[str, float], stored: dict[str, float]) -> dict[str, Any]:
    """Per-probe delay (stored - sent, seconds). A probe with no alert counts as infinitely
    late, so the p99 is null when more than 1 % of them are missing."""
    delays = [stored[name] - at if name in stored else math.inf for name, at in sent.items()]
    if not delays:
        return {"alert_latency_p50_seconds": None, "alert_latency_p99_seconds": None,
                "alert_latency_max_seconds": None, "alert_latency_probes": 0,
                "alert_latency_missing": 0}

    def finite(value: float) -> float | None:
        return round(value, 4) if math.isfinite(value) else None

    return {"alert_latency_p50_seconds": finite(percentile(delays, 0.5)),
            "alert_latency_p99_seconds": finite(percentile(delays, 0.99)),
            "alert_latency_max_seconds": finite(max(delays)),
            "alert_latency_probes": len(delays),
            "alert_latency_missing": sum(1 for d in delays if not math.isfinite(d))}


def stored_probes(data_dir: Path) -> dict[str, float]:
    """Probe name -> the alert's created_at (Unix time), read-only from the alert store."""
    path = data_dir / "alerts.db"
    if not path.exists():
        return {}
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        rows = con.execute("SELECT group_key, created_at FROM alerts WHERE rule_id = ?",
                           [LATENCY_RULE["id"]]).fetchall()
    except sqlite3.OperationalError:  # the schema is being created
        return {}
    finally:
        con.close()
    found: dict[str, float] = {}
    for group_key, created_at in rows:
        match = _PROBE.search(group_key)
        if match:
            found[match.group(1)] = datetime.fromisoformat(created_at).timestamp()
    return found


def send_paced(address: tuple[str, int], lines: Sequence[bytes], rate: float,
               probes_per_second: float) -> tuple[dict[str, float], float]:
    """Send `lines` at `rate` lines/s with a probe every 1/`probes_per_second` s; returns probe
    name -> send time (Unix) and the seconds sending took."""
    per_tick = rate * TICK
    probe_every = max(1, round(1 / (probes_per_second * TICK)))
    sent: dict[str, float] = {}
    ticks = math.ceil(len(lines) / per_tick)
    with socket.create_connection(address, timeout=300) as sock:
        started = time.monotonic()
        for tick in range(ticks):
            due = started + tick * TICK
            ahead = due - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            chunk = list(lines[round(tick * per_tick):round((tick + 1) * per_tick)])
            if tick % probe_every == 0:
                name = f"{tick // probe_every:06d}"
                now = time.time()
                chunk.insert(len(chunk) // 2, probe_line(name, datetime.fromtimestamp(now, UTC)))
                sent[name] = now
            sock.sendall(b"".join(line + b"\n" for line in chunk))
        elapsed = time.monotonic() - started
        sock.shutdown(socket.SHUT_WR)
    return sent, elapsed


def run(rules: list[Path], rate: float = DEFAULT_RATE, seconds: float = DEFAULT_SECONDS, *,
        probes_per_second: float = DEFAULT_PROBES_PER_SECOND, seed: int = workload.DEFAULT_SEED,
        say: Say | None = None) -> dict[str, Any]:
    """One daemon on the full path plus the probe rule; returns the `alert_latency_*` keys."""
    report = say or (lambda text: print(text, file=sys.stderr, flush=True))
    lines = workload.syslog_lines(max(1, int(rate * seconds)), seed)
    with tempfile.TemporaryDirectory(prefix="vigil-bench-latency-") as tmp:
        root = Path(tmp)
        write_full_conf(root / "conf.d", rules, latency_rule=True)
        write_conf(root / "conf.d", full_config({"syslog_tcp": syslog_tcp_source()},
                                                latency_rule=True))
        daemon = VigilProcess(root / "conf.d", root / "data")
        try:
            daemon.start(timeout=300)
            assert daemon.proc is not None
            address = daemon.source_address("syslog_tcp")
            # A first probe shows the rule is active before the clock starts.
            with socket.create_connection(address) as sock:
                sock.sendall(probe_line("warmup", datetime.now(UTC)) + b"\n")
            wait_until(lambda: "warmup" in stored_probes(root / "data"), 120,
                       "the warm-up probe's alert", interval=0.1)
            cpu_before = tree_cpu_seconds(daemon.proc.pid)
            sent, elapsed = send_paced(address, lines, rate, probes_per_second)
            deadline = time.monotonic() + ALERT_WAIT
            while time.monotonic() < deadline:
                if set(sent) <= stored_probes(root / "data").keys():
                    break
                time.sleep(0.2)
            cpu = tree_cpu_seconds(daemon.proc.pid) - cpu_before
            stored = stored_probes(root / "data")
            exit_code = daemon.stop()
        except BaseException:
            daemon.kill()
            if daemon.log_lines:
                sys.stderr.write("daemon log (tail):\n" + "\n".join(daemon.log_lines[-40:])
                                 + "\n")
            raise
    if exit_code != 0:
        raise BenchmarkError(f"latency: the daemon exited with {exit_code} after SIGTERM")
    summary = latency_summary(sent, stored)
    offered = len(lines) / elapsed
    report(f"alert latency at {rate:,.0f} events/s (sent at {offered:,.0f}/s): p50 "
           f"{summary['alert_latency_p50_seconds']}s, p99 {summary['alert_latency_p99_seconds']}s"
           f", {summary['alert_latency_missing']} of {summary['alert_latency_probes']} probes "
           "without an alert")
    return {**summary, "alert_latency_rate": round(rate, 1),
            "alert_latency_sent_per_second": round(offered, 1),
            "alert_latency_seconds": round(elapsed, 2),
            "alert_latency_cpu_seconds_per_event": float(f"{cpu / len(lines):.4g}")}


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.bench_full import choose_rules

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_latency",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rate", type=float,
                        default=float(os.environ.get("BENCH_LATENCY_RATE", DEFAULT_RATE)),
                        help="events per second (env BENCH_LATENCY_RATE; default %(default)s)")
    parser.add_argument("--seconds", type=float,
                        default=float(os.environ.get("BENCH_LATENCY_SECONDS", DEFAULT_SECONDS)))
    parser.add_argument("--probes-per-second", type=float, default=DEFAULT_PROBES_PER_SECOND)
    parser.add_argument("--sigma-rules", type=int, default=1000)
    args = parser.parse_args(argv)
    try:
        result = run(choose_rules(args.sigma_rules), args.rate, args.seconds,
                     probes_per_second=args.probes_per_second)
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
