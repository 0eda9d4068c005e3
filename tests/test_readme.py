"""The README's commands run as written (issue 18): its `sh` blocks are run in order, with
bash, in a fresh copy of the repository's tracked files, beside the daemon `make run` starts
(the example conf.d, data under ./var, its fixed ports), with `.venv/bin` on the PATH as
`. .venv/bin/activate` puts it. Each block must exit 0 and print what the README says.
A block preceded by `<!-- readme-test: skip (reason) -->` is not run; the reason is required.

The copy uses this environment's installed interpreter (`.venv` links to it): creating and
installing a virtualenv is `make`'s part, which CI runs anyway. Needs the fixed ports free
(skipped otherwise, e.g. beside a `make run`), and logger, openssl and curl.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from support.daemon import REPO, wait_for

BLOCK = re.compile(r"(?P<skip><!-- readme-test: skip \((?P<reason>[^)]+)\) -->\n)?"
                   r"```sh\n(?P<body>.*?)```", re.S)
PORTS = {("tcp", 5514), ("udp", 5514), ("tcp", 6514), ("tcp", 5170), ("tcp", 8088),
         ("tcp", 9580)}
# What a block prints, when the README says (first command of the block -> expected texts).
EXPECT = {
    "logger -n 127.0.0.1 -P 5514 -T \"hello from logger\"": ['"status": "ready"',
                                                              "vigil_component_received"],
    "sleep 6": ["hello from logger", "octet-counted RFC 5424"],
    ".venv/bin/vigil users add admin": ["TOTP enrollment for admin", "otpauth URI",
                                        "one-time activation link"],
    "vigil test": ["passed, 0 failed", "rule(s) loaded", "match(es) from",
                   "backtest: ", "alert(s)"],
    ".venv/bin/vigil users add lead": ["written to the outbox", "activation link",
                                       "otpauth://totp/"],
    "vigil tenants list": ["demo", "user ana added", "acknowledge", "resolve"],
}


def blocks() -> list[tuple[str, str | None]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return [(m.group("body"), m.group("reason")) for m in BLOCK.finditer(text)]


def _free(kind: str, port: int) -> bool:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == "tcp"
                         else socket.SOCK_DGRAM)
    # As the daemon binds (asyncio sets SO_REUSEADDR): a previous run's TIME_WAIT is no owner.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def test_every_sh_block_runs_or_says_why_not() -> None:
    found = blocks()
    assert len(found) >= 6
    for body, reason in found:
        assert reason is None or len(reason) > 10, body[:80]


@pytest.mark.skipif(any(shutil.which(p) is None for p in ("logger", "openssl", "curl", "git")),
                    reason="needs logger (bsdutils), openssl, curl and git")
@pytest.mark.timeout(600)  # a start and every README command: about 2 minutes on a busy host
def test_readme_commands_run_as_written(tmp_path: Path) -> None:
    busy = sorted(f"{k}/{p}" for k, p in PORTS if not _free(k, p))
    if busy:
        pytest.skip(f"the example configuration's ports are in use: {', '.join(busy)}")
    checkout = tmp_path / "vigil"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                             check=True).stdout.decode().split("\0")
    for name in filter(None, tracked):
        source = REPO / name
        if source.is_file():
            target = checkout / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (checkout / ".venv").symlink_to(Path(sys.prefix))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    # The copy's own code, as `make run` would install it there (the shared .venv may have
    # another checkout installed in editable mode).
    env.update(PATH=f"{checkout / '.venv' / 'bin'}:{env.get('PATH', '')}",
               PYTHONPATH=str(checkout),
               HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "home" / ".cache"))
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen([str(checkout / ".venv" / "bin" / "vigil"), "run", "-c", "conf.d",
                               "--data-dir", "./var"], cwd=checkout, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        def ready() -> bool:
            return subprocess.run(["curl", "-sf", "127.0.0.1:9580/readyz"],
                                  capture_output=True).returncode == 0
        wait_for(ready, 120, message="the example daemon's /readyz")
        for body, reason in blocks():
            if reason is not None:
                continue
            first = body.strip().splitlines()[0].split("#")[0].strip()
            result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", body], cwd=checkout,
                                    env=env, capture_output=True, text=True, timeout=300,
                                    stdin=subprocess.DEVNULL)
            assert result.returncode == 0, (
                f"README block starting `{first}` exited {result.returncode}:\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
            for key, texts in EXPECT.items():
                if first.startswith(key):
                    for text in texts:
                        assert text in result.stdout + result.stderr, (first, text)
        assert list((checkout / "var" / "lake").rglob("*.parquet")), "nothing reached the lake"
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            assert daemon.wait(60) == 0
        finally:
            if daemon.poll() is None:
                daemon.kill()
            log.close()
