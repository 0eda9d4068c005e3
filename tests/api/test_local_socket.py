"""The host's administrator over the daemon's local socket: `vigil alerts` without a token or
login on the collector host, every action audited as `local:<user>`; the socket's directory is
0700 and the kernel-named caller must be root or the daemon's user."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from alerts.kit import TENANTS_YAML, UNUSED_MAIL_YAML, make_alert, write_conf
from support.daemon import VigilProcess

from soc.alerts.db import Database
from soc.alerts.model import Actor
from soc.alerts.store import AlertStore
from soc.api.local import local_principal, socket_path


def _vigil(conf: Path, data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIGIL_TOKEN", "VIGIL_API")}
    return subprocess.run([sys.executable, "-m", "collector.cli", *args, "-c", str(conf),
                           "--data-dir", str(data)], capture_output=True, text=True,
                          timeout=60, env=env, stdin=subprocess.DEVNULL)


def test_local_administrator_triages_without_a_login(tmp_path: Path) -> None:
    conf, data = tmp_path / "conf.d", tmp_path / "data"
    write_conf(conf, TENANTS_YAML, "10-tenants.yaml")
    write_conf(conf, UNUSED_MAIL_YAML, "60-notify.yaml")
    write_conf(conf, "vigil:\n  allow_empty: true\n  control:\n    address: 127.0.0.1:0\n",
               "00-vigil.yaml")
    alert = make_alert("acme", count=12)
    data.mkdir()
    AlertStore(Database(data / "alerts.db")).upsert([alert], "acme")
    daemon = VigilProcess(conf, data).start()
    try:
        path = socket_path(data)
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        listed = _vigil(conf, data, "alerts", "list")
        assert listed.returncode == 0, listed.stderr
        assert alert["alert.id"][:8] in listed.stdout
        acked = _vigil(conf, data, "alerts", "ack", alert["alert.id"][:8])
        assert acked.returncode == 0, acked.stderr
        store = AlertStore(Database(data / "alerts.db"))
        trail = store.audit(Actor("test", None), alert_id=alert["alert.id"])[0]
        actor = "local:" + __import__("pwd").getpwuid(os.geteuid()).pw_name
        assert any(entry["actor"] == actor and entry["action"] == "acknowledge"
                   for entry in trail), trail
        # The TCP listener still wants a token.
        status, _ = daemon.http("/api/v1/alerts")
        assert status == 401
    finally:
        assert daemon.stop() == 0
    assert not socket_path(data).exists()


def test_only_root_and_the_daemons_user_are_the_local_administrator() -> None:
    assert local_principal(None) is None  # not a Unix socket
    assert local_principal(4242, daemon_uid=999) is None
    me = local_principal(999, daemon_uid=999)
    assert me is not None and me.role == "platform_admin" and me.tenants is None
    root = local_principal(0, daemon_uid=999)
    assert root is not None and root.login.startswith("local:")


def test_a_data_dir_too_deep_for_a_socket_only_loses_the_socket(tmp_path: Path) -> None:
    conf, data = tmp_path / "conf.d", tmp_path / ("d" * 100) / "data"
    write_conf(conf, TENANTS_YAML, "10-tenants.yaml")
    write_conf(conf, UNUSED_MAIL_YAML, "60-notify.yaml")
    write_conf(conf, "vigil:\n  allow_empty: true\n  control:\n    address: 127.0.0.1:0\n",
               "00-vigil.yaml")
    daemon = VigilProcess(conf, data).start()
    try:
        assert daemon.http("/healthz")[0] == 200
    finally:
        assert daemon.stop() == 0
    assert "no local control socket" in daemon.log()
