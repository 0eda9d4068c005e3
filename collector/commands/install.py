"""`vigil install`: make this installation a systemd service that can read its configuration.

What the README's manual steps got wrong (issue 18: a root-owned 0750 /etc/vigil/conf.d the
`vigil` user could not read, so the service collected nothing): this command creates the
account (systemd-sysusers), gives /etc/vigil to root with group `vigil` (directories 0750,
files 0640, fixed on every run), copies the example conf.d only into an empty directory,
writes the unit with this installation's `vigil` path, installs the README the unit's
`Documentation=` names, then checks by permission bits that the `vigil` account can reach the
interpreter and read every configuration file. `--root DIR` installs into a tree (a package
build, a container image, a test) and never starts anything.
"""

from __future__ import annotations

import argparse
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from core.errors import ExitCode

UNIT_VIGIL = "/opt/vigil/.venv/bin/vigil"  # the path the shipped unit names
ACCOUNT = "vigil"


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "install", help="install this vigil as a systemd service (account, /etc/vigil, unit)")
    parser.add_argument("--from", dest="source", type=Path, default=None, metavar="DIR",
                        help="the source tree holding systemd/ and conf.d/ (default: the "
                             "checkout this vigil runs from)")
    parser.add_argument("--root", type=Path, default=Path("/"), metavar="DIR",
                        help="install into this tree instead of / (nothing is started)")
    parser.add_argument("--no-start", action="store_true",
                        help="do not run systemctl daemon-reload / enable --now")
    parser.set_defaults(func=run_install)


@dataclass(frozen=True)
class Account:
    uid: int
    gid: int


def _source_tree(given: Path | None) -> Path:
    tree = given or Path(__file__).resolve().parents[2]
    if not (tree / "systemd" / "vigil.service").is_file() or not (tree / "conf.d").is_dir():
        raise FileNotFoundError(f"{tree} has no systemd/vigil.service and conf.d/: give "
                                "--from /path/to/vigil (the source tree you installed from)")
    return tree


def _account(root: Path) -> Account:
    """The `vigil` account as the tree's /etc/passwd has it."""
    for line in (root / "etc" / "passwd").read_text(encoding="utf-8").splitlines():
        fields = line.split(":")
        if fields[0] == ACCOUNT and len(fields) >= 4:
            return Account(int(fields[2]), int(fields[3]))
    raise LookupError(f"no `{ACCOUNT}` account in {root / 'etc' / 'passwd'} after "
                      "systemd-sysusers")


def _place(data: bytes, target: Path, mode: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    os.replace(tmp, target)


def _own_config(etc_vigil: Path, account: Account) -> None:
    """root:vigil, directories 0750 and files 0640 under /etc/vigil (symlinks left alone)."""
    for path in [etc_vigil, *sorted(etc_vigil.rglob("*"))]:
        if path.is_symlink():
            continue
        os.chown(path, 0, account.gid)
        os.chmod(path, 0o750 if path.is_dir() else 0o640)


def can_reach(path: Path, account: Account, *, read: bool, base: Path = Path("/")) -> bool:
    """Whether `account` (no supplementary groups) may traverse to `path` from `base` (the
    install root: directories above it are not the installed system's) and read it (or, for a
    directory, list it) by the permission bits; root-only paths like /root fail here."""
    def allowed(st: os.stat_result, bits: tuple[int, int, int]) -> bool:
        if st.st_uid == account.uid:
            return bool(st.st_mode & bits[0])
        if st.st_gid == account.gid:
            return bool(st.st_mode & bits[1])
        return bool(st.st_mode & bits[2])

    resolved = path.resolve()
    base = base.resolve()
    for parent in reversed(resolved.parents):
        below = parent == base or base in parent.parents
        if below and not allowed(parent.stat(), (stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH)):
            return False
    st = resolved.stat()
    if stat.S_ISDIR(st.st_mode):
        return allowed(st, (stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH)) and (
            not read or allowed(st, (stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH)))
    wanted = (stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH) if read else (
        stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH)
    return allowed(st, wanted)


def access_problems(conf_dir: Path, programs: list[Path], account: Account,
                    root: Path = Path("/")) -> list[str]:
    problems = [f"the {ACCOUNT} account cannot run {p}"
                f"{f' (= {p.resolve()})' if p.resolve() != p else ''}: a parent directory or "
                "the file is closed to it; install vigil where it can, e.g. /opt/vigil/.venv "
                "with a system Python" for p in programs if not can_reach(p, account, read=False)]
    for path in [conf_dir, *sorted(conf_dir.rglob("*"))]:
        if not can_reach(path, account, read=True, base=root):
            problems.append(f"the {ACCOUNT} account cannot read {path}")
    return problems


def run_install(args: argparse.Namespace) -> int:
    root: Path = args.root
    live = root.resolve() == Path("/")
    tree = _source_tree(args.source)
    vigil = Path(sys.executable).parent / "vigil"
    if not vigil.is_file():
        raise FileNotFoundError(f"{vigil} does not exist: run the vigil of the installation "
                                "to install (e.g. /opt/vigil/.venv/bin/vigil install)")
    sysusers_bin = shutil.which("systemd-sysusers")
    if sysusers_bin is None:
        print("vigil install: systemd-sysusers is not installed (apt install systemd)",
              file=sys.stderr)
        return int(ExitCode.UNAVAILABLE)

    sysusers = root / "usr" / "lib" / "sysusers.d" / "vigil.conf"
    _place((tree / "systemd" / "vigil.sysusers").read_bytes(), sysusers, 0o644)
    (root / "etc").mkdir(parents=True, exist_ok=True)
    subprocess.run([sysusers_bin, *([] if live else [f"--root={root}"]), str(sysusers)],
                   check=True, capture_output=True, timeout=60)
    account = _account(root)
    print(f"account {ACCOUNT}: uid {account.uid}, gid {account.gid}")

    etc_vigil = root / "etc" / "vigil"
    conf_dir = etc_vigil / "conf.d"
    conf_dir.mkdir(parents=True, exist_ok=True)
    if not any(conf_dir.glob("*.yaml")):
        shutil.copytree(tree / "conf.d", conf_dir, dirs_exist_ok=True)
        print(f"{conf_dir}: the example configuration (edit tenants and sources)")
    else:
        print(f"{conf_dir}: kept as it is")
    _own_config(etc_vigil, account)
    print(f"{etc_vigil}: root:{ACCOUNT}, directories 0750, files 0640")

    unit = root / "etc" / "systemd" / "system" / "vigil.service"
    text = (tree / "systemd" / "vigil.service").read_text(encoding="utf-8")
    _place(text.replace(UNIT_VIGIL, str(vigil)).encode(), unit, 0o644)
    _place((tree / "README.md").read_bytes(), root / "usr" / "share" / "doc" / "vigil" /
           "README.md", 0o644)
    print(f"{unit}: runs {vigil}")

    problems = access_problems(conf_dir, [Path(sys.executable), vigil], account, root)
    for problem in problems:
        print(f"vigil install: {problem}", file=sys.stderr)
    if problems:
        return int(ExitCode.NOPERM)
    if live and not args.no_start:
        for command in (["systemctl", "daemon-reload"], ["systemctl", "enable", "--now",
                                                          "vigil"]):
            subprocess.run(command, check=True, timeout=120)
        print("vigil is running: systemctl status vigil; journalctl -u vigil -f")
    else:
        print("next: systemctl daemon-reload && systemctl enable --now vigil")
    return 0
