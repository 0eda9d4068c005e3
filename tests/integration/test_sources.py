"""Every source kind end to end: a real daemon subprocess (uvloop), real clients (util-linux
`logger`, Python's ssl and urllib), DuckDB reading the lake; each event arrives once, under the
right tenant, with its header fields right; an unknown sender lands under `_quarantine`."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from support.daemon import VigilProcess, lake_rows, wait_for, write_conf

LOGGER = shutil.which("logger")
TOKENS = {"demo": "demo-token", "acme": "acme-token-0123456789abcdef"}


def sources_config(token_file: Path) -> dict[str, Any]:
    port0 = "127.0.0.1:0"
    return {
        "vigil": {"control": {"address": port0}},
        "tenants": {"demo": {"name": "Demo"}, "acme": {"name": "ACME"}},
        "sources": {
            "syslog_udp": {"type": "syslog_udp", "address": port0, "tenant": "demo"},
            "syslog_tcp": {"type": "syslog_tcp", "address": port0, "tenant": "demo"},
            "syslog_tls": {"type": "syslog_tcp", "address": port0, "tenant": "demo",
                           "tls": {"self_signed": True}},
            "tcp_json": {"type": "tcp_lines", "address": port0, "tenant": "demo",
                         "dataset": "json"},
            "http": {"type": "http", "address": port0, "tokens": {
                name: {"tenant": name, "sha256": hashlib.sha256(token.encode()).hexdigest()}
                for name, token in TOKENS.items()} | {
                "rotating": {"tenant": "acme", "token_file": str(token_file)}}},
            # Routed by sender: loopback is acme's on one listener, nobody's on the other.
            "shared_local": {"type": "syslog_udp", "address": port0, "routes": [
                {"tenant": "acme", "source_cidrs": ["127.0.0.0/8"]}]},
            "shared_remote": {"type": "syslog_udp", "address": port0, "routes": [
                {"tenant": "acme", "source_cidrs": ["10.20.0.0/16"]},
                {"tenant": "demo", "field": "host.hostname", "patterns": ["demo-*"]}]},
        },
        "sinks": {"lake": {"type": "parquet_lake",
                           "flush": {"max_rows": 100000, "max_seconds": 0.2}}},
    }


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("sources")
    (root / "rotating.token").write_text("rotating-token-one\n")
    write_conf(root / "conf.d", sources_config(root / "rotating.token"))
    process = VigilProcess(root / "conf.d", root / "data").start()
    yield process
    process.kill()


def rows_like(daemon: VigilProcess, marker: str) -> list[dict[str, Any]]:
    escaped = marker.replace("'", "''")
    return lake_rows(daemon.data_dir, f"SELECT * FROM lake WHERE message LIKE '%{escaped}%' "
                                      "ORDER BY message")


def wait_rows(daemon: VigilProcess, marker: str, n: int) -> list[dict[str, Any]]:
    wait_for(lambda: len(rows_like(daemon, marker)) >= n, timeout=15,
             message=f"{n} rows with {marker!r}")
    found = rows_like(daemon, marker)
    assert len(found) == n, found  # once each, never twice
    return found


@pytest.mark.skipif(LOGGER is None, reason="util-linux `logger` is not installed")
def test_logger_over_udp_and_tcp_in_both_formats_and_framings(daemon: VigilProcess) -> None:
    udp_host, udp_port = daemon.source_address("syslog_udp")
    tcp_host, tcp_port = daemon.source_address("syslog_tcp")
    sends = {
        "udp-5424": [udp_host, udp_port, "-d", "--rfc5424", "--msgid", "M1", "--sd-id", "x@1",
                     "--sd-param", 'k="v w"'],
        "udp-3164": [udp_host, udp_port, "-d", "--rfc3164"],
        "tcp-newline": [tcp_host, tcp_port, "-T", "--rfc5424"],
        "tcp-octets": [tcp_host, tcp_port, "-T", "--octet-count", "--rfc5424", "--msgid", "M2"],
        "tcp-3164": [tcp_host, tcp_port, "-T", "--rfc3164", "-p", "auth.err"],
    }
    for name, (host, port, *args) in sends.items():
        subprocess.run([LOGGER, "-n", host, "-P", str(port), *args, "-t", "vigiltest",
                        "--id=4242", f"logger {name} message"], check=True, timeout=10)
    found = {r["message"]: r for r in wait_rows(daemon, "logger ", len(sends))}
    hostname = socket.gethostname()
    for name in sends:
        row = found[f"logger {name} message"]
        assert row["tenant"] == "demo" and row["vigil.dataset"] == "syslog"
        assert row["vigil.source"] == ("syslog_udp" if name.startswith("udp") else "syslog_tcp")
        assert row["host.hostname"] == hostname
        assert row["log.syslog.appname"] == "vigiltest" and row["process.pid"] == 4242
        assert row.get("vigil.parse_error") is None
    assert found["logger udp-5424 message"]["log.syslog.msgid"] == "M1"
    assert found["logger udp-5424 message"]["log.syslog.structured_data.x@1.k"] == "v w"
    assert found["logger udp-5424 message"]["log.syslog.version"] == 1
    assert found["logger tcp-octets message"]["log.syslog.msgid"] == "M2"
    assert found["logger udp-3164 message"].get("log.syslog.version") is None
    auth = found["logger tcp-3164 message"]
    assert (auth["log.syslog.facility.code"], auth["log.syslog.severity.code"]) == (4, 3)


def test_json_lines_over_raw_tcp(daemon: VigilProcess) -> None:
    with socket.create_connection(daemon.source_address("tcp_json")) as sock:
        sock.sendall(b'{"message": "json-line one", "user.name": "alice"}\n'
                     b"json-line not json\n"
                     b'{"message": "json-line three", "vigil.tenant": "acme"}\n')
    found = wait_rows(daemon, "json-line", 3)
    assert [r["message"] for r in found] == ["json-line not json", "json-line one",
                                             "json-line three"]
    assert all(r["tenant"] == "demo" and r["vigil.dataset"] == "json" for r in found)
    assert found[0]["vigil.parse_error"].startswith("invalid JSON")
    assert found[1]["user.name"] == "alice"
    assert found[2]["payload.vigil.tenant"] == "acme"  # a sender cannot choose its tenant


def http_post(daemon: VigilProcess, path: str, body: bytes, headers: dict[str, str]
              ) -> tuple[int, dict[str, Any]]:
    host, port = daemon.source_address("http")
    request = urllib.request.Request(f"http://{host}:{port}{path}", data=body, method="POST",
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_http_ndjson_gzip_and_a_hec_request(daemon: VigilProcess) -> None:
    ndjson = b"".join(json.dumps({"message": f"http-ndjson {i}", "n": i}).encode() + b"\n"
                      for i in range(100))
    status, reply = http_post(daemon, "/v1/logs?dataset=app", gzip.compress(ndjson), {
        "Authorization": f"Bearer {TOKENS['acme']}", "Content-Encoding": "gzip",
        "Content-Type": "application/x-ndjson"})
    assert (status, reply) == (200, {"accepted": 100})
    hec = (b'{"event": "http-hec one", "host": "fw1", "sourcetype": "fgt_traffic", '
           b'"time": 1715677200}{"event": "http-hec two", "fields": {"site": "ber"}}')
    status, reply = http_post(daemon, "/services/collector/event", hec,
                              {"Authorization": f"Splunk {TOKENS['demo']}"})
    assert (status, reply) == (200, {"text": "Success", "code": 0})
    status, reply = http_post(daemon, "/v1/logs", b"{}", {"Authorization": "Bearer wrong"})
    assert (status, reply) == (403, {"error": "unknown token"})

    found = wait_rows(daemon, "http-ndjson", 100)
    assert {(r["tenant"], r["vigil.dataset"]) for r in found} == {("acme", "app")}
    assert sorted(int(r["n"]) for r in found) == list(range(100))
    one, two = wait_rows(daemon, "http-hec", 2)
    assert (one["tenant"], one["host.hostname"], one["splunk.sourcetype"]) == \
        ("demo", "fw1", "fgt_traffic")
    assert one["@timestamp"].timestamp() == 1715677200
    assert two["splunk.fields.site"] == "ber"


def test_syslog_over_tls_and_a_failed_handshake(daemon: VigilProcess) -> None:
    address = daemon.source_address("syslog_tls")
    context = ssl.create_default_context(cafile=daemon.data_dir / "tls" / "syslog_tls.crt")
    with socket.create_connection(address) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        message = b"<14>1 2024-05-14T09:00:00Z tlshost app - - - tls-syslog over 5425"
        tls.sendall(str(len(message)).encode() + b" " + message)
    with socket.create_connection(address) as plain:
        plain.sendall(b"<13>May 14 09:00:00 h a: tls-syslog in plain text\n")
        plain.settimeout(10)
        assert plain.recv(100) == b""
    (row,) = wait_rows(daemon, "tls-syslog", 1)
    assert row["host.hostname"] == "tlshost" and row["tenant"] == "demo"
    wait_for(lambda: daemon.metric("vigil_component_errors_total", component_id="syslog_tls",
                                   error_type="tls_handshake") == 1,
             message="the failed handshake counted")


def test_routing_by_sender_and_quarantine(daemon: VigilProcess) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"<13>May 14 09:00:00 h a: routed from loopback",
                    daemon.source_address("shared_local"))
        remote = daemon.source_address("shared_remote")
        sock.sendto(b"<13>May 14 09:00:00 unknownhost a: routed nowhere", remote)
        sock.sendto(b"<13>May 14 09:00:00 demo-fw a: routed by hostname", remote)
    assert wait_rows(daemon, "routed from loopback", 1)[0]["tenant"] == "acme"
    assert wait_rows(daemon, "routed by hostname", 1)[0]["tenant"] == "demo"
    (lost,) = wait_rows(daemon, "routed nowhere", 1)
    assert lost["tenant"] == "_quarantine"
    assert list((daemon.data_dir / "lake" / "syslog").glob("tenant=_quarantine/*/*/*.parquet"))
    assert daemon.metric("vigil_component_quarantined_events_total",
                         component_id="shared_remote") == 1
    assert daemon.metric("vigil_component_received_events_total", component_id="shared_remote",
                         tenant="_quarantine") == 1
    # bytes carry the tenant when the sender decides it; field routing decides per event
    assert daemon.metric("vigil_component_received_bytes_total", component_id="shared_local",
                         tenant="acme") == len(b"<13>May 14 09:00:00 h a: routed from loopback")
    assert daemon.metric("vigil_component_received_bytes_total", component_id="shared_remote",
                         tenant="") > 0


def test_metrics_per_source(daemon: VigilProcess) -> None:
    assert daemon.metric("vigil_component_received_bytes_total", component_id="tcp_json") > 0
    held = socket.create_connection(daemon.source_address("syslog_tcp"))
    try:
        wait_for(lambda: daemon.metric("vigil_component_open_connections",
                                       component_id="syslog_tcp") == 1,
                 message="the open connection gauge")
    finally:
        held.close()
    wait_for(lambda: daemon.metric("vigil_component_open_connections",
                                   component_id="syslog_tcp") == 0, message="the gauge back at 0")
    ready = daemon.readyz()[1]["sources"]
    assert ready["syslog_tls"]["tls"] is True and ready["syslog_udp"]["receive_buffer_bytes"] > 0


def test_a_rotated_token_file_takes_over_and_a_removed_one_refuses(
        daemon: VigilProcess) -> None:
    token_file = daemon.conf_dir.parent / "rotating.token"

    def post(token: str, message: str = "http-rotation") -> int:
        return http_post(daemon, "/v1/logs", json.dumps({"message": message}).encode(),
                         {"Authorization": f"Bearer {token}"})[0]

    assert post("rotating-token-one") == 200
    replacement = token_file.with_name("rotating.token.new")
    replacement.write_text("rotating-token-two\n")
    replacement.replace(token_file)  # as credential tooling rotates: a new file moved in place
    wait_for(lambda: post("rotating-token-two") == 200, timeout=10,
             message="the rotated token accepted (the tick re-reads the file)")
    assert post("rotating-token-one") == 403
    token_file.unlink()  # revoked
    wait_for(lambda: post("rotating-token-two", "http-revocation probe") == 403, timeout=10,
             message="the token refused once its file is gone")
    token_file.write_text("rotating-token-three\n")
    wait_for(lambda: post("rotating-token-three") == 200, timeout=10,
             message="the restored file's token accepted")
    wait_rows(daemon, "http-rotation", 3)
    assert "rotating-token" not in daemon.log()
