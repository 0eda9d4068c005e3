"""`make bench`: every throughput figure of issue 15 in one invocation, Vigil beside syslog-ng.

Sections in order: the bare path (`bench_e2e`), the full path with its syslog-ng peer, scaling
over worker processes and JSON lines over HTTP (`bench_full`), alert latency at half the full
path's rate (`bench_latency`), then the lake's compression and the rule start-up time from
`bench_lake.measure_lake_compression` and `bench_rules.measure_rules_startup` when those exist.
Progress goes to stderr; the last line on stdout is one JSON object with every key of
`SUMMARY_KEYS` (null, with a `<key>_reason` or `<section>_error`, when a figure could not be
had). Exits 1 when a section failed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from benchmarks import bench_e2e, bench_full, bench_latency

# The figures issue 15 asks for; each is in the output, null when it could not be measured.
SUMMARY_KEYS = (
    "vigil_events_per_second", "ratio_vs_syslog_ng", "vigil_cpu_seconds_per_event",
    "vigil_peak_rss_mb", "syslog_ng_events_per_second", "syslog_ng_cpu_seconds_per_event",
    "syslog_ng_peak_rss_mb",
    "full_vigil_events_per_second", "full_syslog_ng_events_per_second", "full_ratio_vs_syslog_ng",
    "full_cpu_seconds_per_event", "full_syslog_ng_cpu_seconds_per_event",
    "scaling_2_vs_1_workers", "http_json_events_per_second", "alert_latency_p99_seconds",
    "lake_compression_ratio", "rules_startup_seconds",
)
SECTIONS = ("bare", "full", "scaling", "http", "latency", "lake", "rules")
# Measurements other helpers provide: (module, function, the key its dict must hold).
EXTERNAL = {
    "lake": ("benchmarks.bench_lake", "measure_lake_compression", "lake_compression_ratio"),
    "rules": ("benchmarks.bench_rules", "measure_rules_startup", "rules_startup_seconds"),
}

Say = Callable[[str], None]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def external_measure(module: str, function: str, key: str) -> dict[str, Any]:
    """Call `module.function()` and return its dict under its own name plus `key` at the top;
    `key: None` and `<key>_reason` when the module or function does not exist yet, or fails."""
    try:
        imported = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return {key: None, f"{key}_reason": f"{module} does not exist yet"}
    measure = getattr(imported, function, None)
    if not callable(measure):
        return {key: None, f"{key}_reason": f"{module}.{function} does not exist yet"}
    try:
        figures = measure()
    except Exception as exc:  # noqa: BLE001 - one failed figure must not lose the others
        return {key: None, f"{key}_reason": f"{module}.{function} failed: {exc!r}"}
    if not isinstance(figures, dict) or key not in figures:
        reason = f"{module}.{function} returned no {key!r}"
        errors = [str(v) for k, v in (figures.items() if isinstance(figures, dict) else ())
                  if k.endswith(("_error", "_reason"))]
        return {key: None, f"{key}_reason": "; ".join([reason, *errors])}
    return {key: figures[key], function: figures}


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """`results` with every key of SUMMARY_KEYS present (None where no section set it)."""
    return {**{key: None for key in SUMMARY_KEYS}, **results}


def _section(name: str, skip: set[str], results: dict[str, Any], run: Callable[[], dict[str, Any]]
             ) -> bool:
    """Run one section into `results`; False when it failed (the error is recorded)."""
    if name in skip:
        results[f"{name}_skipped"] = True
        return True
    began = time.monotonic()
    say(f"== {name}")
    try:
        with contextlib.redirect_stdout(sys.stderr):  # sections report as they go
            results.update(run())
    except Exception as exc:  # noqa: BLE001 - recorded; the other sections still run
        results[f"{name}_error"] = f"{type(exc).__name__}: {exc}"
        say(f"{name}: failed: {exc}")
        return False
    say(f"{name}: {time.monotonic() - began:.0f}s")
    return True


def run(*, events: int, full_events: int, latency_seconds: float, latency_rate: float | None,
        sigma_rules: int, connections: int, syslog_ng: bool, skip: set[str]
        ) -> tuple[dict[str, Any], bool]:
    """All sections; returns the summary and whether every section that ran succeeded."""
    results: dict[str, Any] = {"benchmark": "suite", "cpus": os.cpu_count()}
    ok = _section("bare", skip, results, lambda: bench_e2e.run(
        events, connections=connections, syslog_ng=syslog_ng))
    rules: list[Path] = []

    def choose_rules() -> dict[str, Any]:
        # Once for every full-path section: it loads all of SigmaHQ (~10 s on a quiet machine).
        rules.extend(bench_full.choose_rules(sigma_rules))
        return {"full_sigma_rules_chosen": len(rules)}

    if {"full", "scaling", "http", "latency"} - skip:
        ok &= _section("sigma rule choice", set(), results, choose_rules)
    def chosen() -> list[Path]:
        if not rules:
            raise bench_e2e.BenchmarkError("no SigmaHQ rules were chosen (see above)")
        return rules

    ok &= _section("full", skip, results, lambda: bench_full.run(
        full_events, connections=connections, syslog_ng=syslog_ng, rules=chosen(),
        scaling=False, http=False, say=say))
    ok &= _section("scaling", skip, results, lambda: bench_full.scaling_section(
        chosen(), full_events, connections=connections, say=say))
    ok &= _section("http", skip, results, lambda: bench_full.http_json(
        chosen(), full_events, connections=connections, say=say))
    rate = latency_rate or (results.get("full_vigil_events_per_second") or 0) / 2 or None
    if rate is None and "latency" not in skip:
        results["alert_latency_p99_seconds_reason"] = (
            "no full-path rate to halve (set BENCH_LATENCY_RATE)")
    else:
        ok &= _section("latency", skip, results, lambda: bench_latency.run(
            chosen(), rate or bench_latency.DEFAULT_RATE, latency_seconds, say=say))
    for name, (module, function, key) in EXTERNAL.items():
        ok &= _section(name, skip, results, functools.partial(external_measure, module,
                                                              function, key))
        if results.get(f"{key}_reason"):
            say(f"{key}: null ({results[f'{key}_reason']})")
    return summary(results), ok


def main(argv: Sequence[str] | None = None) -> int:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_suite",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=int(env("BENCH_EVENTS",
                                                              bench_e2e.DEFAULT_EVENTS)),
                        help="bare-path events (env BENCH_EVENTS; default %(default)s)")
    parser.add_argument("--full-events", type=int, default=None,
                        help="events per full-path run (env BENCH_FULL_EVENTS; default "
                             f"{bench_full.DEFAULT_EVENTS:,} or --events if smaller)")
    parser.add_argument("--latency-seconds", type=float, default=float(
        env("BENCH_LATENCY_SECONDS", bench_latency.DEFAULT_SECONDS)))
    parser.add_argument("--latency-rate", type=float,
                        default=float(env("BENCH_LATENCY_RATE", "0")) or None,
                        help="events/s of the latency run (env BENCH_LATENCY_RATE; default "
                             "half the full path's measured rate)")
    parser.add_argument("--sigma-rules", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=bench_e2e.DEFAULT_CONNECTIONS)
    parser.add_argument("--no-syslog-ng", dest="syslog_ng", action="store_false")
    parser.add_argument("--skip", default=env("BENCH_SKIP", ""),
                        help=f"comma-separated sections to leave out: {', '.join(SECTIONS)} "
                             "(env BENCH_SKIP)")
    args = parser.parse_args(argv)
    skip = {name.strip() for name in args.skip.split(",") if name.strip()}
    unknown = skip - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; known: {', '.join(SECTIONS)}")
    full_events = args.full_events or int(env("BENCH_FULL_EVENTS", "0")) or min(
        bench_full.DEFAULT_EVENTS, args.events)
    result, ok = run(events=args.events, full_events=full_events,
                     latency_seconds=args.latency_seconds, latency_rate=args.latency_rate,
                     sigma_rules=args.sigma_rules, connections=args.connections,
                     syslog_ng=args.syslog_ng, skip=skip)
    print(orjson.dumps(result).decode())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
