"""systemd integration: the unit file verifies, the sysusers file creates the account, and a real
daemon speaks the sd_notify protocol (READY, RELOADING, WATCHDOG, STOPPING) on $NOTIFY_SOCKET."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from support.daemon import REPO, VigilProcess, basic_config, wait_for, write_conf

UNIT = REPO / "systemd" / "vigil.service"
SYSUSERS = REPO / "systemd" / "vigil.sysusers"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (apt install systemd)")
def test_unit_file_verifies(tmp_path: Path) -> None:
    # verify insists that Exec paths exist: point them at this checkout's venv.
    vigil = Path(sys.executable).with_name("vigil")
    unit = tmp_path / "vigil.service"
    unit.write_text(UNIT.read_text().replace("/opt/vigil/.venv/bin/vigil", str(vigil)))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.strip() == "", result.stderr
    text = UNIT.read_text()
    for directive in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "User=vigil",
                      "StateDirectory=vigil", "ConfigurationDirectory=vigil",
                      "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes",
                      "AmbientCapabilities=CAP_NET_BIND_SERVICE", "LimitNOFILE=",
                      "RestartPreventExitStatus=64 66 73 77 78"):
        assert directive in text
    exec_reload = [line for line in text.splitlines() if line.startswith("ExecReload=")]
    assert "validate" in exec_reload[0] and "kill -HUP $MAINPID" in exec_reload[1]


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None,
                    reason="systemd-sysusers is not installed (apt install systemd)")
def test_sysusers_creates_the_account(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    result = subprocess.run(["systemd-sysusers", f"--root={tmp_path}", str(SYSUSERS)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    passwd = (tmp_path / "etc" / "passwd").read_text().splitlines()
    (entry,) = [line for line in passwd if line.startswith("vigil:")]
    assert entry.endswith(":/var/lib/vigil:/usr/sbin/nologin")


class NotifySocket:
    """The receiving end of $NOTIFY_SOCKET, as systemd binds it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return self.messages

    def has(self, fragment: str, count: int = 1) -> bool:
        return sum(fragment in m for m in self.drain()) >= count

    def close(self) -> None:
        self.sock.close()


def test_sd_notify_ready_reload_watchdog_stopping(tmp_path: Path) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    write_conf(tmp_path / "conf.d", basic_config())
    # 400 ms: the daemon pings at half that, from its 0.5 s tick, so once per tick.
    daemon = VigilProcess(tmp_path / "conf.d", tmp_path / "data",
                          env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000"})
    try:
        daemon.start()
        assert notify.has("READY=1")
        # READY=1 is sent only after every listener is bound.
        ready_index = next(i for i, m in enumerate(notify.messages) if "READY=1" in m)
        assert daemon.source_address("syslog_tcp")[1] > 0
        assert not any("STOPPING" in m for m in notify.messages[:ready_index])
        wait_for(lambda: notify.has("WATCHDOG=1", 2), message="two watchdog pings")

        daemon.signal(signal.SIGHUP)
        wait_for(lambda: notify.has("READY=1", 2), message="READY=1 after the reload")
        reloading = next(i for i, m in enumerate(notify.messages) if "RELOADING=1" in m)
        assert "MONOTONIC_USEC=" in notify.messages[reloading]
        assert any("READY=1" in m for m in notify.messages[reloading + 1:])

        assert daemon.stop() == 0
        assert notify.has("STOPPING=1")
    finally:
        daemon.kill()
        notify.close()
