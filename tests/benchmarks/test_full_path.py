"""The full-path configuration: every shipped pipeline file, the rule directories, the HTTP demo
token, `vigil.workers` only when asked for; it validates, and a small run accounts for every
event in the lake (the alerts dataset apart)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.daemon import REPO, lake_rows, write_conf

from benchmarks import workload
from benchmarks.bench_full import run_full_vigil, workers_unsupported
from benchmarks.full_path import (
    DEMO_TOKEN_SHA256,
    SIGMA_RULE_DIR,
    full_config,
    http_source,
    shipped_pipeline_files,
    syslog_tcp_source,
    write_bench_geoip,
    write_full_conf,
)
from benchmarks.harness import send_tcp, split_streams

needs_sigma = pytest.mark.skipif(not SIGMA_RULE_DIR.is_dir(),
                                 reason=f"SigmaHQ rules not found under {SIGMA_RULE_DIR}")
SOME_RULES = ("linux/builtin/sshd/lnx_sshd_susp_ssh.yml",
              "web/webserver_generic/web_java_payload_in_access_logs.yml",
              "linux/builtin/lnx_buffer_overflows.yml")


def some_sigma_rules() -> list[Path]:
    found = [SIGMA_RULE_DIR / name for name in SOME_RULES if (SIGMA_RULE_DIR / name).is_file()]
    return found or sorted(SIGMA_RULE_DIR.glob("linux/**/*.yml"))[:3]


def test_every_shipped_pipeline_file_and_nothing_else() -> None:
    names = [path.name for path in shipped_pipeline_files()]
    assert "30-linux-auth.yaml" in names and "31-fortinet.yaml" in names
    assert "34-web.yaml" in names
    assert not {"00-vigil.yaml", "20-sources.yaml", "50-sinks.yaml", "60-notify.yaml"} & set(names)
    assert names == sorted(names)


def test_full_config_sets_workers_only_when_asked() -> None:
    plain = full_config({"syslog_tcp": syslog_tcp_source()})
    assert "workers" not in plain["vigil"]
    assert plain["sources"]["syslog_tcp"]["tenant"] == "demo"
    assert plain["rules"] == {"sigmahq": {"path": "sigmahq"}}
    assert full_config({}, workers=2)["vigil"]["workers"] == 2
    http = full_config({"http": http_source()}, latency_rule=True)
    assert "tenant" not in http["sources"]["http"]
    assert http["sources"]["http"]["tokens"]["demo"]["sha256"] == DEMO_TOKEN_SHA256
    assert http["rules"]["latency"] == {"path": "latency"}


def test_workers_probe_names_the_key_or_accepts_it(tmp_path: Path) -> None:
    reason = workers_unsupported(tmp_path)
    assert reason is None or "workers" in reason


@needs_sigma
def test_full_conf_validates(tmp_path: Path) -> None:
    conf = write_full_conf(tmp_path / "conf.d", some_sigma_rules(), latency_rule=True)
    write_conf(conf, full_config({"syslog_tcp": syslog_tcp_source(), "http": http_source()},
                                 latency_rule=True))
    assert len(list((conf / "sigmahq").iterdir())) == len(some_sigma_rules())
    proc = subprocess.run([sys.executable, "-m", "collector.cli", "validate", "-c", str(conf)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_sigma
def test_a_small_full_path_run_accounts_for_every_event(tmp_path: Path) -> None:
    events = 400
    streams = split_streams(workload.syslog_lines(events, 3), 2, workload.newline_framed)
    payload = sum(len(s) for s in streams)
    run = run_full_vigil(tmp_path, some_sigma_rules(), events,
                         lambda address: send_tcp(address, streams), "syslog_tcp",
                         syslog_tcp_source(), payload_bytes=payload)
    assert run.lake_rows == events
    assert run.parse_errors == 0
    assert run.measurement.cpu_seconds > 0
    # Geo-IP finds the workload's public addresses (sshd peers, nginx clients).
    found = lake_rows(tmp_path / "data", 'SELECT count("source.geo.country_iso_code") AS geo, '
                      'count("source.as.number") AS asn FROM lake')[0]
    assert found["geo"] > events / 10 and found["asn"] > events / 10, found


def test_bench_geoip_covers_public_addresses(tmp_path: Path) -> None:
    import geoip2.database

    write_bench_geoip(tmp_path)
    with geoip2.database.Reader(str(tmp_path / "Vigil-Test-City.mmdb")) as city:
        assert city.city("81.21.141.229").country.iso_code
    with geoip2.database.Reader(str(tmp_path / "Vigil-Test-ASN.mmdb")) as asn:
        assert asn.asn("168.234.55.247").autonomous_system_number
