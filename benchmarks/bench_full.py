"""Full-path benchmark: the shipped conf.d pipelines, geo-IP, the built-in rules plus 1,000
SigmaHQ rules and the lake, over TCP syslog next to syslog-ng parsing the same bodies, then with
one and two worker processes, then JSON lines over HTTP.

Each run starts the real daemon (a subprocess) on a conf.d built by `benchmarks.full_path` and
is timed from the first byte sent until the last event is in the lake (alerts excluded). CPU is
that of the daemon's process tree. `python -m benchmarks.bench_full`; the last line printed is
one JSON object.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from benchmarks import workload
from benchmarks.bench_e2e import BenchmarkError
from benchmarks.bench_ingest import send_http
from benchmarks.full_path import (
    DEMO_TOKEN,
    SIGMA_RULE_DIR,
    full_config,
    http_source,
    rules_digest,
    select_sigma_rules,
    syslog_tcp_source,
    write_full_conf,
)
from benchmarks.harness import (
    FileLineCounter,
    Measurement,
    SendResult,
    VigilRun,
    measure,
    run_vigil,
    send_tcp,
    split_streams,
)
from benchmarks.peers.syslog_ng import FULL_CONFIG_TEMPLATE, SyslogNg, find_syslog_ng
from tests.support.daemon import REPO, basic_config, write_conf

DEFAULT_EVENTS = 200_000
DEFAULT_CONNECTIONS = 4
HTTP_BATCH_LINES = 1000
# Rule loading at start-up runs before the clock starts, but on a busy machine it takes long.
START_TIMEOUT = 300.0
# Datasets detection writes into the lake next to the events; not counted as events.
NOT_EVENTS = ("alerts",)

Say = Callable[[str], None]


def _timeout(events: int) -> float:
    return 120.0 + events / 500


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise BenchmarkError(message)


def workers_unsupported(workdir: Path) -> str | None:
    """Why `vigil.workers` cannot be set (the reason `vigil validate` gives), or None when the
    daemon accepts it."""
    conf = workdir / "workers-probe"
    config = basic_config()
    config["vigil"]["workers"] = 1
    write_conf(conf, config)
    proc = subprocess.run([sys.executable, "-m", "collector.cli", "validate", "-c", str(conf)],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode == 0:
        return None
    detail = [line.split(": ", 1)[-1] for line in (proc.stdout + proc.stderr).splitlines()
              if "workers" in line]
    return ("`vigil validate` refuses vigil.workers: "
            + (detail[0] if detail else f"exit code {proc.returncode}"))


def run_full_vigil(workdir: Path, rules: list[Path], events: int,
                   send: Callable[[tuple[str, int]], SendResult], source_id: str,
                   source: dict[str, Any], *, workers: int | None = None,
                   payload_bytes: int | None = None, split_tenants: bool = False) -> VigilRun:
    """One measured run of the daemon on the full-path conf.d with `source` as `source_id`."""
    write_full_conf(workdir / "conf.d", rules)
    config = full_config({source_id: source}, workers=workers, split_tenants=split_tenants)
    run = run_vigil(config, workdir, events, send,
                    timeout=_timeout(events), source_id=source_id, start_timeout=START_TIMEOUT,
                    exclude_datasets=NOT_EVENTS)
    what = f"vigil ({source_id}, workers={workers or 'default'})"
    if payload_bytes is not None:
        _check(run.measurement.bytes_sent == payload_bytes,
               f"{what}: sent {run.measurement.bytes_sent} of {payload_bytes} bytes")
        _check(run.received_bytes == payload_bytes,
               f"{what}: received {run.received_bytes} bytes, {payload_bytes} were sent")
    _check(run.received_events == events,
           f"{what}: source counted {run.received_events} events, {events} were sent")
    _check(run.exit_code == 0, f"{what}: exited with {run.exit_code} after SIGTERM")
    _check(run.lake_rows == events,
           f"{what}: the lake holds {run.lake_rows} event rows after stopping, {events} were sent")
    return run


def run_full_syslog_ng(workdir: Path, streams: Sequence[bytes], events: int
                       ) -> tuple[Measurement, str]:
    """syslog-ng with benchmarks/peers/syslog-ng-full.conf on the same streams."""
    peer = SyslogNg(workdir, template=FULL_CONFIG_TEMPLATE)
    try:
        peer.start()
        counter = FileLineCounter(peer.output)
        measurement = measure(peer.pid, lambda: send_tcp(peer.address, streams), events,
                              counter.count, _timeout(events), "syslog-ng's output file",
                              tree=True)
        processed = peer.processed()
        exit_code = peer.stop()
    except BaseException:
        peer.kill()
        sys.stderr.write("syslog-ng stderr (tail):\n" + peer.stderr() + "\n")
        raise
    _check(processed in (None, events),
           f"syslog-ng (full): source counted {processed} messages, {events} were sent")
    _check(exit_code == 0, f"syslog-ng (full): exited with {exit_code} after SIGTERM")
    lines = peer.output.read_bytes().splitlines()
    _check(len(lines) == events,
           f"syslog-ng (full): output holds {len(lines)} lines, {events} were sent")
    # sshd, FortiGate and nginx bodies (85 % of the mix) all give a source field.
    parsed = sum(1 for line in lines if b'"source":' in line)
    _check(parsed >= events // 2,
           f"syslog-ng (full): only {parsed} of {events} lines have parsed body fields")
    return measurement, peer.version()


def describe(name: str, m: Measurement) -> str:
    return (f"{name}: {m.events_per_second:,.0f} events/s ({m.seconds:.2f}s), "
            f"{m.cpu_seconds_per_event * 1e6:.1f} CPU us/event, peak RSS {m.peak_rss_mb:.0f} MiB")


def _per_event(m: Measurement) -> float:
    return float(f"{m.cpu_seconds_per_event:.4g}")


def _rate(m: Measurement | None) -> float | None:
    return round(m.events_per_second, 1) if m else None


def tcp_streams(events: int, seed: int, connections: int) -> tuple[list[bytes], int]:
    """The workload cut into one newline-framed stream per connection, and its size."""
    streams = split_streams(workload.syslog_lines(events, seed), connections,
                            workload.newline_framed)
    return streams, sum(len(s) for s in streams)


def run(events: int = DEFAULT_EVENTS, *, seed: int = workload.DEFAULT_SEED,
        connections: int = DEFAULT_CONNECTIONS, sigma_rules: int = 1000, syslog_ng: bool = True,
        scaling: bool = True, http: bool = True, say: Say | None = None,
        rules: list[Path] | None = None) -> dict[str, Any]:
    """The full path over TCP beside syslog-ng (`full_*` keys), then `scaling_*` and
    `http_json_*` unless turned off."""
    report = say or (lambda text: print(text, file=sys.stderr, flush=True))
    if rules is None:
        began = time.monotonic()
        rules = choose_rules(sigma_rules)
        report(f"full path: {len(rules)} SigmaHQ rules chosen in "
               f"{time.monotonic() - began:.1f}s")
    streams, payload = tcp_streams(events, seed, connections)
    report(f"full path: {events} events, {payload / 1e6:.1f} MB, {connections} TCP connections")
    result: dict[str, Any] = {
        "full_events": events, "full_connections": connections,
        "full_sigma_rules": len(rules), "full_sigma_rules_sha256": rules_digest(rules),
    }
    with tempfile.TemporaryDirectory(prefix="vigil-bench-full-") as tmp:
        root = Path(tmp)
        vigil = run_full_vigil(root / "vigil", rules, events,
                               lambda address: send_tcp(address, streams), "syslog_tcp",
                               syslog_tcp_source(), payload_bytes=payload)
        report(describe("full path vigil", vigil.measurement)
               + f", {vigil.lake_files} lake files")
        peer, version = None, None
        if syslog_ng and find_syslog_ng() is not None:
            peer, version = run_full_syslog_ng(root / "syslog-ng", streams, events)
            report(describe(f"full path syslog-ng {version}", peer))
        elif syslog_ng:
            report("full path syslog-ng: not installed; skipped")
        m = vigil.measurement
        result.update({
            "full_vigil_events_per_second": _rate(m),
            "full_cpu_seconds_per_event": _per_event(m),
            "full_vigil_peak_rss_mb": round(m.peak_rss_mb, 1),
            "full_vigil_seconds": round(m.seconds, 3),
            "full_vigil_parse_errors": vigil.parse_errors,
            "full_syslog_ng_version": version,
            "full_syslog_ng_events_per_second": _rate(peer),
            "full_syslog_ng_cpu_seconds_per_event": _per_event(peer) if peer else None,
            "full_syslog_ng_peak_rss_mb": round(peer.peak_rss_mb, 1) if peer else None,
            "full_ratio_vs_syslog_ng": (round(m.events_per_second / peer.events_per_second, 4)
                                        if peer else None),
        })
        report(f"full path ratio vigil/syslog-ng: {result['full_ratio_vs_syslog_ng']}")
        if scaling:
            result.update(run_scaling(root, rules, streams, events, payload, report))
    if http:
        result.update(http_json(rules, events, seed=seed, connections=connections, say=report))
    return result


def scaling_section(rules: list[Path], events: int, *, seed: int = workload.DEFAULT_SEED,
                    connections: int = DEFAULT_CONNECTIONS, say: Say) -> dict[str, Any]:
    """`run_scaling` on its own (the suite runs it as a section of its own)."""
    streams, payload = tcp_streams(events, seed, connections)
    with tempfile.TemporaryDirectory(prefix="vigil-bench-scaling-") as tmp:
        return run_scaling(Path(tmp), rules, streams, events, payload, say)


def http_json(rules: list[Path], events: int, *, seed: int = workload.DEFAULT_SEED,
              connections: int = DEFAULT_CONNECTIONS, say: Say) -> dict[str, Any]:
    """`run_http` in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="vigil-bench-http-") as tmp:
        return run_http(Path(tmp), rules, events, seed, connections, say)


def run_scaling(root: Path, rules: list[Path], streams: Sequence[bytes], events: int,
                payload: int, report: Say) -> dict[str, Any]:
    """The full path with `vigil.workers: 1` and `2`, the events split between two tenants
    (workers own tenants); null with a reason if the key is refused."""
    reason = workers_unsupported(root)
    if reason is not None:
        report(f"scaling: skipped ({reason})")
        return {"scaling_2_vs_1_workers": None, "scaling_1_worker_events_per_second": None,
                "scaling_2_workers_events_per_second": None, "scaling_reason": reason}
    rates: dict[int, Measurement] = {}
    for workers in (1, 2):
        run = run_full_vigil(root / f"workers-{workers}", rules, events,
                             lambda address: send_tcp(address, streams), "syslog_tcp",
                             syslog_tcp_source(), workers=workers, payload_bytes=payload,
                             split_tenants=True)
        rates[workers] = run.measurement
        report(describe(f"full path vigil workers={workers}", run.measurement))
    ratio = round(rates[2].events_per_second / rates[1].events_per_second, 4)
    report(f"scaling 2 vs 1 workers: {ratio}")
    return {"scaling_2_vs_1_workers": ratio,
            "scaling_1_worker_events_per_second": _rate(rates[1]),
            "scaling_2_workers_events_per_second": _rate(rates[2]),
            "scaling_1_worker_cpu_seconds_per_event": _per_event(rates[1]),
            "scaling_2_workers_cpu_seconds_per_event": _per_event(rates[2])}


def http_bodies(events: int, seed: int, batch: int = HTTP_BATCH_LINES) -> list[bytes]:
    """The workload as JSON lines, cut into NDJSON bodies of `batch` lines."""
    lines = workload.json_lines(events, seed)
    return [workload.newline_framed(lines[i:i + batch]) for i in range(0, len(lines), batch)]


def run_http(workdir: Path, rules: list[Path], events: int, seed: int, connections: int,
             report: Say) -> dict[str, Any]:
    """NDJSON batches to the HTTP source (dataset json, the demo token), full path."""
    bodies = http_bodies(events, seed)
    run = run_full_vigil(workdir, rules, events,
                         lambda address: send_http(address, bodies, connections, DEMO_TOKEN),
                         "http", http_source())
    report(describe("full path vigil HTTP NDJSON", run.measurement))
    return {"http_json_events_per_second": _rate(run.measurement),
            "http_json_cpu_seconds_per_event": _per_event(run.measurement),
            "http_json_batch_lines": HTTP_BATCH_LINES, "http_json_connections": connections}


def choose_rules(count: int) -> list[Path]:
    """`select_sigma_rules` with the loader's per-rule warnings silenced."""
    if not SIGMA_RULE_DIR.is_dir():
        raise BenchmarkError(f"no SigmaHQ rules under {SIGMA_RULE_DIR}")
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        return select_sigma_rules(count)
    finally:
        logging.disable(previous)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_full",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int,
                        default=int(os.environ.get("BENCH_FULL_EVENTS", DEFAULT_EVENTS)),
                        help="events per run (env BENCH_FULL_EVENTS; default %(default)s)")
    parser.add_argument("--connections", type=int, default=DEFAULT_CONNECTIONS)
    parser.add_argument("--seed", type=int, default=workload.DEFAULT_SEED)
    parser.add_argument("--sigma-rules", type=int, default=1000)
    parser.add_argument("--no-syslog-ng", dest="syslog_ng", action="store_false")
    parser.add_argument("--no-scaling", dest="scaling", action="store_false")
    parser.add_argument("--no-http", dest="http", action="store_false")
    args = parser.parse_args(argv)
    try:
        result = run(args.events, seed=args.seed, connections=args.connections,
                     sigma_rules=args.sigma_rules, syslog_ng=args.syslog_ng,
                     scaling=args.scaling, http=args.http)
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
