"""The full-path configuration the benchmarks run: the shipped conf.d pipelines (geo-IP on
`source.ip` through the test MaxMind databases they name), the built-in rule library plus a fixed
choice of SigmaHQ rules, the lake; sources on port 0 and nothing else of the example contract.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import yaml

from tests.support.daemon import REPO, SHARED_DATA

SIGMA = (SHARED_DATA / "sigma").resolve()
SIGMA_RULE_DIR = SIGMA / "rules"
DEFAULT_SIGMA_RULES = 1000
TENANT = "demo"
# The example HTTP token of conf.d/20-sources.yaml (for trials only; never deployed).
DEMO_TOKEN = "demo-token"
DEMO_TOKEN_SHA256 = hashlib.sha256(DEMO_TOKEN.encode()).hexdigest()
# The marker rule of the latency benchmark: one alert per distinct marker (suppressed by message).
LATENCY_MARKER = "vigil-bench-latency-"
LATENCY_RULE = {
    "title": "Benchmark latency probe",
    "id": "5b0e8f0c-6a43-4c58-9d1e-0b0e0c000001",
    "status": "test",
    "description": "Fires on the latency benchmark's probe lines (benchmarks/bench_latency.py).",
    "logsource": {"product": "linux", "service": "sshd"},
    "detection": {"selection": {"message|contains": LATENCY_MARKER}, "condition": "selection"},
    "vigil": {"suppress_by": ["message"]},
    "level": "high",
}


def shipped_pipeline_files(conf_dir: Path = REPO / "conf.d") -> list[Path]:
    """The conf.d files that declare pipelines, in load order."""
    files = []
    for path in sorted(conf_dir.glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(document, dict) and "pipelines" in document:
            files.append(path)
    return files


def select_sigma_rules(count: int = DEFAULT_SIGMA_RULES, root: Path = SIGMA_RULE_DIR
                       ) -> list[Path]:
    """The first `count` SigmaHQ files, in sorted path order, that compile to at least one rule
    (a file that fails to load or whose logsource no dataset serves is passed over). One load of
    the whole directory: loading file by file rebuilds the mappings each time."""
    from rules.loader import load_rules

    loaded = {Path(rule.info.file).resolve() for rule in load_rules([root]).rules}
    return sorted(loaded)[:count]


def rules_digest(paths: list[Path], root: Path = SIGMA) -> str:
    """SHA-256 over the chosen rule files' relative paths and contents (names the selection)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


# Scaling splits the workload between two tenants by sender host name (the daemon routes after
# parsing the syslog header): workers own tenants' partitions, so one tenant is one worker's
# work whatever the worker count. About half the events go to each: the `*-prod-*` and
# `*-dev-0*` hosts to `acme`, the other hosts and the FortiGate lines (no host name) to `demo`.
SECOND_TENANT = "acme"
SPLIT_ROUTES = [
    {"tenant": SECOND_TENANT, "field": "host.hostname", "patterns": ["*-prod-*", "*-dev-0*"]},
    {"tenant": TENANT, "source_cidrs": ["0.0.0.0/0", "::/0"]},
]


def full_config(sources: dict[str, dict[str, Any]], *, workers: int | None = None,
                flush_seconds: float = 1.0, latency_rule: bool = False,
                split_tenants: bool = False) -> dict[str, Any]:
    """The main config file of the full path: tenant `demo` (and `acme` with `split_tenants`,
    routed by host name), `sources` (their tenant filled in), the lake flushed for throughput,
    SigmaHQ rules from `sigmahq/` (and `latency/`)."""
    vigil: dict[str, Any] = {"control": {"address": "127.0.0.1:0"}}
    if workers is not None:
        vigil["workers"] = workers
    rules = {"sigmahq": {"path": "sigmahq"}}
    if latency_rule:
        rules["latency"] = {"path": "latency"}
    return {
        "vigil": vigil,
        "tenants": {TENANT: {"name": "Demo"},
                    **({SECOND_TENANT: {"name": "Acme"}} if split_tenants else {})},
        "sources": {name: ({"routes": SPLIT_ROUTES, **source} if split_tenants
                           else {"tenant": TENANT, **source})
                    if source.get("type") != "http" else source
                    for name, source in sources.items()},
        "sinks": {"lake": {"type": "parquet_lake",
                           "flush": {"max_rows": 100_000, "max_bytes": 256 * 1024 * 1024,
                                     "max_seconds": flush_seconds}}},
        "rules": rules,
    }


def syslog_tcp_source() -> dict[str, Any]:
    return {"type": "syslog_tcp", "address": "127.0.0.1:0"}


def http_source() -> dict[str, Any]:
    """The HTTP source as shipped (dataset `json`, the demo token), on port 0."""
    return {"type": "http", "address": "127.0.0.1:0", "dataset": "json",
            "max_body_bytes": 64 << 20,
            "tokens": {TENANT: {"tenant": TENANT, "sha256": DEMO_TOKEN_SHA256}}}


def bench_geoip_records() -> tuple[list[tuple[str, dict[str, Any]]],
                                   list[tuple[str, dict[str, Any]]]]:
    """City and ASN records for every unicast /8 but 10/8 and 127/8, so that the workload's
    public addresses (random ones) are found, as they would be in GeoLite2: a lookup that hits
    decodes a record, one that misses does not."""
    from enrichers.geoip_testdb import asn_record, city_record

    city, asn = [], []
    for first in range(1, 224):
        if first in (10, 127):
            continue
        code, country, town, lat, lon = _PLACES[first % len(_PLACES)]
        network = f"{first}.0.0.0/8"
        city.append((network, city_record(code, country, city=town, region=town,
                                          region_code=code, lat=lat, lon=lon)))
        asn.append((network, asn_record(64496 + first % 16, f"Example Network {first}")))
    return city, asn


_PLACES = (("GB", "United Kingdom", "London", 51.51, -0.09),
           ("DE", "Germany", "Frankfurt", 50.11, 8.68),
           ("US", "United States", "Ashburn", 39.04, -77.49),
           ("CN", "China", "Shanghai", 31.23, 121.47),
           ("BR", "Brazil", "Sao Paulo", -23.55, -46.63),
           ("IN", "India", "Mumbai", 19.08, 72.88),
           ("RU", "Russia", "Moscow", 55.76, 37.62),
           ("NL", "Netherlands", "Amsterdam", 52.37, 4.90))


def write_bench_geoip(directory: Path) -> None:
    """Replace the test databases the shipped pipelines name with `bench_geoip_records` (same
    builder, `enrichers.geoip_testdb`, same file names)."""
    from enrichers.geoip_testdb import ASN_FILE, CITY_FILE, write_asn_database, write_city_database

    city, asn = bench_geoip_records()
    directory.mkdir(parents=True, exist_ok=True)
    write_city_database(directory / CITY_FILE, city)
    write_asn_database(directory / ASN_FILE, asn)


def write_full_conf(conf_dir: Path, sigma_rules: list[Path], *, latency_rule: bool = False
                    ) -> Path:
    """Fill `conf_dir` with the shipped pipeline files (without their test cases, which name the
    example sources), their enrichment files (the geo-IP databases covering every public /8)
    and the rule directories; the caller adds the main config (`full_config`) with
    `tests.support.daemon.write_conf`."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    for path in shipped_pipeline_files():
        shipped = yaml.safe_load(path.read_text(encoding="utf-8"))
        shipped.pop("tests", None)
        (conf_dir / path.name).write_text(yaml.safe_dump(shipped, sort_keys=False),
                                          encoding="utf-8")
    shutil.copytree(REPO / "conf.d" / "enrich", conf_dir / "enrich")
    write_bench_geoip(conf_dir / "enrich" / "geoip")
    sigma_dir = conf_dir / "sigmahq"
    sigma_dir.mkdir()
    for path in sigma_rules:
        # Flattened, with the relative path in the name so that two files never collide.
        name = "__".join(path.relative_to(SIGMA).parts)
        shutil.copyfile(path, sigma_dir / name)
    if latency_rule:
        (conf_dir / "latency").mkdir()
        (conf_dir / "latency" / "probe.yml").write_text(yaml.safe_dump(LATENCY_RULE),
                                                        encoding="utf-8")
    return conf_dir
