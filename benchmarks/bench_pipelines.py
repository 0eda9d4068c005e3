"""Per-step and per-pipeline throughput of the parsing steps, in process on one core.

Steps run on messages of the seeded workload (sshd, FortiGate, nginx, sudo) or on lines
generated here (Palo Alto CSV, CEF, LEEF). Grok runs the same expansions on Python's `re` and on
`regex`, next to pygrok's own matcher. Pipelines come from a conf.d (default: the repo's) and
get the workload's syslog lines parsed and stamped as a source would, in batches through
`PipelineSet.process`. Every figure is the best of several rounds, timed in CPU time of this
process (the machine is shared: wall time would count other processes' turns); still expect
+-15 % between runs. The last line printed is one JSON object.
`python -m benchmarks.bench_pipelines [--events N] [--conf DIR] [--source ID] [--tenant T]
[--only steps|configured]`
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pygrok
import regex

from benchmarks import workload
from collector.config import load_config
from collector.pipeline.runner import DEAD_LETTER_PIPELINE, build_pipelines
from core.config import ValidationContext
from core.events import DEAD_LETTERS, RECEIVED_AT, SOURCE, TENANT, Batch, Event
from core.registry import resolve
from core.step import Step, StepContext, StepFailure
from parsers.grok.expression import GrokError, compile_expression
from parsers.grok.library import bundled_patterns
from parsers.syslog import parse_syslog

REPO = Path(__file__).resolve().parent.parent
DEFAULT_EVENTS = 50_000
ROUNDS = 3
BATCH = 1_000
SEED = 20240514

SSHD_PATTERNS = [
    "Failed password for invalid user %{USERNAME:user.name} from %{IP:source.ip} port "
    "%{INT:source.port:int} %{WORD:network.protocol}",
    "Failed password for %{USERNAME:user.name} from %{IP:source.ip} port "
    "%{INT:source.port:int} %{WORD:network.protocol}",
    "Accepted %{WORD:ssh.method} for %{USERNAME:user.name} from %{IP:source.ip} port "
    "%{INT:source.port:int} %{WORD:network.protocol}(?:: %{WORD:ssh.key_type} "
    "%{NOTSPACE:ssh.fingerprint})?",
    "Invalid user %{USERNAME:user.name} from %{IP:source.ip} port %{INT:source.port:int}",
    r"Connection closed by authenticating user %{USERNAME:user.name} %{IP:source.ip} port "
    r"%{INT:source.port:int} \[preauth\]",
    r"error: maximum authentication attempts exceeded for %{USERNAME:user.name} from "
    r"%{IP:source.ip} port %{INT:source.port:int} %{WORD:network.protocol} \[preauth\]",
]
NGINX_PATTERN = (
    r'%{IPORHOST:source.address} %{HTTPDUSER:user.ident} %{USER:user.name} '
    r'\[%{HTTPDATE:nginx.time}\] "(?:%{WORD:http.request.method} %{NOTSPACE:url.original}'
    r'(?: HTTP/%{NUMBER:http.version})?|%{DATA:nginx.raw_request})" '
    r'%{INT:http.response.status_code:int} (?:%{INT:http.response.body.bytes:int}|-) '
    r'%{QS:http.request.referrer} %{QS:user_agent.original}'
)
SUDO_PATTERNS = [
    r"\s*(?P<user.name>\S+) : (?:(?P<event.reason>[^;]*?) ; )?TTY=(?P<process.tty>\S+) ; "
    r"PWD=(?P<process.working_directory>\S+) ; USER=(?P<user.target.name>\S+) ; "
    r"COMMAND=(?P<process.command_line>.+)",
    r"pam_unix\(sudo:session\): session (?P<event.action>opened|closed) for user "
    r"(?P<user.target.name>[^(\s]+)",
]


def best_rate(run: Callable[[list[Event]], Any], events: Sequence[Event],
              rounds: int = ROUNDS) -> float:
    """Events per second of `run` over fresh copies of `events`, the best of `rounds` (copies
    are made before the clock starts, since steps change events in place)."""
    best = float("inf")
    for _ in range(rounds):
        copies = [dict(e) for e in events]
        start = time.process_time()
        run(copies)
        best = min(best, time.process_time() - start)
    return round(len(events) / best) if best > 0 else 0.0


def apply_all(step: Step) -> Callable[[list[Event]], int]:
    def run(events: list[Event]) -> int:
        failed = 0
        apply = step.apply
        for event in events:
            try:
                apply(event)
            except StepFailure:
                failed += 1
        return failed
    return run


def build_step(config: dict[str, Any], conf_dir: Path = REPO) -> Step:
    cls = resolve("step", config["type"])
    return cls(cls.config_model.model_validate(config), StepContext(conf_dir))  # type: ignore


def step_figures(name: str, config: dict[str, Any], events: Sequence[Event],
                 rounds: int) -> dict[str, Any]:
    step = build_step(config)
    failed = apply_all(step)([dict(e) for e in events])
    return {f"{name}_events_per_second": best_rate(apply_all(step), events, rounds),
            f"{name}_failed_ratio": round(failed / len(events), 4)}


def pygrok_matchers(patterns: list[str]) -> Callable[[list[Event]], int]:
    """pygrok's own matcher: one `Grok` per pattern (its field names allow only \\w, so dots
    become underscores), tried in order like the step does; captures merged into the event."""
    groks = [pygrok.Grok(re.sub(r"(%\{\w+:)([\w.]+)", lambda m: m.group(1) +
                                m.group(2).replace(".", "_"), p)) for p in patterns]

    def run(events: list[Event]) -> int:
        failed = 0
        for event in events:
            for grok in groks:
                found = grok.match(event["message"])
                if found is not None:
                    event.update((k, v) for k, v in found.items() if v)
                    break
            else:
                failed += 1
        return failed
    return run


def bench_grok(messages: dict[str, list[Event]], rounds: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, patterns, events in (("sshd", SSHD_PATTERNS, messages["sshd"]),
                                   ("nginx", [NGINX_PATTERN], messages["nginx"])):
        for engine in ("re", "regex"):
            figures = step_figures(f"grok_{name}_{engine}",
                                   {"type": "grok", "patterns": patterns, "engine": engine},
                                   events, rounds)
            result.update(figures)
        result[f"grok_{name}_pygrok_events_per_second"] = best_rate(
            pygrok_matchers(patterns), events, rounds)
        result[f"grok_{name}_re_vs_pygrok"] = round(
            result[f"grok_{name}_re_events_per_second"] /
            result[f"grok_{name}_pygrok_events_per_second"], 2)
    # What a pattern that fails costs, anchored or not: the nginx pattern on sshd messages.
    library = bundled_patterns()
    nginx = compile_expression(NGINX_PATTERN, library)
    misses = [e["message"] for e in messages["sshd"][:2000]]
    for label, pattern in (("re", nginx.pattern), ("regex", regex.compile(nginx.expanded))):
        for anchor, method in (("start", pattern.match), ("none", pattern.search)):
            best = float("inf")
            for _ in range(rounds):
                start = time.perf_counter()
                for text in misses:
                    method(text)
                best = min(best, time.perf_counter() - start)
            result[f"grok_miss_{label}_{anchor}_us"] = round(best / len(misses) * 1e6, 2)
    return result


def library_engines() -> dict[str, Any]:
    """On which engine each pattern of pygrok's library lands when used alone."""
    counts: Counter[str] = Counter()
    for name in bundled_patterns():
        try:
            counts[compile_expression(f"%{{{name}}}", bundled_patterns()).engine] += 1
        except GrokError:
            counts["error"] += 1
    return {"grok_library_patterns": sum(counts.values()),
            "grok_library_on_re": counts["re"], "grok_library_on_regex": counts["regex"],
            "grok_library_invalid": counts["error"]}


def _public_ip(rng: random.Random) -> str:
    return f"{rng.randrange(1, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"


def palo_alto_lines(rng: random.Random, n: int) -> list[Event]:
    """PAN-OS 10.1 traffic logs (the first 47 fields), addresses, ports and sizes varied."""
    lines = []
    for _ in range(n):
        src, dst = f"10.20.{rng.randrange(256)}.{rng.randrange(1, 255)}", _public_ip(rng)
        sent, received = rng.randrange(60, 90_000), rng.randrange(0, 900_000)
        user = rng.choice(("acme\\jdoe", "", "acme\\svc-backup"))
        app, port = rng.choice((("ssl", 443), ("dns", 53), ("web-browsing", 80)))
        fields = [
            "1", "2024/05/14 09:12:01", "012801096514", "TRAFFIC", "end", "2561",
            "2024/05/14 09:12:01", src, dst, "203.0.113.5", dst, "allow-out", user, "", app,
            "vsys1", "trust", "untrust", "ethernet1/2", "ethernet1/1", "forward-to-siem",
            "2024/05/14 09:12:01", rng.randrange(10**6), 1, rng.randrange(1024, 65535), port,
            rng.randrange(1024, 65535), port, "0x40001c", "tcp", "allow", sent + received, sent,
            received, rng.randrange(2, 900), "2024/05/14 09:11:45", rng.randrange(1, 600),
            "computer-and-internet-info", 0, rng.randrange(10**12), "0x0",
            "10.0.0.0-10.255.255.255", "United States", 0, 11, 11, "tcp-fin"]
        lines.append({"message": ",".join(map(str, fields))})
    return lines


def cef_lines(rng: random.Random, n: int) -> list[Event]:
    return [{"message": (
        f"<134>May 14 09:12:00 dsm01 CEF:0|Trend Micro|Deep Security Agent|10.0.0.3685|20|"
        f"Log for TCP Port {rng.choice((80, 443, 22))}|{rng.randrange(11)}|cn1=1 cn1Label=Host "
        f"ID dvc=10.1.{rng.randrange(256)}.{rng.randrange(256)} act=Log dmac=00:50:56:F5:7F:47 "
        f"smac=00:0C:29:EB:35:DE src=192.168.{rng.randrange(256)}.{rng.randrange(256)} "
        f"dst={_public_ip(rng)} out={rng.randrange(10**6)} "
        f"cs3=DF MF cs3Label=Fragmentation Bits proto=TCP spt={rng.randrange(1024, 65535)} "
        f"dpt=80 cs2=0x00 ACK PSH cs2Label=TCP Flags cnt=1 msg=blocked a \\= in the request")}
        for _ in range(n)]


def leef_lines(rng: random.Random, n: int) -> list[Event]:
    return [{"message": (
        f"<13>May 14 09:12:00 sw01 LEEF:2.0|Lancope|StealthWatch|1.0|41|^|"
        f"src=10.0.{rng.randrange(256)}.{rng.randrange(256)}^dst=10.0.0.5^sev={rng.randrange(11)}"
        f"^srcPort={rng.randrange(1024, 65535)}^dstPort=21^usrName=jdoe^cat=anomaly^"
        f"devTime=May 14 2024 09:12:00")} for _ in range(n)]


def timestamp_values(rng: random.Random, n: int) -> dict[str, list[Event]]:
    base = datetime(2024, 5, 14, 9, 12, tzinfo=UTC)
    times = [base + timedelta(milliseconds=rng.randrange(10**8)) for _ in range(n)]
    return {
        "iso8601": [{"t": t.isoformat(timespec="microseconds")} for t in times],
        "rfc3164": [{"t": f"{t:%b} {t.day:2d} {t:%H:%M:%S}", RECEIVED_AT: base} for t in times],
        "epoch": [{"t": int(t.timestamp() * 1000)} for t in times],
        "httpdate": [{"t": f"{t:%d/%b/%Y:%H:%M:%S} +0000"} for t in times],
        "strptime": [{"t": f"{t:%d/%b/%Y:%H:%M:%S} +0000"} for t in times],
    }


def bench_steps(n: int, rounds: int) -> dict[str, Any]:
    rng = random.Random(SEED)
    # Twice the events so every kind has enough samples; the workload is seeded.
    by_kind: dict[str, list[Event]] = {}
    for item in workload.events(2 * n, seed=SEED):
        by_kind.setdefault(item.kind, []).append({"message": item.message})
    result: dict[str, Any] = {}
    result.update(bench_grok(by_kind, rounds))
    result.update(library_engines())
    result.update(step_figures("kv_fortigate", {"type": "kv"}, by_kind["fortigate"], rounds))
    result.update(step_figures("regex_sudo", {"type": "regex", "patterns": SUDO_PATTERNS},
                               by_kind["sudo"], rounds))
    result.update(step_figures("csv_palo_alto",
                               {"type": "csv", "columns": [f"c{i}" for i in range(47)]},
                               palo_alto_lines(rng, n // 2), rounds))
    result.update(step_figures("cef", {"type": "cef"}, cef_lines(rng, n // 2), rounds))
    result.update(step_figures("leef", {"type": "leef"}, leef_lines(rng, n // 2), rounds))
    formats = {"iso8601": "iso8601", "rfc3164": "rfc3164", "epoch": "epoch",
               "httpdate": "httpdate", "strptime": "%d/%b/%Y:%H:%M:%S %z"}
    for name, events in timestamp_values(rng, n // 2).items():
        result.update(step_figures(f"timestamp_{name}",
                                   {"type": "timestamp", "field": "t",
                                    "formats": [formats[name]], "on_error": "fail"},
                                   events, rounds))
    return result


def bench_configured(conf_dir: Path, source_id: str | None, tenant: str | None, n: int,
                     rounds: int) -> dict[str, Any]:
    """Every configured pipeline on the workload's syslog lines, as a syslog source delivers
    them: events/s per pipeline (on the events it takes) and the share of events each took."""
    config = load_config(conf_dir)
    if source_id is None:
        source_id = next(iter(config.sources), "bench")
    source = config.sources.get(source_id)
    tenant = tenant or (source.tenant if source is not None else None) or \
        next(iter(config.tenants), "bench")
    zone_name = str(getattr(source, "timezone", None) or "UTC")
    zone = UTC if zone_name.upper() == "UTC" else ZoneInfo(zone_name)
    result: dict[str, Any] = {"conf_dir": str(conf_dir), "source": source_id, "tenant": tenant,
                              "pipelines": {}}
    if not config.pipelines:
        result["note"] = "no pipelines configured"
        return result
    with tempfile.TemporaryDirectory(prefix="vigil-bench-pipelines-") as tmp:
        pipelines = build_pipelines(config.pipelines.items(),
                                    ValidationContext(conf_dir.resolve()), data_dir=Path(tmp))
        events: list[Event] = []
        for item in workload.events(n, seed=SEED):
            received = item.timestamp + timedelta(milliseconds=300)
            event = parse_syslog(workload.render_syslog(item), received_at=received, tz=zone)
            event[SOURCE], event[TENANT], event[RECEIVED_AT] = source_id, tenant, received
            events.append(event)
        groups: dict[str | None, list[Event]] = {}
        for event in events:
            chosen = pipelines.select(event)
            groups.setdefault(chosen.id if chosen else None, []).append(event)
        dead: Counter[str] = Counter()
        datasets: Counter[str] = Counter()
        for batch in pipelines.process(Batch(tenant, [dict(e) for e in events], 0, 0)):
            if batch.kind == DEAD_LETTERS:
                dead.update(str(d.get(DEAD_LETTER_PIPELINE)) for d in batch.events)
            else:
                datasets[str(batch.dataset)] += len(batch.events)

        def process(chunk: list[Event]) -> None:
            for start in range(0, len(chunk), BATCH):
                pipelines.process(Batch(tenant, chunk[start:start + BATCH], 0, 0))

        result["all_events_per_second"] = best_rate(process, events, rounds)
        result["all_us_per_event"] = _us(result["all_events_per_second"])
        for pipeline_id, taken in groups.items():
            key = pipeline_id if pipeline_id is not None else "(no pipeline)"
            rate = best_rate(process, taken, rounds)
            result["pipelines"][key] = {
                "share": round(len(taken) / len(events), 4),
                "events_per_second": rate,
                "us_per_event": _us(rate),
                "dead_letters": dead.get(str(pipeline_id), 0),
            }
        result["datasets"] = dict(datasets)
        pipelines.close()
    return result


def _us(rate: float) -> float:
    """Microseconds per event of a rate in events per second."""
    return round(1e6 / rate, 2) if rate else 0.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_pipelines",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int,
                        default=int(os.environ.get("BENCH_EVENTS", DEFAULT_EVENTS)))
    parser.add_argument("--conf", type=Path, default=REPO / "conf.d")
    parser.add_argument("--source", default=None, help="source id the lines arrive on")
    parser.add_argument("--tenant", default=None)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--only", choices=("steps", "configured"), default=None,
                        help="run only the single-step or only the configured-pipeline part")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"events": args.events, "rounds": args.rounds}
    result["steps"] = bench_steps(args.events, args.rounds) if args.only != "configured" else {}
    result["configured"] = bench_configured(args.conf, args.source, args.tenant, args.events,
                                            args.rounds) if args.only != "steps" else {}
    for key, value in result["steps"].items():
        print(f"{key:45} {value}", file=sys.stderr)
    configured = result["configured"]
    for key, value in sorted(configured.get("pipelines", {}).items(),
                             key=lambda item: -item[1]["share"]):
        print(f"pipeline {key:36} {value['us_per_event']:8} us/event  share {value['share']}"
              f"  {value['events_per_second']} events/s", file=sys.stderr)
    if "all_events_per_second" in configured:
        print(f"{'pipelines_all_events_per_second':45} {configured['all_events_per_second']}",
              file=sys.stderr)
        print(f"{'pipelines_all_us_per_event':45} {configured['all_us_per_event']}",
              file=sys.stderr)
    sys.stderr.flush()
    print(orjson.dumps(result).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
