"""syslog-ng as a real forwarding client: its network() and syslog() drivers over TCP, UDP, TLS
and mutual TLS into a real daemon; every message arrives once per destination, under the right
tenant, with the original host, program and pid.

syslog-ng runs in the foreground with its own config, persist, pid and control files; it cannot
report a port it bound as port 0, so its input port is one that was free a moment earlier.
"""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

import pytest
from support.daemon import VigilProcess, lake_rows, wait_for, write_conf

from benchmarks.harness import accepts_connections, free_port
from benchmarks.peers.syslog_ng import find_syslog_ng
from collector.sources.tls import self_signed_pair

SYSLOG_NG = find_syslog_ng()
pytestmark = pytest.mark.skipif(SYSLOG_NG is None,
                                reason="syslog-ng is not installed (.ci/run installs "
                                       "syslog-ng-core)")

DESTINATIONS = {
    # source id in the daemon -> the syslog-ng destination that feeds it
    "ng_network_tcp": 'network("127.0.0.1" port({port}) transport("tcp"))',
    "ng_network_udp": 'network("127.0.0.1" port({port}) transport("udp"))',
    "ng_syslog_tcp": 'syslog("127.0.0.1" port({port}) transport("tcp"))',
    "ng_syslog_tls": 'syslog("localhost" port({port}) ip-protocol(4) transport("tls") '
                     'tls(ca-file("{server_ca}") peer-verify(required-trusted)))',
    "ng_network_mtls": 'network("localhost" port({port}) ip-protocol(4) transport("tls") '
                       'tls(ca-file("{server_ca}") cert-file("{client_cert}") '
                       'key-file("{client_key}") peer-verify(required-trusted)))',
}


def daemon_config(client_cert: Path) -> dict:
    tcp = {"type": "syslog_tcp", "address": "127.0.0.1:0", "tenant": "demo"}
    return {
        "vigil": {"control": {"address": "127.0.0.1:0"}},
        "tenants": {"demo": {"name": "Demo"}},
        "sources": {
            "ng_network_tcp": tcp,
            "ng_network_udp": {**tcp, "type": "syslog_udp"},
            "ng_syslog_tcp": tcp,
            "ng_syslog_tls": {**tcp, "tls": {"self_signed": True}},
            "ng_network_mtls": {**tcp, "tls": {"self_signed": True, "ca_file": str(client_cert),
                                               "client_auth": "required"}},
        },
        "sinks": {"lake": {"type": "parquet_lake",
                           "flush": {"max_rows": 100000, "max_seconds": 0.2}}},
    }


def syslog_ng_config(daemon: VigilProcess, input_port: int, client: tuple[Path, Path]) -> str:
    blocks = ["@version: 3.38",
              "options { keep-hostname(yes); chain-hostnames(no); stats-freq(0); "
              "time-reopen(1); };",
              f'source s_in {{ network(ip("127.0.0.1") port({input_port}) transport("tcp")); }};']
    for source_id, template in DESTINATIONS.items():
        _, port = daemon.source_address(source_id)
        server_ca = daemon.data_dir / "tls" / f"{source_id}.crt"
        driver = template.format(port=port, server_ca=server_ca, client_cert=client[0],
                                 client_key=client[1])
        blocks.append(f"destination d_{source_id} {{ {driver}; }};")
        blocks.append(f"log {{ source(s_in); destination(d_{source_id}); }};")
    return "\n".join(blocks) + "\n"


def test_syslog_ng_forwards_over_every_driver_and_transport(tmp_path: Path) -> None:
    assert SYSLOG_NG is not None
    client = self_signed_pair(tmp_path / "client", "syslog-ng-client")
    write_conf(tmp_path / "conf.d", daemon_config(client[0]))
    daemon = VigilProcess(tmp_path / "conf.d", tmp_path / "data").start()
    ng_dir = tmp_path / "syslog-ng"
    ng_dir.mkdir()
    input_port = free_port()
    (ng_dir / "syslog-ng.conf").write_text(syslog_ng_config(daemon, input_port, client))
    stderr = open(ng_dir / "stderr", "wb")  # noqa: SIM115 - closed in finally
    ng = subprocess.Popen(
        [SYSLOG_NG, "--foreground", "--stderr", "--no-caps",
         f"--cfgfile={ng_dir / 'syslog-ng.conf'}", f"--persist-file={ng_dir / 'persist'}",
         f"--pidfile={ng_dir / 'pid'}", f"--control={ng_dir / 'ctl'}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        wait_for(lambda: ng.poll() is not None or accepts_connections(("127.0.0.1", input_port)),
                 timeout=20, message="syslog-ng to listen")
        assert ng.poll() is None, (ng_dir / "stderr").read_text()
        count = 20
        with socket.create_connection(("127.0.0.1", input_port)) as sock:
            sock.sendall(b"".join(f"<38>May 14 09:00:{i:02d} ngsrc sshd[{1000 + i}]: via "
                                  f"syslog-ng {i:02d}\n".encode() for i in range(count)))

        def arrived() -> int:
            return len(lake_rows(daemon.data_dir, "SELECT message FROM lake WHERE message "
                                                  "LIKE 'via syslog-ng%'"))

        expected = count * len(DESTINATIONS)
        wait_for(lambda: arrived() >= expected, timeout=30,
                 message=f"{expected} rows ({(ng_dir / 'stderr').read_text()[-2000:]})")
        rows = lake_rows(daemon.data_dir, "SELECT * FROM lake WHERE message LIKE 'via syslog-ng%'")
        assert len(rows) == expected  # each message once per destination, never twice
        for source_id in DESTINATIONS:
            mine = sorted((r for r in rows if r["vigil.source"] == source_id),
                          key=lambda r: r["message"])
            assert [r["message"] for r in mine] == [f"via syslog-ng {i:02d}"
                                                    for i in range(count)], source_id
            for i, row in enumerate(mine):
                assert row["tenant"] == "demo"
                assert row["host.hostname"] == "ngsrc", (source_id, row)
                assert row["log.syslog.appname"] == "sshd" and row["process.pid"] == 1000 + i
                assert (row["log.syslog.facility.code"], row["log.syslog.severity.code"]) == \
                    (4, 6)
        ietf = next(r for r in rows if r["vigil.source"] == "ng_syslog_tls")
        assert ietf["log.syslog.version"] == 1  # syslog() speaks RFC 5424, octet-counted
        assert daemon.metric("vigil_component_errors_total", error_type="tls_handshake") == 0
    finally:
        if ng.poll() is None:
            ng.send_signal(signal.SIGTERM)
            try:
                ng.wait(20)
            except subprocess.TimeoutExpired:
                ng.kill()
                ng.wait()
        stderr.close()
        daemon.kill()
