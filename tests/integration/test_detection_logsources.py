"""Rules that used to load but could never fire (issue 17 section 3), end to end through the
daemon: SigmaHQ's `service: syslog` rules on lines that land in the `syslog` dataset, its
Apache / nginx error-log rules on the error datasets, the sudo CVE-2019-14287 rule on sudo's
`USER=#-1`, and the PAM-only SSH brute force from a peer PAM logged by host name, each over
TCP syslog into the alert store."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest
import yaml
from support.daemon import REPO, SHARED_DATA, VigilProcess, basic_config, wait_for, write_conf

from soc.alerts.db import Database
from soc.alerts.model import SYSTEM, AlertFilter
from soc.alerts.store import AlertStore

SIGMA = SHARED_DATA / "sigma"
# SigmaHQ rule file -> the line (as its program sends it) it is written for.
CASES = {
    "rules/linux/builtin/syslog/lnx_syslog_susp_named.yml":
        '<30>Nov 23 10:00:00 ns1 named[812]: denied AXFR from [203.0.113.50].53211 for '
        '"example.com" (acl)',
    "rules/linux/builtin/syslog/lnx_syslog_security_tools_disabling_syslog.yml":
        "<30>Nov 23 10:00:01 web1 systemd[1]: Stopping iptables.service - IPv4 firewall "
        "with iptables...",
    "rules/web/product/apache/web_apache_segfault.yml":
        "<11>Nov 23 10:00:02 web1 apache2: [Sun Nov 23 10:00:02.123456 2026] [core:notice] "
        "[pid 1234:tid 140] AH00051: child pid 4321 exit signal Segmentation fault (11), "
        "possible coredump in /etc/apache2",
    "rules/web/product/nginx/web_nginx_core_dump.yml":
        "<11>Nov 23 10:00:03 web1 nginx: 2026/11/23 10:00:03 [alert] 1201#0: worker process "
        "4242 exited on signal 6 (core dumped)",
    "rules-emerging-threats/2019/Exploits/CVE-2019-14287/lnx_sudo_exploit_cve_2019_14287.yml":
        "<85>Nov 23 10:00:04 web1 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=#-1 ; "
        "COMMAND=/bin/bash",
}
PAM_HOST = "d211-116-254-214.rev.krline.net"
PAM_BRUTE_FORCE = "SSH brute force from one source (PAM failures)"

pytestmark = pytest.mark.skipif(not (SIGMA / "rules").is_dir(),
                                reason=f"SigmaHQ rules not found under {SIGMA}")


def pam_failures(count: int) -> list[str]:
    """The older Linux-PAM form sshd wrote before sshd itself logged failures (loghub Linux)."""
    return [f"<38>Nov 23 10:01:{i:02d} combo sshd(pam_unix)[19939]: authentication failure; "
            f"logname= uid=0 euid=0 tty=NODEVssh ruser= rhost={PAM_HOST}  user=root"
            for i in range(count)]


def stored_alerts(data: Path) -> list[dict]:
    if not (data / "alerts.db").exists():
        return []
    rows, _ = AlertStore(Database(data / "alerts.db")).search(SYSTEM, AlertFilter(tenant="demo"))
    return rows


def test_syslog_web_error_sudo_and_pam_rules_fire_through_the_daemon(tmp_path: Path) -> None:
    conf = tmp_path / "conf.d"
    rules = conf / "sigmahq"
    rules.mkdir(parents=True)
    titles = {}
    for name in CASES:
        shutil.copy(SIGMA / name, rules / Path(name).name)
        titles[name] = yaml.safe_load((SIGMA / name).read_text(encoding="utf-8"))["title"]
    config = basic_config(flush_seconds=0.2)
    config["rules"] = {"sigmahq": {"path": "sigmahq"}}
    write_conf(conf, config)
    for name in ("30-linux-auth.yaml", "30-linux-system.yaml", "34-web.yaml"):
        shipped = yaml.safe_load((REPO / "conf.d" / name).read_text(encoding="utf-8"))
        shipped.pop("tests", None)  # their cases name sources this configuration lacks
        (conf / name).write_text(yaml.safe_dump(shipped, sort_keys=False), encoding="utf-8")
    shutil.copytree(REPO / "conf.d" / "enrich", conf / "enrich")
    data = tmp_path / "data"
    daemon = VigilProcess(conf, data).start()
    try:
        lines = [*CASES.values(), *pam_failures(10)]
        with socket.create_connection(daemon.source_address("syslog_tcp")) as sock:
            sock.sendall("".join(line + "\n" for line in lines).encode())
        wait_for(lambda: len(stored_alerts(data)) >= len(CASES) + 1, 20,
                 message="an alert per case in the alert store")
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    rows = stored_alerts(data)
    fired = {row["rule"]["name"]: row for row in rows}
    assert set(fired) == {*titles.values(), PAM_BRUTE_FORCE}
    datasets = {row["rule"]["name"]: row["dataset"] for row in rows}
    assert {titles[n]: datasets[titles[n]] for n in CASES} == {
        titles["rules/linux/builtin/syslog/lnx_syslog_susp_named.yml"]: "syslog",
        titles["rules/linux/builtin/syslog/lnx_syslog_security_tools_disabling_syslog.yml"]:
            "syslog",
        titles["rules/web/product/apache/web_apache_segfault.yml"]: "apache.error",
        titles["rules/web/product/nginx/web_nginx_core_dump.yml"]: "nginx.error",
        titles["rules-emerging-threats/2019/Exploits/CVE-2019-14287/"
               "lnx_sudo_exploit_cve_2019_14287.yml"]: "linux.auth",
    }
    pam = fired[PAM_BRUTE_FORCE]
    assert json.loads(pam["group_key"]) == {"source.address": PAM_HOST}
