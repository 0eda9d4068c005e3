"""`vigil coverage` lists every dashboard per tenant with its state and reason, from the same
saved field coverage as the rules, in text and in --json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support.daemon import REPO, basic_config, write_conf
from support.lakes import FIREWALL_FIELDS, save_coverage


def test_coverage_lists_dashboards_with_reasons(tmp_path: Path) -> None:
    conf, data = tmp_path / "conf.d", tmp_path / "data"
    write_conf(conf, basic_config())
    save_coverage(data, "demo", "fortinet.firewall", FIREWALL_FIELDS)
    save_coverage(data, "demo", "linux.auth", ("user.name", "source.ip"))
    cli = [sys.executable, "-m", "collector.cli", "coverage", "-c", str(conf), "--data-dir",
           str(data), "--tenant", "demo"]
    report = json.loads(subprocess.run([*cli, "--json"], capture_output=True, text=True,
                                       check=True, cwd=REPO).stdout)
    (tenant,) = report["tenants"]
    dashboards = {d["id"]: d for d in tenant["dashboards"]}
    assert dashboards["firewall"]["state"] == "active"
    assert dashboards["firewall"]["datasets"] == ["fortinet.firewall"]
    assert dashboards["authentication"]["reason"] == \
        "waiting for `event.outcome` in linux.auth"
    assert dashboards["cloud"]["state"] == "inactive"
    text = subprocess.run(cli, capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert "  dashboards: 3 active, 7 inactive" in text
    assert ("    dashboard inactive: Authentication (authentication): waiting for "
            "`event.outcome` in linux.auth") in text
