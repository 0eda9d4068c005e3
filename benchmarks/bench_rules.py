"""Sigma detection on one core: events/s with 10, 100, 1,000 and all SigmaHQ rules loaded.

The events are a fixed mix: SigmaHQ's regression events (flattened EVTX-as-JSON, true positives),
synthetic benign Windows events (Sysmon process creation, registry, network, file, Security
logons) and the benchmark workload (`benchmarks.workload`: sshd/sudo/cron lines as linux.auth,
FortiGate as fortinet.firewall, nginx as nginx.access). Rule subsets are evenly spread samples
of the whole set. Each figure is the best of several rounds, in process, batches of 500.
`python -m benchmarks.bench_rules` (BENCH_EVENTS sets the mix size); the last line is one JSON
object.

Two more measurements, for `make bench`: `measure_rules_startup()` (detection start-up and
reload with the built-in library and the whole SigmaHQ set, cold and with a warm compiled-rule
cache, each in a fresh interpreter: `rules_startup_seconds` is the warm start) and
`measure_detection()` (CPU microseconds per event of the detection stage on the benchmark
workload run through the shipped conf.d pipelines, with the built-in library plus 1,000 SigmaHQ
rules). `python -m benchmarks.bench_rules --startup --detection` prints both as one JSON object.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from parsers.windows import flatten_windows_event, iter_json_documents
from rules.engine import DetectionEngine
from rules.loader import RuleSet, load_rules

SIGMA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sigma"
RULE_DIRS = ("rules", "rules-emerging-threats", "rules-threat-hunting")
BATCH = 500
ROUNDS = 3
SUBSETS = (10, 100, 1000, None)
MIX = {"regression": 0.10, "windows": 0.40, "workload": 0.50}
WORKLOAD_DATASETS = {"sshd": "linux.auth", "sudo": "linux.auth", "cron": "linux.auth",
                     "systemd": "linux.auth", "fortigate": "fortinet.firewall",
                     "nginx": "nginx.access"}
START = datetime(2026, 3, 1, tzinfo=UTC)

BINARIES = [
    ("C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe", "chrome.exe",
     '"{img}" --type=renderer --lang=en-US --renderer-client-id={n} --field-trial-handle={h}'),
    ("C:\\Windows\\System32\\svchost.exe", "svchost.exe", "C:\\Windows\\system32\\svchost.exe "
     "-k netsvcs -p -s {svc}"),
    ("C:\\Windows\\explorer.exe", "EXPLORER.EXE", "C:\\Windows\\Explorer.EXE"),
    ("C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe", "msedge.exe",
     '"{img}" --type=utility --utility-sub-type=network.mojom.NetworkService --lang=en-US'),
    ("C:\\Users\\{user}\\AppData\\Local\\Programs\\Microsoft VS Code\\Code.exe", "Code.exe",
     '"{img}" --type=gpu-process --no-sandbox --gpu-preferences={h}'),
    ("C:\\Windows\\System32\\conhost.exe", "CONHOST.EXE", "\\??\\C:\\Windows\\system32\\conhost"
     ".exe 0xffffffff -ForceV1"),
    ("C:\\Program Files\\Git\\cmd\\git.exe", "git.exe", "git fetch --prune origin {n}"),
    ("C:\\Python311\\python.exe", "python.exe", "python.exe -m pytest -q tests\\test_{svc}.py"),
    ("C:\\Windows\\System32\\taskhostw.exe", "taskhostw.exe", "taskhostw.exe {{{h}}}"),
    ("C:\\Windows\\System32\\RuntimeBroker.exe", "RuntimeBroker.exe",
     "C:\\Windows\\System32\\RuntimeBroker.exe -Embedding"),
]
PARENTS = ["C:\\Windows\\explorer.exe", "C:\\Windows\\System32\\services.exe",
           "C:\\Windows\\System32\\svchost.exe", "C:\\Program Files\\Google\\Chrome\\"
           "Application\\chrome.exe"]
SERVICES = ["Schedule", "BITS", "wuauserv", "Dnscache", "LanmanServer", "gpsvc", "Winmgmt"]
USERS = ["alice", "bob", "carol", "svc_backup", "dave"]
SYSMON = "Microsoft-Windows-Sysmon/Operational"


def synthetic_windows(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """Benign, realistically sized Windows events of the kinds most rules read."""
    out = []
    for i in range(n):
        user = rng.choice(USERS)
        ts = START + timedelta(milliseconds=37 * i)
        kind = rng.random()
        base = {"@timestamp": ts, "winlog.computer_name": f"WS{rng.randint(1, 80):03d}.corp.local",
                "winlog.record_id": 100000 + i, "winlog.provider_name": "Microsoft-Windows-Sysmon",
                "winlog.channel": SYSMON}
        base["host.hostname"] = base["winlog.computer_name"]
        image, original, template = rng.choice(BINARIES)
        image = image.format(user=user)
        command = template.format(img=image, n=rng.randint(1, 99), h=rng.getrandbits(64),
                                  svc=rng.choice(SERVICES))
        if kind < 0.55:
            event = {**base, "winlog.event_id": 1,
                     "winlog.event_data.Image": image,
                     "winlog.event_data.OriginalFileName": original,
                     "winlog.event_data.CommandLine": command,
                     "winlog.event_data.ParentImage": rng.choice(PARENTS),
                     "winlog.event_data.ParentCommandLine": rng.choice(PARENTS),
                     "winlog.event_data.CurrentDirectory": f"C:\\Users\\{user}\\",
                     "winlog.event_data.User": f"CORP\\{user}",
                     "winlog.event_data.IntegrityLevel": rng.choice(["Medium", "High", "System"]),
                     "winlog.event_data.Company": "Microsoft Corporation",
                     "winlog.event_data.Product": "Microsoft® Windows® Operating System",
                     "winlog.event_data.Description": original.split(".")[0],
                     "winlog.event_data.Hashes": f"SHA256={rng.getrandbits(256):064X}",
                     "winlog.event_data.ProcessId": rng.randint(100, 60000)}
        elif kind < 0.70:
            event = {**base, "winlog.event_id": 13, "winlog.event_data.EventType": "SetValue",
                     "winlog.event_data.Image": image,
                     "winlog.event_data.TargetObject": "HKU\\S-1-5-21-1\\Software\\Microsoft\\"
                     f"Windows\\CurrentVersion\\Explorer\\RecentDocs\\{rng.randint(1, 50)}",
                     "winlog.event_data.Details": f"Binary Data {rng.getrandbits(32):08x}"}
        elif kind < 0.82:
            source = f"10.1.{rng.randint(0, 9)}.{rng.randint(2, 250)}"
            destination = f"52.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
            event = {**base, "winlog.event_id": 3, "winlog.event_data.Image": image,
                     "winlog.event_data.Protocol": "tcp", "winlog.event_data.Initiated": "true",
                     "winlog.event_data.SourceIp": source,
                     "winlog.event_data.DestinationIp": destination,
                     "winlog.event_data.DestinationPort": rng.choice([443, 80, 53, 8080]),
                     "winlog.event_data.DestinationHostname": rng.choice(
                         ["www.microsoft.com", "github.com", "update.googleapis.com"])}
        elif kind < 0.92:
            event = {**base, "winlog.event_id": 11, "winlog.event_data.Image": image,
                     "winlog.event_data.TargetFilename": f"C:\\Users\\{user}\\AppData\\Local\\"
                     f"Temp\\tmp{rng.getrandbits(24):06x}.tmp"}
        else:
            event = {**base, "winlog.channel": "Security", "winlog.event_id": rng.choice(
                [4624, 4625, 4634, 4672]),
                "winlog.provider_name": "Microsoft-Windows-Security-Auditing",
                "winlog.event_data.TargetUserName": user,
                "winlog.event_data.TargetDomainName": "CORP",
                "winlog.event_data.LogonType": rng.choice([2, 3, 10]),
                "winlog.event_data.IpAddress": f"10.1.0.{rng.randint(2, 250)}",
                "winlog.event_data.WorkstationName": base["winlog.computer_name"]}
        out.append(event)
    return out


def regression_events() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for path in sorted((SIGMA / "regression").rglob("*.json")):
        events.extend(flatten_windows_event(doc) for doc in iter_json_documents(path.read_bytes()))
    return events


def workload_events(n: int) -> list[tuple[str, dict[str, Any]]]:
    from benchmarks.workload import events as workload

    return [(WORKLOAD_DATASETS[e.kind],
             {"@timestamp": e.timestamp, "message": e.message, "host.hostname": e.hostname,
              "process.name": e.appname, "process.pid": e.pid}) for e in workload(n)]


def build_mix(total: int) -> list[tuple[str, list[dict[str, Any]]]]:
    """Batches of (dataset, events) in a fixed interleaving."""
    rng = random.Random(7)
    regression = regression_events()
    n_regression = int(total * MIX["regression"])
    rows: list[tuple[str, dict[str, Any]]] = [
        ("windows.event", regression[i % len(regression)]) for i in range(n_regression)]
    rows += [("windows.event", e) for e in synthetic_windows(rng, int(total * MIX["windows"]))]
    rows += workload_events(total - len(rows))
    rng.shuffle(rows)
    batches: dict[str, list[list[dict[str, Any]]]] = {}
    out = []
    for dataset, event in rows:
        current = batches.setdefault(dataset, [[]])
        current[-1].append(event)
        if len(current[-1]) == BATCH:
            out.append((dataset, current[-1]))
            current.append([])
    out.extend((dataset, lists[-1]) for dataset, lists in batches.items() if lists[-1])
    return out


def subset(ruleset: RuleSet, size: int | None) -> RuleSet:
    if size is None or size >= len(ruleset.rules):
        chosen = list(ruleset.rules)
    else:
        step = len(ruleset.rules) / size
        chosen = [ruleset.rules[int(i * step)] for i in range(size)]
    return RuleSet(rules=chosen, mappings=ruleset.mappings)


def measure(engine: DetectionEngine, batches: list[tuple[str, list[dict[str, Any]]]]
            ) -> tuple[float, int]:
    best, matches = float("inf"), 0
    for _ in range(ROUNDS):
        started = time.perf_counter()
        found = 0
        for dataset, events in batches:
            found += len(engine.evaluate(dataset, events, "bench"))
        best = min(best, time.perf_counter() - started)
        matches = found
    return best, matches


# -- start-up: the full SigmaHQ set through the compiled-rule cache -------------------------

STARTUP_PROBE = """
import json, sys, time
started_process = time.perf_counter()
from datetime import UTC, datetime
from pathlib import Path
from collector.config import load_config
from collector.detection.stage import DetectionStage, load_ruleset
conf, data = Path(sys.argv[1]), Path(sys.argv[2])
config = load_config(conf)
wall, cpu = time.perf_counter(), time.process_time()
stage = DetectionStage(config, conf, data, None, lambda: datetime.now(UTC))
out = {"seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu,
       "process_seconds": time.perf_counter() - started_process,
       "rules": len(stage.ruleset.rules),
       "cache": vars(stage.ruleset.cache) if getattr(stage.ruleset, "cache", None) else None}
wall, cpu = time.perf_counter(), time.process_time()
reloaded = load_ruleset(config, conf, data)  # what a SIGHUP does, off the loop
DetectionStage(config, conf, data, None, lambda: datetime.now(UTC), reloaded)
out["reload_seconds"] = time.perf_counter() - wall
out["reload_cpu_seconds"] = time.process_time() - cpu
print(json.dumps(out))
"""


def _startup_probe(conf: Path, data: Path) -> dict[str, Any]:
    """One fresh interpreter starting detection as the daemon does (a new process, so nothing
    is warm but the cache and the OS's file cache)."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", STARTUP_PROBE, str(conf), str(data)],
                          cwd=repo, capture_output=True, text=True, check=True, timeout=900)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure_rules_startup() -> dict[str, Any]:
    """Detection start-up with the built-in library and the whole SigmaHQ set: a cold start
    (empty cache), a warm start (a new process, the cache written), and a reload in each.
    `rules_startup_seconds` is the warm start: loading every rule and building the detection
    stage, as `vigil run` and SIGHUP do."""
    import tempfile

    if not (SIGMA / "rules").is_dir():
        return {"rules_startup_error": f"no SigmaHQ data under {SIGMA}"}
    with tempfile.TemporaryDirectory(prefix="vigil-bench-rules-") as tmp:
        conf, data = Path(tmp) / "conf.d", Path(tmp) / "data"
        conf.mkdir()
        sections = {"tenants": {"bench": {"name": "Bench"}},
                    "rules": {name: {"path": str(SIGMA / name)} for name in RULE_DIRS}}
        (conf / "10-bench.yaml").write_text(json.dumps(sections), encoding="utf-8")
        cold = _startup_probe(conf, data)
        warm = _startup_probe(conf, data)
    return {
        "rules_startup_seconds": round(warm["seconds"], 3),
        "rules_startup_cpu_seconds": round(warm["cpu_seconds"], 3),
        "rules_startup_cold_seconds": round(cold["seconds"], 3),
        "rules_startup_cold_cpu_seconds": round(cold["cpu_seconds"], 3),
        "rules_reload_seconds": round(warm["reload_seconds"], 3),
        "rules_reload_cold_start_seconds": round(cold["reload_seconds"], 3),
        "rules_startup_process_seconds": round(warm["process_seconds"], 3),
        "rules_startup_rules": warm["rules"],
        "rules_startup_cache": {"cold": cold["cache"], "warm": warm["cache"]},
    }


# -- detection per event: the benchmark mix through the shipped conf.d -----------------------

DETECTION_SIGMA_RULES = 1000


def _sigma_sample(target: Path, count: int) -> int:
    """Copy `count` SigmaHQ rule files, evenly spread over the whole set, into `target`."""
    files = sorted(p for name in RULE_DIRS for p in (SIGMA / name).rglob("*.yml"))
    step = len(files) / count
    target.mkdir(parents=True)
    for i in range(count):
        source = files[int(i * step)]
        (target / f"{i:04d}-{source.name}").write_bytes(source.read_bytes())
    return count


def detection_batches(conf: Path, n: int) -> tuple[Any, str, list[Any]]:
    """The workload's syslog lines as a source delivers them, through the conf.d pipelines:
    (config, tenant, the `events` batches detection receives)."""
    import tempfile

    from benchmarks import workload
    from collector.config import load_config
    from collector.pipeline.runner import build_pipelines
    from core.config import ValidationContext
    from core.events import EVENTS, RECEIVED_AT, SOURCE, TENANT, Batch
    from parsers.syslog import parse_syslog

    config = load_config(conf)
    source_id = next(iter(config.sources))
    tenant = config.sources[source_id].tenant or next(iter(config.tenants))
    events = []
    for item in workload.events(n, seed=20240514):
        received = item.timestamp + timedelta(milliseconds=300)
        event = parse_syslog(workload.render_syslog(item), received_at=received, tz=UTC)
        event[SOURCE], event[TENANT], event[RECEIVED_AT] = source_id, tenant, received
        events.append(event)
    batches: list[Batch] = []
    with tempfile.TemporaryDirectory(prefix="vigil-bench-detection-") as tmp:
        pipelines = build_pipelines(config.pipelines.items(), ValidationContext(conf.resolve()),
                                    data_dir=Path(tmp))
        for start in range(0, len(events), BATCH):
            chunk = events[start:start + BATCH]
            out = pipelines.process(Batch(tenant, chunk, start, start + len(chunk) - 1))
            batches.extend(b for b in out if b.kind == EVENTS and b.events)
        pipelines.close()
    return config, tenant, batches


def measure_detection(n: int = 20_000, sigma_rules: int = DETECTION_SIGMA_RULES,
                      rounds: int = ROUNDS) -> dict[str, Any]:
    """Detection's cost per event (`DetectionStage.process`: coverage, activation, evaluation,
    alerts) on the benchmark mix run through the shipped conf.d pipelines, with the built-in
    library plus `sigma_rules` SigmaHQ rules loaded; best of `rounds`."""
    import tempfile

    from collector.detection.stage import DetectionStage

    if not (SIGMA / "rules").is_dir():
        return {"detection_error": f"no SigmaHQ data under {SIGMA}"}
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="vigil-bench-detection-") as tmp:
        conf = Path(tmp) / "conf.d"
        conf.mkdir()
        for item in (repo / "conf.d").iterdir():
            (conf / item.name).symlink_to(item)
        _sigma_sample(Path(tmp) / "sigma", sigma_rules)
        (conf / "99-bench-rules.yaml").write_text(json.dumps(
            {"rules": {"sigmahq_sample": {"path": str(Path(tmp) / "sigma")}}}), encoding="utf-8")
        config, tenant, batches = detection_batches(conf, n)
        clock = [datetime(2026, 3, 1, tzinfo=UTC)]
        stage = DetectionStage(config, conf.resolve(), Path(tmp) / "data", None,
                               lambda: clock[0])
        events = sum(len(b.events) for b in batches)
        # CPU time of this process: the machine is shared, wall time measures the neighbours.
        best, best_wall, alerts = float("inf"), float("inf"), 0
        for _ in range(rounds):
            started, started_wall = time.process_time(), time.perf_counter()
            out = []
            for batch in batches:
                out.extend(stage.process([batch]))
            best = min(best, time.process_time() - started)
            best_wall = min(best_wall, time.perf_counter() - started_wall)
            alerts = sum(len(b.events) for b in out if b.kind == "alerts")
        datasets: dict[str, int] = {}
        for batch in batches:
            datasets[str(batch.dataset)] = datasets.get(str(batch.dataset), 0) + len(batch.events)
        return {
            "detection_us_per_event": round(best / events * 1e6, 2),
            "detection_wall_us_per_event": round(best_wall / events * 1e6, 2),
            "detection_events": events, "detection_rules": len(stage.ruleset.rules),
            "detection_correlations": len(stage.ruleset.correlations),
            "detection_active_rules": len(settings.active or ())
            if (settings := stage.engine.tenant_rules.get(tenant)) is not None else None,
            "detection_alert_events": alerts, "detection_datasets": datasets,
        }


def main() -> int:
    if not (SIGMA / "rules").is_dir():
        print(json.dumps({"benchmark": "rules", "error": f"no SigmaHQ data under {SIGMA}"}))
        return 1
    if "--startup" in sys.argv[1:] or "--detection" in sys.argv[1:]:
        out: dict[str, Any] = {"benchmark": "rules"}
        if "--startup" in sys.argv[1:]:
            out.update(measure_rules_startup())
        if "--detection" in sys.argv[1:]:
            out.update(measure_detection(int(os.environ.get("BENCH_EVENTS", "20000"))))
        print(json.dumps(out))
        return 0
    total = int(os.environ.get("BENCH_EVENTS", "20000"))
    started = time.perf_counter()
    ruleset = load_rules([SIGMA / name for name in RULE_DIRS])
    load_seconds = time.perf_counter() - started
    batches = build_mix(total)
    events = sum(len(b) for _, b in batches)
    results = []
    for size in SUBSETS:
        chosen = subset(ruleset, size)
        started = time.perf_counter()
        engine = DetectionEngine(chosen)
        index_seconds = time.perf_counter() - started
        seconds, matches = measure(engine, batches)
        results.append({
            "rules": len(chosen.rules), "index_build_seconds": round(index_seconds, 3),
            "events_per_second": round(events / seconds), "matches": matches,
            "windows_rules": len(engine.rules_for("windows.event"))})
        print(f"{len(chosen.rules):>5} rules: {events / seconds:>9.0f} events/s, "
              f"{matches} matches", flush=True)
    by_size = {r["rules"]: r["events_per_second"] for r in results}
    print(json.dumps({
        "benchmark": "rules", "events": events, "mix": MIX, "batch": BATCH, "rounds": ROUNDS,
        "load_compile_seconds": round(load_seconds, 2), "rules_loaded": len(ruleset.rules),
        "rules_without_dataset": len(ruleset.unserved), "load_errors": len(ruleset.errors),
        "results": results,
        "aim_1000_rules_32000_eps": by_size.get(1000, 0) >= 32000,
        "aim_all_rules_20000_eps": results[-1]["events_per_second"] >= 20000,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
