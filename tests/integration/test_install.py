"""`vigil install --root DIR`: the account exists, /etc/vigil is root:vigil with directories
0750 and files 0640 (the README's old steps left it root-only: the service read nothing), the
unit runs this installation's vigil and verifies, and the command says when the account cannot
reach the interpreter (a venv under /root) instead of leaving a service that cannot start."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support.daemon import REPO

from collector.commands.install import Account, can_reach

pytestmark = [
    pytest.mark.skipif(shutil.which("systemd-sysusers") is None,
                       reason="systemd-sysusers is not installed (apt install systemd)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="chown to the vigil group needs root"),
]


def install(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "collector.cli", "install", "--root", str(root),
                           "--from", str(REPO)], capture_output=True, text=True, timeout=120)


def test_install_into_a_tree(tmp_path: Path) -> None:
    root = tmp_path / "root"
    result = install(root)
    passwd = (root / "etc" / "passwd").read_text().splitlines()
    (entry,) = [line for line in passwd if line.startswith("vigil:")]
    uid, gid = int(entry.split(":")[2]), int(entry.split(":")[3])
    account = Account(uid, gid)

    conf = root / "etc" / "vigil" / "conf.d"
    shipped = sorted(p.relative_to(REPO / "conf.d") for p in (REPO / "conf.d").rglob("*"))
    assert sorted(p.relative_to(conf) for p in conf.rglob("*")) == shipped
    for path in [conf.parent, conf, *conf.rglob("*")]:
        st = path.stat()
        assert (st.st_uid, st.st_gid) == (0, gid), path
        assert stat.S_IMODE(st.st_mode) == (0o750 if path.is_dir() else 0o640), path
        assert can_reach(path, account, read=True, base=root), path
        assert not st.st_mode & stat.S_IWGRP  # the daemon cannot rewrite its own rules

    unit = (root / "etc" / "systemd" / "system" / "vigil.service").read_text()
    vigil = Path(sys.executable).parent / "vigil"
    assert f"ExecStart={vigil} run -c" in unit and "/opt/vigil" not in unit
    assert (root / "usr" / "share" / "doc" / "vigil" / "README.md").is_file()
    if shutil.which("systemd-analyze"):
        verified = subprocess.run(["systemd-analyze", "verify", "--man=no",
                                   str(root / "etc" / "systemd" / "system" / "vigil.service")],
                                  capture_output=True, text=True, timeout=60)
        assert verified.returncode == 0, verified.stdout + verified.stderr

    if can_reach(Path(sys.executable), account, read=False):
        assert result.returncode == 0, result.stderr
    else:  # e.g. a pyenv interpreter under /root (0700): the service could not start
        assert result.returncode == 77, result.stderr
        assert f"vigil install: the vigil account cannot run {sys.executable}" in result.stderr

    # Again, over an edited configuration: kept, and its modes repaired.
    (conf / "10-tenants.yaml").write_text("# edited\n" + (conf / "10-tenants.yaml").read_text())
    os.chmod(conf / "10-tenants.yaml", 0o600)
    again = install(root)
    assert "conf.d: kept as it is" in again.stdout
    assert (conf / "10-tenants.yaml").read_text().startswith("# edited")
    assert stat.S_IMODE((conf / "10-tenants.yaml").stat().st_mode) == 0o640
    assert again.returncode == result.returncode


def test_can_reach_follows_the_bits(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir()
    inside = closed / "file"
    inside.write_text("x")
    os.chmod(inside, 0o644)
    someone = Account(54321, 54321)
    os.chmod(tmp_path, 0o755)  # pytest makes it 0700; it stands for the installed system's /
    os.chmod(closed, 0o700)
    assert not can_reach(inside, someone, read=True, base=tmp_path)
    os.chmod(closed, 0o711)
    assert can_reach(inside, someone, read=True, base=tmp_path)
    os.chown(inside, 0, 54321)
    os.chmod(inside, 0o640)
    assert can_reach(inside, someone, read=True, base=tmp_path)
    os.chmod(inside, 0o600)
    assert not can_reach(inside, someone, read=True, base=tmp_path)
