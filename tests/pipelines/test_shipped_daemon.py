"""The shipped conf.d in the real daemon (what `make run` starts, on OS-chosen ports): lines
sent over TCP syslog and JSON land in their pipelines' datasets in the lake, with the columns
typed as the pipelines declare and the enrichment files found relative to the conf.d."""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path
from typing import Any

import orjson
from support.daemon import REPO, VigilProcess, lake_rows, wait_for

LINES = [
    b"Dec 10 06:55:48 LabSZ sshd[24200]: Failed password for invalid user webmaster from "
    b"173.234.31.186 port 38926 ssh2",
    b"Feb 20 08:35:22 slave22 sshd[5774]: Failed password for root from 216.160.83.57 port "
    b"29160 ssh2",
    b'<189>date=2020-04-23 time=12:11:51 devname="newfirewall" devid="newrouterid" '
    b'logid="0000000020" type="traffic" subtype="forward" level="notice" vd="root" '
    b"eventtime=1587229911390385486 srcip=192.168.10.10 srcport=6000 dstip=81.2.69.144 "
    b'dstport=6000 proto=17 action="accept" policyid=3426 sentbyte=438650 rcvdbyte=65446',
    b'<190>May 14 09:12:00 api-prod-22 nginx: 3.89.102.164 - - [14/May/2024:09:12:00 +0000] '
    b'"POST /login HTTP/1.1" 200 24564 "https://api.initech.com/" "curl/8.5.0"',
]
CLOUDTRAIL = {"eventVersion": "1.08", "eventTime": "2023-07-19T21:44:40Z",
              "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin",
              "sourceIPAddress": "89.160.20.112", "readOnly": False,
              "userIdentity": {"type": "IAMUser", "userName": "Anaya"},
              "responseElements": {"ConsoleLogin": "Failure"}}


def example_conf(tmp_path: Path) -> Path:
    """The repository's conf.d with every listener on port 0 and short flushes."""
    conf = tmp_path / "conf.d"
    shutil.copytree(REPO / "conf.d", conf)
    for path in conf.glob("*.yaml"):
        text = re.sub(r"address: 127\.0\.0\.1:\d+", "address: 127.0.0.1:0", path.read_text())
        path.write_text(text.replace("max_seconds: 5", "max_seconds: 0.2"))
    return conf


def rows(data: Path, dataset: str) -> list[dict[str, Any]]:
    return lake_rows(data, f'SELECT * FROM lake WHERE "vigil.dataset" = \'{dataset}\'')


def test_example_conf_in_the_daemon(tmp_path: Path) -> None:
    data = tmp_path / "data"
    daemon = VigilProcess(example_conf(tmp_path), data).start()
    try:
        with socket.create_connection(daemon.source_address("syslog_tcp")) as sock:
            sock.sendall(b"\n".join(LINES) + b"\n")
        with socket.create_connection(daemon.source_address("tcp_json")) as sock:
            sock.sendall(orjson.dumps(CLOUDTRAIL) + b"\n")
        # Alerts land in the lake too (dataset `alerts`; the old sample lines can raise the
        # sender-clock rule), at their own flush: only the events are counted and compared.
        events = 'SELECT * FROM lake WHERE "vigil.dataset" <> \'alerts\''
        wait_for(lambda: len(lake_rows(data, events)) == len(LINES) + 1, timeout=60,
                 message="every event in the lake")
        query = 'SELECT DISTINCT "vigil.dataset" AS d FROM lake WHERE "vigil.dataset" <> \'alerts\''
        datasets = {r["d"] for r in lake_rows(data, query)}
        assert datasets == {"linux.auth", "fortinet.firewall", "nginx.access", "aws.cloudtrail"}
        auth = sorted(rows(data, "linux.auth"), key=lambda r: r["source.port"])
        assert [(r["user.name"], r["source.port"], r["user.vip"], r["event.outcome"])
                for r in auth] == [("root", 29160, False, "failure"),
                                   ("webmaster", 38926, False, "failure")]
        assert auth[0]["source.geo.city_name"] == "Milton"
        assert isinstance(auth[0]["source.geo.location.lat"], float)
        (fw,) = rows(data, "fortinet.firewall")
        assert (fw["source.port"], fw["destination.bytes"], fw["destination.geo.country_iso_code"],
                fw["network.transport"]) == (6000, 65446, "GB", "udp")
        (trail,) = rows(data, "aws.cloudtrail")
        assert trail["event.outcome"] == "failure" and trail["aws.cloudtrail.readOnly"] is False
        assert trail["source.geo.country_iso_code"] == "SE"
        assert daemon.metric("vigil_dead_letter_events_total") == 0
        assert daemon.stop() == 0
    finally:
        daemon.kill()
